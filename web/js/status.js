// Status: build info, the flags in force, TSDB stats (series, top cardinality), the trace
// store and ingest counters (from tricorder's own /metrics).
import { h, clear, fill } from './lib/dom.js';
import { getJSON, getText } from './lib/api.js';
import { formatValue } from './lib/units.js';

// Parses the Prometheus text format into [{ name, labels, value }] (comments skipped).
export function parseMetricsText(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    const re = /(\w+)="((?:[^"\\]|\\.)*)"/g;
    let l;
    while ((l = re.exec(m[3] || ''))) labels[l[1]] = l[2].replace(/\\(.)/g, (a, c) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1], labels, value: parseFloat(m[4]) });
  }
  return out;
}

function kv(obj) {
  return h('table', { class: 'kv' }, h('tbody', null, Object.entries(obj || {}).map(([k, v]) =>
    h('tr', null, h('td', { class: 'k', text: k }), h('td', { class: 'v', text: typeof v === 'object' ? JSON.stringify(v) : String(v) })))));
}

function section(title, ...body) {
  return h('section', { class: 'card' }, h('h2', { text: title }), ...body);
}

function unitFor(name) {
  if (/_bytes(_total)?$/.test(name)) return 'bytes';
  if (/_seconds(_total)?$/.test(name)) return 's';
  return 'short';
}

export function mountStatus(main, toolbar) {
  fill(toolbar, h('span', { class: 'dash-title', text: 'Status' }));
  const grid = h('div', { class: 'page status-grid' });
  fill(main, grid);
  const slot = (title) => { const s = section(title, h('div', { class: 'loading', text: 'Loading…' })); grid.append(s); return s; };
  const put = (s, ...nodes) => { s.lastChild.remove(); s.append(...nodes); };
  const fail = (s) => (e) => put(s, h('div', { class: 'panel-error', text: e.message }));

  const build = slot('Build');
  const flags = slot('Flags in force');
  const tsdb = slot('Metrics store');
  const traces = slot('Trace store');
  const ingest = slot('Ingest');

  getJSON('/api/v1/status/buildinfo').then((r) => put(build, kv(r.data))).catch(fail(build));
  getJSON('/api/v1/status/flags').then((r) => put(flags, kv(r.data))).catch(fail(flags));
  getJSON('/api/v1/status/tsdb').then((r) => {
    const d = r.data || {};
    const parts = [kv(d.headStats || {})];
    for (const [k, v] of Object.entries(d)) {
      if (!Array.isArray(v)) continue;
      parts.push(h('h3', { text: k.replace(/([A-Z])/g, ' $1').toLowerCase() }),
        h('table', { class: 'data-table' }, h('tbody', null, v.slice(0, 10).map((x) => h('tr', null, h('td', { class: 'mono', text: x.name }), h('td', { class: 'num', text: String(x.value) }))))));
    }
    put(tsdb, ...parts);
  }).catch(fail(tsdb));
  getText('/metrics').then((text) => {
    const ms = parseMetricsText(text);
    const rows = (re) => ms.filter((m) => re.test(m.name) && !/_bucket$/.test(m.name));
    const table = (list) => h('table', { class: 'data-table' }, h('tbody', null, list.map((m) => h('tr', null,
      h('td', { class: 'mono', text: m.name }),
      h('td', { class: 'dim', text: Object.entries(m.labels).map(([k, v]) => `${k}=${v}`).join(' ') }),
      h('td', { class: 'num', text: formatValue(m.value, unitFor(m.name)) }))))); 
    put(traces, table(rows(/^tricorder_(traces?|spans?)_/)));
    put(ingest, table([...rows(/^tricorder_(otlp|ingest|remote|http_responses|open_connections)/), ...rows(/^process_/)]));
  }).catch((e) => { fail(traces)(e); fail(ingest)(e); });
  return { destroy() { clear(toolbar); } };
}
