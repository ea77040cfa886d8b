// Alerts: the rule groups of /api/v1/rules (each rule's state, health, last evaluation and its
// duration, last error) and the active alerts of /api/v1/alerts (labels, annotations, since
// when, value); refreshed on a timer that drops a tick while a refresh is in flight. Every
// value from the network goes in as text (lib/dom.js).
import { h, clear, fill } from './lib/dom.js';
import { getJSON } from './lib/api.js';
import { labelPairs, sortAlerts, sortRules, ruleCounts, firingCount, shortDuration, ago } from './lib/alerts.js';
import { setAlertBadge } from './badge.js';

const REFRESH_CHOICES = ['', '5s', '10s', '30s', '1m'];
const SECONDS = { s: 1, m: 60 };

// The API sends values as Go formats them ("1e+00"); shown as JavaScript prints numbers.
const showValue = (v) => (Number.isNaN(Number(v)) && String(v) !== 'NaN' ? String(v) : String(Number(v)));
const stateTag = (state) => h('span', { class: `alert-state ${state || 'unknown'}`, text: state || 'unknown' });
const labelTags = (labels) => h('span', { class: 'alert-labels' }, labelPairs(labels).map(([k, v]) => h('span', { class: 'tag label', text: `${k}=${v}` })));

function annotationList(annotations) {
  const pairs = Object.entries(annotations || {});
  if (!pairs.length) return h('span', { class: 'dim', text: '–' });
  return h('dl', { class: 'annotations' }, pairs.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]));
}

function alertsTable(alerts, now) {
  if (!alerts.length) return h('div', { class: 'dim', text: 'No active alerts.' });
  return h('table', { class: 'data-table alerts-table' },
    h('thead', null, h('tr', null, ['State', 'Labels', 'Annotations', 'Active since', 'Value'].map((t) => h('th', { text: t })))),
    h('tbody', null, sortAlerts(alerts).map((a) => h('tr', { class: `alert-row ${a.state}`, dataset: { state: a.state || '', alertname: (a.labels || {}).alertname || '' } },
      h('td', null, stateTag(a.state)),
      h('td', null, labelTags(a.labels)),
      h('td', null, annotationList(a.annotations)),
      h('td', { class: 'nowrap', title: a.activeAt || '', text: ago(a.activeAt, now) }),
      h('td', { class: 'num mono', title: a.value === undefined ? '' : String(a.value), text: a.value === undefined ? '–' : showValue(a.value) })))));
}

function ruleRow(r, now) {
  const alerting = r.type === 'alerting';
  return h('tr', { class: 'rule-row', dataset: { rule: r.name || '', state: alerting ? r.state || '' : 'recording', health: r.health || '' } },
    h('td', null, h('div', { class: 'rule-name', text: r.name || '' }), h('code', { class: 'rule-expr', text: r.query || '' }),
      alerting && r.duration ? h('div', { class: 'dim', text: `for ${shortDuration(r.duration)}` }) : null,
      alerting && (r.alerts || []).length ? h('div', { class: 'dim', text: `${r.alerts.length} active` }) : null),
    h('td', null, alerting ? stateTag(r.state) : h('span', { class: 'dim', text: 'recording' })),
    h('td', null, h('span', { class: `rule-health ${r.health || 'unknown'}`, text: r.health || 'unknown' })),
    h('td', { class: 'nowrap', title: r.lastEvaluation || '', text: ago(r.lastEvaluation, now) }),
    h('td', { class: 'num nowrap', text: shortDuration(r.evaluationTime) }),
    h('td', { class: 'rule-error', text: r.lastError || '' }));
}

function groupCard(g, now) {
  return h('section', { class: 'card rule-group', dataset: { group: g.name || '' } },
    h('h2', null, h('span', { text: g.name || '' }),
      h('span', { class: 'dim group-meta', text: ` ${g.file || ''} · every ${shortDuration(g.interval)} · evaluated ${ago(g.lastEvaluation, now)} in ${shortDuration(g.evaluationTime)}` })),
    h('table', { class: 'data-table rules-table' },
      h('thead', null, h('tr', null, ['Rule', 'State', 'Health', 'Last evaluation', 'Took', 'Last error'].map((t) => h('th', { text: t })))),
      h('tbody', null, sortRules(g.rules).map((r) => ruleRow(r, now)))));
}

export function mountAlerts(main, toolbar) {
  const st = { timer: null, inflight: false, destroyed: false, refresh: '10s' };
  const summary = h('span', { class: 'alert-summary' });
  const refreshSel = h('select', { class: 'refresh-select', title: 'Auto refresh', onchange: (e) => { st.refresh = e.target.value; schedule(); } },
    REFRESH_CHOICES.map((r) => h('option', { value: r, selected: st.refresh === r, text: r ? `every ${r}` : 'Off' })));
  fill(toolbar, h('span', { class: 'dash-title', text: 'Alerts' }), summary, h('span', { class: 'spacer' }),
    h('button', { class: 'refresh-btn', title: 'Refresh now', text: '⟳', onclick: () => refresh() }), refreshSel);
  const active = h('section', { class: 'card active-alerts' }, h('h2', { text: 'Active alerts' }), h('div', { class: 'loading', text: 'Loading…' }));
  const groups = h('div', { class: 'rule-groups' }, h('div', { class: 'loading', text: 'Loading…' }));
  const page = h('div', { class: 'page alerts-page' }, active, groups);
  fill(main, page);

  function schedule() {
    clearInterval(st.timer);
    const m = /^(\d+)([sm])$/.exec(st.refresh);
    if (m) st.timer = setInterval(refresh, Number(m[1]) * SECONDS[m[2]] * 1000);
  }

  // One refresh at a time: a tick that comes while one is in flight is dropped.
  async function refresh() {
    if (st.destroyed || st.inflight) return;
    st.inflight = true;
    const [rules, alerts] = await Promise.allSettled([getJSON('/api/v1/rules'), getJSON('/api/v1/alerts')]);
    st.inflight = false;
    if (st.destroyed) return;
    const now = Date.now();
    if (alerts.status === 'fulfilled') {
      const list = (alerts.value.data && alerts.value.data.alerts) || [];
      fill(active, h('h2', { text: `Active alerts (${list.length})` }), alertsTable(list, now));
      setAlertBadge(firingCount(list));
    } else {
      fill(active, h('h2', { text: 'Active alerts' }), h('div', { class: 'panel-error', text: alerts.reason.message }));
    }
    if (rules.status === 'fulfilled') {
      const gs = (rules.value.data && rules.value.data.groups) || [];
      const c = ruleCounts(gs);
      fill(summary, ['firing', 'pending', 'inactive'].map((s) => h('span', { class: `alert-state ${s}`, text: `${c[s]} ${s}` })));
      fill(groups, gs.length ? gs.map((g) => groupCard(g, now)) : h('div', { class: 'card dim', text: 'No rules loaded (see --rule-files).' }));
    } else {
      fill(groups, h('div', { class: 'card panel-error', text: rules.reason.message }));
    }
    page.dataset.refreshed = String(now);
  }

  schedule();
  refresh();
  return { destroy() { st.destroyed = true; clearInterval(st.timer); clear(toolbar); } };
}
