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
