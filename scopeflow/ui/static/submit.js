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

  // "title (text, required, unique, max 200)", "author (→ Author)", "status (choice: open | done, default open)"
  function field(f) {
    const parts = [f.type === "reference" && f.reference ? "→ " + f.reference
                   : f.type === "choice" && f.choices && f.choices.length ? "choice: " + f.choices.join(" | ") : f.type];
    if (f.required) parts.push("required");
    if (f.unique) parts.push("unique");
    if (f.default !== null && f.default !== undefined && f.default !== "") parts.push("default " + f.default);
    if (f.minimum !== null && f.minimum !== undefined) parts.push("min " + f.minimum);
    if (f.maximum !== null && f.maximum !== undefined) parts.push("max " + f.maximum);
    return f.name + " (" + parts.join(", ") + ")";
  }

  function render(data) {
    body.replaceChildren();
    if (data.error) { summary.textContent = data.error; return; }
    const spec = data.spec;
    summary.textContent = spec.title + " — " + data.summary;
    const entities = el("ul", undefined, "preview-entities");
    for (const entity of spec.entities) {
      const fields = entity.fields.map(field);
      entities.appendChild(el("li", entity.name + ": " + fields.join(", ")));
    }
    body.appendChild(el("h3", "Entities")); body.appendChild(entities);
    for (const [title, items] of [["Integrations", (spec.integrations || []).map(i =>
        i.name + (i.credentials && i.credentials.length ? " (needs " + i.credentials.join(", ") + ")" : ""))],
        ["Constraints", spec.constraints || []]]) {
      if (!items.length) continue;
      const list = el("ul");
      for (const item of items) list.appendChild(el("li", typeof item === "string" ? item : JSON.stringify(item)));
      body.appendChild(el("h3", title)); body.appendChild(list);
    }
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
    if (new Blob([scope.value]).size > 1000000) {
      body.replaceChildren();
      summary.textContent = "scope is larger than 1 MB: shorten it before submitting";
      return;
    }
    const data = new FormData();
    data.append("scope", scope.value);
    data.append("csrf_token", form.querySelector("input[name=csrf_token]").value);
    fetch(form.dataset.previewUrl, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (r) {
        const json = (r.headers.get("Content-Type") || "").includes("application/json");
        if (!json) throw new Error("the server answered " + r.status + " " + r.statusText);
        return r.json();
      }).then(render)
      .catch(err => { summary.textContent = "Preview failed: " + err; });
  }

  scope.addEventListener("input", function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
  if (scope.value.trim()) refresh();
})();
