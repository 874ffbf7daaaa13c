// Dumont Cloud portal: one websocket to /ws/tenant/ (session auth) that re-dispatches each
// live event as a DOM event `dumont:<event>` on document, and reconnects with backoff. Each
// time the socket opens, `dumont:connected` is dispatched on document.
(function () {
  "use strict";
  let delay = 1000;
  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/tenant/");
    socket.addEventListener("open", function () {
      delay = 1000;
      document.documentElement.dataset.live = "on";
      // Pages redraw what may have changed while no socket was open (dumont:connected).
      document.dispatchEvent(new CustomEvent("dumont:connected"));
    });
    socket.addEventListener("message", function (message) {
      let payload;
      try { payload = JSON.parse(message.data); } catch (error) { return; }
      if (!payload || !payload.event) return;
      document.dispatchEvent(new CustomEvent("dumont:" + payload.event, { detail: payload.data }));
      document.dispatchEvent(new CustomEvent("dumont:any", { detail: payload }));
    });
    socket.addEventListener("close", function (event) {
      document.documentElement.dataset.live = "off";
      if (event.code === 4401) return; // signed out: nothing to reconnect to
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 30000);
    });
  }
  if (document.body && document.body.dataset.live !== "off") {
    connect();
  }
})();

// Behaviours declared in the markup with data- attributes, so that no page needs an inline
// script or event handler (the Content-Security-Policy allows neither).
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-autosubmit]")) event.target.form.submit();
  });
  document.addEventListener("click", function (event) {
    if (event.target.matches("[data-select-on-click]")) event.target.select();
  });
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (form.matches("form[data-confirm]") && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });
  function paintHues(root) {
    root.querySelectorAll("[data-hue]").forEach(function (cell) {
      cell.style.setProperty("--hue", cell.dataset.hue);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { paintHues(document); });
  document.addEventListener("htmx:afterSwap", function (event) { paintHues(event.target); });
})();
