// Time ranges as Grafana writes them in URLs: "now", "now-1h", "now-7d/d", or absolute
// milliseconds since the epoch (or an ISO date).

const UNIT_MS = { s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000 };

function startOf(d, unit, roundUp) {
  const t = new Date(d);
  switch (unit) {
    case 'y': t.setMonth(0, 1); // falls through
    case 'M': t.setDate(1); // falls through
    case 'd': t.setHours(0, 0, 0, 0); break;
    case 'w': t.setHours(0, 0, 0, 0); t.setDate(t.getDate() - t.getDay()); break;
    case 'h': t.setMinutes(0, 0, 0); break;
    case 'm': t.setSeconds(0, 0); break;
    case 's': t.setMilliseconds(0); break;
    default: return d;
  }
  if (!roundUp) return t.getTime();
  const next = new Date(t);
  if (unit === 'y') next.setFullYear(next.getFullYear() + 1);
  else if (unit === 'M') next.setMonth(next.getMonth() + 1);
  else next.setTime(next.getTime() + UNIT_MS[unit]);
  return next.getTime() - 1;
}

// Returns ms since the epoch, or NaN. roundUp: for "to", "/d" means the end of the day.
export function parseTime(s, now = Date.now(), roundUp = false) {
  if (s === undefined || s === null || s === '') return NaN;
  s = String(s).trim();
  if (/^\d+$/.test(s)) return Number(s);
  if (!s.startsWith('now')) {
    const t = Date.parse(s);
    return Number.isNaN(t) ? NaN : t;
  }
  let t = now;
  const re = /([+-])(\d+)([smhdwMy])|\/([smhdwMy])/gy;
  re.lastIndex = 3;
  let m;
  let end = 3;
  while ((m = re.exec(s))) {
    end = re.lastIndex;
    if (m[4]) {
      t = startOf(t, m[4], roundUp);
    } else {
      const n = Number(m[2]) * (m[1] === '-' ? -1 : 1);
      if (m[3] === 'M' || m[3] === 'y') {
        const d = new Date(t);
        if (m[3] === 'M') d.setMonth(d.getMonth() + n);
        else d.setFullYear(d.getFullYear() + n);
        t = d.getTime();
      } else {
        t += n * UNIT_MS[m[3]];
      }
    }
  }
  return end === s.length ? t : NaN;
}

export function isRelative(s) {
  return String(s).startsWith('now');
}

export const QUICK_RANGES = [
  ['now-5m', 'Last 5 minutes'], ['now-15m', 'Last 15 minutes'], ['now-30m', 'Last 30 minutes'],
  ['now-1h', 'Last 1 hour'], ['now-3h', 'Last 3 hours'], ['now-6h', 'Last 6 hours'],
  ['now-12h', 'Last 12 hours'], ['now-24h', 'Last 24 hours'], ['now-2d', 'Last 2 days'],
  ['now-7d', 'Last 7 days'], ['now-30d', 'Last 30 days'],
];

export const REFRESH_CHOICES = ['', '5s', '10s', '30s', '1m', '5m', '15m', '30m', '1h'];

export function describeRange(from, to) {
  if (to === 'now') {
    const q = QUICK_RANGES.find(([f]) => f === from);
    if (q) return q[1];
    if (isRelative(from)) return `${from} to now`;
  }
  const fmt = (s) => (isRelative(s) ? s : formatTime(parseTime(s)));
  return `${fmt(from)} to ${fmt(to)}`;
}

export function formatTime(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
