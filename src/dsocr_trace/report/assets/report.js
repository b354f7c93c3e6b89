/* dsocr-trace HTML report: draws the charts of the embedded data as SVG. No dependencies, no network. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("dsocr-data").textContent);
  var SVGNS = "http://www.w3.org/2000/svg";
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                "#bcbd22", "#17becf"];
  var tip = document.getElementById("tip");

  // ---- small helpers -------------------------------------------------------------------------------------
  function svgEl(tag, attrs, parent, text) {
    var e = document.createElementNS(SVGNS, tag);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); }
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function htmlEl(tag, attrs, parent, text) {
    var e = document.createElement(tag);
    for (var k in attrs) { if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]); }
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function esc(s) {
    return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;"}[c]; });
  }
  function fmt(x, digits) {
    if (x === null || x === undefined || !isFinite(x)) return "-";
    return Number(x).toLocaleString("en-US", {minimumFractionDigits: digits, maximumFractionDigits: digits});
  }
  function si(x, unit) {
    var a = Math.abs(x), p = [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (var i = 0; i < p.length; i++) { if (a >= p[i][0]) return fmt(x / p[i][0], 2) + " " + p[i][1] + unit; }
    return fmt(x, a >= 10 || a === 0 ? 0 : 2) + " " + unit;
  }
  function gib(x) { return fmt(x / 1073741824, 2) + " GiB"; }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function showTip(evt, html) {
    tip.innerHTML = html;
    tip.style.display = "block";
    var x = evt.clientX + 14, y = evt.clientY + 14;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    if (x + w > window.innerWidth - 8) x = evt.clientX - w - 14;
    if (y + h > window.innerHeight - 8) y = evt.clientY - h - 14;
    tip.style.left = Math.max(4, x) + "px";
    tip.style.top = Math.max(4, y) + "px";
  }
  function hideTip() { tip.style.display = "none"; }
  function sizeSvg(svg, w, h) {
    clear(svg);
    svg.setAttribute("width", w);
    svg.setAttribute("height", h);
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  }
  function linScale(d0, d1, r0, r1) {
    var span = (d1 - d0) || 1;
    return function (v) { return r0 + (v - d0) / span * (r1 - r0); };
  }
  function logScale(d0, d1, r0, r1) {
    var l0 = Math.log10(d0), span = (Math.log10(d1) - l0) || 1;
    return function (v) { return r0 + (Math.log10(v) - l0) / span * (r1 - r0); };
  }
  function niceTicks(lo, hi, n) {
    var span = hi - lo;
    if (!(span > 0)) return [lo];
    var step = Math.pow(10, Math.floor(Math.log10(span / n)));
    var err = span / n / step;
    step *= err >= 7.5 ? 10 : err >= 3.5 ? 5 : err >= 1.5 ? 2 : 1;
    var out = [];
    for (var v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(v);
    return out;
  }
  function decadeTicks(lo, hi) {
    var out = [];
    for (var k = Math.floor(Math.log10(lo)); k <= Math.ceil(Math.log10(hi)); k++) {
      var v = Math.pow(10, k);
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
    return out;
  }
  function tickLabel(v, unit) {
    var a = Math.abs(v);
    if (a >= 1e3 || (a > 0 && a < 0.01)) return si(v, unit).replace(".00 ", " ");
    return String(+v.toPrecision(3)) + (unit ? " " + unit : "");
  }
  function uniq(values) {
    var seen = {}, out = [];
    values.forEach(function (v) { var k = String(v); if (!seen[k]) { seen[k] = 1; out.push(v); } });
    return out;
  }
  function axes(svg, box, xs, ys, xticks, yticks, xunit, yunit, xlabel, ylabel) {
    var g = svgEl("g", {"class": "grid"}, svg), a = svgEl("g", {"class": "axis"}, svg);
    xticks.forEach(function (v) {
      var x = xs(v);
      svgEl("line", {x1: x, x2: x, y1: box.t, y2: box.b}, g);
      svgEl("text", {x: x, y: box.b + 15, "text-anchor": "middle"}, a, tickLabel(v, xunit));
    });
    yticks.forEach(function (v) {
      var y = ys(v);
      svgEl("line", {x1: box.l, x2: box.r, y1: y, y2: y}, g);
      svgEl("text", {x: box.l - 6, y: y + 4, "text-anchor": "end"}, a, tickLabel(v, yunit));
    });
    svgEl("path", {d: "M" + box.l + "," + box.t + "V" + box.b + "H" + box.r, fill: "none"}, a);
    svgEl("text", {x: (box.l + box.r) / 2, y: box.b + 34, "text-anchor": "middle"}, a, xlabel);
    svgEl("text", {x: 14, y: (box.t + box.b) / 2, "text-anchor": "middle",
                   transform: "rotate(-90 14 " + (box.t + box.b) / 2 + ")"}, a, ylabel);
  }
  function onHover(svg, lookup) {
    svg.addEventListener("mousemove", function (evt) {
      var i = evt.target.getAttribute && evt.target.getAttribute("data-i");
      if (i === null || i === undefined) { hideTip(); return; }
      showTip(evt, lookup(+i, evt.target));
    });
    svg.addEventListener("mouseleave", hideTip);
  }

  // ---- horizontal grouped bars -------------------------------------------------------------------------------
  function hbars(svg, rows, series, unit, digits) {
    var W = 1180, labelW = 270, barH = 13, rowH = barH * series.length + 12, top = 34;
    var H = top + rows.length * rowH + 40;
    sizeSvg(svg, W, H);
    var max = 0;
    rows.forEach(function (r) { r.vals.forEach(function (v) { if (v > max) max = v; }); });
    var box = {l: labelW, r: W - 110, t: top, b: top + rows.length * rowH};
    var xs = linScale(0, max || 1, box.l, box.r);
    var g = svgEl("g", {"class": "grid"}, svg), a = svgEl("g", {"class": "axis"}, svg);
    niceTicks(0, max || 1, 6).forEach(function (v) {
      svgEl("line", {x1: xs(v), x2: xs(v), y1: box.t, y2: box.b}, g);
      svgEl("text", {x: xs(v), y: box.b + 15, "text-anchor": "middle"}, a, fmt(v, v < 10 && v % 1 ? 1 : 0));
    });
    svgEl("text", {x: (box.l + box.r) / 2, y: box.b + 32, "text-anchor": "middle"}, a, unit);
    series.forEach(function (s, j) {
      var x = labelW + j * 120;
      svgEl("rect", {x: x, y: 10, width: 11, height: 11, fill: s.color}, svg);
      svgEl("text", {x: x + 15, y: 20}, svg, s.name);
    });
    rows.forEach(function (r, i) {
      var y0 = top + i * rowH + 6;
      svgEl("text", {x: labelW - 8, y: y0 + rowH / 2 - 2, "text-anchor": "end"}, svg, r.label);
      r.vals.forEach(function (v, j) {
        var y = y0 + j * barH;
        svgEl("rect", {"class": "bar", x: box.l, y: y, width: Math.max(0.5, xs(v) - box.l), height: barH - 2,
                       fill: series[j].color, "data-i": i * series.length + j}, svg);
        svgEl("text", {x: xs(v) + 4, y: y + barH - 4, "font-size": "10"}, svg, fmt(v, digits));
      });
    });
    onHover(svg, function (k) {
      var r = rows[Math.floor(k / series.length)], s = series[k % series.length];
      return "<b>" + esc(r.label) + "</b><br>" + esc(s.name) + ": " + fmt(r.vals[k % series.length], digits) + " " +
        esc(unit) + (r.tip ? "<br>" + r.tip : "");
    });
  }

  // ---- report: stages, module types, module tree ------------------------------------------------------------
  function stageChart() {
    var svg = document.getElementById("stage-chart"), sel = document.getElementById("stage-metric");
    function draw() {
      var m = sel.value, rows, series, unit, digits = 3;
      if (m === "time") {
        series = [{name: "device", color: COLORS[0]}, {name: "host", color: COLORS[1]}, {name: "wall", color: COLORS[7]}];
        rows = DATA.stages.map(function (s) {
          return {label: s.name, vals: [s.device_ms, s.host_ms, s.wall_ms], tip: "bound: " + esc(s.bound)};
        });
        unit = "predicted ms (decode.step: one step)";
      } else {
        series = [{name: "tensor-core", color: COLORS[0]}, {name: "CUDA-core", color: COLORS[2]}];
        rows = DATA.stages.map(function (s) {
          return {label: s.name, vals: [s.tc_flops / 1e9, s.cc_flops / 1e9],
                  tip: si(s.bytes, "B") + " moved, " + fmt(s.intensity, 1) + " FLOP/B, " + s.kernels + " kernels"};
        });
        unit = "GFLOP";
        digits = 1;
      }
      hbars(svg, rows, series, unit, digits);
    }
    sel.addEventListener("change", function () { draw(); markRendered(); });
    draw();
  }

  function typeChart() {
    var svg = document.getElementById("type-chart"), sel = document.getElementById("module-phase");
    function draw() {
      var types = DATA.module_types[sel.value] || [];
      var timed = DATA.has_predictions;
      var rows = types.slice(0, 15).map(function (t) {
        return {label: t.type.length > 40 ? t.type.slice(0, 39) + "…" : t.type,
                vals: [timed ? t.device_ms : t.flops / 1e9],
                tip: esc(t.type) + "<br>" + si(t.flops, "FLOP") + ", " + si(t.bytes, "B") +
                  (timed ? "<br>device " + fmt(t.device_ms, 3) + " ms, host " + fmt(t.host_ms, 3) + " ms" : "")};
      });
      hbars(svg, rows, [{name: timed ? "device time" : "FLOPs", color: COLORS[sel.value === "decode" ? 5 : 0]}],
            timed ? "predicted device ms (exclusive, by module class)" : "GFLOP (exclusive, by module class)",
            timed ? 3 : 1);
    }
    sel.addEventListener("change", function () { draw(); tree(); markRendered(); });
    draw();
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

  // ---- report: roofline ---------------------------------------------------------------------------------------
  function roofline() {
    var R = DATA.roofline, svg = document.getElementById("roofline");
    if (!R) return;
    var phaseSel = document.getElementById("roof-phase"), legend = document.getElementById("roof-legend");
    var hidden = {};
    R.stages.forEach(function (s, i) {
      var lab = htmlEl("label", {}, legend);
      htmlEl("span", {"class": "sw"}, lab).style.background = R.stage_colors[i];
      lab.appendChild(document.createTextNode(s + " (" + R.stage_counts[i] + ")"));
      lab.addEventListener("click", function () {
        hidden[i] = !hidden[i];
        lab.className = hidden[i] ? "off" : "";
        draw();
      });
    });
    function draw() {
      var W = 1180, H = 600, box = {l: 92, r: W - 24, t: 54, b: H - 48};
      sizeSvg(svg, W, H);
      var ph = phaseSel.value;
      var shownIdx = [];
      R.points.forEach(function (p, i) {
        if (!hidden[p[2]] && (ph === "both" || R.phases[p[3]] === ph)) shownIdx.push(i);
      });
      var ridgeTc = R.tc / R.bw, ridgeCc = R.cc / R.bw;
      var xs0 = R.points.map(function (p) { return p[0]; }), ys0 = R.points.map(function (p) { return p[1]; });
      var xlo = Math.min.apply(null, xs0.concat([ridgeCc, 1])) / 3, xhi = Math.max.apply(null, xs0.concat([ridgeTc])) * 3;
      var ylo = Math.max(1, Math.min.apply(null, ys0.concat([xlo * R.bw])) / 3), yhi = R.tc * 2.5;
      var xs = logScale(xlo, xhi, box.l, box.r), ys = logScale(ylo, yhi, box.b, box.t);
      axes(svg, box, xs, ys, decadeTicks(xlo, xhi), decadeTicks(ylo, yhi), "", "FLOP/s",
           "arithmetic intensity [FLOP/B]", "predicted achieved FLOP/s (FLOPs / predicted kernel time)");
      [[R.tc, "tensor-core", "", ridgeTc], [R.cc, "CUDA-core", "6 4", ridgeCc]].forEach(function (roof) {
        var peak = roof[0], ridge = roof[3];
        var d = "M" + xs(xlo) + "," + ys(Math.max(ylo, xlo * R.bw)) + "L" + xs(ridge) + "," + ys(peak) + "L" + xs(xhi) + "," + ys(peak);
        if (xlo * R.bw < ylo) d = "M" + xs(ylo / R.bw) + "," + ys(ylo) + "L" + xs(ridge) + "," + ys(peak) + "L" + xs(xhi) + "," + ys(peak);
        svgEl("path", {d: d, fill: "none", stroke: "#222", "stroke-width": 1.8, "stroke-dasharray": roof[2]}, svg);
        svgEl("line", {x1: xs(ridge), x2: xs(ridge), y1: ys(peak), y2: box.b, stroke: "#999", "stroke-dasharray": "2 3"}, svg);
        svgEl("circle", {cx: xs(ridge), cy: ys(peak), r: 4, fill: "#222"}, svg);
        var right = xs(ridge) > (box.l + box.r) / 2;  // label on the side with room
        svgEl("text", {x: xs(ridge) + (right ? -8 : 8), y: ys(peak) + 16, "text-anchor": right ? "end" : "start",
                       "font-weight": 600}, svg,
              roof[1] + " ridge: " + fmt(ridge, 0) + " FLOP/B at " + tickLabel(peak, "FLOP/s"));
      });
      var g = svgEl("g", {}, svg);
      shownIdx.forEach(function (i) {
        var p = R.points[i];
        svgEl("circle", {"class": "pt", cx: xs(p[0]).toFixed(1), cy: ys(p[1]).toFixed(1), r: 2.8,
                         fill: R.stage_colors[p[2]], "fill-opacity": 0.7, "data-i": i}, g);
      });
      svgEl("text", {"class": "title", x: box.l, y: 18}, svg,
            "Predicted roofline: " + R.device + " (" + R.execution + "), " + shownIdx.length + " kernels shown" +
            (R.without_flops ? ", " + R.without_flops + " without FLOPs not placed" : ""));
      svgEl("text", {x: box.l, y: 36, fill: "#5b6575"}, svg,
            "roofs: datasheet peaks; points: FLOPs / predicted kernel time (profile " + R.profile + ")");
    }
    onHover(svg, function (i) {
      var p = R.points[i], s = R.strings;
      return "<b>" + esc(s[p[4]]) + "</b> (" + esc(s[p[13]]) + ", " + R.phases[p[3]] + ")<br>" +
        "module: " + esc(s[p[5]]) + "<br>" +
        "rule: " + esc(s[p[6]]) + (p[14] >= 0 ? "<br><span style='color:#cfd6e4'>" + esc(s[p[14]]) + "</span>" : "") +
        (s[p[7]] ? "<br>shapes: " + esc(s[p[7]]) : "") + "<br>" +
        si(p[0] * p[15], "FLOP") + ", " + si(p[15], "B") + ", " + fmt(p[0], 1) + " FLOP/B<br>" +
        "predicted " + fmt(p[8], 2) + " µs device (" + esc(s[p[10]]) + "-bound, efficiency " + fmt(p[11], 2) +
        ", " + esc(s[p[12]]) + "), " + fmt(p[9], 2) + " µs host<br>achieved " + si(p[1], "FLOP/s");
    });
    phaseSel.addEventListener("change", function () { draw(); markRendered(); });
    draw();
  }

  // ---- report: memory -------------------------------------------------------------------------------------------
  function memoryChart() {
    var M = DATA.memory, svg = document.getElementById("memory-chart");
    if (!M) return;
    var W = 1180, H = 190, box = {l: 20, r: W - 30, t: 46, b: 96};
    sizeSvg(svg, W, H);
    var segs = M.segments, top = Math.max(M.total, M.device) * 1.04;
    var xs = linScale(0, top, box.l, box.r);
    var defs = svgEl("defs", {}, svg);
    var pat = svgEl("pattern", {id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
                                patternTransform: "rotate(45)"}, defs);
    svgEl("rect", {width: 3, height: 6, fill: "rgba(0,0,0,0.35)"}, pat);
    var x = 0;
    segs.forEach(function (s, i) {
      svgEl("rect", {"class": "bar", x: xs(x), y: box.t, width: Math.max(0.5, xs(x + s.bytes) - xs(x)),
                     height: box.b - box.t, fill: s.color, "data-i": i}, svg);
      if (xs(x + s.bytes) - xs(x) > 70) {
        svgEl("text", {x: xs(x) + 4, y: box.t + 16, fill: "#fff", "font-weight": 600}, svg, s.name);
        svgEl("text", {x: xs(x) + 4, y: box.t + 31, fill: "#fff"}, svg, gib(s.bytes));
      }
      if (s.name.indexOf("activation") === 0 && M.logits > 0) {
        svgEl("rect", {x: xs(x), y: box.b - 12, width: Math.max(0.5, xs(x + M.logits) - xs(x)), height: 12,
                       fill: "url(#hatch)", "data-i": segs.length}, svg);
      }
      x += s.bytes;
    });
    var dx = xs(M.device);
    svgEl("line", {x1: dx, x2: dx, y1: box.t - 22, y2: box.b + 18, stroke: "#c62828", "stroke-width": 2.5,
                   "stroke-dasharray": "6 3"}, svg);
    svgEl("text", {x: dx - 4, y: box.t - 26, "text-anchor": "end", fill: "#c62828", "font-weight": 600}, svg,
          "device memory " + gib(M.device));
    svgEl("text", {"class": "title", x: box.l, y: 18}, svg,
          "Memory of the request: " + gib(M.total) + " of " + gib(M.device) + (M.fits ? " (fits, " + gib(M.device - M.total) +
          " free)" : " (DOES NOT FIT)"));
    var lx = box.l, ly = box.b + 30;
    function legendItem(fill, text) {
      var t = svgEl("text", {x: lx + 15, y: ly + 10}, svg, text);
      var w = t.getComputedTextLength();
      if (lx + 15 + w > box.r && lx > box.l) { lx = box.l; ly += 20; t.setAttribute("x", lx + 15); t.setAttribute("y", ly + 10); }
      svgEl("rect", {x: lx, y: ly, width: 11, height: 11, fill: fill, stroke: "#999", "stroke-width": 0.5}, svg);
      lx += 30 + w;
    }
    segs.forEach(function (s) { legendItem(s.color, s.name + " " + gib(s.bytes)); });
    legendItem("url(#hatch)", "fp32 logits " + gib(M.logits) + " (inside the activation peak)");
    svg.setAttribute("height", ly + 24);
    svg.setAttribute("viewBox", "0 0 " + W + " " + (ly + 24));
    onHover(svg, function (i) {
      if (i === segs.length) return "<b>fp32 logits</b><br>" + gib(M.logits) + ": live at the end of prefill, counted in the activation peak";
      var s = segs[i];
      return "<b>" + esc(s.name) + "</b><br>" + gib(s.bytes) + " (" + fmt(s.bytes, 0) + " B)" + (s.note ? "<br>" + esc(s.note) : "");
    });
  }

  // ---- sweep explorer ---------------------------------------------------------------------------------------------
  var SWEEP_COLS = [
    ["mode", "mode", "l", function (r) { return r.mode; }],
    ["device", "device", "l", function (r) { return r.device; }],
    ["profile", "profile", "l", function (r) { return r.profile; }],
    ["execution", "execution", "l", function (r) { return r.execution; }],
    ["batch", "batch", "", function (r) { return r.batch; }],
    ["output_tokens", "out tokens", "", function (r) { return r.output_tokens; }],
    ["ttft_ms", "TTFT ms", "", function (r) { return r.ttft_s * 1e3; }, 1],
    ["tpot_mean_ms", "ms/token", "", function (r) { return r.tpot_mean_s * 1e3; }, 2],
    ["tpot_last_ms", "last ms/token", "", function (r) { return r.tpot_last_s * 1e3; }, 2],
    ["e2e_s", "e2e s", "", function (r) { return r.e2e_s; }, 2],
    ["tokens_per_s", "tokens/s", "", function (r) { return r.tokens_per_s; }, 0],
    ["pages_per_gpu_day", "pages/GPU-day", "", function (r) { return r.pages_per_gpu_day; }, 0],
    ["memory_gib", "memory GiB", "", function (r) { return r.memory_total_bytes / 1073741824; }, 1],
    ["device_gib", "GPU GiB", "", function (r) { return r.device_memory_bytes / 1073741824; }, 0],
    ["fits", "fits", "l", function (r) { return r.fits === undefined ? "?" : (r.fits ? "yes" : "NO"); }],
    ["routing", "routing", "l", function (r) { return r.routing; }]
  ];
  function col(key) { for (var i = 0; i < SWEEP_COLS.length; i++) if (SWEEP_COLS[i][0] === key) return SWEEP_COLS[i]; }

  function sweepExplorer() {
    var rows = DATA.rows, filters = document.getElementById("filters");
    var keys = ["mode", "device", "execution", "batch", "output_tokens"], on = {};
    keys.forEach(function (k) {
      var vals = uniq(rows.map(function (r) { return r[k]; }));
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
    var devColor = {};
    devices.forEach(function (d, i) { devColor[d] = COLORS[i % COLORS.length]; });
    var legend = document.getElementById("sweep-legend");
    devices.forEach(function (d) {
      var s = htmlEl("span", {}, legend);
      htmlEl("span", {"class": "sw"}, s).style.background = devColor[d];
      s.appendChild(document.createTextNode(d));
    });
    htmlEl("span", {}, legend, "● eager   ■ fused   ✕ red: does not fit in GPU memory");

    function shown() {
      return rows.filter(function (r) {
        for (var i = 0; i < keys.length; i++) if (!on[keys[i]][r[keys[i]]]) return false;
        return !(fitOnly.checked && r.fits === false);
      });
    }
    function scatter(pts) {
      var svg = document.getElementById("sweep-chart"), W = 1180, H = 520, box = {l: 86, r: W - 24, t: 30, b: H - 48};
      sizeSvg(svg, W, H);
      var cx = col(xSel.value), cy = col(ySel.value);
      var xv = pts.map(function (r) { return cx[3](r); }), yv = pts.map(function (r) { return cy[3](r); });
      if (!pts.length) {
        svgEl("text", {x: W / 2, y: H / 2, "text-anchor": "middle"}, svg, "no point matches the filters");
        return;
      }
      function scale(v, r0, r1) {
        var lo = Math.min.apply(null, v), hi = Math.max.apply(null, v);
        if (lo > 0 && hi / lo > 30) {
          lo /= 1.5; hi *= 1.5;
          return {f: logScale(lo, hi, r0, r1), ticks: decadeTicks(lo, hi)};
        }
        var pad = (hi - lo) * 0.08 || Math.abs(hi) * 0.1 || 1;
        lo = Math.max(0, lo - pad); hi += pad;
        return {f: linScale(lo, hi, r0, r1), ticks: niceTicks(lo, hi, 7)};
      }
      var sx = scale(xv, box.l, box.r), sy = scale(yv, box.b, box.t);
      axes(svg, box, sx.f, sy.f, sx.ticks, sy.ticks, "", "", cx[1], cy[1]);
      var g = svgEl("g", {}, svg);
      pts.forEach(function (r, i) {
        var x = sx.f(xv[i]), y = sy.f(yv[i]), c = devColor[r.device], idx = rows.indexOf(r);
        var fill = r.fits === false ? "#fff" : c;
        if (r.execution === "fused") {
          svgEl("rect", {"class": "bar", x: x - 4.5, y: y - 4.5, width: 9, height: 9, fill: fill, stroke: c,
                         "stroke-width": 1.5, "data-i": idx}, g);
        } else {
          svgEl("circle", {"class": "pt", cx: x, cy: y, r: 5, fill: fill, stroke: c, "stroke-width": 1.5, "data-i": idx}, g);
        }
        if (r.fits === false) {
          svgEl("path", {d: "M" + (x - 5) + "," + (y - 5) + "L" + (x + 5) + "," + (y + 5) + "M" + (x - 5) + "," + (y + 5) +
                         "L" + (x + 5) + "," + (y - 5), stroke: "#d62728", "stroke-width": 2, "data-i": idx}, g);
        }
      });
      svgEl("text", {"class": "title", x: box.l + 8, y: box.t - 10}, svg, pts.length + " of " + rows.length + " points");
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
      var sorted = pts.slice().sort(function (a, b) {
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
      table(pts);
      markRendered();
    }
    onHover(document.getElementById("sweep-chart"), function (i) {
      var r = rows[i];
      return "<b>" + esc(r.mode) + " on " + esc(r.device) + "</b>, " + esc(r.execution) + ", batch " + r.batch + ", " +
        r.output_tokens + " output tokens<br>TTFT " + fmt(r.ttft_s * 1e3, 1) + " ms, " + fmt(r.tpot_mean_s * 1e3, 2) +
        " ms/token, " + fmt(r.pages_per_gpu_day, 0) + " pages/GPU-day<br>memory " + gib(r.memory_total_bytes) + " of " +
        gib(r.device_memory_bytes) + (r.fits === false ? " <b>does not fit</b>" : "") + "<br>profile " + esc(r.profile) +
        ", routing " + esc(r.routing);
    });
    update();
  }

  // ---- the page is drawn: record where each chart is (for tests and screenshots) ---------------------------------
  function markRendered() {
    var charts = document.querySelectorAll("svg.chart");
    for (var i = 0; i < charts.length; i++) {
      var b = charts[i].getBoundingClientRect();
      charts[i].setAttribute("data-box", [b.left + window.scrollX, b.top + window.scrollY, b.width, b.height]
        .map(function (v) { return Math.round(v); }).join(","));
      charts[i].setAttribute("data-marks", charts[i].querySelectorAll("circle,rect,path").length);
    }
    document.body.setAttribute("data-rendered", "1");
  }

  if (DATA.kind === "report") {
    stageChart();
    typeChart();
    tree();
    roofline();
    memoryChart();
  } else {
    sweepExplorer();
  }
  markRendered();
})();
