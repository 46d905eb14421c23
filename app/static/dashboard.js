// defect-genome dashboard: live stage progress and charts (uPlot, 3Dmol.js; both vendored, no CDN).
// Every chart is drawn from numbers the server aggregated and embedded in the page; the same numbers
// are in a table or a CSV download next to it. window.dgCharts holds the chart objects (tests read them).
(function () {
  "use strict";
  window.dgCharts = {};
  const PALETTE = { sampled: "#7f7f7f", candidates: "#1f77b4", selected: "#d62728", B: "#1f77b4", C: "#ff7f0e", P: "#2ca02c", OTF: "#9467bd", "B+C": "#ff7f0e", "B+P": "#2ca02c", "B+P+OTF": "#9467bd" };
  const colour = (name, i) => PALETTE[name] || ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"][i % 4];
  const jsonData = (id) => { const el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; };
  const width = (el) => Math.max(400, Math.min(1100, (el.parentElement || document.body).clientWidth - 20));

  // ---------------------------------------------------------------- live progress
  function pollProgress() {
    const section = document.getElementById("stages-section");
    if (!section || section.dataset.finished === "true") return;
    const url = section.dataset.progressUrl;
    const tick = async () => {
      let body;
      try {
        const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) return setTimeout(tick, 5000);
        body = await response.json();
      } catch (e) { return setTimeout(tick, 5000); }
      const status = document.getElementById("campaign-status");
      status.textContent = body.status;
      status.className = "status status-" + body.status;
      const error = document.getElementById("campaign-error");
      error.hidden = !body.error; error.textContent = body.error || "";
      for (const s of body.stages) {
        const row = section.querySelector(`tr[data-stage="${CSS.escape(s.stage)}"]`);
        if (!row) continue;
        row.querySelector(".stage-status").innerHTML = `<span class="status status-${s.status}"></span>`;
        row.querySelector(".stage-status span").textContent = s.status;
        const bar = row.querySelector(".stage-progress");
        bar.max = s.progress_total || 1; bar.value = s.progress_done;
        row.querySelector(".stage-count").textContent = `${s.progress_done} / ${s.progress_total}`;
        row.querySelector(".stage-items").textContent = s.items_text;
        row.querySelector(".stage-attempts").textContent = s.attempts;
        row.querySelector(".stage-started").textContent = s.started_at || "";
        row.querySelector(".stage-finished").textContent = s.finished_at || "";
        row.querySelector(".stage-error").textContent = s.error || "";
      }
      section.dataset.finished = body.finished ? "true" : "false";
      if (body.finished) {
        document.getElementById("refresh-note").textContent = "(finished; reload for the charts)";
      } else {
        setTimeout(tick, 2000);
      }
    };
    setTimeout(tick, 2000);
  }

  // ---------------------------------------------------------------- gamma histograms (log bins)
  // ``key``: the element ids' prefix (KEY-chart, KEY-logy) and the dgCharts entry (KEY, KEY + "Counts")
  function histogramChart(histograms, key, title) {
    const el = document.getElementById(key + "-chart");
    if (!el || !histograms || !Object.keys(histograms).length) return;
    const names = Object.keys(histograms);
    const edges = histograms[names[0]].edges;
    // stepped lines over the bin edges: y[i] is the count of bin [edges[i], edges[i+1]); the last
    // point repeats the last bin so that it is drawn to its right edge
    const series = names.map((n) => { const c = histograms[n].counts; return c.concat([c[c.length - 1]]); });
    const logBox = document.getElementById(key + "-logy");
    const draw = () => {
      const logY = logBox && logBox.checked;
      // log axis: an empty bin is drawn on the floor (0.5) so the steps stay connected; linear: the counts
      const ys = series.map((c) => (logY ? c.map((v) => (v > 0 ? v : 0.5)) : c));
      if (window.dgCharts[key]) { window.dgCharts[key].destroy(); }
      const opts = {
        title: title, width: width(el), height: 320,
        scales: { x: { time: false, distr: 3 }, y: logY ? { distr: 3, range: (u, lo, hi) => [0.5, Math.max(10, hi * 2)] } : { distr: 1 } },
        axes: [{ label: "extrapolation grade γ" }, { label: "atoms per bin" }],
        series: [{ label: "γ from" }].concat(names.map((n, i) => ({
          label: n, stroke: colour(n, i), width: n === "sampled" ? 1.5 : 2.5, dash: n === "selected" ? [6, 3] : undefined,
          paths: uPlot.paths.stepped({ align: 1 }), points: { show: false },
        }))),
      };
      window.dgCharts[key] = new uPlot(opts, [edges].concat(ys), el);
      window.dgCharts[key + "Counts"] = Object.fromEntries(names.map((n) => [n, histograms[n].counts]));
    };
    draw();
    if (logBox) logBox.addEventListener("change", draw);
  }

  function gammaMaxChart(data) {
    const el = document.getElementById("gamma-max-chart");
    if (!el || !data || !data.gamma_max || !data.gamma_max.n) return;
    const g = data.gamma_max;
    window.dgCharts.gammaMax = new uPlot({
      title: "γmax per snapshot", width: width(el), height: 280,
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: [{ label: "snapshot (storage order)" }, { label: "γmax" }],
      series: [{ label: "snapshot" }, { label: "γmax", stroke: "#d62728", width: 1.5, points: { show: g.index.length < 200 } }],
    }, [g.index, g.gamma_max.map((v) => (v > 0 ? v : null))], el);
  }

  // ---------------------------------------------------------------- on-the-fly refinement
  // gamma_max per graded snapshot against the MD step, one line per (iteration, target), with the
  // gamma_select and gamma_break thresholds as dashed lines (the paper's Fig. 4i)
  function otfChart(data) {
    const el = document.getElementById("otf-gamma-max-chart");
    if (!el || !data || !data.otf || !data.otf.series.length) return;
    const steps = data.otf.steps;
    const lines = data.otf.series.map((s, i) => ({ label: s.label, stroke: colour("", i), width: 2, spanGaps: false,
      points: { show: true } }));
    const values = data.otf.series.map((s) => s.gamma_max.map((v) => (v > 0 ? v : null)));
    const thresholds = [["γselect", data.gamma_select, "#7f7f7f"], ["γbreak", data.gamma_break, "#000000"]]
      .filter(([, v]) => v);
    window.dgCharts.otfGammaMax = new uPlot({
      title: "γmax per snapshot of the OTF runs", width: width(el), height: 300,
      scales: { x: { time: false }, y: { distr: 3 } },
      axes: [{ label: "MD step" }, { label: "γmax", size: 80 }],
      series: [{ label: "step" }].concat(lines,
        thresholds.map(([label, , stroke]) => ({ label, stroke, width: 1, dash: [6, 4], points: { show: false } }))),
    }, [steps].concat(values, thresholds.map(([, v]) => steps.map(() => v))), el);
  }

  // sigma_F histogram on its log bins with a logarithmic count axis (an empty bin on the 0.5 floor)
  function sigmaChart(data) {
    const el = document.getElementById("sigma-chart");
    if (!el || !data || !data.sigma) return;
    const h = data.sigma;
    const counts = h.counts.concat([h.counts[h.counts.length - 1]]);
    window.dgCharts.sigma = new uPlot({
      title: "ensemble force spread σF", width: width(el), height: 300,
      scales: { x: { time: false, distr: 3 }, y: { distr: 3, range: (u, lo, hi) => [0.5, Math.max(10, hi * 2)] } },
      axes: [{ label: "σF (eV/Å)" }, { label: "atoms per bin" }],
      series: [{ label: "σF from" }, { label: "atoms", stroke: PALETTE.OTF, width: 2.5,
        paths: uPlot.paths.stepped({ align: 1 }), points: { show: false } }],
    }, [h.edges, counts.map((v) => (v > 0 ? v : 0.5))], el);
    window.dgCharts.sigmaCounts = h.counts;
  }

  // ---------------------------------------------------------------- scatter plots (uPlot mode 2)
  // a series' paths function that draws its (x, y) pairs as small squares in its stroke colour
  function scatterPoints(u, seriesIdx) {
    const size = 3 * devicePixelRatio;
    uPlot.orient(u, seriesIdx, (series, dataX, dataY, scaleX, scaleY, valToPosX, valToPosY, xOff, yOff, xDim, yDim) => {
      const d = u.data[seriesIdx];
      u.ctx.fillStyle = series.stroke();
      for (let i = 0; i < d[0].length; i++) {
        const cx = valToPosX(d[0][i], scaleX, xDim, xOff), cy = valToPosY(d[1][i], scaleY, yDim, yOff);
        u.ctx.fillRect(cx - size / 2, cy - size / 2, size, size);
      }
    });
    return null;
  }

  function soapChart(data) {
    const el = document.getElementById("soap-chart");
    if (!el || !data || !data.soap) return;
    const names = Object.keys(data.soap);
    const sets = names.map((n) => [data.soap[n].map((p) => p[0]), data.soap[n].map((p) => p[1])]);
    window.dgCharts.soap = new uPlot({
      mode: 2, title: "SOAP PCA", width: Math.min(width(el), 700), height: 500,
      scales: { x: { time: false }, y: {} },
      axes: [{ label: "PC1" }, { label: "PC2" }],
      legend: { live: false },
      series: [{}].concat(names.map((n, i) => ({ label: n, stroke: colour(n, i), paths: scatterPoints, points: { show: false } }))),
    }, [null].concat(sets), el);
  }

  // ---------------------------------------------------------------- validation study (B, B+C, B+P)
  // a model's colour is its combination's; the quadratic SNAP of a combination is drawn paler
  const modelFill = (m, i) => colour(m.combination, i) + (m.kind === "quadratic" ? "66" : "dd");

  // grouped bars: x is the scenario's index, each model a bar of 0.8 / models at its offset in the group
  function validationChart(data) {
    const el = document.getElementById("validation-chart");
    if (!el || !data || !data.bars.length) return;
    const xs = data.scenarios.map((_, i) => i);
    const group = 0.8, size = group / data.bars.length;
    window.dgCharts.validationForces = new uPlot({
      title: "force RMSE over the defect atoms", width: width(el), height: 320,
      scales: { x: { time: false, range: [-0.5, xs.length - 0.5] }, y: { range: (u, lo, hi) => [0, hi * 1.1 || 1] } },
      axes: [{ label: "scenario", splits: () => xs, values: (u, splits) => splits.map((i) => data.scenarios[i] || "") },
        { label: "force RMSE, defect atoms (meV/Å)", size: 70 }],
      series: [{ label: "scenario", value: (u, i) => (i == null ? "-" : data.scenarios[i]) }].concat(data.bars.map((m, j) => ({
        label: m.label, stroke: colour(m.combination, j), fill: modelFill(m, j), width: 1, points: { show: false },
        paths: uPlot.paths.bars({ disp: {
          x0: { unit: 1, values: () => xs.map((x) => x - group / 2 + j * size) },
          size: { unit: 1, values: () => xs.map(() => size) },
        } }),
      }))),
    }, [xs].concat(data.bars.map((m) => m.values)), el);
  }

  // model against reference force components of one scenario, one colour per model, and the line y = x
  function parityChart(data) {
    const el = document.getElementById("parity-chart");
    if (!el || !data || !data.parity.length) return;
    const values = data.parity.flatMap((p) => p.force_reference.concat(p.force_model));
    const lo = Math.min(...values), hi = Math.max(...values), pad = 0.05 * (hi - lo || 1);
    const range = [lo - pad, hi + pad];
    const diagonal = (u) => {
      const ctx = u.ctx, [a, b] = range;
      ctx.save();
      ctx.strokeStyle = "#7f7f7f"; ctx.setLineDash([6, 4]); ctx.lineWidth = devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(u.valToPos(a, "x", true), u.valToPos(a, "y", true));
      ctx.lineTo(u.valToPos(b, "x", true), u.valToPos(b, "y", true));
      ctx.stroke();
      ctx.restore();
    };
    window.dgCharts.parity = new uPlot({
      mode: 2, title: `force parity: ${data.scenario}`, width: Math.min(width(el), 600), height: 520,
      scales: { x: { time: false, range: () => range }, y: { range: () => range } },
      axes: [{ label: "reference force component (eV/Å)" }, { label: "model force component (eV/Å)", size: 60 }],
      legend: { live: false },
      hooks: { draw: [diagonal] },
      series: [{}].concat(data.parity.map((p, i) => ({ label: p.label, stroke: modelFill(p, i),
        paths: scatterPoints, points: { show: false } }))),
    }, [null].concat(data.parity.map((p) => [p.force_reference, p.force_model])), el);
  }

  // ---------------------------------------------------------------- 3D structure viewer
  function gammaColour(g) {
    if (g === null || g === undefined) return "#dddddd";
    // log10(gamma) from 0 (gamma 1) to 1 (gamma 10): blue -> white -> red (coolwarm ends)
    const t = Math.max(0, Math.min(1, Math.log10(Math.max(g, 1e-6))));
    const lerp = (a, b, s) => Math.round(a + (b - a) * s);
    const [r, gr, b] = t < 0.5 ? [lerp(59, 221, t * 2), lerp(76, 221, t * 2), lerp(192, 221, t * 2)]
      : [lerp(221, 180, (t - 0.5) * 2), lerp(221, 4, (t - 0.5) * 2), lerp(221, 38, (t - 0.5) * 2)];
    return `rgb(${r},${gr},${b})`;
  }
  const ORIGIN = { core: "#d62728", inserted: "#1f77b4", other: "#bbbbbb" };

  function structureViewer() {
    const data = jsonData("dg-structure-data");
    const el = document.getElementById("viewer");
    const note = document.getElementById("viewer-status");
    if (!data || !el) return;
    const colours = data.colours;
    const perAtom = colours.mode === "core" ? colours.category.map((c) => ORIGIN[c]) : colours.gamma.map(gammaColour);
    window.dgCharts.atomColours = perAtom;
    try {
      if (typeof $3Dmol === "undefined") throw new Error("3Dmol.js did not load");
      const viewer = $3Dmol.createViewer(el, { backgroundColor: "white" });
      if (!viewer) throw new Error("no WebGL in this browser");
      const model = viewer.addModel(data.xyz, "xyz");
      viewer.setStyle({}, { sphere: { scale: 0.35, colorfunc: (atom) => perAtom[atom.index] || "#999999" } });
      viewer.zoomTo();
      viewer.render();
      window.dgCharts.viewer = viewer;
      window.dgCharts.viewerAtoms = model.selectedAtoms({}).length;
      note.textContent = `${window.dgCharts.viewerAtoms} atoms shown; drag to rotate, scroll to zoom.`;
    } catch (e) {
      note.textContent = "The 3D view is not available here (" + e.message + "); the table below lists the values.";
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    pollProgress();
    const data = jsonData("dg-campaign-data");
    const charts = [
      (d) => histogramChart(d && d.histograms, "histogram", "γ per dataset"),
      (d) => histogramChart(d && d.training_sets, "training-sets", "γ of the candidates against B, B+C, B+P"),
      (d) => histogramChart(d && d.species, "species", "γ per species"),
      gammaMaxChart, soapChart,
    ];
    for (const chart of charts) {
      try { chart(data); } catch (e) { console.error(e); }
    }
    const refinement = jsonData("dg-refinement-data");
    for (const chart of [otfChart, sigmaChart]) {
      try { chart(refinement); } catch (e) { console.error(e); }
    }
    const validation = jsonData("dg-validation-data");
    for (const chart of [validationChart, parityChart]) {
      try { chart(validation); } catch (e) { console.error(e); }
    }
    structureViewer();
  });
})();
