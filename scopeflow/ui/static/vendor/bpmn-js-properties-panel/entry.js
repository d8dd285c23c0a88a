// The properties panel and the pieces a custom provider needs, bundled once with one copy of
// preact (the panel's) so a provider's entries render in the same tree.
export { BpmnPropertiesPanelModule, BpmnPropertiesProviderModule, useService } from "bpmn-js-properties-panel";
export { TextFieldEntry, TextAreaEntry, SelectEntry, isTextFieldEntryEdited, isTextAreaEntryEdited,
         isSelectEntryEdited, Group } from "@bpmn-io/properties-panel";
export { h } from "@bpmn-io/properties-panel/preact";
