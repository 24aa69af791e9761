// The dashboard's only script: confirmed actions sent with fetch, and auto-refresh.
// Everything else is server-rendered HTML.
(function () {
  "use strict";
  const base = document.body.dataset.base;

  async function act(button) {
    const id = button.dataset.instance;
    const action = button.dataset.action;
    const body = {};
    if (action === "raise") {
      body.event = document.getElementById("event-name").value.trim();
      const text = document.getElementById("event-data").value.trim();
      if (!body.event) { show("Give the event a name.", true); return; }
      try { body.data = text ? JSON.parse(text) : null; }
      catch (e) { show("The event data is not valid JSON: " + e.message, true); return; }
    }
    if (action === "terminate" || action === "suspend" || action === "resume") {
      const reason = document.getElementById("reason");
      body.reason = reason ? reason.value : "";
    }
    const what = action === "raise" ? `raise event "${body.event}" on` : action;
    if (!window.confirm(`Really ${what} instance ${id}?`)) { return; }
    const response = await fetch(`${base}/api/instances/${encodeURIComponent(id)}/${action}`, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Durable-Dashboard": "1"},
      credentials: "same-origin",
      body: JSON.stringify(body),
    });
    let answer = {};
    try { answer = await response.json(); } catch (e) { answer = {}; }
    if (!response.ok) { show(answer.message || `Failed: HTTP ${response.status}`, true); return; }
    show(answer.message || "Done.", false);
    if (action === "purge") { window.location.href = `${base}/`; return; }
    if (answer.instanceId && answer.instanceId !== id) {
      window.location.href = `${base}/instances/${encodeURIComponent(answer.instanceId)}`;
      return;
    }
    setTimeout(() => window.location.reload(), 400);
  }

  function show(text, isError) {
    const box = document.getElementById("message");
    if (!box) { return; }
    box.textContent = text;
    box.className = isError ? "message error" : "message ok";
  }

  document.querySelectorAll("button[data-action]").forEach((button) => {
    button.addEventListener("click", () => act(button));
  });

  // Auto-refresh, remembered across pages.
  const toggle = document.getElementById("auto-refresh");
  if (toggle) {
    toggle.checked = window.localStorage.getItem("durable-auto-refresh") === "1";
    let timer = null;
    const arm = () => {
      if (timer) { clearTimeout(timer); timer = null; }
      if (toggle.checked) { timer = setTimeout(() => window.location.reload(), 5000); }
    };
    toggle.addEventListener("change", () => {
      window.localStorage.setItem("durable-auto-refresh", toggle.checked ? "1" : "0");
      arm();
    });
    arm();
  }
})();
