// A staff answer arrives live: fetch this page again and swap in the thread only, so a reply
// being typed below is kept.
(function () {
  "use strict";
  const thread = document.getElementById("ticket-thread");
  if (!thread) return;
  document.addEventListener("dumont:support.ticket_answered", function (event) {
    if (!event.detail || String(event.detail.id) !== thread.dataset.ticketId) return;
    htmx.ajax("GET", thread.dataset.url, {
      target: "#ticket-thread", select: "#ticket-thread", swap: "outerHTML"
    }).then(function () { document.getElementById("ticket-live").hidden = false; });
  });
})();
