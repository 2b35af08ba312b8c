// Charts of the review console, drawn as SVG from the data-series attribute of
// each .chart element. No libraries, no network: the page draws them itself.
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";

  function el(name, attrs, text) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function niceMax(value) {
    if (value <= 5) { return 5; }
    var magnitude = Math.pow(10, Math.floor(Math.log10(value)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) {
      if (steps[i] * magnitude >= value) { return steps[i] * magnitude; }
    }
    return 10 * magnitude;
  }

  function svgRoot(width, height, title) {
    var svg = el("svg", { viewBox: "0 0 " + width + " " + height, width: "100%", role: "img",
                          preserveAspectRatio: "xMidYMid meet", "class": "chart-svg" });
    svg.appendChild(el("title", {}, title));
    return svg;
  }

  // Vertical bars, one per day; the darker part is the conversations handed to a person.
  function columns(container, series, title) {
    var width = 760, height = 240, left = 40, bottom = 28, top = 10;
    var max = niceMax(Math.max.apply(null, series.map(function (d) { return d.value; }).concat([1])));
    var plotH = height - top - bottom, plotW = width - left - 10;
    var step = plotW / Math.max(series.length, 1);
    var svg = svgRoot(width, height, title);
    for (var g = 0; g <= 4; g++) {
      var y = top + plotH - (plotH * g) / 4;
      svg.appendChild(el("line", { x1: left, x2: width - 10, y1: y, y2: y, "class": "grid" }));
      svg.appendChild(el("text", { x: left - 6, y: y + 4, "text-anchor": "end", "class": "axis" },
                         String(Math.round((max * g) / 4))));
    }
    var labelEvery = Math.max(1, Math.ceil(series.length / 8));
    series.forEach(function (d, i) {
      var x = left + i * step + step * 0.15, w = Math.max(step * 0.7, 1);
      var h = (plotH * d.value) / max, hx = (plotH * (d.extra || 0)) / max;
      var bar = el("rect", { x: x, y: top + plotH - h, width: w, height: h, "class": "bar" });
      bar.appendChild(el("title", {}, d.label + ": " + d.value + " conversations, " + (d.extra || 0) + " handed off"));
      svg.appendChild(bar);
      if (hx > 0) {
        svg.appendChild(el("rect", { x: x, y: top + plotH - hx, width: w, height: hx, "class": "bar bar--extra" }));
      }
      if (i % labelEvery === 0) {
        svg.appendChild(el("text", { x: x + w / 2, y: height - 8, "text-anchor": "middle", "class": "axis" },
                           d.label.slice(5)));
      }
    });
    container.appendChild(svg);
    legend(container, [["bar", "conversations"], ["bar--extra", "handed to a person"]]);
  }

  // Horizontal bars with a label and the value; "stacked" splits performed / refused.
  function bars(container, series, title, stacked) {
    var rowH = 26, left = 170, width = 760, height = Math.max(series.length, 1) * rowH + 8;
    var totals = series.map(function (d) { return stacked ? d.performed + d.refused : d.value; });
    var max = Math.max.apply(null, totals.concat([1]));
    var plotW = width - left - 60;
    var svg = svgRoot(width, height, title);
    series.forEach(function (d, i) {
      var y = 4 + i * rowH;
      svg.appendChild(el("text", { x: left - 8, y: y + 16, "text-anchor": "end", "class": "label" }, d.label));
      var parts = stacked ? [["performed", d.performed], ["refused", d.refused]] : [["value", d.value]];
      var x = left;
      parts.forEach(function (p) {
        var w = (plotW * p[1]) / max;
        if (w > 0) {
          var rect = el("rect", { x: x, y: y + 3, width: w, height: rowH - 8, "class": "bar bar--" + p[0] });
          rect.appendChild(el("title", {}, d.label + ": " + p[1] + (stacked ? " " + p[0] : "")));
          svg.appendChild(rect);
          x += w;
        }
      });
      svg.appendChild(el("text", { x: x + 6, y: y + 16, "class": "value" },
                         stacked ? d.performed + " / " + d.refused : String(d.value)));
    });
    container.appendChild(svg);
    if (stacked) { legend(container, [["bar--performed", "performed"], ["bar--refused", "refused"]]); }
  }

  function legend(container, entries) {
    var list = document.createElement("p");
    list.className = "legend";
    entries.forEach(function (entry) {
      var item = document.createElement("span");
      var swatch = document.createElement("i");
      swatch.className = "swatch " + entry[0];
      item.appendChild(swatch);
      item.appendChild(document.createTextNode(" " + entry[1]));
      list.appendChild(item);
    });
    container.appendChild(list);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".chart[data-chart]").forEach(function (container) {
      var series;
      try { series = JSON.parse(container.getAttribute("data-series") || "[]"); } catch (e) { return; }
      var kind = container.getAttribute("data-chart"), title = container.getAttribute("data-title") || "";
      if (!series.length) {
        container.textContent = "No data in this period.";
        return;
      }
      if (kind === "columns") { columns(container, series, title); }
      else if (kind === "bars") { bars(container, series, title, false); }
      else if (kind === "stacked") { bars(container, series, title, true); }
      container.setAttribute("data-drawn", "true");
    });
  });
})();
