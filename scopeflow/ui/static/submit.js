// Live preview of the parsed scope. Everything from the server is inserted as text, never HTML.
(function () {
  "use strict";
  const form = document.getElementById("submit-form");
  const scope = document.getElementById("scope");
  if (!form || !scope) return;
  const summary = document.getElementById("preview-summary");
  const body = document.getElementById("preview-body");
  let timer = null;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function render(data) {
    body.replaceChildren();
    if (data.error) { summary.textContent = data.error; return; }
    const spec = data.spec;
    summary.textContent = spec.title + " — " + data.summary;
    const entities = el("ul", undefined, "preview-entities");
    for (const entity of spec.entities) {
      const fields = entity.fields.map(f => f.name + " (" + f.type + (f.required ? ", required" : "") + ")");
      entities.appendChild(el("li", entity.name + ": " + fields.join(", ")));
    }
    body.appendChild(el("h3", "Entities")); body.appendChild(entities);
    if (spec.features.length) {
      const list = el("ul");
      for (const f of spec.features) list.appendChild(el("li", f.text + (f.buildable ? "" : " (not buildable offline)")));
      body.appendChild(el("h3", "Features")); body.appendChild(list);
    }
    if (spec.questions.length) {
      const list = el("ul");
      for (const q of spec.questions) list.appendChild(el("li", q.id + ": " + q.text + " [default: " + q.default + "]"));
      body.appendChild(el("h3", "Questions you will answer")); body.appendChild(list);
    }
  }

  function refresh() {
    const data = new FormData();
    data.append("scope", scope.value);
    data.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
    fetch(form.dataset.previewUrl, { method: "POST", body: data, credentials: "same-origin" })
      .then(r => r.json()).then(render)
      .catch(err => { summary.textContent = "Preview failed: " + err; });
  }

  scope.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
  if (scope.value.trim()) refresh();
})();
