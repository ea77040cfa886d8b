// Panel bodies: timeseries, stat, gauge, bargauge, table, text. Each renderer gets the body
// element, the panel JSON and its frames ([{ name, metric, values: [[t, "v"], ...] }]) and
// returns a { destroy() } handle so a refresh frees what the previous one drew.
import { h, svg, clear, fill, safeHref } from './lib/dom.js';
import { formatValue } from './lib/units.js';
import { reduce, calcName } from './lib/reduce.js';
import { makeChart, alignSeries, stack, PALETTE, thresholdColor, color } from './chart.js';

const defaults = (p) => (p.fieldConfig && p.fieldConfig.defaults) || {};
const custom = (p) => defaults(p).custom || {};
const numbers = (f) => f.values.map(([, v]) => { const x = parseFloat(v); return Number.isFinite(x) ? x : null; });

function seriesColor(p, i, frame) {
  const c = defaults(p).color || {};
  if (c.mode === 'fixed' && c.fixedColor) return color(c.fixedColor);
  if (c.mode === 'thresholds') return thresholdColor(defaults(p).thresholds, reduce(numbers(frame), 'lastNotNull'));
  return PALETTE[i % PALETTE.length];
}

export function noData(body, text = 'No data') {
  fill(body, h('div', { class: 'panel-msg', text }));
  return { destroy() {} };
}

function timeseries(body, p, frames, ctx) {
  const d = defaults(p);
  const c = custom(p);
  const legend = (p.options && p.options.legend) || {};
  const mode = legend.showLegend === false ? 'hidden' : legend.displayMode || 'list';
  const calcs = legend.calcs || [];
  const unit = d.unit;
  const series = frames.map((f, i) => ({ name: f.name, color: seriesColor(p, i, f) }));
  const raw = alignSeries(frames);
  let data = raw;
  if (c.stacking && c.stacking.mode === 'normal') data = [raw[0], ...stack(raw.slice(1))];
  const chartEl = h('div', { class: 'chart' });
  fill(body, chartEl);
  let legendEl = null;
  let cells = []; // [series][calc] -> element showing that calculation
  if (mode !== 'hidden') {
    legendEl = h('div', { class: `legend legend-${mode}` });
    if (mode === 'table') {
      cells = frames.map(() => calcs.map(() => h('td', { class: 'num' })));
      legendEl.append(h('table', null,
        h('thead', null, h('tr', null, h('th', { text: 'Name' }), calcs.map((k) => h('th', { text: calcName(k) })))),
        h('tbody', null, frames.map((f, i) => h('tr', null,
          h('td', null, h('span', { class: 'swatch', style: { background: series[i].color } }), f.name), cells[i])))));
    } else {
      cells = frames.map(() => calcs.map(() => h('span', { class: 'dim' })));
      frames.forEach((f, i) => legendEl.append(h('span', { class: 'legend-item' },
        h('span', { class: 'swatch', style: { background: series[i].color } }), f.name, cells[i])));
    }
    body.append(legendEl);
  }
  const fillCells = (fs) => fs.forEach((f, i) => calcs.forEach((k, j) => {
    const v = formatValue(reduce(numbers(f), k), unit, d.decimals);
    cells[i][j].textContent = mode === 'table' ? v : ` ${calcName(k)}: ${v}`;
  }));
  fillCells(frames);
  const bodyH = body.clientHeight || 200;
  const legendH = legendEl ? Math.min(legendEl.scrollHeight, Math.floor(bodyH * 0.45)) : 0;
  if (legendEl) legendEl.style.maxHeight = `${legendH}px`;
  const stacked = c.stacking && c.stacking.mode === 'normal';
  const copts = {
    series, data, rawData: data === raw ? null : raw, unit, decimals: d.decimals,
    width: body.clientWidth, height: Math.max(60, bodyH - legendH - 4),
    fillOpacity: c.fillOpacity ?? 10, points: c.drawStyle === 'points',
    syncKey: ctx.syncKey, onZoom: ctx.onZoom, thresholds: d.thresholds,
    showThresholds: c.thresholdsStyle && c.thresholdsStyle.mode && c.thresholdsStyle.mode !== 'off',
    tooltipMode: (p.options && p.options.tooltip && p.options.tooltip.mode) || 'single',
    exemplars: ctx.exemplars, onExemplar: ctx.onExemplar, yMin: d.min, xRange: ctx.xRange,
  };
  const u = makeChart(chartEl, copts);
  return {
    destroy: () => u.destroy(),
    // A refresh with the same series updates the chart in place (no new canvas, no flicker).
    update(fs, nctx) {
      if (fs.length !== frames.length || fs.some((f, i) => f.name !== frames[i].name)) return false;
      const nraw = alignSeries(fs);
      const ndata = stacked ? [nraw[0], ...stack(nraw.slice(1))] : nraw;
      copts.rawData = stacked ? nraw : null;
      copts.exemplars = nctx.exemplars;
      copts.xRange = nctx.xRange;
      u.setData(ndata);
      fillCells(fs);
      return true;
    },
  };
}

function reducedValues(p, frames) {
  const ro = (p.options && p.options.reduceOptions) || {};
  const calc = (ro.calcs && ro.calcs[0]) || 'lastNotNull';
  return frames.map((f) => ({ frame: f, value: reduce(numbers(f), calc) }));
}

function stat(body, p, frames, ctx) {
  const d = defaults(p);
  const o = p.options || {};
  const vals = reducedValues(p, frames);
  const wrap = h('div', { class: 'stat-grid' });
  fill(body, wrap);
  const charts = [];
  for (const { frame, value } of vals) {
    const col = thresholdColor(d.thresholds, value, d.max);
    const cell = h('div', { class: 'stat' });
    if (o.colorMode === 'background') cell.style.background = col;
    const valueEl = h('div', { class: 'stat-value', text: formatValue(value, d.unit, d.decimals) });
    if (o.colorMode !== 'background' && o.colorMode !== 'none') valueEl.style.color = col;
    if (vals.length > 1 || o.textMode === 'value_and_name' || o.textMode === 'name') cell.append(h('div', { class: 'stat-name', text: frame.name }));
    cell.append(valueEl);
    wrap.append(cell);
    if (o.graphMode !== 'none' && frame.values.length > 1) {
      const spark = h('div', { class: 'stat-spark' });
      cell.append(spark);
      const w = Math.max(40, Math.floor(body.clientWidth / vals.length) - 8);
      const hh = Math.max(20, Math.floor(body.clientHeight * 0.4));
      charts.push(makeChart(spark, { series: [{ name: frame.name, color: col }], data: alignSeries([frame]), sparkline: true, xRange: ctx.xRange, width: w, height: hh, fillOpacity: 25 }));
    }
  }
  // the value's font follows the panel's size
  const fs = Math.max(14, Math.min(body.clientHeight * 0.35, (body.clientWidth / Math.max(1, vals.length)) / 5));
  wrap.querySelectorAll('.stat-value').forEach((e) => { e.style.fontSize = `${fs}px`; });
  return { destroy: () => charts.forEach((c) => c.destroy()) };
}

function gaugeRange(d, value) {
  const steps = ((d.thresholds && d.thresholds.steps) || []).map((s) => s.value).filter((v) => typeof v === 'number');
  const min = typeof d.min === 'number' ? d.min : 0;
  let max = typeof d.max === 'number' ? d.max : Math.max(value || 0, ...(steps.length ? [steps[steps.length - 1] * 1.25] : [1]));
  if (d.thresholds && d.thresholds.mode === 'percentage' && typeof d.max !== 'number') max = 100;
  if (max <= min) max = min + 1;
  return [min, max];
}

function arc(cx, cy, r, a0, a1) {
  const p0 = [cx + r * Math.cos(a0), cy + r * Math.sin(a0)];
  const p1 = [cx + r * Math.cos(a1), cy + r * Math.sin(a1)];
  return `M ${p0[0]} ${p0[1]} A ${r} ${r} 0 ${a1 - a0 > Math.PI ? 1 : 0} 1 ${p1[0]} ${p1[1]}`;
}

function gauge(body, p, frames) {
  const d = defaults(p);
  const o = p.options || {};
  const vals = reducedValues(p, frames);
  const wrap = h('div', { class: 'stat-grid' });
  fill(body, wrap);
  for (const { frame, value } of vals) {
    const [min, max] = gaugeRange(d, value);
    const start = Math.PI * 0.75;
    const sweep = Math.PI * 1.5;
    const frac = (v) => Math.min(1, Math.max(0, (v - min) / (max - min)));
    const s = svg('svg', { viewBox: '0 3 100 82', class: 'gauge' }); // the 270° arcs reach y = 50 ± 44
    s.append(svg('path', { d: arc(50, 50, 36, start, start + sweep), stroke: 'rgba(255,255,255,0.08)', 'stroke-width': 9, fill: 'none' }));
    if (o.showThresholdMarkers !== false) {
      const steps = (d.thresholds && d.thresholds.steps) || [];
      steps.forEach((st, i) => {
        const a = i === 0 ? min : st.value;
        const b = i + 1 < steps.length ? steps[i + 1].value : max;
        if (a === null || b === null || b <= min || a >= max) return;
        s.append(svg('path', { d: arc(50, 50, 44, start + sweep * frac(a), start + sweep * frac(b)), stroke: color(st.color), 'stroke-width': 3, fill: 'none' }));
      });
    }
    const col = thresholdColor(d.thresholds, value, d.max);
    if (value !== null && frac(value) > 0) s.append(svg('path', { d: arc(50, 50, 36, start, start + sweep * Math.max(0.001, frac(value))), stroke: col, 'stroke-width': 9, fill: 'none' }));
    s.append(svg('text', { x: 50, y: 55, 'text-anchor': 'middle', class: 'gauge-text', fill: col }, formatValue(value, d.unit, d.decimals)));
    const cell = h('div', { class: 'stat' }, s);
    if (vals.length > 1) cell.prepend(h('div', { class: 'stat-name', text: frame.name }));
    wrap.append(cell);
  }
  return { destroy() {} };
}

function bargauge(body, p, frames) {
  const d = defaults(p);
  const vals = reducedValues(p, frames);
  const list = h('div', { class: 'bargauge' });
  fill(body, list);
  for (const { frame, value } of vals) {
    const [min, max] = gaugeRange(d, value);
    const col = thresholdColor(d.thresholds, value, d.max);
    const bar = h('div', { class: 'bar-fill' });
    bar.style.width = `${Math.min(100, Math.max(0, ((value ?? min) - min) / (max - min) * 100))}%`;
    bar.style.background = col;
    list.append(h('div', { class: 'bar-row' }, h('div', { class: 'bar-name', text: frame.name }),
      h('div', { class: 'bar-track' }, bar), h('div', { class: 'bar-value', text: formatValue(value, d.unit, d.decimals) })));
  }
  return { destroy() {} };
}

function table(body, p, frames) {
  const d = defaults(p);
  const keys = [...new Set(frames.flatMap((f) => Object.keys(f.metric || {})))].filter((k) => k !== '__name__').sort();
  const hasName = frames.some((f) => f.metric && f.metric.__name__);
  const cols = [...(hasName ? ['__name__'] : []), ...keys];
  const t = h('table', { class: 'data-table' },
    h('thead', null, h('tr', null, cols.map((c) => h('th', { text: c === '__name__' ? 'Metric' : c })), h('th', { text: 'Value' }))),
    h('tbody', null, frames.map((f) => h('tr', null,
      cols.map((c) => h('td', { text: (f.metric || {})[c] ?? '' })),
      h('td', { class: 'num', text: formatValue(reduce(numbers(f), 'lastNotNull'), d.unit, d.decimals) })))));
  fill(body, h('div', { class: 'table-wrap' }, t));
  return { destroy() {} };
}

// Markdown, a small safe subset (headings, lists, paragraphs, **bold**, *em*, `code`, links),
// built as DOM nodes. HTML in the panel is shown as text, never parsed.
function inline(text) {
  const out = [];
  const re = /\*\*(.+?)\*\*|\*(.+?)\*|`(.+?)`|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1] !== undefined) out.push(h('strong', { text: m[1] }));
    else if (m[2] !== undefined) out.push(h('em', { text: m[2] }));
    else if (m[3] !== undefined) out.push(h('code', { text: m[3] }));
    else out.push(h('a', { href: safeHref(m[5]), rel: 'noopener noreferrer', text: m[4] }));
    last = re.lastIndex;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export function markdown(src) {
  const root = h('div', { class: 'markdown' });
  let list = null;
  let para = [];
  const flush = () => {
    if (para.length) root.append(h('p', null, inline(para.join(' '))));
    para = [];
  };
  for (const line of String(src || '').split('\n')) {
    const hd = /^(#{1,6})\s+(.*)$/.exec(line);
    const li = /^\s*[-*+]\s+(.*)$/.exec(line);
    if (hd) { flush(); list = null; root.append(h(`h${hd[1].length}`, null, inline(hd[2]))); }
    else if (li) { flush(); if (!list) { list = h('ul'); root.append(list); } list.append(h('li', null, inline(li[1]))); }
    else if (!line.trim()) { flush(); list = null; }
    else { list = null; para.push(line.trim()); }
  }
  flush();
  return root;
}

function text(body, p) {
  const o = p.options || {};
  const content = o.content ?? p.content ?? '';
  fill(body, o.mode === 'markdown' || !o.mode ? markdown(content) : h('pre', { class: 'text-raw', text: content }));
  return { destroy() {} };
}

export const RENDERERS = { timeseries, graph: timeseries, stat, singlestat: stat, gauge, bargauge, table, text };
export const NEEDS_DATA = (p) => p.type !== 'text' && p.type !== 'row' && p.type !== 'dashlist';
