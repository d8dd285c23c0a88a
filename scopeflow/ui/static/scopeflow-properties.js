// Scopeflow's properties for the modeler's panel: what the engine reads from a diagram.
// - service tasks: the operator (spiffworkflow:serviceTaskOperator), its result variable and each
//   parameter's expression; pre- and post-scripts;
// - user tasks: form, due time and other spiffworkflow:property values, and the instructions;
// - sequence flows: the condition expression; script tasks: the script.
// Timers, lanes (their names decide the role), names and ids come from the panel's BPMN provider.
// The spiffworkflow moddle types below make bpmn-js read and write those extension elements as
// typed objects, so edits go through the command stack (undo works) and export keeps them.
(function () {
  "use strict";
  const P = window.ScopeflowPanel;
  if (!P) return;
  const h = P.h;

  function typed(name, properties, extra) {
    return Object.assign({ name: name, superClass: ["Element"], properties: properties }, extra || {});
  }
  const attr = (name) => ({ name: name, isAttr: true, type: "String" });
  const body = { name: "value", isBody: true, type: "String" };

  window.ScopeflowModdle = {
    name: "SpiffWorkflow",
    uri: "http://spiffworkflow.org/bpmn/schema/1.0/core",
    prefix: "spiffworkflow",
    xml: { tagAlias: "lowerCase" },
    types: [
      typed("ServiceTaskOperator", [attr("id"), attr("resultVariable"), { name: "parameters", type: "Parameters" }]),
      typed("Parameters", [{ name: "parameter", type: "Parameter", isMany: true }]),
      typed("Parameter", [attr("id"), attr("type"), attr("value")]),
      typed("Properties", [{ name: "property", type: "Property", isMany: true }]),
      typed("Property", [attr("name"), attr("value")]),
      typed("InstructionsForEndUser", [body]),
      typed("PreScript", [body]),
      typed("PostScript", [body]),
      typed("VariableName", [body]),
      typed("MessageVariable", [body]),
    ],
  };

  function extensions(element, type) {
    const bo = element.businessObject;
    const values = (bo.extensionElements && bo.extensionElements.get("values")) || [];
    return values.filter((v) => v.$type === type);
  }

  // One text entry bound to a property of a moddle object (edited through modeling, so undo works).
  function entry(id, label, target, property, area, description) {
    return {
      id: id,
      isEdited: area ? P.isTextAreaEntryEdited : P.isTextFieldEntryEdited,
      component: function (props) {
        const modeling = P.useService("modeling");
        const debounce = P.useService("debounceInput");
        return h(area ? P.TextAreaEntry : P.TextFieldEntry, {
          element: props.element, id: id, label: label, description: description, debounce: debounce,
          getValue: () => target.get(property) || "",
          setValue: (value) => modeling.updateModdleProperties(props.element, target, { [property]: value || "" }),
        });
      },
    };
  }

  function operatorGroup(element) {
    const [op] = extensions(element, "spiffworkflow:ServiceTaskOperator");
    if (!op) return null;
    const entries = [
      entry("sf-operator", "Operator", op, "id", false, "the registered Python operator this task runs"),
      entry("sf-result", "Result variable", op, "resultVariable", false, "where the operator's result goes"),
    ];
    const params = op.get("parameters");
    for (const p of (params && params.get("parameter")) || []) {
      entries.push(entry("sf-param-" + p.get("id"), "Parameter " + p.get("id"), p, "value", false,
        "an expression over the task data"));
    }
    return { id: "scopeflow-operator", label: "Operator and parameters", entries: entries };
  }

  function scriptsGroup(element) {
    const entries = [];
    for (const [type, label] of [["spiffworkflow:PreScript", "Pre-script"], ["spiffworkflow:PostScript", "Post-script"]]) {
      for (const s of extensions(element, type)) entries.push(entry("sf-" + type.split(":")[1], label, s, "value", true));
    }
    if (element.businessObject.$type === "bpmn:ScriptTask") {
      entries.push(entry("sf-script", "Script", element.businessObject, "script", true));
    }
    return entries.length ? { id: "scopeflow-scripts", label: "Scripts", entries: entries } : null;
  }

  function humanGroup(element) {
    if (element.businessObject.$type !== "bpmn:UserTask") return null;
    const entries = [];
    for (const props of extensions(element, "spiffworkflow:Properties")) {
      for (const p of props.get("property")) {
        const hint = { formJsonSchemaFilename: "the form's JSON schema, in forms/", dueIn: "ISO 8601 duration, e.g. PT8H" };
        entries.push(entry("sf-prop-" + p.get("name"), p.get("name"), p, "value", false, hint[p.get("name")]));
      }
    }
    for (const text of extensions(element, "spiffworkflow:InstructionsForEndUser")) {
      entries.push(entry("sf-instructions", "Instructions", text, "value", true, "Jinja over the task data"));
    }
    return entries.length ? { id: "scopeflow-human", label: "Form, due time and instructions", entries: entries } : null;
  }

  function conditionGroup(element) {
    const condition = element.businessObject.conditionExpression;
    if (element.businessObject.$type !== "bpmn:SequenceFlow" || !condition) return null;
    return { id: "scopeflow-condition", label: "Condition",
             entries: [entry("sf-condition", "Condition expression", condition, "body", true,
                             "a Python expression over the task data")] };
  }

  function ScopeflowPropertiesProvider(propertiesPanel) {
    propertiesPanel.registerProvider(400, this);
  }
  ScopeflowPropertiesProvider.$inject = ["propertiesPanel"];
  ScopeflowPropertiesProvider.prototype.getGroups = function (element) {
    return function (groups) {
      const ours = [operatorGroup(element), humanGroup(element), conditionGroup(element), scriptsGroup(element)];
      const general = groups.findIndex((g) => g.id === "general");
      groups.splice(general + 1, 0, ...ours.filter(Boolean));
      return groups;
    };
  };

  window.ScopeflowPropertiesModule = {
    __init__: ["scopeflowPropertiesProvider"],
    scopeflowPropertiesProvider: ["type", ScopeflowPropertiesProvider],
  };
})();
