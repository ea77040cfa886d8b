// Explore: a PromQL box with completion of metric names, label names and values (from the
// metadata APIs), range or instant, graph or table, and errors shown at their position.
import { h, clear, fill } from './lib/dom.js';
import { getJSON, queryRange, queryInstant } from './lib/api.js';
import { computeInterval, alignRange } from './lib/interval.js';
import { seriesName } from './lib/legend.js';
import { parseTime, QUICK_RANGES } from './lib/time.js';
import { makeChart, alignSeries, PALETTE, hideTip } from './chart.js';

const FUNCS = ['rate', 'irate', 'increase', 'sum', 'avg', 'min', 'max', 'count', 'topk', 'bottomk', 'histogram_quantile',
  'by', 'without', 'sum_over_time', 'avg_over_time', 'max_over_time', 'min_over_time', 'count_over_time', 'delta', 'deriv',
  'abs', 'clamp_min', 'clamp_max', 'label_replace', 'label_join', 'absent', 'time', 'vector', 'scalar', 'round', 'offset'];

// What to complete at the cursor: label values inside name{label="…, label names inside
// {…, else metric names and functions.
export function completionContext(text, pos) {
  const before = text.slice(0, pos);
  let m = /([a-zA-Z_:][\w:]*)?\{([^{}]*?)([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)$/.exec(before);
  if (m) return { kind: 'value', metric: m[1] || '', label: m[3], prefix: m[5] };
  m = /([a-zA-Z_:][\w:]*)?\{(?:[^{}]*,)?\s*([a-zA-Z_]\w*)?$/.exec(before);
  if (m) return { kind: 'label', metric: m[1] || '', prefix: m[2] || '' };
  m = /([a-zA-Z_:][\w:]*)$/.exec(before);
  return { kind: 'metric', prefix: m ? m[1] : '' };
}

export function mountExplore(main, toolbar) {
  const url = new URL(location.href);
  const st = { chart: null, names: null, abort: null, sel: 0, items: [] };
  const input = h('textarea', { class: 'promql', rows: 2, spellcheck: 'false', placeholder: 'PromQL, e.g. rate(scotty_http_requests_total[5m])', 'aria-label': 'PromQL query' });
  input.value = url.searchParams.get('q') || '';
  const rangeSel = h('select', null, QUICK_RANGES.map(([v, l]) => h('option', { value: v, text: l, selected: v === (url.searchParams.get('from') || 'now-1h') })));
  const modeSel = h('select', null, h('option', { value: 'range', text: 'Range' }), h('option', { value: 'instant', text: 'Instant', selected: url.searchParams.get('mode') === 'instant' }));
  const viewSel = h('select', null, h('option', { value: 'graph', text: 'Graph' }), h('option', { value: 'table', text: 'Table', selected: url.searchParams.get('view') === 'table' }));
  const runBtn = h('button', { class: 'primary', text: 'Run query', onclick: () => run() });
  const suggest = h('ul', { class: 'suggest', hidden: true });
  const errorBox = h('div', { class: 'query-error', hidden: true });
  const out = h('div', { class: 'explore-out' });
  const info = h('div', { class: 'dim small' });
  fill(toolbar, h('span', { class: 'dash-title', text: 'Explore' }));
  fill(main, h('div', { class: 'page explore' },
    h('div', { class: 'query-row' }, h('div', { class: 'query-box' }, input, suggest), h('div', { class: 'query-opts' }, modeSel, rangeSel, viewSel, runBtn)),
    errorBox, info, out));

  input.addEventListener('keydown', (e) => {
    if (!suggest.hidden && st.items.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        st.sel = (st.sel + (e.key === 'ArrowDown' ? 1 : st.items.length - 1)) % st.items.length;
        drawSuggest();
        return;
      }
      if (e.key === 'Tab' || (e.key === 'Enter' && !e.shiftKey)) { e.preventDefault(); accept(st.items[st.sel]); return; }
      if (e.key === 'Escape') { suggest.hidden = true; return; }
    }
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); run(); }
  });
  input.addEventListener('input', () => complete());
  input.addEventListener('blur', () => setTimeout(() => { suggest.hidden = true; }, 150));

  async function complete() {
    const ctx = completionContext(input.value, input.selectionStart);
    let cands = [];
    try {
      if (ctx.kind === 'metric') {
        if (!ctx.prefix) { suggest.hidden = true; return; }
        if (!st.names) st.names = (await getJSON('/api/v1/label/__name__/values')).data || [];
        cands = [...FUNCS, ...st.names];
      } else if (ctx.kind === 'label') {
        const r = await getJSON('/api/v1/labels', ctx.metric ? { 'match[]': ctx.metric } : {});
        cands = (r.data || []).filter((l) => l !== '__name__');
      } else {
        const r = await getJSON(`/api/v1/label/${encodeURIComponent(ctx.label)}/values`, ctx.metric ? { 'match[]': ctx.metric } : {});
        cands = r.data || [];
      }
    } catch { cands = []; }
    const p = ctx.prefix.toLowerCase();
    st.items = cands.filter((c) => c.toLowerCase().startsWith(p) && c !== ctx.prefix).slice(0, 50).map((c) => ({ text: c, ctx }));
    st.sel = 0;
    drawSuggest();
  }

  function drawSuggest() {
    clear(suggest);
    suggest.hidden = st.items.length === 0;
    st.items.forEach((it, i) => suggest.append(h('li', { class: i === st.sel ? 'sel' : '', text: it.text, onmousedown: (e) => { e.preventDefault(); accept(it); } })));
  }

  function accept(it) {
    const pos = input.selectionStart;
    const start = pos - it.ctx.prefix.length;
    const ins = it.ctx.kind === 'value' ? it.text.replace(/["\\]/g, '\\$&') : it.text;
    input.value = input.value.slice(0, start) + ins + input.value.slice(pos);
    input.selectionStart = input.selectionEnd = start + ins.length;
    suggest.hidden = true;
    st.items = [];
    input.focus();
  }

  function showError(msg) {
    fill(errorBox, h('div', { text: msg }));
    // "1:15: parse error: …" points at line:column of the query
    const m = /^(?:.*?)(\d+):(\d+):/.exec(msg);
    if (m) {
      const lines = input.value.split('\n');
      const line = lines[Number(m[1]) - 1];
      if (line !== undefined) {
        const col = Math.max(1, Math.min(Number(m[2]), line.length + 1));
        errorBox.append(h('pre', { class: 'caret', text: `${line}\n${' '.repeat(col - 1)}^` }));
      }
    }
    errorBox.hidden = false;
  }

  async function run() {
    const q = input.value.trim();
    suggest.hidden = true;
    errorBox.hidden = true;
    if (st.chart) { st.chart.destroy(); st.chart = null; }
    hideTip();
    clear(out);
    if (!q) return;
    const u = new URL(location.href);
    u.searchParams.set('q', q);
    u.searchParams.set('from', rangeSel.value);
    u.searchParams.set('mode', modeSel.value);
    u.searchParams.set('view', viewSel.value);
    history.replaceState(null, '', u);
    if (st.abort) st.abort.abort();
    st.abort = new AbortController();
    const now = Date.now();
    const from = parseTime(rangeSel.value, now);
    const t0 = performance.now();
    try {
      let frames;
      if (modeSel.value === 'instant') {
        const r = await queryInstant(q, now / 1000, { signal: st.abort.signal });
        const d = r.data || {};
        if (d.resultType === 'scalar' || d.resultType === 'string') frames = [{ metric: {}, values: [d.result] }];
        else frames = (d.result || []).map((s) => ({ metric: s.metric, values: s.value ? [s.value] : s.values || [] }));
      } else {
        const step = computeInterval(from, now, out.clientWidth || 1000, { minInterval: '1s' });
        const a = alignRange(from, now, step);
        const r = await queryRange(q, a.start, a.end, a.step, { signal: st.abort.signal });
        frames = ((r.data && r.data.result) || []).map((s) => ({ metric: s.metric, values: s.values || [] }));
      }
      info.textContent = `${frames.length} series · ${Math.round(performance.now() - t0)} ms`;
      frames.forEach((f) => { f.name = seriesName(f.metric, '', q); });
      if (!frames.length) { out.append(h('div', { class: 'panel-msg', text: 'No data' })); return; }
      if (viewSel.value === 'table' || modeSel.value === 'instant') {
        out.append(h('table', { class: 'data-table' }, h('thead', null, h('tr', null, h('th', { text: 'Series' }), h('th', { text: 'Value' }), h('th', { text: 'Time' }))),
          h('tbody', null, frames.map((f) => {
            const last = f.values[f.values.length - 1] || [];
            return h('tr', null, h('td', { class: 'mono', text: f.name }), h('td', { class: 'num', text: last[1] ?? '' }), h('td', { class: 'dim', text: last[0] ? new Date(last[0] * 1000).toLocaleTimeString() : '' }));
          }))));
      } else {
        const chartEl = h('div', { class: 'chart' });
        const legend = h('div', { class: 'legend legend-list' });
        out.append(chartEl, legend);
        const series = frames.map((f, i) => ({ name: f.name, color: PALETTE[i % PALETTE.length] }));
        frames.forEach((f, i) => legend.append(h('span', { class: 'legend-item' }, h('span', { class: 'swatch', style: { background: series[i].color } }), f.name)));
        st.chart = makeChart(chartEl, { series, data: alignSeries(frames), unit: 'short', width: out.clientWidth, height: 360, fillOpacity: 0, syncKey: 'explore', xRange: [from / 1000, now / 1000],
          onZoom: () => {}, tooltipMode: 'multi' });
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
      showError(e.status === 404 ? `The query API is not available on this server (${e.message})` : e.message);
    }
  }

  if (input.value) run();
  return { destroy() { if (st.chart) st.chart.destroy(); if (st.abort) st.abort.abort(); clear(toolbar); hideTip(); } };
}
