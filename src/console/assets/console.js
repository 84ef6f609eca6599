// The practice console's only script. Every page works without it; with it, the error
// summary takes focus, the print button prints and a running job's progress updates itself.
(function () {
  "use strict";
  var summary = document.querySelector("[data-focus]");
  if (summary) { summary.focus(); }

  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });

  var job = document.querySelector("[data-progress-url]");
  if (!job) { return; }
  var bar = job.querySelector("progress");
  var text = job.querySelector("[data-progress-text]");
  var url = job.getAttribute("data-progress-url");
  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (p) {
        if (p.total > 0) { bar.max = p.total; bar.value = p.processed; }
        text.textContent = p.text;
        if (p.finished) {
          job.setAttribute("data-finished", "true");
          window.location.reload();
        } else {
          window.setTimeout(poll, 1500);
        }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);
})();
