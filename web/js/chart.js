// uPlot charts: time series with a shared crosshair, drag-to-zoom, a tooltip, thresholds and
// exemplar points that open their trace.
import uPlot from '/ui/vendor/uPlot.esm.js';
import { formatValue, formatParts } from './lib/units.js';
import { h, clear, fill } from './lib/dom.js';

export const PALETTE = ['#7EB26D', '#EAB839', '#6ED0E0', '#EF843C', '#E24D42', '#1F78C1', '#BA43A9', '#705DA0',
  '#508642', '#CCA300', '#447EBC', '#C15C17', '#890F02', '#0A437C', '#6D1F62', '#584477'];

const NAMED = {
  green: '#73BF69', 'dark-green': '#37872D', 'semi-dark-green': '#56A64B', 'light-green': '#96D98D',
  yellow: '#FADE2A', 'dark-yellow': '#E0B400', 'semi-dark-yellow': '#F2CC0C', 'light-yellow': '#FFEE52',
  red: '#F2495C', 'dark-red': '#C4162A', 'semi-dark-red': '#E02F44', 'light-red': '#FF7383',
  orange: '#FF9830', 'dark-orange': '#FA6400', 'light-orange': '#FFB357', blue: '#5794F2', 'dark-blue': '#1F60C4',
  'light-blue': '#8AB8FF', purple: '#B877D9', 'dark-purple': '#8F3BB8', 'light-purple': '#CA95E5',
  text: '#d8d9da', transparent: 'transparent',
};

export function color(c) {
  if (!c) return NAMED.green;
  return NAMED[c] || (/^(#[0-9a-f]{3,8}|rgba?\([\d.,\s%]+\)|hsla?\([\d.,\s%]+\))$/i.test(c) ? c : NAMED.green);
}

function alpha(hex, a) {
  const m = /^#([0-9a-f]{6})$/i.exec(hex);
  if (!m) return hex;
  const n = parseInt(m[1], 16);
  return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${a})`;
}

// The threshold step a value falls in (Grafana: the last step whose value <= v).
export function thresholdColor(thresholds, v, max) {
  const steps = (thresholds && thresholds.steps) || [];
  let c = steps.length ? steps[0].color : 'green';
  const val = thresholds && thresholds.mode === 'percentage' && max ? (v / max) * 100 : v;
  for (const s of steps) if (s.value === null || s.value === undefined || val >= s.value) c = s.color;
  return color(c);
}

const tooltip = () => document.getElementById('tooltip');

function showTip(x, y, nodes) {
  const t = tooltip();
  if (!t) return;
  fill(t, ...nodes);
  t.hidden = false;
  const w = t.offsetWidth;
  const left = x + 16 + w > window.innerWidth ? x - w - 16 : x + 16;
  t.style.left = `${Math.max(0, left)}px`;
  t.style.top = `${y + 12}px`;
}

export function hideTip() {
  const t = tooltip();
  if (t) t.hidden = true;
}

// opts: { series: [{name, color}], data: [xs(sec), ...ys], unit, height, width, syncKey,
//   onZoom(fromMs, toMs), xRange: [fromSec, toSec], fillOpacity (0-100), sparkline, points, thresholds (for a line
//   style), exemplars: [{t (s), v, traceId, labels}], onExemplar(traceId), decimals, yMin }
export function makeChart(el, opts) {
  const fill = (opts.fillOpacity ?? 10) / 100;
  const fmt = (v) => formatValue(v, opts.unit, opts.decimals);
  const series = [{}];
  opts.series.forEach((s) => {
    series.push({
      label: s.name,
      stroke: s.color,
      width: opts.sparkline ? 1.5 : 1,
      fill: fill > 0 ? alpha(s.color, fill) : undefined,
      points: opts.points ? { show: true, size: 5, stroke: s.color, fill: s.color } : { show: false },
      paths: opts.points ? () => null : undefined,
      spanGaps: false,
      value: (u, v) => (v === null || v === undefined ? '' : fmt(v)),
    });
  });
  let hoverEx = null;
  const drawExemplars = (u) => {
    const exemplars = opts.exemplars || []; // read live: a refresh may replace them
    if (!exemplars.length) return;
    const ctx = u.ctx;
    ctx.save();
    for (const e of exemplars) {
      const x = u.valToPos(e.t, 'x', true);
      const y = u.valToPos(e.v, 'y', true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width || y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
      const r = 4 * devicePixelRatio;
      ctx.beginPath();
      ctx.moveTo(x, y - r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + r); ctx.lineTo(x - r, y); ctx.closePath();
      ctx.fillStyle = e === hoverEx ? '#ffffff' : '#F2CC0C';
      ctx.fill();
    }
    ctx.restore();
  };
  const thresholdLines = (u) => {
    const steps = (opts.thresholds && opts.thresholds.steps) || [];
    if (!opts.showThresholds || steps.length < 2) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.setLineDash([6, 4]);
    for (const s of steps.slice(1)) {
      if (s.value === null || s.value === undefined) continue;
      const y = u.valToPos(s.value, 'y', true);
      if (y < u.bbox.top || y > u.bbox.top + u.bbox.height) continue;
      ctx.strokeStyle = color(s.color);
      ctx.beginPath(); ctx.moveTo(u.bbox.left, y); ctx.lineTo(u.bbox.left + u.bbox.width, y); ctx.stroke();
    }
    ctx.restore();
  };
  const axisStyle = { stroke: '#9fa7b3', grid: { stroke: 'rgba(255,255,255,0.07)', width: 1 }, ticks: { stroke: 'rgba(255,255,255,0.1)', width: 1 } };
  const uopts = {
    width: opts.width || el.clientWidth || 300,
    height: opts.height || 200,
    series,
    legend: { show: false },
    padding: opts.sparkline ? [0, 0, 0, 0] : [8, 8, 0, 0],
    scales: { x: opts.xRange ? { time: true, range: () => opts.xRange } : { time: true }, y: { range: (u, min, max) => yRange(min, max, opts.yMin) } },
    axes: opts.sparkline
      ? [{ show: false }, { show: false }]
      : [
          { ...axisStyle, space: 60 },
          { ...axisStyle, values: (u, vals) => vals.map((v) => axisLabel(v, opts.unit, opts.decimals)),
            size: (u, vals) => 18 + 7.5 * Math.max(3, ...((vals || []).map((v) => String(v).length))) },
        ],
    cursor: opts.sparkline
      ? { show: false }
      : {
          sync: opts.syncKey ? { key: opts.syncKey } : undefined,
          drag: { x: true, y: false, setScale: false },
          points: { size: 6 },
        },
    select: { show: !opts.sparkline },
    hooks: {
      draw: [thresholdLines, drawExemplars],
      setSelect: [
        (u) => {
          if (u.select.width > 5 && opts.onZoom) {
            const from = u.posToVal(u.select.left, 'x') * 1000;
            const to = u.posToVal(u.select.left + u.select.width, 'x') * 1000;
            opts.onZoom(Math.round(from), Math.round(to));
          }
          u.setSelect({ left: 0, width: 0, top: 0, height: 0 }, false);
        },
      ],
      setCursor: [
        (u) => {
          const { left, top, idx } = u.cursor;
          if (opts.sparkline || idx === null || idx === undefined || left < 0) {
            if (u.__over) hideTip();
            return;
          }
          const rect = u.over.getBoundingClientRect();
          // an exemplar under the cursor wins
          let ex = null;
          for (const e of opts.exemplars || []) {
            const dx = u.valToPos(e.t, 'x') - left;
            const dy = u.valToPos(e.v, 'y') - top;
            if (dx * dx + dy * dy < 64) { ex = e; break; }
          }
          if (ex !== hoverEx) { hoverEx = ex; u.redraw(false, false); }
          if (!u.__over) return; // a synced chart: crosshair only
          if (ex) {
            showTip(rect.left + left, rect.top + top, [
              h('div', { class: 'tip-time', text: new Date(ex.t * 1000).toLocaleString() }),
              h('div', { class: 'tip-row' }, h('b', { text: 'Exemplar ' }), fmt(ex.v)),
              h('div', { class: 'tip-row' }, 'trace_id: ', h('code', { text: ex.traceId || '—' })),
              ...Object.entries(ex.labels || {}).filter(([k]) => k !== 'trace_id').slice(0, 6)
                .map(([k, v]) => h('div', { class: 'tip-row dim' }, `${k}: `, String(v))),
              h('div', { class: 'tip-row dim', text: 'click to open the trace' }),
            ]);
            return;
          }
          const t = u.data[0][idx];
          const rows = [];
          for (let i = 1; i < u.series.length; i++) {
            const v = u.data[i][idx];
            if (v === null || v === undefined) continue;
            rows.push({ i, v });
          }
          if (opts.tooltipMode === 'single' && rows.length > 1) {
            // the series nearest the cursor
            const cy = u.posToVal(top, 'y');
            rows.sort((a, b) => Math.abs(a.v - cy) - Math.abs(b.v - cy));
            rows.length = 1;
          }
          showTip(rect.left + left, rect.top + top, [
            h('div', { class: 'tip-time', text: new Date(t * 1000).toLocaleString() }),
            ...rows.slice(0, 20).map(({ i, v }) =>
              h('div', { class: 'tip-row' }, h('span', { class: 'swatch', style: { background: u.series[i].stroke() } }),
                h('span', { class: 'tip-name', text: u.series[i].label }), h('b', { text: fmt(opts.rawData ? opts.rawData[i][idx] : v) }))),
          ]);
        },
      ],
      ready: [
        (u) => {
          u.over.addEventListener('mouseenter', () => { u.__over = true; });
          u.over.addEventListener('mouseleave', () => { u.__over = false; hideTip(); });
          u.over.addEventListener('click', () => {
            if (hoverEx && hoverEx.traceId && opts.onExemplar) opts.onExemplar(hoverEx.traceId);
          });
        },
      ],
    },
  };
  const u = new uPlot(uopts, opts.data, el);
  return u;
}

// Axis ticks: the value's own format without trailing zeros ("0.05 req/s", not "0.0500").
function axisLabel(v, unit, decimals) {
  if (v === null || v === undefined) return '';
  const p = formatParts(v, unit, decimals);
  const text = p.text.includes('.') && !p.text.includes('e') ? p.text.replace(/\.?0+$/, '') : p.text;
  return text + p.suffix;
}

function yRange(min, max, yMin) {
  if (min === null || max === null || min === undefined) return [0, 1];
  if (yMin !== undefined && yMin !== null) min = Math.min(min, yMin);
  else if (min > 0) min = 0; // counters and rates read best from zero, as Grafana's soft min
  if (min === max) return min === 0 ? [0, 1] : [Math.min(0, min), max * 1.1];
  const pad = (max - min) * 0.05;
  return [min, max + pad];
}

// Builds aligned columns from Prometheus matrix results: [xs, ys...] over the union of
// timestamps (null where a series has no sample).
export function alignSeries(list) {
  const ts = new Set();
  for (const s of list) for (const [t] of s.values) ts.add(Number(t));
  const xs = [...ts].sort((a, b) => a - b);
  const index = new Map(xs.map((t, i) => [t, i]));
  const cols = list.map((s) => {
    const col = new Array(xs.length).fill(null);
    for (const [t, v] of s.values) {
      const f = parseFloat(v);
      col[index.get(Number(t))] = Number.isFinite(f) ? f : null;
    }
    return col;
  });
  return [xs, ...cols];
}

// Stacks columns (Grafana's stacking "normal"): each line shows the running sum.
export function stack(cols) {
  const out = [];
  let acc = null;
  for (const c of cols) {
    acc = c.map((v, i) => (v === null ? (acc ? acc[i] : null) : v + ((acc && acc[i]) || 0)));
    out.push(acc);
  }
  return out;
}
