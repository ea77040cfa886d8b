// Traces: a search form over the Jaeger API, results with a duration scatter plot, and the
// trace view: a span waterfall (services coloured, collapsible subtrees, a timing ruler) with
// span details (tags, process, events) and a link to the trace's JSON.
import { h, clear, fill } from './lib/dom.js';
import { getJSON } from './lib/api.js';
import { makeChart, PALETTE, hideTip } from './chart.js';
import { formatValue } from './lib/units.js';

const LOOKBACKS = [['1h', 'Last hour'], ['2h', 'Last 2 hours'], ['6h', 'Last 6 hours'], ['12h', 'Last 12 hours'], ['24h', 'Last day'], ['2d', 'Last 2 days'], ['7d', 'Last 7 days']];

const us = (v) => formatValue(v / 1000, 'ms');

// "http.status_code=500 error=true" or "k=v" pairs (values may be quoted) -> {k: v}
export function parseTags(s) {
  const out = {};
  const re = /([^\s=]+)=("([^"]*)"|(\S*))/g;
  let m;
  while ((m = re.exec(s || ''))) out[m[1]] = m[3] !== undefined ? m[3] : m[4];
  return out;
}

function serviceColor(services, name) {
  if (!services.has(name)) services.set(name, PALETTE[services.size % PALETTE.length]);
  return services.get(name);
}

export function mountTraces(main, toolbar) {
  const url = new URL(location.href);
  const p = url.searchParams;
  const st = { chart: null, abort: null };
  const service = h('select', { name: 'service', 'aria-label': 'Service' }, h('option', { value: '', text: 'Loading…' }));
  const operation = h('select', { name: 'operation', 'aria-label': 'Operation' }, h('option', { value: '', text: 'All' }));
  const tags = h('input', { name: 'tags', placeholder: 'http.status_code=500 error=true', value: p.get('tags') || '' });
  const minD = h('input', { name: 'minDuration', placeholder: 'e.g. 10ms', value: p.get('minDuration') || '', size: 8 });
  const maxD = h('input', { name: 'maxDuration', placeholder: 'e.g. 2s', value: p.get('maxDuration') || '', size: 8 });
  const lookback = h('select', { name: 'lookback' }, LOOKBACKS.map(([v, l]) => h('option', { value: v, text: l, selected: v === (p.get('lookback') || '1h') })));
  const limit = h('input', { name: 'limit', type: 'number', min: 1, max: 1500, value: p.get('limit') || '20', size: 5 });
  const results = h('div', { class: 'trace-results' });
  const scatter = h('div', { class: 'scatter' });
  const form = h('form', { class: 'trace-form', onsubmit: (e) => { e.preventDefault(); search(true); } },
    h('label', null, 'Service', service), h('label', null, 'Operation', operation), h('label', null, 'Tags', tags),
    h('label', null, 'Min duration', minD), h('label', null, 'Max duration', maxD), h('label', null, 'Lookback', lookback),
    h('label', null, 'Limit', limit), h('button', { class: 'primary', type: 'submit', text: 'Find traces' }));
  fill(toolbar, h('span', { class: 'dash-title', text: 'Traces' }));
  fill(main, h('div', { class: 'page traces' }, form, scatter, results));

  service.addEventListener('change', () => loadOps());
  getJSON('/api/services').then((r) => {
    const list = (r.data || []).sort();
    fill(service, list.length ? null : h('option', { value: '', text: 'No services yet' }),
      list.map((s) => h('option', { value: s, text: s, selected: s === p.get('service') })));
    return loadOps(p.get('operation')).then(() => { if (list.length && p.get('service')) search(false); });
  }).catch((e) => fill(results, h('div', { class: 'panel-error', text: e.message })));

  async function loadOps(sel) {
    fill(operation, h('option', { value: '', text: 'All' }));
    if (!service.value) return;
    const r = await getJSON(`/api/services/${encodeURIComponent(service.value)}/operations`).catch(() => ({ data: [] }));
    const ops = (r.data || []).map((o) => (typeof o === 'string' ? o : o.name)).sort();
    operation.append(...ops.map((o) => h('option', { value: o, text: o, selected: o === sel })));
  }

  async function search(push) {
    if (!service.value) return;
    const params = { service: service.value, operation: operation.value, lookback: lookback.value, limit: limit.value,
      minDuration: minD.value.trim(), maxDuration: maxD.value.trim() };
    const tg = parseTags(tags.value);
    if (Object.keys(tg).length) params.tags = JSON.stringify(tg);
    const u = new URL(location.href);
    for (const [k, v] of Object.entries({ ...params, tags: tags.value })) { if (v) u.searchParams.set(k, v); else u.searchParams.delete(k); }
    if (push) history.pushState(null, '', u); else history.replaceState(null, '', u);
    const end = Date.now() * 1000;
    if (st.abort) st.abort.abort();
    st.abort = new AbortController();
    fill(results, h('div', { class: 'loading', text: 'Searching…' }));
    try {
      const r = await getJSON('/api/traces', { ...params, end }, { signal: st.abort.signal });
      draw(r.data || []);
    } catch (e) {
      if (e.name !== 'AbortError') fill(results, h('div', { class: 'panel-error', text: e.message }));
    }
  }

  function draw(traces) {
    if (st.chart) { st.chart.destroy(); st.chart = null; }
    clear(scatter);
    clear(results);
    if (!traces.length) { results.append(h('div', { class: 'panel-msg', text: 'No traces found' })); return; }
    const rows = traces.map((t) => {
      const spans = t.spans || [];
      const root = spans.find((s) => !(s.references || []).some((r) => r.refType === 'CHILD_OF')) || spans[0] || {};
      const start = Math.min(...spans.map((s) => s.startTime));
      const end = Math.max(...spans.map((s) => s.startTime + s.duration));
      const proc = (t.processes || {})[root.processID] || {};
      const errors = spans.filter((s) => (s.tags || []).some((g) => (g.key === 'error' && g.value === true) || (g.key === 'otel.status_code' && g.value === 'ERROR'))).length;
      return { id: t.traceID, name: `${proc.serviceName || '?'}: ${root.operationName || '?'}`, start, duration: end - start, spans: spans.length, errors,
        services: new Set(spans.map((s) => ((t.processes || {})[s.processID] || {}).serviceName)).size };
    }).sort((a, b) => b.start - a.start);
    // the duration scatter: x start time, y duration (ms)
    const pts = [...rows].sort((a, b) => a.start - b.start);
    st.chart = makeChart(scatter, { series: [{ name: 'duration', color: '#5794F2' }], data: [pts.map((r) => r.start / 1e6), pts.map((r) => r.duration / 1000)],
      unit: 'ms', width: scatter.clientWidth || 800, height: 160, points: true, fillOpacity: 0, tooltipMode: 'single' });
    results.append(h('div', { class: 'dim small', text: `${rows.length} traces` }), h('table', { class: 'data-table list' },
      h('thead', null, h('tr', null, ['Trace', 'Spans', 'Errors', 'Services', 'Duration', 'Started'].map((c) => h('th', { text: c })))),
      h('tbody', null, rows.map((r) => h('tr', { class: 'trace-row', dataset: { traceId: r.id } },
        h('td', null, h('a', { href: `/trace/${r.id}`, text: r.name }), ' ', h('code', { class: 'dim', text: r.id.slice(0, 8) })),
        h('td', { class: 'num', text: String(r.spans) }), h('td', { class: `num${r.errors ? ' err' : ''}`, text: String(r.errors) }),
        h('td', { class: 'num', text: String(r.services) }), h('td', { class: 'num', text: us(r.duration) }),
        h('td', { class: 'dim', text: new Date(r.start / 1000).toLocaleString() }))))));
  }

  return { destroy() { if (st.chart) st.chart.destroy(); if (st.abort) st.abort.abort(); clear(toolbar); hideTip(); } };
}

// Orders spans depth-first under their parents (CHILD_OF, else the first reference), children
// by start time. Returns [{ span, depth, children }].
export function spanTree(spans) {
  const byId = new Map(spans.map((s) => [s.spanID, { span: s, children: [], depth: 0 }]));
  const roots = [];
  for (const n of byId.values()) {
    const refs = n.span.references || [];
    const ref = refs.find((r) => r.refType === 'CHILD_OF') || refs[0];
    const parent = ref && byId.get(ref.spanID);
    if (parent && parent !== n) parent.children.push(n);
    else roots.push(n);
  }
  const out = [];
  const seen = new Set();
  const walk = (n, d) => {
    if (seen.has(n)) return;
    seen.add(n);
    n.depth = d;
    out.push(n);
    n.children.sort((a, b) => a.span.startTime - b.span.startTime).forEach((c) => walk(c, d + 1));
  };
  roots.sort((a, b) => a.span.startTime - b.span.startTime).forEach((r) => walk(r, 0));
  return out;
}

function kvTable(list) {
  return h('table', { class: 'kv' }, h('tbody', null, (list || []).map((t) => h('tr', null, h('td', { class: 'k', text: t.key }), h('td', { class: 'v', text: typeof t.value === 'object' ? JSON.stringify(t.value) : String(t.value) })))));
}

export function mountTrace(main, toolbar, id) {
  fill(toolbar, h('span', { class: 'dash-title', text: 'Trace ' }), h('code', { text: id }), h('span', { class: 'spacer' }),
    h('a', { class: 'button', href: `/api/traces/${encodeURIComponent(id)}`, target: '_blank', rel: 'noopener', text: 'Trace JSON' }));
  fill(main, h('div', { class: 'loading', text: 'Loading trace…' }));
  getJSON(`/api/traces/${encodeURIComponent(id)}`).then((r) => {
    const t = (r.data || [])[0];
    if (!t || !(t.spans || []).length) { fill(main, h('div', { class: 'panel-msg', text: `Trace ${id} not found` })); return; }
    drawWaterfall(main, t);
  }).catch((e) => fill(main, h('div', { class: 'panel-error big', text: e.status === 404 ? `Trace ${id} not found` : e.message })));
  return { destroy() { clear(toolbar); } };
}

function drawWaterfall(main, t) {
  const spans = t.spans;
  const procs = t.processes || {};
  const t0 = Math.min(...spans.map((s) => s.startTime));
  const t1 = Math.max(...spans.map((s) => s.startTime + s.duration));
  const total = Math.max(1, t1 - t0);
  const services = new Map();
  const nodes = spanTree(spans);
  const folded = new Set();
  const detail = h('div', { class: 'span-detail', hidden: true });
  const list = h('div', { class: 'waterfall' });
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const ruler = h('div', { class: 'wf-row wf-ruler' }, h('div', { class: 'wf-name', text: 'Service · operation' }),
    h('div', { class: 'wf-timeline' }, ticks.map((f) => { const e = h('span', { class: `tick${f === 0 ? ' first' : f === 1 ? ' last' : ''}`, text: us(total * f) }); e.style.left = `${f * 100}%`; return e; })));
  const root = nodes[0].span;
  const rootSvc = (procs[root.processID] || {}).serviceName;
  fill(main, h('div', { class: 'page trace' },
    h('h1', null, `${rootSvc || ''}: ${root.operationName}`),
    h('div', { class: 'dim', text: `${spans.length} spans · ${new Set(spans.map((s) => (procs[s.processID] || {}).serviceName)).size} services · ${us(total)} · started ${new Date(t0 / 1000).toLocaleString()}` }),
    ruler, list, detail));

  function hiddenBy(n) {
    // a span is hidden when an ancestor is folded
    let refs = n.span.references || [];
    let ref = refs.find((r) => r.refType === 'CHILD_OF') || refs[0];
    const byId = new Map(nodes.map((x) => [x.span.spanID, x]));
    let guard = 0;
    while (ref && guard++ < 10000) {
      if (folded.has(ref.spanID)) return true;
      const p = byId.get(ref.spanID);
      if (!p) return false;
      refs = p.span.references || [];
      ref = refs.find((r) => r.refType === 'CHILD_OF') || refs[0];
    }
    return false;
  }

  function draw() {
    clear(list);
    for (const n of nodes) {
      if (hiddenBy(n)) continue;
      const s = n.span;
      const svc = (procs[s.processID] || {}).serviceName || '?';
      const col = serviceColor(services, svc);
      const isErr = (s.tags || []).some((g) => (g.key === 'error' && g.value === true) || (g.key === 'otel.status_code' && g.value === 'ERROR'));
      const bar = h('div', { class: `wf-bar${isErr ? ' err' : ''}`, title: us(s.duration) });
      bar.style.left = `${((s.startTime - t0) / total) * 100}%`;
      bar.style.width = `${Math.max(0.2, (s.duration / total) * 100)}%`;
      bar.style.background = col;
      const label = h('span', { class: 'wf-dur', text: us(s.duration) });
      const endPct = ((s.startTime - t0 + s.duration) / total) * 100;
      if (endPct > 80) { label.style.right = `${100 - ((s.startTime - t0) / total) * 100}%`; label.classList.add('before'); } else label.style.left = `${endPct}%`;
      const toggle = n.children.length
        ? h('button', { class: 'wf-toggle', 'aria-label': 'Fold', text: folded.has(s.spanID) ? '▸' : '▾', onclick: (e) => { e.stopPropagation(); if (folded.has(s.spanID)) folded.delete(s.spanID); else folded.add(s.spanID); draw(); } })
        : h('span', { class: 'wf-toggle' });
      const name = h('div', { class: 'wf-name' }, toggle, h('span', { class: 'svc-dot', style: { background: col } }), h('span', { class: 'svc', text: svc }), ' ', h('span', { text: s.operationName }));
      name.style.paddingLeft = `${n.depth * 14}px`;
      list.append(h('div', { class: 'wf-row span-row', dataset: { spanId: s.spanID }, onclick: () => showDetail(s, svc) }, name, h('div', { class: 'wf-timeline' }, bar, label)));
    }
  }

  function showDetail(s, svc) {
    const p = procs[s.processID] || {};
    fill(detail, 
      h('h2', null, `${svc}: ${s.operationName}`),
      h('div', { class: 'dim', text: `span ${s.spanID} · start +${us(s.startTime - t0)} · duration ${us(s.duration)}` }),
      h('h3', { text: 'Tags' }), kvTable(s.tags),
      h('h3', { text: 'Process' }), kvTable([{ key: 'service.name', value: p.serviceName }, ...(p.tags || [])]),
      (s.logs || []).length ? [h('h3', { text: 'Events' }), (s.logs || []).map((l) => h('div', { class: 'event' },
        h('div', { class: 'dim', text: `+${us(l.timestamp - t0)}` }), kvTable(l.fields)))] : null,
      (s.references || []).length ? [h('h3', { text: 'References' }), kvTable(s.references.map((r) => ({ key: r.refType, value: r.spanID })))] : null);
    detail.hidden = false;
    detail.scrollIntoView({ block: 'nearest' });
  }

  draw();
}
