// Instance pages: live parts re-fetched with htmx when a tenant event names them, and the
// copy buttons. A live part is an element with data-live-events (event names, space separated),
// data-live-key (the instance or snapshot id it shows; "*missing*": refresh when an event
// names an id that no other live part on the page shows) and data-live-url (its partial).
(function () {
  "use strict";

  function idsOf(detail) {
    if (!detail) return [];
    return [
      detail.id, detail.instance_id, detail.snapshot_id, detail.instance && detail.instance.id,
    ].filter(Boolean).map(String);
  }

  function refresh(element) {
    if (!document.body.contains(element)) return;
    htmx.ajax("GET", element.dataset.liveUrl, { target: element, swap: "outerHTML" })
      .then(showEmptyStateWhenNoCardIsLeft, function () {}); // htmx reports a failed request
  }

  // The last card gone (its instance deleted, its partial swapped for nothing): the dashboard
  // shows its empty state. Checked once the swap is done, because the removed card's own htmx
  // events no longer reach the document.
  function showEmptyStateWhenNoCardIsLeft() {
    const cards = document.getElementById("instance-cards");
    if (cards && cards.querySelector(".instance-grid") && !cards.querySelector("[data-instance-id]")) {
      refresh(cards);
    }
  }

  function listening(name) {
    return Array.prototype.filter.call(
      document.querySelectorAll("[data-live-events]"),
      function (element) { return element.dataset.liveEvents.split(" ").indexOf(name) !== -1; }
    );
  }

  function onEvent(name, detail) {
    const ids = idsOf(detail);
    const parts = listening(name);
    let shown = false;
    parts.forEach(function (element) {
      if (ids.indexOf(element.dataset.liveKey) !== -1) {
        shown = true;
        refresh(element);
      }
    });
    if (!shown) {
      parts.forEach(function (element) {
        if (element.dataset.liveKey === "*missing*") refresh(element);
      });
    }
  }

  const names = new Set();
  document.querySelectorAll("[data-live-events]").forEach(function (element) {
    element.dataset.liveEvents.split(" ").forEach(function (name) { names.add(name); });
  });
  names.forEach(function (name) {
    document.addEventListener("dumont:" + name, function (event) { onEvent(name, event.detail); });
  });

  // Events sent between the page's rendering and the websocket's opening (or while it was
  // down) were missed: every live part is drawn again once it (re)connects.
  document.addEventListener("dumont:connected", function () {
    document.querySelectorAll("[data-live-url]").forEach(function (element) {
      if (!element.parentElement.closest("[data-live-url]")) refresh(element);
    });
  });

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    if (!source) return;
    const text = source.textContent.trim();
    const done = function () {
      const label = button.textContent;
      button.textContent = button.dataset.copied;
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
    }
  });
})();
