// Pure helpers for the Alerts page and the top bar's badge: ordering of rules and alerts by
// state (firing, then pending, then inactive), counts per state, and the short forms of
// durations and ages the page shows. No DOM here, so node --test covers it.

const RANK = { firing: 0, pending: 1, inactive: 2 };

export function stateRank(state) {
  return state in RANK ? RANK[state] : 3;
}

// The labels of an alert as [name, value] pairs: alertname first, then by name.
export function labelPairs(labels) {
  return Object.entries(labels || {}).sort(([a], [b]) => (a === 'alertname' ? -1 : b === 'alertname' ? 1 : a < b ? -1 : a > b ? 1 : 0));
}

function labelKey(labels) {
  return labelPairs(labels).map(([k, v]) => `${k}=${v}`).join('\u0000');
}

// Alerts (from /api/v1/alerts or a rule's alerts[]): by state, then the oldest first, then by
// labels, so the order is stable across refreshes.
export function sortAlerts(alerts) {
  return [...(alerts || [])].sort((a, b) => stateRank(a.state) - stateRank(b.state)
    || String(a.activeAt || '').localeCompare(String(b.activeAt || ''))
    || labelKey(a.labels).localeCompare(labelKey(b.labels)));
}

// Rules of a group: alerting rules by state (firing first), recording rules after them;
// within a state the file's order is kept.
export function sortRules(rules) {
  const rank = (r) => (r.type === 'alerting' ? stateRank(r.state) : 4);
  return (rules || []).map((r, i) => [r, i]).sort(([a, i], [b, j]) => rank(a) - rank(b) || i - j).map(([r]) => r);
}

// { firing, pending, inactive } over the alerting rules of the groups.
export function ruleCounts(groups) {
  const c = { firing: 0, pending: 0, inactive: 0 };
  for (const g of groups || []) for (const r of g.rules || []) if (r.type === 'alerting' && r.state in c) c[r.state]++;
  return c;
}

// How many of /api/v1/alerts' alerts are firing (what the badge shows).
export function firingCount(alerts) {
  return (alerts || []).filter((a) => a.state === 'firing').length;
}

// Seconds as a short duration: 0.0012 → "1.2ms", 75 → "1m15s", 7200 → "2h".
export function shortDuration(sec) {
  if (typeof sec !== 'number' || !Number.isFinite(sec) || sec < 0) return '–';
  if (sec < 1e-3) return `${(sec * 1e6).toFixed(0)}µs`;
  if (sec < 1) return `${+(sec * 1e3).toPrecision(3)}ms`;
  if (sec < 60) return `${+sec.toPrecision(3)}s`;
  let s = Math.round(sec);
  const parts = [];
  for (const [u, n] of [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (s >= n) { parts.push(`${Math.floor(s / n)}${u}`); s %= n; }
  }
  return parts.slice(0, 2).join('');
}

// An RFC 3339 time as an age relative to now (ms): "12s ago"; "never" for Go's zero time.
export function ago(iso, now = Date.now()) {
  const t = Date.parse(iso || '');
  if (!Number.isFinite(t) || t <= 0) return 'never';
  const d = (now - t) / 1000;
  if (d < 1) return 'just now';
  return `${shortDuration(d < 60 ? Math.floor(d) : d)} ago`;
}
