// attnscope report.html: layer × head heat maps with selectors, and the
// per-head panel (#head-panel). Reads the JSON in #attnscope-data (see
// crates/attnscope/src/report/embed.rs for its layout). No network.
(function () {
  'use strict';
  const D = JSON.parse(document.getElementById('attnscope-data').textContent);
  const NL = D.model.n_layers, NH = D.model.n_heads, CELLS = NL * NH, M = D.measures;
  const GROUP = Math.max(1, Math.floor(NH / Math.max(1, D.model.n_kv_heads)));
  const SVGNS = 'http://www.w3.org/2000/svg';
  const memo = new Map();
  const cached = (key, fn) => { if (!memo.has(key)) memo.set(key, fn()); return memo.get(key); };
  function bytes(b64) {
    const s = atob(b64 || ''), u = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
    return u;
  }
  const f32 = (b64) => { const u = bytes(b64); return new Float32Array(u.buffer, 0, u.length >> 2); };
  const i8 = (b64) => { const u = bytes(b64); return new Int8Array(u.buffer); };
  const mIndex = (name) => M.indexOf(name);
  const vals = (r) => cached('v' + r, () => f32(D.runs[r].values));

  // ---- numbers ----
  function median(xs) {
    if (!xs.length) return NaN;
    const s = xs.slice().sort((a, b) => a - b), p = (s.length - 1) / 2;
    return (s[Math.floor(p)] + s[Math.ceil(p)]) / 2;
  }
  function quantile(s, q) {
    if (!s.length) return NaN;
    const p = q * (s.length - 1), lo = Math.floor(p), hi = Math.ceil(p);
    return s[lo] + (s[hi] - s[lo]) * (p - lo);
  }
  function medianOverRuns(m) {
    return cached('med' + m, () => {
      const out = new Float64Array(CELLS);
      for (let c = 0; c < CELLS; c++) {
        const xs = [];
        for (let r = 0; r < D.runs.length; r++) { const x = vals(r)[m * CELLS + c]; if (Number.isFinite(x)) xs.push(x); }
        out[c] = median(xs);
      }
      return out;
    });
  }
  // run -1 = median over runs
  const cellsOf = (run, m) => run < 0 ? medianOverRuns(m) : vals(run).subarray(m * CELLS, (m + 1) * CELLS);
  function fmt(v) {
    if (!Number.isFinite(v)) return '–';
    if (Number.isInteger(v) && Math.abs(v) < 1e6) return String(v);
    if (Math.abs(v) >= 0.01) return v.toFixed(3);
    return v.toExponential(2);
  }
  const exact = (v) => !Number.isFinite(v) ? '–' : Number.isInteger(v) ? String(v)
    : Math.abs(v) < 1e-3 ? v.toExponential(6).replace(/\.?0+e/, 'e') : String(+v.toPrecision(7));

  // ---- colours ----
  const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const DIVERGING = [[33, 102, 172], [103, 169, 207], [247, 247, 247], [239, 138, 98], [178, 24, 43]];
  function stops(S, t) {
    t = Math.min(1, Math.max(0, t));
    const x = t * (S.length - 1), i = Math.min(S.length - 2, Math.floor(x)), f = x - i;
    return S[i].map((u, k) => Math.round(u + (S[i + 1][k] - u) * f));
  }
  const rgb = (c) => 'rgb(' + c.join(',') + ')';
  const viridis = (t) => Number.isFinite(t) ? rgb(stops(VIRIDIS, t)) : '#d9d9d9';

  // ---- SVG ----
  function el(tag, attrs, parent, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function h(tag, attrs, parent, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  let gradients = 0;
  // A horizontal colour bar with its value range: lo, middle, hi.
  function legend(svg, x, y, w, S, lo, hi, label) {
    const id = 'grad' + (++gradients);
    const g = el('linearGradient', { id }, el('defs', {}, svg));
    S.forEach((c, i) => el('stop', { offset: (100 * i / (S.length - 1)) + '%', 'stop-color': rgb(c) }, g));
    el('rect', { x, y, width: w, height: 10, fill: 'url(#' + id + ')', stroke: '#888', 'stroke-width': 0.5, class: 'legend' }, svg);
    const mid = (lo + hi) / 2;
    [[lo, 'start', x], [mid, 'middle', x + w / 2], [hi, 'end', x + w]].forEach(([v, a, tx]) => {
      el('line', { x1: tx, x2: tx, y1: y + 10, y2: y + 13, stroke: '#555' }, svg);
      el('text', { x: tx, y: y + 24, 'text-anchor': a, class: 'legend-label' }, svg, fmt(v));
    });
    if (label) el('text', { x: x + w / 2, y: y - 3, 'text-anchor': 'middle', class: 'legend-label' }, svg, label);
  }

  // ---- tooltip ----
  const tip = h('div', { id: 'tip', role: 'tooltip' }, document.body);
  document.addEventListener('mousemove', (ev) => {
    const t = ev.target.closest && ev.target.closest('[data-tip]');
    if (!t) { tip.style.display = 'none'; return; }
    tip.textContent = typeof t.tipFn === 'function' ? t.tipFn(ev) : t.getAttribute('data-tip');
    tip.style.display = tip.textContent ? 'block' : 'none';
    tip.style.left = (ev.pageX + 14) + 'px';
    tip.style.top = (ev.pageY + 12) + 'px';
  });

  // ---- heat maps ----
  const heatmaps = [];
  let selected = null; // {l, h}
  function runOptions(select, withMedian, value) {
    if (withMedian) h('option', { value: -1 }, select, 'median over runs');
    D.runs.forEach((r, i) => h('option', { value: i }, select, r.label));
    select.value = String(value);
  }
  function heatmap(fig) {
    const state = { m: Math.max(0, mIndex(fig.dataset.measure)), run: -1 };
    const bar = h('div', { class: 'controls' }, fig);
    const ms = h('select', { class: 'hm-measure', 'aria-label': 'measure' }, h('label', {}, h('div', {}, bar), 'measure '));
    M.forEach((m, i) => h('option', { value: i }, ms, m));
    ms.value = String(state.m);
    const rs = h('select', { class: 'hm-run', 'aria-label': 'run' }, h('label', {}, h('div', {}, bar), 'run '));
    runOptions(rs, true, -1);
    const holder = h('div', {}, fig);
    const readout = h('div', { class: 'readout' }, fig, 'hover a cell for its value; click it for the head');
    ms.onchange = () => { state.m = +ms.value; draw(); };
    // A concrete run chosen here also becomes the panel's run.
    rs.onchange = () => { state.run = +rs.value; draw(); if (state.run >= 0) { panelRun = state.run; renderPanel(); } };
    const cell = NH > 24 ? 10 : 16, left = 34, top = 30;
    const w = left + NH * cell + 8, ht = top + NL * cell + 46;
    function draw() {
      holder.textContent = '';
      const v = cellsOf(state.run, state.m);
      let lo = Infinity, hi = -Infinity;
      v.forEach((x) => { if (Number.isFinite(x)) { lo = Math.min(lo, x); hi = Math.max(hi, x); } });
      if (!(hi >= lo)) { lo = 0; hi = 1; }
      const svg = el('svg', { width: w, height: ht, class: 'heatmap', 'font-size': 9 }, holder);
      const runName = state.run < 0 ? 'median over runs' : D.runs[state.run].label;
      el('text', { x: left, y: 10, class: 'axis-label' }, svg, 'head →');
      for (let hd = 0; hd < NH; hd += NH > 24 ? 4 : 1) el('text', { x: left + hd * cell + cell / 2, y: top - 4, 'text-anchor': 'middle' }, svg, hd);
      const lstep = cell * 1 >= 14 && NL <= 48 ? 1 : NL > 96 ? 8 : 4;
      for (let l = 0; l < NL; l += lstep) el('text', { x: left - 4, y: top + l * cell + cell / 2 + 3, 'text-anchor': 'end' }, svg, 'L' + l);
      for (let l = 0; l < NL; l++) {
        for (let hd = 0; hd < NH; hd++) {
          const x = v[l * NH + hd], t = hi > lo ? (x - lo) / (hi - lo) : 0.5;
          const r = el('rect', { x: left + hd * cell, y: top + l * cell, width: cell - 1, height: cell - 1, fill: viridis(t), 'data-layer': l, 'data-head': hd, class: 'cell' }, svg);
          const text = 'layer ' + l + ' · head ' + hd + ' · ' + M[state.m] + ' = ' + exact(x) + ' (' + runName + ')';
          r.setAttribute('data-tip', text);
          el('title', {}, r, text);
          r.addEventListener('mouseenter', () => { readout.textContent = text; });
          r.addEventListener('click', () => { location.hash = 'head=L' + l + 'H' + hd; });
        }
      }
      el('rect', { class: 'sel', x: -99, y: -99, width: cell + 1, height: cell + 1, fill: 'none', stroke: '#e8003d', 'stroke-width': 2, 'pointer-events': 'none' }, svg);
      legend(svg, left, top + NL * cell + 12, Math.max(NH * cell, 120), VIRIDIS, lo, hi);
      if (w < left + 130) svg.setAttribute('width', left + 136);
      mark();
    }
    function mark() {
      const s = holder.querySelector('.sel');
      if (s && selected) { s.setAttribute('x', left + selected.h * cell - 1); s.setAttribute('y', top + selected.l * cell - 1); }
    }
    draw();
    heatmaps.push({ mark, state });
  }
  document.querySelectorAll('figure.heatmap-figure').forEach(heatmap);

  // ---- generic x–y plot ----
  function ticks(lo, hi, log) {
    if (log) {
      const a = Math.floor(lo), b = Math.ceil(hi), step = Math.max(1, Math.ceil((b - a) / 6)), out = [];
      for (let e = a; e <= b; e += step) if (e >= lo - 1e-9 && e <= hi + 1e-9) out.push(e);
      return out.length ? out : [lo, hi];
    }
    const span = hi - lo || 1, raw = span / 5, p = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((k) => k * p).find((s) => s >= raw);
    const out = [];
    for (let x = Math.ceil(lo / step) * step; x <= hi + step * 1e-9; x += step) out.push(+x.toPrecision(12));
    return out;
  }
  // opts: {w, h, title, xlabel, ylabel, logX, logY, series: [{name, colour, xs, ys, dots, r, tips}], vlines: [{x, colour, label}], top}
  function plot(opts) {
    const W = opts.w || 460, H = opts.h || 280, L = 58, R = 12, T = 24 + (opts.top || 0), B = 40;
    const fx = (x) => opts.logX ? Math.log10(x) : x, fy = (y) => opts.logY ? Math.log10(y) : y;
    const ok = (x, y) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logX || x > 0) && (!opts.logY || y > 0);
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    opts.series.forEach((s) => s.xs.forEach((x, i) => {
      const y = s.ys[i];
      if (!ok(x, y)) return;
      x0 = Math.min(x0, fx(x)); x1 = Math.max(x1, fx(x)); y0 = Math.min(y0, fy(y)); y1 = Math.max(y1, fy(y));
    }));
    (opts.vlines || []).forEach((v) => { if (Number.isFinite(v.x)) { x0 = Math.min(x0, fx(v.x)); x1 = Math.max(x1, fx(v.x)); } });
    if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
    if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
    if (opts.yFrom0 && !opts.logY) y0 = Math.min(0, y0);
    const padY = (y1 - y0) * 0.04; y0 -= padY; y1 += padY;
    if (opts.padX) { const padX = (x1 - x0) * opts.padX; x0 -= padX; x1 += padX; }
    const px = (x) => L + (W - L - R) * (fx(x) - x0) / (x1 - x0);
    const py = (y) => T + (H - T - B) * (1 - (fy(y) - y0) / (y1 - y0));
    const svg = el('svg', { width: W, height: H, class: 'plot', 'font-size': 10 });
    el('text', { x: L, y: 12, class: 'plot-title' }, svg, opts.title);
    el('rect', { x: L, y: T, width: W - L - R, height: H - T - B, fill: 'none', stroke: '#999' }, svg);
    const lab = (v, log) => log ? (Math.abs(v - Math.round(v)) < 1e-9 ? '1e' + Math.round(v) : (10 ** v).toPrecision(2)) : fmt(v);
    ticks(x0, x1, opts.logX).forEach((t) => {
      const X = L + (W - L - R) * (t - x0) / (x1 - x0);
      el('line', { x1: X, x2: X, y1: H - B, y2: H - B + 4, stroke: '#555' }, svg);
      el('text', { x: X, y: H - B + 15, 'text-anchor': 'middle' }, svg, lab(t, opts.logX));
    });
    ticks(y0, y1, opts.logY).forEach((t) => {
      const Y = T + (H - T - B) * (1 - (t - y0) / (y1 - y0));
      el('line', { x1: L - 4, x2: L, y1: Y, y2: Y, stroke: '#555' }, svg);
      el('line', { x1: L, x2: W - R, y1: Y, y2: Y, stroke: '#eee' }, svg);
      el('text', { x: L - 6, y: Y + 3, 'text-anchor': 'end' }, svg, lab(t, opts.logY));
    });
    el('text', { x: L + (W - L - R) / 2, y: H - 6, 'text-anchor': 'middle', class: 'axis-label' }, svg, opts.xlabel);
    el('text', { x: 12, y: T + (H - T - B) / 2, 'text-anchor': 'middle', class: 'axis-label', transform: 'rotate(-90 12 ' + (T + (H - T - B) / 2) + ')' }, svg, opts.ylabel);
    (opts.vlines || []).forEach((v, k) => {
      if (!Number.isFinite(v.x)) return;
      const X = px(v.x);
      el('line', { x1: X, x2: X, y1: T, y2: H - B, stroke: v.colour, 'stroke-dasharray': '4 3', 'stroke-width': 1.3 }, svg);
      el('text', { x: X + 3, y: T + 12 + 12 * k, fill: v.colour, class: 'vlabel' }, svg, v.label);
    });
    opts.series.forEach((s) => {
      const pts = [];
      s.xs.forEach((x, i) => { if (ok(x, s.ys[i])) pts.push([px(x), py(s.ys[i]), i]); });
      if (s.dots) {
        const g = el('g', { fill: s.colour, 'fill-opacity': s.opacity || 0.55 }, svg);
        pts.forEach(([X, Y, i]) => {
          const c = el('circle', { cx: X.toFixed(1), cy: Y.toFixed(1), r: s.r || 2 }, g);
          if (s.tips) c.setAttribute('data-tip', s.tips(i));
        });
      } else {
        el('polyline', { points: pts.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '), fill: 'none', stroke: s.colour, 'stroke-width': 1.4 }, svg);
      }
    });
    // Series legend: lower left unless opts.legendAt = [x, y] as fractions of the free plot area.
    const named = opts.series.filter((s) => s.name);
    named.forEach((s, k) => {
      const [fx0, fy0] = opts.legendAt || [0, 1];
      const x = L + 8 + (W - L - R - 130) * fx0, y = T + 12 + (H - T - B - 24 - 14 * (named.length - 1)) * fy0 + 14 * k;
      el('line', { x1: x, x2: x + 14, y1: y, y2: y, stroke: s.colour, 'stroke-width': 2 }, svg);
      el('text', { x: x + 18, y: y + 4, fill: s.colour }, svg, s.name);
    });
    svg.px = px; svg.py = py; svg.box = { L, R, T, B, W, H };
    return svg;
  }

  // ---- the head panel ----
  const panel = document.getElementById('head-panel');
  const firstOwn = D.runs.findIndex((r, i) => r.drill_from === i);
  let panelRun = firstOwn >= 0 ? firstOwn : 0;
  const tokensOf = (r) => (D.texts[D.runs[r].text_index] || {}).tokens || [];
  const clip = (s, n) => s.length > n ? s.slice(0, n - 1) + '…' : s;

  function figure(parent, caption, child, wide) {
    const f = h('figure', { class: wide ? 'panel-fig wide' : 'panel-fig' }, parent);
    if (caption) h('figcaption', {}, f, caption);
    f.appendChild(child);
    return f;
  }

  function spectrumPlot(r, c) {
    const K = D.spectrum_len, DL = D.learned_len;
    const e = f32(D.runs[r].spectra).subarray(c * K, (c + 1) * K);
    const w = DL ? cached('learned', () => f32(D.learned)).subarray(c * DL, (c + 1) * DL) : new Float32Array(0);
    const norm = (v) => Array.from(v, (x) => v[0] > 0 ? x / v[0] : NaN);
    const k90 = vals(r)[mIndex('k90') * CELLS + c], k90l = vals(r)[mIndex('k90_learned') * CELLS + c];
    return plot({
      title: 'σ_k / σ₁: energy field E vs learned W_Q W_Kᵀ', xlabel: 'component k', ylabel: 'σ_k / σ₁ (log)', logY: true, legendAt: [0.62, 0.5],
      series: [
        { name: 'E (this run)', colour: '#1f77b4', xs: Array.from(e, (_, i) => i + 1), ys: norm(e) },
        { name: 'W_Q W_Kᵀ', colour: '#d95f02', xs: Array.from(w, (_, i) => i + 1), ys: norm(w) },
      ],
      vlines: [{ x: k90, colour: '#1f77b4', label: 'k90 = ' + exact(k90) }, { x: k90l, colour: '#d95f02', label: 'k90_learned = ' + exact(k90l) }],
    });
  }

  function tilePlot(r, c) {
    const text = D.texts[D.runs[r].text_index];
    const tile = text && text.tile;
    if (!tile) return null;
    const T = tile.side, len = T * (T + 1) / 2;
    const codes = cached('tile' + D.runs[r].text_index, () => i8(tile.codes)).subarray(c * len, (c + 1) * len);
    const scale = cached('scales' + D.runs[r].text_index, () => f32(tile.scales))[c];
    const toks = text.tokens || [];
    const px = Math.max(5, Math.min(12, Math.floor(760 / T))), step = Math.ceil(10 / px), lab = 92;
    const canvas = document.createElement('canvas');
    canvas.width = T; canvas.height = T;
    const ctx = canvas.getContext('2d'), img = ctx.createImageData(T, T);
    for (let i = 0; i < T; i++) for (let j = 0; j < T; j++) {
      const col = j <= i ? stops(DIVERGING, 0.5 + codes[i * (i + 1) / 2 + j] / 254) : [236, 236, 236];
      const o = 4 * (i * T + j);
      img.data[o] = col[0]; img.data[o + 1] = col[1]; img.data[o + 2] = col[2]; img.data[o + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    const side = T * px, W = lab + side + 10, H = lab + side + 50;
    const svg = el('svg', { width: W, height: H, class: 'plot tile', 'font-size': Math.min(10, Math.max(8, px * step - 2)) });
    const im = el('image', { x: lab, y: lab, width: side, height: side, href: canvas.toDataURL(), preserveAspectRatio: 'none', style: 'image-rendering:pixelated' }, svg);
    for (let i = 0; i < T; i += step) {
      const t = clip(toks[i] || '', 12);
      el('text', { x: lab - 3, y: lab + i * px + px / 2 + 3, 'text-anchor': 'end' }, svg, t);
      el('text', { x: 0, y: 0, 'text-anchor': 'start', transform: 'translate(' + (lab + i * px + px / 2 + 3) + ' ' + (lab - 3) + ') rotate(-90)' }, svg, t);
    }
    el('text', { x: lab + side / 2, y: 10, 'text-anchor': 'middle', class: 'axis-label' }, svg, '');
    im.setAttribute('data-tip', '');
    im.tipFn = (ev) => {
      const b = im.getBoundingClientRect();
      const j = Math.floor((ev.clientX - b.left) / b.width * T), i = Math.floor((ev.clientY - b.top) / b.height * T);
      if (i < 0 || j < 0 || i >= T || j >= T) return '';
      const who = 'query ' + i + ' ‘' + (toks[i] || '') + '’ · key ' + j + ' ‘' + (toks[j] || '') + '’';
      return j > i ? who + ': future key (outside the causal support)' : who + ': E ≈ ' + fmt(codes[i * (i + 1) / 2 + j] / 127 * scale);
    };
    legend(svg, lab, lab + side + 18, Math.min(side, 240), DIVERGING, -scale, scale, 'E_ij (row-centred logit, nats)');
    const wrap = h('div', {});
    wrap.appendChild(svg);
    h('p', { class: 'note' }, wrap, 'Rows: queries i; columns: keys j; the first ' + T + ' tokens of ' + text.text.split('/').pop() +
      ' (the same in every run of this text). Grey: keys after the query. Colours are int8 codes (1/127 of max |E| = ' + fmt(scale) + ').' +
      (step > 1 ? ' Every ' + step + 'th token is labelled.' : ''));
    return wrap;
  }

  function keyEnergyPlot(c, cl, toks, n) {
    const order = Array.from(cl.c.keys()).sort((a, b) => cl.c[b] - cl.c[a]).slice(0, 10);
    const top = 6 * 12;
    const svg = plot({
      title: 'key energy c_j over positions (top 10 keys labelled)', xlabel: 'key position j', ylabel: 'c_j (log)', logY: true, w: 920, h: 300, top,
      series: [
        { colour: '#444', xs: Array.from(cl.c, (_, j) => j), ys: Array.from(cl.c) },
        { colour: '#e8003d', dots: true, r: 3, opacity: 1, xs: order, ys: order.map((j) => cl.c[j]), tips: (i) => 'key ' + order[i] + ' ‘' + (toks[order[i]] || '') + '’: c = ' + exact(cl.c[order[i]]) },
      ],
    });
    // Labels in rows above the plot, each joined to its key by a thin line; a label moves up a row rather than overlap.
    const rowsEnd = [];
    order.slice().sort((a, b) => a - b).forEach((j) => {
      const text = clip(toks[j] || '?', 14) + ' (' + j + ')', w = 6.2 * text.length + 6, dot = svg.px(j);
      const b = svg.box, X = Math.min(Math.max(dot, b.L + w / 2), b.W - b.R - w / 2);
      let row = rowsEnd.findIndex((end) => X - w / 2 > end);
      if (row < 0) { row = rowsEnd.length; rowsEnd.push(-Infinity); }
      if (row > 5) return;
      rowsEnd[row] = X + w / 2;
      const Y = 24 + top - 4 - row * 12;
      el('line', { x1: X, x2: dot, y1: Y + 2, y2: svg.py(cl.c[j]) - 3, stroke: '#e8003d', 'stroke-width': 0.6, 'stroke-opacity': 0.6 }, svg);
      el('text', { x: X, y: Y, 'text-anchor': 'middle', class: 'key-label' }, svg, text);
    });
    return svg;
  }

  function scatterPlot(r, c, cl, toks) {
    const rho = vals(r)[mIndex('energy_leverage_spearman') * CELLS + c];
    return plot({
      title: 'leverage ℓ_j vs key energy c_j — Spearman ρ = ' + fmt(rho), xlabel: 'c_j (log)', ylabel: 'leverage ℓ_j of [K, 1]', logX: true, yFrom0: true, padX: 0.03,
      series: [{ colour: '#1b9e77', dots: true, xs: Array.from(cl.c), ys: Array.from(cl.l), tips: (j) => 'key ' + j + ' ‘' + (toks[j] || '') + '’: c = ' + exact(cl.c[j]) + ', ℓ = ' + exact(cl.l[j]) }],
    });
  }

  function measuresTable(r, c) {
    const wrap = h('div', {});
    const tbl = h('table', { class: 'measures' }, wrap);
    const head = h('tr', {}, tbl);
    ['measure', 'this head', 'percentile', 'model median', 'model p10 – p90', 'distribution (grey: min–max, dark: p10–p90, |: median, ●: this head)'].forEach((t) => h('th', {}, head, t));
    const skip = ['rank_bound_holds', 'rank_bound_applicable', 'rank_bound'];
    M.forEach((m, mi) => {
      if (skip.includes(m)) return;
      const all = Array.from(cellsOf(r, mi)).filter(Number.isFinite).sort((a, b) => a - b);
      const x = cellsOf(r, mi)[c];
      const below = all.filter((v) => v < x).length, eq = all.filter((v) => v === x).length;
      const pct = all.length && Number.isFinite(x) ? 100 * (below + 0.5 * eq) / all.length : NaN;
      const tr = h('tr', {}, tbl);
      h('th', {}, tr, m);
      h('td', { 'data-measure': m, 'data-value': exact(x) }, tr, exact(x));
      h('td', {}, tr, Number.isFinite(pct) ? pct.toFixed(0) + ' %' : '–');
      h('td', {}, tr, fmt(quantile(all, 0.5)));
      h('td', {}, tr, fmt(quantile(all, 0.1)) + ' – ' + fmt(quantile(all, 0.9)));
      const strip = el('svg', { width: 160, height: 14, class: 'strip' }, h('td', {}, tr));
      if (all.length) {
        const lo = all[0], hi = all[all.length - 1], sx = (v) => 4 + 152 * (hi > lo ? (v - lo) / (hi - lo) : 0.5);
        el('line', { x1: 4, x2: 156, y1: 7, y2: 7, stroke: '#ccc', 'stroke-width': 2 }, strip);
        el('line', { x1: sx(quantile(all, 0.1)), x2: sx(quantile(all, 0.9)), y1: 7, y2: 7, stroke: '#888', 'stroke-width': 4 }, strip);
        el('line', { x1: sx(quantile(all, 0.5)), x2: sx(quantile(all, 0.5)), y1: 1, y2: 13, stroke: '#000' }, strip);
        if (Number.isFinite(x)) el('circle', { cx: sx(x), cy: 7, r: 4, fill: '#e8003d' }, strip);
      }
    });
    h('p', { class: 'note' }, wrap, 'Distribution: every head of the model in the same run (' + D.runs[r].label + '), ' + all_count(r) + ' heads.');
    return wrap;
  }
  const all_count = (r) => Array.from(cellsOf(r, 0)).filter(Number.isFinite).length;

  function renderPanel() {
    if (!selected) return;
    const { l, h: hd } = selected, c = l * NH + hd, r = panelRun, run = D.runs[r];
    panel.hidden = false;
    panel.dataset.layer = l; panel.dataset.head = hd; panel.dataset.run = r;
    panel.textContent = '';
    const top = h('div', { class: 'panel-head' }, panel);
    h('h2', {}, top, 'Head L' + l + 'H' + hd);
    h('span', { class: 'sub' }, top, 'layer ' + l + ', head ' + hd + ', KV head ' + Math.floor(hd / GROUP) + ' · ' + D.model.source.split('/').pop());
    const rs = h('select', { id: 'panel-run', 'aria-label': 'run' }, h('label', {}, top, ' run '));
    runOptions(rs, false, r);
    rs.onchange = () => { panelRun = +rs.value; renderPanel(); };
    const link = h('a', { href: '#head=L' + l + 'H' + hd, class: 'permalink' }, top, 'link to this head');
    link.title = 'share this URL to open this panel';
    if (!Number.isFinite(vals(r)[mIndex('k90') * CELLS + c])) {
      h('p', { class: 'note' }, panel, 'This head was not analysed in ' + run.label + ' (see --layers).');
      return;
    }
    const grid = h('div', { class: 'panel-grid' }, panel);
    figure(grid, 'Singular spectra', spectrumPlot(r, c));
    const from = run.drill_from;
    const toks = tokensOf(r);
    if (from != null && D.drills[from]) {
      const n = D.runs[from].n;
      const cl = cached('cl' + from + ':' + c, () => ({
        c: cached('c' + from, () => f32(D.drills[from].c)).subarray(c * n, (c + 1) * n),
        l: cached('l' + from, () => f32(D.drills[from].l)).subarray(c * n, (c + 1) * n),
      }));
      figure(grid, 'Delocalization ↔ incoherence', scatterPlot(from, c, cl, toks));
      const f3 = figure(grid, 'Key energy c_j', keyEnergyPlot(c, cl, toks, n), true);
      if (from !== r) h('p', { class: 'note borrowed' }, f3, 'c_j and ℓ_j shown for ' + D.runs[from].label + ': those of ' + run.label +
        ' are not embedded, to keep this page under 8 MB (they are in runs/*.json). The scatter and its Spearman ρ are from ' + D.runs[from].label + '.');
    } else {
      h('p', { class: 'note' }, grid, 'No key energies / leverages embedded for this text.');
    }
    const tile = tilePlot(r, c);
    if (tile) figure(grid, 'Energy field E of the first tokens', tile, true);
    figure(grid, 'This head among all heads of the model', measuresTable(r, c), true);
  }

  function openHead(l, hd) {
    selected = { l, h: hd };
    heatmaps.forEach((m) => m.mark());
    renderPanel();
  }
  function fromHash(scroll) {
    const m = /^#head=L(\d+)H(\d+)$/i.exec(location.hash);
    if (!m) return;
    const l = +m[1], hd = +m[2];
    if (l >= NL || hd >= NH) { panel.hidden = false; panel.textContent = 'No head L' + l + 'H' + hd + ' in this model (' + NL + ' layers × ' + NH + ' heads).'; return; }
    openHead(l, hd);
    if (scroll) panel.scrollIntoView({ block: 'start' });
  }
  window.addEventListener('hashchange', () => fromHash(true));
  fromHash(true);
  document.body.dataset.ready = '1';
})();
