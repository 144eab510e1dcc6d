// The show-once page: copy buttons for each value and, for API keys, a
// download of the key as a JSON file (built in the page from the values
// already on it; nothing is fetched again, so the secret is still only
// ever sent once).
(function () {
  "use strict";
  function flash(btn, text) {
    var was = btn.textContent;
    btn.textContent = text;
    setTimeout(function () { btn.textContent = was; }, 1500);
  }
  document.querySelectorAll("button[data-copy]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var input = document.getElementById(btn.getAttribute("data-copy"));
      if (!input) return;
      var done = function () { flash(btn, "Copied"); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
        return;
      }
      // Plain http on another host is not a secure context: select the
      // text so the person can copy it with the keyboard.
      input.focus();
      input.select();
      try { if (document.execCommand("copy")) done(); } catch (e) { /* selected is enough */ }
    });
  });
  document.querySelectorAll("button[data-download]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var out = {};
      document.querySelectorAll("[data-json]").forEach(function (el) { out[el.getAttribute("data-json")] = el.value; });
      var blob = new Blob([JSON.stringify(out, null, 2) + "\n"], { type: "application/json" });
      var a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = btn.getAttribute("data-download");
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
    });
  });
})();
