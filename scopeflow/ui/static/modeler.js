// The modeler: edit the diagram, then post its XML to the save URL; lint messages come back as
// JSON and are shown as text, with erroneous elements marked on the canvas.
(function () {
  "use strict";
  const host = document.getElementById("modeler");
  const form = document.getElementById("modeler-form");
  if (!host || !form || typeof BpmnJS === "undefined") return;
  const panel = window.ScopeflowPanel;
  const options = { container: host };
  if (panel && window.ScopeflowPropertiesModule) {
    options.propertiesPanel = { parent: "#properties" };
    options.additionalModules = [panel.BpmnPropertiesPanelModule, panel.BpmnPropertiesProviderModule,
                                 window.ScopeflowPropertiesModule];
    options.moddleExtensions = { spiffworkflow: window.ScopeflowModdle };
  }
  const modeler = new BpmnJS(options);
  const list = document.getElementById("modeler-messages");
  let marked = [];

  function message(text, cls, href) {
    const li = document.createElement("li");
    li.className = cls || "";
    if (href) {
      const a = document.createElement("a");
      a.href = href; a.textContent = text; li.appendChild(a);
    } else {
      li.textContent = text;
    }
    list.appendChild(li);
  }

  modeler.importXML(JSON.parse(document.getElementById("modeler-xml").textContent)).then(function () {
    modeler.get("canvas").zoom("fit-viewport");
    host.dataset.rendered = "true";
  }).catch(function (err) { message("The diagram could not be loaded: " + err.message, "error"); });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    modeler.saveXML({ format: true }).then(function (saved) {
      const data = new FormData(form);
      data.append("xml", saved.xml);
      return fetch(form.action, { method: "POST", body: data, credentials: "same-origin" });
    }).then(r => r.json()).then(function (result) {
      list.replaceChildren();
      const canvas = modeler.get("canvas");
      const registry = modeler.get("elementRegistry");
      for (const id of marked) if (registry.get(id)) canvas.removeMarker(id, "st-error");
      marked = [];
      if (result.problem) message(result.problem, "error");
      for (const m of result.messages || []) {
        message(m.text, m.level);
        if (m.level === "error" && m.element && registry.get(m.element)) {
          canvas.addMarker(m.element, "st-error"); marked.push(m.element);
        }
      }
      for (const s of result.stored || []) {
        message("Stored " + s.model + " v" + s.version + (s.created ? "" : " (unchanged)"), "ok", s.url);
      }
      if (!result.ok && !(result.messages || []).length && !result.problem) message("Lint refused the diagram.", "error");
    }).catch(function (err) { message("Saving failed: " + err, "error"); });
  });
})();
