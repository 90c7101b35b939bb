// drover dashboard: confirmations and live regions. No dependencies.
// A region <div id="live" data-events="URL" data-after="SEQ"> is
// re-rendered from the server whenever the event stream at URL delivers an
// entry; <div id="live" data-refresh="N"> every N seconds. The page
// re-fetches itself and swaps #live (and #actions when its data-key
// changed), so the server's template renders every update.
(function () {
  "use strict";

  document.addEventListener("submit", function (ev) {
    var b = ev.submitter;
    if (b && b.dataset.confirm && !window.confirm(b.dataset.confirm)) {
      ev.preventDefault();
    }
  });

  var live = document.getElementById("live");
  if (!live) return;
  var status = document.getElementById("live-status");
  var busy = false, again = false, last = 0;

  function setStatus(text, cls) {
    if (!status) return;
    status.textContent = text;
    status.className = "live-status " + (cls || "");
  }

  function swap(doc) {
    var fresh = doc.getElementById("live");
    if (!fresh) return;
    var focused = document.activeElement && document.activeElement.id;
    live.innerHTML = fresh.innerHTML;
    var acts = document.getElementById("actions"), nacts = doc.getElementById("actions");
    if (acts && nacts && acts.dataset.key !== nacts.dataset.key) {
      var reason = document.getElementById("reason");
      var kept = reason ? reason.value : "";
      acts.replaceWith(nacts);
      var nr = document.getElementById("reason");
      if (nr) nr.value = kept;
    }
    if (focused) {
      var el = document.getElementById(focused);
      if (el && el !== document.activeElement) el.focus();
    }
    live.dataset.updated = String(Date.now());
  }

  function refresh() {
    if (busy) { again = true; return; }
    var wait = Math.max(0, last + 400 - Date.now());
    busy = true;
    setTimeout(function () {
      last = Date.now();
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (r) {
          if (r.redirected && r.url.indexOf("/ui/login") >= 0) { window.location.reload(); return null; }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html) swap(new DOMParser().parseFromString(html, "text/html"));
        })
        .catch(function () { setStatus("Update failed; retrying", "bad"); })
        .finally(function () {
          busy = false;
          if (again) { again = false; refresh(); }
        });
    }, wait);
  }

  if (live.dataset.events && window.EventSource) {
    var url = live.dataset.events + "?after=" + encodeURIComponent(live.dataset.after || "0");
    var es = new EventSource(url);
    es.onopen = function () { setStatus("Live: updates as nodes change", "ok"); };
    es.onmessage = function () { refresh(); };
    es.onerror = function () {
      setStatus(es.readyState === EventSource.CLOSED ? "Live updates stopped; reload the page" : "Reconnecting…", "warn");
    };
  } else if (live.dataset.refresh) {
    var every = Math.max(2, parseInt(live.dataset.refresh, 10) || 5) * 1000;
    setInterval(function () { if (!document.hidden) refresh(); }, every);
  }
})();
