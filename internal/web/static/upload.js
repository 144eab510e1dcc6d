// Upload progress: a form marked data-progress is sent with
// XMLHttpRequest so a <progress> bar can follow the bytes; the answer
// (the list page after the redirect, or the form again with its error)
// then replaces the page as a normal submit would. Without JavaScript the
// form submits normally, without the bar.
(function () {
  "use strict";
  document.querySelectorAll("form[data-progress]").forEach(function (form) {
    var bar = document.getElementById(form.getAttribute("data-progress"));
    form.addEventListener("submit", function (ev) {
      if (!window.FormData || !bar) return;
      ev.preventDefault();
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      bar.hidden = false;
      bar.value = 0;
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) { bar.max = e.total; bar.value = e.loaded; }
      });
      xhr.addEventListener("load", function () {
        history.replaceState(null, "", xhr.responseURL);
        document.open();
        document.write(xhr.responseText);
        document.close();
      });
      xhr.addEventListener("error", function () {
        bar.hidden = true;
        var p = document.createElement("p");
        p.className = "error";
        p.setAttribute("role", "alert");
        p.textContent = "the upload failed: the connection to the control plane broke; try again";
        form.insertBefore(p, form.firstChild);
      });
      xhr.send(new FormData(form));
    });
  });
})();
