// blastscope lab workstation: progress bar, keyboard review (one key per class, arrows to move).
(function () {
  "use strict";
  var progress = document.getElementById("progress");
  if (progress && progress.dataset.done !== "true") {
    var poll = function () {
      fetch("/cases/" + progress.dataset.case + "/progress", {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (p) {
          var bar = progress.querySelector("progress");
          bar.max = p.cells || 1; bar.value = p.predicted + p.errors;
          document.getElementById("progress-text").textContent = (p.predicted + p.errors) + " / " + p.cells + " cells predicted";
          if (p.done) { window.location.reload(); } else { setTimeout(poll, 400); }
        })
        .catch(function () { setTimeout(poll, 1000); });
    };
    setTimeout(poll, 300);
  }
  var gallery = document.getElementById("gallery");
  if (!gallery) { return; }
  var keys = JSON.parse(gallery.dataset.keys || "{}");
  var byKey = {};
  Object.keys(keys).forEach(function (label) { byKey[keys[label]] = label; });
  var cells = Array.prototype.slice.call(gallery.querySelectorAll(".cell"));
  var first = gallery.querySelector(".cell.flagged:not(.reviewed)") || cells[0];
  if (first) { first.focus(); }
  var message = document.getElementById("message");
  document.addEventListener("keydown", function (e) {
    var current = document.activeElement;
    var i = cells.indexOf(current);
    if (i < 0) { return; }
    if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      var next = cells[Math.max(0, Math.min(cells.length - 1, i + (e.key === "ArrowRight" ? 1 : -1)))];
      next.focus(); e.preventDefault(); return;
    }
    var label = byKey[e.key];
    if (!label || current.dataset.status !== "ok" || !current.querySelector("form.review")) { return; }
    e.preventDefault();
    var body = new URLSearchParams({label: label, expected: current.dataset.expected, csrf: gallery.dataset.csrf});
    fetch("/cells/" + current.dataset.cell + "/review", {method: "POST", body: body, credentials: "same-origin",
                                                          headers: {"Accept": "application/json"}})
      .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, body: j}; }); })
      .then(function (res) {
        if (!res.ok) { message.hidden = false; message.textContent = res.body.error || res.body.detail || "review failed"; return; }
        sessionStorage.setItem("blastscope-focus", String(i + 1));
        window.location.reload();
      });
  });
  var again = sessionStorage.getItem("blastscope-focus");
  if (again !== null) { sessionStorage.removeItem("blastscope-focus"); var c = cells[Math.min(+again, cells.length - 1)]; if (c) { c.focus(); } }
})();
