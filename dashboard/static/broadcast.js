// Live preview for the new-broadcast form: as you type, ask the server for the preview panel.
// Without JavaScript the "Preview" button does the same with a page load.
(function () {
  "use strict";
  var form = document.getElementById("broadcast-form");
  if (!form || !window.fetch) { return; }
  var url = form.getAttribute("data-preview-url");
  var timer = null;
  var latest = 0;

  function refresh() {
    var ticket = ++latest;
    var data = new FormData(form);
    data.set("action", "preview");
    fetch(url, { method: "POST", body: data, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) {
        if (html === null || ticket !== latest) { return; }
        var panel = document.getElementById("preview-panel");
        // The server renders and escapes the panel; only replace it with what it sent.
        var parsed = new DOMParser().parseFromString(html, "text/html");
        var fresh = parsed.getElementById("preview-panel");
        if (panel && fresh) { panel.replaceWith(document.importNode(fresh, true)); }
      })
      .catch(function () { /* offline: the Preview button still works */ });
  }

  function later() {
    window.clearTimeout(timer);
    timer = window.setTimeout(refresh, 400);
  }

  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
