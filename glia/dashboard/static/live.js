// Glia dashboard: follow a run's events over SSE and update the trials table and score chart
// in place (no reload). Vanilla JS, shipped in the package: the page works with no internet.
(function () {
  "use strict";
  var root = document.querySelector("[data-live]");
  if (!root || !window.EventSource) return;
  var table = document.querySelector("table.trials");
  var svg = document.querySelector("svg.scores");
  var log = document.querySelector("ul.log");
  var status = document.querySelector(".status");
  var seen = {};
  document.querySelectorAll("table.trials tr[data-trial]").forEach(function (tr) {
    seen[tr.getAttribute("data-trial")] = true;
  });
  var points = {}; // context -> [[index, score]]
  var colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"];
  function cell(tr, text) { var td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
  function num(x) { return x === null || x === undefined ? "" : Number(x.toPrecision(4)).toString(); }
  function redraw() {
    if (!svg) return;
    var w = +svg.getAttribute("width"), h = +svg.getAttribute("height"), top = 0, last = 1;
    Object.keys(points).forEach(function (c) {
      points[c].forEach(function (p) { top = Math.max(top, p[1]); last = Math.max(last, p[0]); });
    });
    top = top || 1;
    Object.keys(points).forEach(function (c) {
      var line = svg.querySelector("polyline[data-context='" + c + "']");
      if (!line) {
        line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
        line.setAttribute("data-context", c);
        line.setAttribute("fill", "none");
        line.setAttribute("stroke", colours[c % colours.length]);
        svg.appendChild(line);
      }
      line.setAttribute("points", points[c].map(function (p) {
        return (p[0] / last * w).toFixed(1) + "," + (h - p[1] / top * h).toFixed(1);
      }).join(" "));
    });
  }
  var url = root.getAttribute("data-live") + window.location.search; // keeps ?token=
  var source = new EventSource(url);
  source.onmessage = function (m) {
    var ev = JSON.parse(m.data);
    if (ev.type === "trial.v1") {
      if (ev.cost !== null && ev.cost !== undefined) {
        (points[ev.context] = points[ev.context] || []).push([ev.index, ev.cost]);
        redraw();
      }
      if (seen[ev.index] || !table) return;
      seen[ev.index] = true;
      var tr = document.createElement("tr");
      tr.setAttribute("data-trial", ev.index);
      var first = document.createElement("td"), link = document.createElement("a");
      link.href = root.getAttribute("data-live").replace(/events$/, "trials/" + ev.index) +
        window.location.search;
      link.textContent = ev.index;
      first.appendChild(link); tr.appendChild(first);
      cell(tr, ev.context); cell(tr, num(ev.cost));
      cell(tr, num(ev.mean_e2e_s)); cell(tr, ""); cell(tr, ev.failure || "");
      table.appendChild(tr);
    } else if (ev.type === "agent.v1" && log) {
      var li = document.createElement("li");
      li.textContent = "[" + ev.context + "] " + ev.role + ": " + ev.text;
      log.appendChild(li);
    } else if (ev.type === "steered.v1" && log) {
      var item = document.createElement("li");
      item.className = "human";
      item.textContent = "[" + ev.context + "] human: " + ev.action + " from " + ev.origin +
        (ev.text ? ": " + ev.text : "");
      log.appendChild(item);
    } else if (ev.type === "run.v1" && status) {
      status.textContent = "status " + ev.status + " " + (ev.message || "");
      if (gate) gate.hidden = ev.status !== "awaiting approval";
      var ended = ["finished", "stopped", "interrupted", "failed"].indexOf(ev.status) >= 0;
      if (ended && !document.querySelector("a.report")) {
        var report = document.createElement("a");
        report.className = "report";
        report.href = root.getAttribute("data-live").replace(/events$/, "report") +
          window.location.search;
        report.textContent = "report";
        status.appendChild(document.createTextNode(" "));
        status.appendChild(report);
      }
    }
  };
  // Steering: each button POSTs the form to the server (same origin, so the browser sends the
  // token cookie and an Origin header the server checks); the result shows next to it.
  var form = document.querySelector("form.steer");
  var gate = form && form.querySelector(".gate");
  if (form && window.fetch) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var data = new URLSearchParams(new FormData(form, e.submitter));
      var out = form.querySelector("output.steered");
      fetch(form.getAttribute("data-steer") + window.location.search, {
        method: "POST", body: data, credentials: "same-origin"
      }).then(function (r) {
        return r.text().then(function (t) {
          out.textContent = r.ok ? "sent " + data.get("action") : t;
          if (r.ok && data.get("action") === "note") form.querySelector("textarea").value = "";
        });
      }, function (err) { out.textContent = "not sent: " + err; });
    });
  }
})();
