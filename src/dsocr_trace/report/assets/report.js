/* dsocr-trace HTML page script. Charts are plotly.js's (inlined above this script): the report's figures come
   ready-made in the embedded data (report/charts.py); the sweep explorer builds its figures here because its
   filters rebuild them. This script adds what a chart library does not: the module tree, the filters and the
   sortable table. No network. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("dsocr-data").textContent);
  var CONFIG = {displaylogo: false, responsive: true, toImageButtonOptions: {format: "png", scale: 2}};
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"];
  // one marker per execution, so eager, graph, compiled and fused read apart in every chart
  var SYMBOLS = {eager: "circle", graph: "diamond", compiled: "triangle-up", fused: "square"};
  var EXTRA_SYMBOLS = ["star", "cross", "pentagon", "hexagram"];
  var FONT = {family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12};
  var pending = [];

  function htmlEl(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); }
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function fmt(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "-";
    return Number(x).toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits});
  }
  function si(x, unit) {
    var a = Math.abs(x), p = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (var i = 0; i < p.length; i++) { if (a >= p[i][0]) return fmt(x / p[i][0], 2) + " " + p[i][1] + unit; }
    return fmt(x, 0) + " " + unit;
  }
  function gib(x) { return fmt(x / 1073741824, 2) + " GiB"; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function uniq(values) {
    var seen = {}, out = [];
    values.forEach(function (v) { var k = String(v); if (!seen[k]) { seen[k] = 1; out.push(v); } });
    return out;
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c]; });
  }
  function draw(id, data, layout) {
    pending.push(Plotly.react(document.getElementById(id), data, layout, CONFIG));
  }

  // ---- report: the embedded figures, each with an optional view control -----------------------------------------
  function chart(id) {
    var c = DATA.charts[id];
    if (!c) return;
    var sel = c.select ? document.getElementById(c.select) : null;
    function show() {
      var v = sel ? sel.value : null;
      if (c.figures) { var f = c.figures[v]; draw(id, f.data, f.layout); return; }
      var fig = c.figure, data = fig.data, layout = fig.layout, view = c.views && c.views[v];
      if (view) {
        data = data.map(function (t, i) { return Object.assign({}, t, {visible: view.visible[i]}); });
        if (view.x_title) {
          layout = Object.assign({}, layout, {xaxis: Object.assign({}, layout.xaxis, {title: {text: view.x_title}})});
        }
      }
      draw(id, data, layout);
    }
    if (sel) sel.addEventListener("change", function () { show(); settle(); });
    show();
  }

  function tree() {
    var box = document.getElementById("module-tree"), phase = document.getElementById("module-phase").value;
    var mods = DATA.modules[phase] || [];
    var timed = DATA.has_predictions;
    var byPath = {}, kids = {};
    mods.forEach(function (m) { byPath[m.path] = m; });
    mods.forEach(function (m) {
      if (m.path === "") return;
      var i = m.path.lastIndexOf("."), parent = i < 0 ? "" : m.path.slice(0, i);
      while (parent !== "" && !byPath[parent]) { i = parent.lastIndexOf("."); parent = i < 0 ? "" : parent.slice(0, i); }
      (kids[parent] = kids[parent] || []).push(m.path);
    });
    var root = byPath[""] || {device_ms: 0, flops: 0};
    var total = timed ? root.device_ms : root.flops;
    var open = {"": true};
    clear(box);
    var table = htmlEl("table", {"class": "data tree"}, box);
    var head = htmlEl("tr", {}, htmlEl("thead", {}, table));
    ["module", "class", "FLOPs", "bytes", "kernels"].concat(timed ? ["device ms", "host ms"] : [])
      .concat(["share"]).forEach(function (c, i) { htmlEl("th", {"class": i < 2 ? "l" : ""}, head, c); });
    var body = htmlEl("tbody", {}, table);
    function rowsOf(path, depth) {
      (kids[path] || []).forEach(function (p) {
        var m = byPath[p], tr = htmlEl("tr", {}, body), has = !!kids[p];
        var name = htmlEl("td", {"class": "l"}, tr);
        name.style.paddingLeft = (6 + depth * 16) + "px";
        var t = htmlEl("span", {"class": "tog"}, name, has ? (open[p] ? "▾" : "▸") : "");
        if (has) t.addEventListener("click", function () { open[p] = !open[p]; render(); });
        name.appendChild(document.createTextNode(p.slice(path ? path.length + 1 : 0)));
        htmlEl("td", {"class": "l"}, tr, m.type);
        htmlEl("td", {}, tr, si(m.flops, "FLOP"));
        htmlEl("td", {}, tr, si(m.bytes, "B"));
        htmlEl("td", {}, tr, fmt(m.kernels, 0));
        if (timed) { htmlEl("td", {}, tr, fmt(m.device_ms, 3)); htmlEl("td", {}, tr, fmt(m.host_ms, 3)); }
        var share = total ? (timed ? m.device_ms : m.flops) / total : 0;
        var td = htmlEl("td", {}, tr);
        htmlEl("span", {"class": "share"}, td).style.width = Math.round(share * 120) + "px";
        td.appendChild(document.createTextNode(" " + fmt(share * 100, 1) + "%"));
        if (has && open[p]) rowsOf(p, depth + 1);
      });
    }
    function render() { clear(body); rowsOf("", 0); }
    (kids[""] || []).forEach(function (p) { open[p] = true; });
    render();
  }

  // ---- sweep explorer ---------------------------------------------------------------------------------------------
  // [key, header, align, value, digits]
  var SWEEP_COLS = [
    ["mode", "mode", "l", function (r) { return r.mode; }],
    ["device", "device", "l", function (r) { return r.device; }],
    ["profile", "profile", "l", function (r) { return r.profile; }],
    ["execution", "execution", "l", function (r) { return r.execution; }],
    ["implementation", "implementation", "l", function (r) { return r.implementation || "native"; }],
    ["batch", "batch", "", function (r) { return r.batch; }],
    ["output_tokens", "out tokens", "", function (r) { return r.output_tokens; }],
    ["ttft_ms", "TTFT ms", "", function (r) { return r.ttft_s * 1e3; }, 1],
    ["tpot_mean_ms", "ms/token", "", function (r) { return r.tpot_mean_s * 1e3; }, 2],
    ["tpot_last_ms", "last ms/token", "", function (r) { return r.tpot_last_s * 1e3; }, 2],
    ["e2e_s", "e2e s", "", function (r) { return r.e2e_s; }, 2],
    ["tokens_per_s", "tokens/s", "", function (r) { return r.tokens_per_s; }, 0],
    ["pages_per_gpu_day", "pages/GPU-day", "", function (r) { return r.pages_per_gpu_day; }, 0],
    ["usd_per_million_pages", "$/M pages", "", function (r) { return r.usd_per_million_pages; }, 0],
    ["memory_gib", "memory GiB", "", function (r) { return r.memory_total_bytes / 1073741824; }, 1],
    ["device_gib", "GPU GiB", "", function (r) { return r.device_memory_bytes / 1073741824; }, 1],
    ["fits", "fits", "l", function (r) { return r.fits === undefined ? "?" : (r.fits ? "yes" : "NO"); }],
    ["confidence", "trust", "l", function (r) { return r.confidence || "?"; }],
    ["routing", "routing", "l", function (r) { return r.routing; }]
  ];
  function col(key) { for (var i = 0; i < SWEEP_COLS.length; i++) if (SWEEP_COLS[i][0] === key) return SWEEP_COLS[i]; }

  function axisFor(values, title) {
    // log where the values span more than 30x (batch 1 to 512, ms/token across GPUs), else linear
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    return {title: {text: title}, type: lo > 0 && hi / lo > 30 ? "log" : "linear", zeroline: false};
  }
  function symbolOf(execution, executions) {
    return SYMBOLS[execution] || EXTRA_SYMBOLS[executions.indexOf(execution) % EXTRA_SYMBOLS.length];
  }
  function hoverOf(r) {
    return "<b>" + esc(r.mode) + " on " + esc(r.device) + "</b>, " + esc(r.execution) + " (" +
      esc(r.implementation || "native") + "), batch " + r.batch + ", " + r.output_tokens + " output tokens<br>TTFT " +
      fmt(r.ttft_s * 1e3, 1) + " ms, " + fmt(r.tpot_mean_s * 1e3, 2) + " ms/token, " + fmt(r.pages_per_gpu_day, 0) +
      " pages/GPU-day" + (r.usd_per_million_pages !== undefined ? ", $" + fmt(r.usd_per_million_pages, 0) +
      " per million pages" : "") + "<br>memory " + gib(r.memory_total_bytes) + " of " + gib(r.device_memory_bytes) +
      (r.fits === false ? " <b>does not fit</b>" : "") + "<br>trust: " + esc(r.confidence || "?") +
      (r.confidence_note ? " (" + esc(r.confidence_note) + ")" : "") + "<br>profile " + esc(r.profile) +
      ", routing " + esc(r.routing);
  }

  function sweepExplorer() {
    var rows = DATA.rows, filters = document.getElementById("filters");
    var keys = ["mode", "device", "execution", "implementation", "batch", "output_tokens", "confidence"], on = {};
    keys.forEach(function (k) {
      var vals = uniq(rows.map(function (r) { return col(k)[3](r); }));
      if (k === "batch" || k === "output_tokens") vals.sort(function (a, b) { return a - b; });
      var fs = htmlEl("fieldset", {}, filters);
      htmlEl("legend", {}, fs, col(k)[1]);
      on[k] = {};
      vals.forEach(function (v) {
        on[k][v] = true;
        var lab = htmlEl("label", {}, fs);
        var cb = htmlEl("input", {type: "checkbox", checked: "checked", "data-key": k, "data-val": String(v)}, lab);
        lab.appendChild(document.createTextNode(" " + v + " "));
        cb.addEventListener("change", function () { on[k][v] = cb.checked; update(); });
      });
    });
    var fitOnly = document.getElementById("fit-only"), xSel = document.getElementById("x-metric"),
        ySel = document.getElementById("y-metric");
    [fitOnly, xSel, ySel].forEach(function (e) { e.addEventListener("change", update); });
    var sortKey = "pages_per_gpu_day", sortDir = -1;
    var devices = uniq(rows.map(function (r) { return r.device; }));
    var executions = uniq(rows.map(function (r) { return r.execution; }));
    var devColor = {};
    devices.forEach(function (d, i) { devColor[d] = COLORS[i % COLORS.length]; });

    function shown() {
      return rows.filter(function (r) {
        for (var i = 0; i < keys.length; i++) if (!on[keys[i]][col(keys[i])[3](r)]) return false;
        return !(fitOnly.checked && r.fits === false);
      });
    }
    // one trace per (device, execution) on axes (xa, ya); points that do not fit drawn open and crossed in red
    function traces(pts, cx, cy, xa, ya, legend) {
      var out = [], unfit = pts.filter(function (r) { return r.fits === false; });
      devices.forEach(function (d) {
        executions.forEach(function (e) {
          var mine = pts.filter(function (r) { return r.device === d && r.execution === e; });
          if (!mine.length) return;
          out.push({type: "scatter", mode: "markers", name: d + " · " + e, legendgroup: d + " · " + e,
                    showlegend: legend, xaxis: xa, yaxis: ya,
                    x: mine.map(cx[3]), y: mine.map(cy[3]), hovertext: mine.map(hoverOf),
                    hovertemplate: "%{hovertext}<extra></extra>",
                    marker: {symbol: mine.map(function (r) { return symbolOf(e, executions) + (r.fits === false ? "-open" : ""); }),
                             color: devColor[d], size: 10, line: {color: devColor[d], width: 1.5}}});
        });
      });
      if (unfit.length) {
        out.push({type: "scatter", mode: "markers", name: "does not fit in GPU memory", legendgroup: "unfit",
                  showlegend: legend, xaxis: xa, yaxis: ya, x: unfit.map(cx[3]), y: unfit.map(cy[3]),
                  hoverinfo: "skip", marker: {symbol: "x-thin", size: 12, line: {color: "#d62728", width: 2}}});
      }
      return out;
    }
    function scatter(pts) {
      var cx = col(xSel.value), cy = col(ySel.value);
      var data = traces(pts, cx, cy, "x", "y", true);
      var layout = {template: DATA.template, font: FONT, height: 520, hovermode: "closest",
                    margin: {l: 80, r: 30, t: 50, b: 50},
                    title: {text: pts.length + " of " + rows.length + " points", x: 0.01, font: {size: 14}},
                    xaxis: axisFor(pts.map(cx[3]).concat([1]), cx[1]), yaxis: axisFor(pts.map(cy[3]).concat([1]), cy[1])};
      if (!pts.length) layout.annotations = [{text: "no point matches the filters", showarrow: false,
                                              xref: "paper", yref: "paper", x: 0.5, y: 0.5}];
      draw("sweep-chart", data, layout);
    }
    // the same two metrics in one panel per GPU, every panel on the same x and y axes
    function perGpu(pts) {
      var cx = col(xSel.value), cy = col(ySel.value), shownDevices = devices.filter(function (d) {
        return pts.some(function (r) { return r.device === d; });
      });
      var n = Math.max(1, shownDevices.length), cols = Math.min(n, 4), nrows = Math.ceil(n / cols);
      var data = [], anns = [], layout = {template: DATA.template, font: FONT, height: 80 + 300 * nrows,
        hovermode: "closest", margin: {l: 80, r: 30, t: 70, b: 50}, showlegend: false,
        title: {text: "Per GPU, shared axes: " + cy[1] + " against " + cx[1], x: 0.01, font: {size: 14}},
        grid: {rows: nrows, columns: cols, pattern: "independent", xgap: 0.08, ygap: 0.18}};
      var xall = pts.map(cx[3]).concat([1]), yall = pts.map(cy[3]).concat([1]);
      shownDevices.forEach(function (d, i) {
        var xa = i ? "x" + (i + 1) : "x", ya = i ? "y" + (i + 1) : "y";
        data = data.concat(traces(pts.filter(function (r) { return r.device === d; }), cx, cy, xa, ya, false));
        var ax = axisFor(xall, i >= n - cols ? cx[1] : ""), ay = axisFor(yall, i % cols === 0 ? cy[1] : "");
        if (i) { ax.matches = "x"; ay.matches = "y"; }
        layout["xaxis" + (i ? i + 1 : "")] = ax;
        layout["yaxis" + (i ? i + 1 : "")] = ay;
        anns.push({text: "<b>" + esc(d) + "</b>", showarrow: false, xref: xa + " domain", yref: ya + " domain",
                   x: 0.5, y: 1.08, xanchor: "center"});
      });
      layout.annotations = anns;
      draw("sweep-gpus", data, layout);
    }
    function table(pts) {
      var box = document.getElementById("sweep-table");
      clear(box);
      var t = htmlEl("table", {"class": "data"}, box);
      var head = htmlEl("tr", {}, htmlEl("thead", {}, t));
      SWEEP_COLS.forEach(function (c) {
        var th = htmlEl("th", {"class": c[2], "data-key": c[0]}, head, c[1] + (c[0] === sortKey ? (sortDir < 0 ? " ▾" : " ▴") : ""));
        th.addEventListener("click", function () {
          if (sortKey === c[0]) sortDir = -sortDir; else { sortKey = c[0]; sortDir = c[2] === "l" ? 1 : -1; }
          update();
        });
      });
      var c = col(sortKey);
      // points that fit come first whatever the sort: a planner reads the top rows
      var sorted = pts.slice().sort(function (a, b) {
        var fa = a.fits === false ? 1 : 0, fb = b.fits === false ? 1 : 0;
        if (fa !== fb) return fa - fb;
        var x = c[3](a), y = c[3](b);
        if (x < y) return -sortDir;
        if (x > y) return sortDir;
        return rows.indexOf(a) - rows.indexOf(b);
      });
      var body = htmlEl("tbody", {}, t);
      sorted.forEach(function (r) {
        var tr = htmlEl("tr", {"class": r.fits === false ? "unfit" : ""}, body);
        SWEEP_COLS.forEach(function (cc) {
          var v = cc[3](r);
          htmlEl("td", {"class": (cc[2] + (cc[0] === "fits" ? " fit" : "")).trim()}, tr,
                 cc.length > 4 ? fmt(v, cc[4]) : String(v));
        });
      });
    }
    function update() {
      var pts = shown();
      scatter(pts);
      perGpu(pts);
      table(pts);
      settle();
    }
    update();
  }

  // ---- when plotly.js has drawn: record where each chart is and how many marks it holds (tests, screenshots) ------
  function settle() {
    var waiting = pending;
    pending = [];
    Promise.all(waiting).then(function () {
      var charts = document.querySelectorAll("div.chart");
      for (var i = 0; i < charts.length; i++) {
        var b = charts[i].getBoundingClientRect();
        charts[i].setAttribute("data-box", [b.left + window.scrollX, b.top + window.scrollY, b.width, b.height]
          .map(function (v) { return Math.round(v); }).join(","));
        charts[i].setAttribute("data-marks", charts[i].querySelectorAll(".point").length);
      }
      document.body.setAttribute("data-rendered", "1");
    });
  }

  if (DATA.kind === "report") {
    ["stage-chart", "type-chart", "roofline", "memory-chart", "train-chart"].forEach(chart);
    document.getElementById("module-phase").addEventListener("change", tree);
    tree();
  } else {
    sweepExplorer();
  }
  settle();
})();
