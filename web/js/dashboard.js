// The dashboard page: Grafana dashboard JSON laid out on its 24-column grid, panels queried
// over /api/v1/query_range a few at a time, a time picker and refresh picker whose state
// lives in the URL, drag-to-zoom, a shared crosshair, single-panel view and exemplars.
import { h, clear, fill, navigate } from './lib/dom.js';
import { getJSON, queryRange, bucketSelectors } from './lib/api.js';
import { layout } from './lib/grid.js';
import { computeInterval, interpolate, alignRange, parseDuration } from './lib/interval.js';
import { seriesName } from './lib/legend.js';
import { parseTime, QUICK_RANGES, REFRESH_CHOICES, describeRange, formatTime, isRelative } from './lib/time.js';
import { RENDERERS, NEEDS_DATA, noData } from './panels.js';
import { hideTip } from './chart.js';

const UNIT_PX = 30;
const MARGIN = 8;

export function mountDashboard(main, toolbar, uid) {
  const url = new URL(location.href);
  const st = { uid, dash: null, from: url.searchParams.get('from'), to: url.searchParams.get('to'),
    refresh: url.searchParams.get('refresh'), viewPanel: url.searchParams.get('viewPanel'),
    folded: new Map(), panels: [], timer: null, inflight: null, abort: null, destroyed: false, lastRun: 0 };
  let resizeTimer = null;
  const onResize = () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(() => render(), 200); };
  window.addEventListener('resize', onResize);

  fill(main, h('div', { class: 'loading', text: 'Loading dashboard…' }));
  getJSON(`/ui/api/dashboards/${encodeURIComponent(uid)}`).then((dash) => {
    if (st.destroyed) return;
    st.dash = dash;
    document.title = `${dash.title || uid} · tricorder`;
    const t = dash.time || {};
    st.from = st.from || t.from || 'now-1h';
    st.to = st.to || t.to || 'now';
    if (st.refresh === null) st.refresh = dash.refresh || '';
    syncUrl(true);
    drawToolbar();
    render();
    schedule();
  }).catch((e) => {
    fill(main, h('div', { class: 'panel-error big', text: `Cannot load dashboard ${uid}: ${e.message}` }));
  });

  function range() {
    const now = Date.now();
    let from = parseTime(st.from, now, false);
    let to = parseTime(st.to, now, true);
    if (!Number.isFinite(from)) from = now - 3600000;
    if (!Number.isFinite(to)) to = now;
    if (to <= from) to = from + 1000;
    return { from, to };
  }

  function syncUrl(replace) {
    const u = new URL(location.href);
    u.searchParams.set('from', st.from);
    u.searchParams.set('to', st.to);
    if (st.refresh) u.searchParams.set('refresh', st.refresh);
    else u.searchParams.delete('refresh');
    if (st.viewPanel) u.searchParams.set('viewPanel', st.viewPanel);
    else u.searchParams.delete('viewPanel');
    if (replace) history.replaceState(null, '', u);
    else history.pushState(null, '', u);
  }

  function setRange(from, to) {
    st.from = String(from);
    st.to = String(to);
    syncUrl(false);
    drawToolbar();
    refresh(true);
  }

  function drawToolbar() {
    const rangeSel = h('select', { class: 'range-select', title: 'Time range', onchange: (e) => {
      if (e.target.value === 'custom') { custom.hidden = false; return; }
      setRange(e.target.value, 'now');
    } },
    QUICK_RANGES.map(([v, label]) => h('option', { value: v, selected: st.to === 'now' && st.from === v, text: label })),
    h('option', { value: 'custom', selected: !(st.to === 'now' && QUICK_RANGES.some(([v]) => v === st.from)), text: describeRange(st.from, st.to) }));
    const fromIn = h('input', { class: 'time-input', value: isRelative(st.from) ? st.from : formatTime(parseTime(st.from)), 'aria-label': 'From' });
    const toIn = h('input', { class: 'time-input', value: isRelative(st.to) ? st.to : formatTime(parseTime(st.to)), 'aria-label': 'To' });
    const custom = h('form', { class: 'custom-range', hidden: true, onsubmit: (e) => {
      e.preventDefault();
      const conv = (s) => (isRelative(s) ? s : String(Date.parse(s.replace(' ', 'T'))));
      const f = conv(fromIn.value.trim());
      const t = conv(toIn.value.trim());
      if (!Number.isFinite(parseTime(f)) || !Number.isFinite(parseTime(t))) { fromIn.classList.add('bad'); return; }
      setRange(f, t);
    } }, fromIn, ' to ', toIn, h('button', { type: 'submit', text: 'Apply' }));
    const refreshSel = h('select', { class: 'refresh-select', title: 'Auto refresh', onchange: (e) => {
      st.refresh = e.target.value;
      syncUrl(true);
      schedule();
    } }, REFRESH_CHOICES.map((r) => h('option', { value: r, selected: (st.refresh || '') === r, text: r ? `every ${r}` : 'Off' })));
    const zoomOut = h('button', { title: 'Zoom out', text: '−', onclick: () => {
      const { from, to } = range();
      const span = to - from;
      const now = Date.now();
      const nt = Math.min(now, to + span / 2);
      setRange(String(Math.round(from - span / 2)), nt >= now - 1000 ? 'now' : String(Math.round(nt)));
    } });
    fill(toolbar, 
      h('span', { class: 'dash-title', text: (st.dash && st.dash.title) || st.uid }),
      h('span', { class: 'spacer' }),
      custom, rangeSel, zoomOut,
      h('button', { class: 'refresh-btn', title: 'Refresh now', text: '⟳', onclick: () => refresh(true) }),
      refreshSel);
  }

  function schedule() {
    clearInterval(st.timer);
    st.timer = null;
    const ms = st.refresh ? parseDuration(st.refresh) : 0;
    if (ms > 0) st.timer = setInterval(() => refresh(false), Math.max(1000, ms));
  }

  function toggleRow(row) {
    st.folded.set(row, !isFolded(row));
    render();
  }
  const isFolded = (row) => (st.folded.has(row) ? st.folded.get(row) : !!row.collapsed);

  function destroyPanels() {
    for (const p of st.panels) if (p.handle) p.handle.destroy();
    st.panels = [];
    hideTip();
  }

  function render() {
    if (!st.dash || st.destroyed) return;
    destroyPanels();
    const grid = h('div', { class: 'grid' });
    fill(main, grid);
    const width = main.clientWidth - 2 * MARGIN;
    const colW = (width + MARGIN) / 24;
    let items = layout(st.dash.panels || [], isFolded);
    if (st.viewPanel) {
      const one = items.find((it) => String(it.panel.id) === st.viewPanel && it.panel.type !== 'row');
      if (one) items = [{ ...one, x: 0, y: 0, w: 24, h: Math.max(8, Math.floor((window.innerHeight - 140) / (UNIT_PX + MARGIN))) }];
    }
    let bottom = 0;
    for (const it of items) {
      const left = it.x * colW;
      const top = it.y * (UNIT_PX + MARGIN);
      const w = it.w * colW - MARGIN;
      const hgt = it.h * (UNIT_PX + MARGIN) - MARGIN;
      bottom = Math.max(bottom, top + hgt);
      let el;
      if (it.panel.type === 'row') {
        const folded = isFolded(it.panel);
        const count = folded ? (it.panel.panels || []).length : 0;
        el = h('div', { class: `row-header${folded ? ' folded' : ''}`, role: 'button', tabindex: 0,
          onclick: () => toggleRow(it.panel), onkeydown: (e) => { if (e.key === 'Enter') toggleRow(it.panel); } },
        h('span', { class: 'chev', text: folded ? '▸' : '▾' }), it.panel.title || 'Row',
        count ? h('span', { class: 'dim', text: ` (${count} panel${count > 1 ? 's' : ''})` }) : null);
      } else {
        const body = h('div', { class: 'panel-body' });
        const status = h('span', { class: 'panel-status' });
        el = h('section', { class: 'panel', dataset: { panelId: String(it.panel.id ?? ''), type: it.panel.type || '' } },
          h('header', { class: 'panel-header', title: it.panel.description || '' },
            h('span', { class: 'panel-title', text: it.panel.title || '' }), status,
            h('button', { class: st.viewPanel ? 'panel-view active' : 'panel-view', title: st.viewPanel ? 'Back to the dashboard' : 'View full width', text: st.viewPanel ? '✕' : '⤢',
              onclick: () => { st.viewPanel = st.viewPanel ? null : String(it.panel.id); syncUrl(false); render(); refresh(true); } })),
          body);
        st.panels.push({ p: it.panel, el, body, status, handle: null, width: w });
      }
      el.style.left = `${left}px`;
      el.style.top = `${top}px`;
      el.style.width = `${w}px`;
      el.style.height = `${hgt}px`;
      grid.append(el);
    }
    grid.style.height = `${bottom + MARGIN}px`;
    refresh(true);
  }

  // Runs every panel's queries. A timer tick while a refresh is in flight is dropped (never
  // piled up); an explicit change (range, rows, resize) cancels the one in flight.
  function refresh(force) {
    if (st.destroyed || !st.dash) return;
    if (st.inflight) {
      if (!force) return;
      st.abort.abort();
    }
    const abort = new AbortController();
    st.abort = abort;
    const { from, to } = range();
    const panels = [...st.panels];
    const run = Promise.allSettled(panels.map((pn) => runPanel(pn, from, to, abort.signal)));
    st.inflight = run;
    run.then(() => {
      if (st.inflight === run) st.inflight = null;
      st.lastRun = Date.now();
      main.dataset.refreshed = String(st.lastRun);
    });
  }

  async function runPanel(pn, from, to, signal) {
    const p = pn.p;
    const render = RENDERERS[p.type];
    if (!render) {
      pn.handle = noData(pn.body, `Panel type "${p.type}" is not supported`);
      return;
    }
    if (!NEEDS_DATA(p)) {
      if (!pn.handle) pn.handle = render(pn.body, p, [], {});
      return;
    }
    const targets = (p.targets || []).filter((t) => t.expr && !t.hide);
    if (!targets.length) { pn.handle = noData(pn.body); return; }
    const intervalMs = computeInterval(from, to, pn.width, { minInterval: p.interval, maxDataPoints: p.maxDataPoints });
    const { start, end, step } = alignRange(from, to, intervalMs);
    pn.status.textContent = '…';
    pn.status.className = 'panel-status loading';
    const frames = [];
    const errors = [];
    await Promise.all(targets.map(async (t) => {
      const expr = interpolate(t.expr, { fromMs: from, toMs: to, intervalMs });
      try {
        const r = await queryRange(expr, start, end, step, { signal });
        const result = (r.data && r.data.result) || [];
        for (const s of result) frames.push({ refId: t.refId, name: seriesName(s.metric, t.legendFormat, expr), metric: s.metric || {}, values: s.values || [] });
      } catch (e) {
        if (e.name !== 'AbortError') errors.push(`${t.refId || ''}: ${e.message}`);
      }
    }));
    if (signal.aborted) return;
    frames.sort((a, b) => (a.refId || '').localeCompare(b.refId || ''));
    let exemplars = [];
    if ((p.type === 'timeseries' || p.type === 'graph') && frames.length) exemplars = await fetchExemplars(targets, start, end, signal);
    if (signal.aborted) return;
    const ctx = {
      syncKey: `dash-${st.uid}`,
      xRange: [from / 1000, to / 1000],
      onZoom: (f, t) => setRange(String(f), String(t)),
      exemplars,
      onExemplar: (id) => navigate(`/trace/${encodeURIComponent(id)}`),
    };
    pn.status.textContent = '';
    pn.status.title = '';
    pn.status.className = 'panel-status';
    pn.el.classList.toggle('has-error', errors.length > 0);
    if (frames.length && !errors.length && pn.handle && pn.handle.update && pn.handle.update(frames, ctx)) {
      pn.el.dataset.series = String(frames.length);
      pn.el.dataset.exemplars = String(exemplars.length);
      return;
    }
    if (pn.handle) pn.handle.destroy();
    pn.handle = null;
    if (errors.length) {
      pn.status.textContent = '⚠';
      pn.status.title = errors.join('\n');
      pn.status.classList.add('error');
    }
    if (!frames.length) {
      if (errors.length) {
        fill(pn.body, h('div', { class: 'panel-error', text: errors.join('\n') }));
        pn.handle = { destroy() {} };
      } else {
        pn.handle = noData(pn.body);
      }
      pn.el.dataset.series = '0';
      return;
    }
    pn.el.dataset.series = String(frames.length);
    pn.el.dataset.exemplars = String(exemplars.length);
    pn.handle = render(pn.body, p, frames, ctx);
  }

  async function fetchExemplars(targets, start, end, signal) {
    const sels = [...new Set(targets.flatMap((t) => bucketSelectors(t.expr)))];
    const out = [];
    for (const q of sels) {
      try {
        const r = await getJSON('/api/v1/query_exemplars', { query: q, start, end }, { signal });
        for (const s of r.data || []) {
          for (const e of s.exemplars || []) {
            const labels = e.labels || {};
            out.push({ t: Number(e.timestamp), v: parseFloat(e.value), traceId: labels.trace_id || labels.traceID || labels.traceId, labels: { ...labels, le: (s.seriesLabels || {}).le } });
          }
        }
      } catch { /* exemplars are an extra: the panel draws without them */ }
    }
    return out.slice(-500);
  }

  return {
    destroy() {
      st.destroyed = true;
      clearInterval(st.timer);
      if (st.abort) st.abort.abort();
      window.removeEventListener('resize', onResize);
      destroyPanels();
      clear(toolbar);
    },
  };
}

export function mountDashboardList(main, toolbar) {
  fill(toolbar, h('span', { class: 'dash-title', text: 'Dashboards' }));
  fill(main, h('div', { class: 'loading', text: 'Loading…' }));
  getJSON('/ui/api/dashboards').then((list) => {
    fill(main, h('div', { class: 'page' }, h('h1', { text: 'Dashboards' }),
      h('table', { class: 'data-table list' },
        h('thead', null, h('tr', null, h('th', { text: 'Title' }), h('th', { text: 'uid' }), h('th', { text: 'Tags' }), h('th', { text: 'Source' }))),
        h('tbody', null, list.map((d) => h('tr', null,
          h('td', null, h('a', { href: `/d/${encodeURIComponent(d.uid)}`, 'data-link': true, text: d.title })),
          h('td', null, h('code', { text: d.uid })),
          h('td', null, (d.tags || []).map((t) => h('span', { class: 'tag', text: String(t) }))),
          h('td', { text: d.source })))))));
  }).catch((e) => fill(main, h('div', { class: 'panel-error big', text: e.message })));
  return { destroy() { clear(toolbar); } };
}
