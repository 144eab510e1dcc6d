// Live status: the runtime list and a runtime's page follow the control
// plane's server-sent events (/runtimes/events), so a runtime turning Ready
// shows without a reload, and a runtime's chart images are fetched again
// after each metrics sample. Without JavaScript the pages still work; they
// only show the status as of loading. Text goes in with textContent only.
(function () {
  "use strict";
  var root = document.querySelector("[data-live]");
  if (!root || !window.EventSource) return;
  var one = root.getAttribute("data-live");
  var es = new EventSource("/runtimes/events" + (one ? "?name=" + encodeURIComponent(one) : ""));

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }
  function fill(scope, field, fn) {
    var nodes = scope.querySelectorAll('[data-field="' + field + '"]');
    for (var i = 0; i < nodes.length; i++) fn(nodes[i]);
  }
  function endpoints(node, rt) {
    node.textContent = "";
    if (!rt.endpoints || rt.endpoints.length === 0) { node.textContent = "none"; return; }
    rt.endpoints.forEach(function (ep) {
      var div = el("div");
      div.appendChild(el("code", ep.method + " " + ep.uri));
      node.appendChild(div);
    });
  }
  function redraw(scope, rt) {
    fill(scope, "phase", function (n) { n.textContent = rt.phase; n.className = "phase phase-" + rt.phase; });
    fill(scope, "replicas", function (n) { n.textContent = rt.available + " of " + rt.wanted; });
    fill(scope, "replicas-long", function (n) {
      n.textContent = rt.available + " available of " + rt.running + " running, " + rt.wanted + " wanted";
    });
    fill(scope, "last-error", function (n) { n.textContent = rt.lastError ? " — " + rt.lastError : ""; });
    fill(scope, "endpoints", function (n) { endpoints(n, rt); });
    fill(scope, "conditions", function (n) {
      n.textContent = "";
      (rt.conditions || []).forEach(function (c) {
        var tr = el("tr");
        var labels = ["Type", "Status", "Reason", "Message", "Since"];
        [c.type, c.status, c.reason, c.message, c.lastTransitionTime].forEach(function (v, i) {
          var td = el("td", v);
          td.setAttribute("data-label", labels[i]);
          tr.appendChild(td);
        });
        n.appendChild(tr);
      });
    });
  }
  function rowFor(rt) {
    var rows = root.querySelectorAll("tr[data-runtime]");
    for (var i = 0; i < rows.length; i++) if (rows[i].getAttribute("data-runtime") === rt.name) return rows[i];
    var body = root.querySelector("tbody");
    if (!body) return null;
    root.hidden = false;
    var empty = document.getElementById("no-runtimes");
    if (empty) empty.hidden = true;
    var tr = el("tr");
    tr.setAttribute("data-runtime", rt.name);
    function cell(label, field) {
      var td = el("td");
      td.setAttribute("data-label", label);
      if (field) td.setAttribute("data-field", field);
      tr.appendChild(td);
      return td;
    }
    var a = el("a", rt.name);
    a.href = "/runtimes/" + encodeURIComponent(rt.name);
    cell("Name").appendChild(a);
    var s = el("span");
    s.setAttribute("data-field", "phase");
    cell("Status").appendChild(s);
    cell("Replicas", "replicas");
    cell("Endpoints", "endpoints");
    cell("Updated").textContent = "just now";
    body.appendChild(tr);
    return tr;
  }
  es.addEventListener("update", function (e) {
    var rt = JSON.parse(e.data);
    var scope = one ? root : rowFor(rt);
    if (scope) redraw(scope, rt);
  });
  // A new metrics sample: reload the chart images (drawn by the server)
  // and the words beside them.
  es.addEventListener("charts", function (e) {
    var c = JSON.parse(e.data);
    var box = document.querySelector('[data-charts="' + (window.CSS && CSS.escape ? CSS.escape(c.name) : c.name) + '"]');
    if (!box) return;
    fill(box, "charts-now", function (n) { n.textContent = c.now; });
    fill(box, "charts-note", function (n) { n.textContent = c.note; });
    var imgs = box.querySelectorAll("img[data-chart]");
    for (var i = 0; i < imgs.length; i++) imgs[i].src = imgs[i].getAttribute("data-src") + "seq=" + c.seq;
  });
  es.addEventListener("deleted", function (e) {
    var rt = JSON.parse(e.data);
    if (one) {
      fill(root, "phase", function (n) { n.textContent = "Deleted"; n.className = "phase"; });
      es.close();
      return;
    }
    var row = rowFor(rt);
    if (row) row.parentNode.removeChild(row);
  });
})();
