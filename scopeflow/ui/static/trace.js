// Waterfall bars are positioned from data attributes (no inline styles in the HTML), and a click
// on a diagram element shows only that element's spans.
(function () {
  "use strict";
  for (const bar of document.querySelectorAll(".waterfall .bar")) {
    bar.style.marginLeft = bar.dataset.left + "%";
    bar.style.width = bar.dataset.width + "%";
  }
  for (const tick of document.querySelectorAll(".axis .tick")) tick.style.left = tick.dataset.left + "%";
  const rows = Array.from(document.querySelectorAll(".waterfall .span-row"));
  function show(elementId) {
    for (const row of rows) row.hidden = Boolean(elementId) && row.dataset.element !== elementId;
  }
  document.addEventListener("diagram:select", function (event) {
    const id = event.detail.id;
    show(rows.some(r => r.dataset.element === id) ? id : null);
  });
  // A span with children folds them away (and unfolds them, keeping folds made further down).
  const children = {};
  for (const row of rows) (children[row.dataset.parent] = children[row.dataset.parent] || []).push(row);
  function below(spanId, out) {
    for (const child of children[spanId] || []) { out.push(child); below(child.dataset.span, out); }
    return out;
  }
  for (const row of rows) {
    const twisty = row.querySelector(".twisty");
    if (!twisty || !children[row.dataset.span]) continue;
    twisty.hidden = false;
    twisty.addEventListener("click", function () {
      const folding = twisty.getAttribute("aria-expanded") === "true";
      twisty.setAttribute("aria-expanded", String(!folding));
      twisty.textContent = folding ? "▸" : "▾";
      for (const node of below(row.dataset.span, [])) {
        const folds = Number(node.dataset.folds || 0) + (folding ? 1 : -1);
        node.dataset.folds = String(folds);
        node.classList.toggle("folded", folds > 0);
      }
    });
  }
  const all = document.getElementById("show-all-spans");
  if (all) all.addEventListener("click", function (event) { event.preventDefault(); show(null); });
})();

// Span details (attributes, events, links, status) are built when a row is opened, from the
// #span-details data island, so a 2,000-span page does not render 2,000 tables up front.
(function () {
  "use strict";
  const island = document.getElementById("span-details");
  if (!island) return;
  const details = JSON.parse(island.textContent);

  function row(table, key, value) {
    const tr = table.insertRow();
    const th = document.createElement("th");
    th.textContent = key;
    tr.appendChild(th);
    tr.insertCell().textContent = typeof value === "string" ? value : JSON.stringify(value);
  }

  function fill(panel) {
    const d = details[panel.dataset.span];
    if (!d || panel.dataset.filled) return;
    panel.dataset.filled = "true";
    const table = document.createElement("table");
    table.className = "kv";
    row(table, "span", panel.dataset.span + " in trace " + d.trace_id + (d.parent_span_id ? ", parent " + d.parent_span_id : ""));
    row(table, "start", d.start);
    row(table, "end", d.end);
    row(table, "status", d.status + (d.status_message ? " " + d.status_message : ""));
    row(table, "kind", d.kind);
    for (const key of Object.keys(d.attributes).sort()) row(table, key, d.attributes[key]);
    for (const e of d.events) row(table, "event " + e.name, e.attributes);
    for (const l of d.links) row(table, "link", l.trace_id + "/" + l.span_id + " " + JSON.stringify(l.attributes));
    panel.appendChild(table);
  }

  for (const element of document.querySelectorAll(".waterfall details")) {
    element.addEventListener("toggle", function () {
      if (element.open) fill(element.querySelector(".span-detail"));
    });
  }
})();
