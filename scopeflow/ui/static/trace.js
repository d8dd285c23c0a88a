// Waterfall bars are positioned from data attributes (no inline styles in the HTML), and a click
// on a diagram element shows only that element's spans.
(function () {
  "use strict";
  for (const bar of document.querySelectorAll(".waterfall .bar")) {
    bar.style.marginLeft = bar.dataset.left + "%";
    bar.style.width = bar.dataset.width + "%";
  }
  const rows = Array.from(document.querySelectorAll(".waterfall .span-row"));
  function show(elementId) {
    for (const row of rows) row.hidden = Boolean(elementId) && row.dataset.element !== elementId;
  }
  document.addEventListener("diagram:select", function (event) {
    const id = event.detail.id;
    show(rows.some(r => r.dataset.element === id) ? id : null);
  });
  const all = document.getElementById("show-all-spans");
  if (all) all.addEventListener("click", function (event) { event.preventDefault(); show(null); });
})();
