// BPMN viewer: draws the diagram from the #diagram-xml data island and colours elements by state
// (#diagram-state: {elements: {id: {state, retries}}}). When the page gives a state URL and the
// instance is not final, it polls that URL every 2 s and updates markers, status and progress.
(function () {
  "use strict";
  const host = document.getElementById("diagram");
  const xmlNode = document.getElementById("diagram-xml");
  if (!host || !xmlNode || typeof BpmnJS === "undefined") return;
  const xml = JSON.parse(xmlNode.textContent);
  const initial = JSON.parse(document.getElementById("diagram-state").textContent || "{}") || {};
  const viewer = new BpmnJS({ container: host });
  const STATES = ["completed", "active", "error", "waiting", "changed", "added"];
  let applied = {};

  function badge(text) {
    const span = document.createElement("span");
    span.className = "retry-badge";
    span.textContent = text;
    span.title = "retries";
    return span;
  }

  function apply(payload) {
    const canvas = viewer.get("canvas");
    const overlays = viewer.get("overlays");
    const registry = viewer.get("elementRegistry");
    for (const id of Object.keys(applied)) {
      if (!registry.get(id)) continue;
      for (const s of STATES) canvas.removeMarker(id, "st-" + s);
    }
    overlays.remove({ type: "retries" });
    applied = (payload && payload.elements) || {};
    for (const [id, info] of Object.entries(applied)) {
      if (!registry.get(id)) continue;
      canvas.addMarker(id, "st-" + info.state);
      if (info.retries > 0) {
        overlays.add(id, "retries", { position: { top: -10, right: 10 }, html: badge(String(info.retries)) });
      }
    }
    host.dataset.rendered = "true";
  }

  function text(id, value) {
    const node = document.getElementById(id);
    if (node && value !== undefined && value !== null) node.textContent = value;
  }

  function humanTasks(tasks) {
    const list = document.getElementById("human-tasks");
    if (!list || !tasks) return;
    list.replaceChildren();
    for (const t of tasks) {
      const li = document.createElement("li");
      const roles = (list.dataset.myRoles || "").split(" ");
      if (t.status === "open" && (roles.includes(t.role) || roles.includes("admin"))) {
        const a = document.createElement("a");
        a.href = list.dataset.taskUrl.replace("TASK_ID", encodeURIComponent(t.id));
        a.textContent = t.name;
        li.appendChild(a);
      } else {
        li.appendChild(document.createTextNode(t.name));
      }
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = t.status;
      const who = document.createElement("small");
      who.textContent = t.role + (t.completed_by ? " · by " + t.completed_by : "");
      li.append(" ", tag, " ", who);
      list.appendChild(li);
    }
    if (!tasks.length) {
      const li = document.createElement("li");
      li.textContent = "None yet.";
      list.appendChild(li);
    }
  }

  function poll() {
    const url = host.dataset.stateUrl;
    if (!url) return;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(r => r.json())
      .then(payload => {
        apply(payload);
        const status = document.getElementById("instance-status");
        if (status && status.textContent !== payload.status) {
          status.textContent = payload.status;
          status.className = "tag st-" + payload.status;
        }
        const bar = document.getElementById("instance-progress");
        if (bar) bar.value = payload.progress;
        if (bar) bar.className = "progress-" + payload.status;
        text("instance-progress-text", payload.progress_text);
        text("instance-mode", payload.mode);
        const timeline = document.getElementById("timeline");
        if (timeline && payload.timeline) {
          timeline.replaceChildren();
          for (const step of payload.timeline) {
            const li = document.createElement("li");
            li.className = step.status === "ERROR" ? "st-error" : "st-completed";
            li.textContent = step.name + (step.item ? " · " + step.item : "") + " (" + (step.duration_ns / 1e9).toFixed(2) + " s" +
              (step.attempt > 1 ? ", attempt " + step.attempt : "") + ")";
            timeline.appendChild(li);
          }
        }
        humanTasks(payload.tasks);
        if (payload.final && !initial.final) {
          window.location.reload();  // show the report and the release the run just produced
          return;
        }
        if (!payload.final) setTimeout(poll, 2000);
      })
      .catch(() => setTimeout(poll, 5000));
  }

  viewer.importXML(xml).then(function () {
    viewer.get("canvas").zoom("fit-viewport");
    apply(initial);
    viewer.on("element.click", function (event) {
      document.dispatchEvent(new CustomEvent("diagram:select", { detail: { id: event.element.id } }));
    });
    if (host.dataset.stateUrl && !initial.final) setTimeout(poll, 2000);
  }).catch(function (err) {
    host.dataset.rendered = "error";
    host.textContent = "The diagram could not be drawn: " + err.message;
  });
})();
