// Query intervals as Grafana computes them for a Prometheus data source: $__interval from the
// time range and the panel's width (rounded to a "nice" step, never under the data source's
// minimum, 30 s here), $__rate_interval, $__range, and the aligned query_range window.

export const MIN_INTERVAL_MS = 30000; // the data source's timeInterval (Scotty's is 30 s)
const MAX_POINTS = 11000; // Prometheus refuses more points per series

// Grafana's table of nice intervals (rangeutil.roundInterval), in ms.
const STEPS = [
  [15, 10], [35, 20], [75, 50], [150, 100], [350, 200], [750, 500], [1500, 1000], [3500, 2000],
  [7500, 5000], [12500, 10000], [17500, 15000], [25000, 20000], [45000, 30000], [90000, 60000],
  [210000, 120000], [450000, 300000], [750000, 600000], [1050000, 900000], [1500000, 1200000],
  [2700000, 1800000], [5400000, 3600000], [9000000, 7200000], [16200000, 10800000],
  [32400000, 21600000], [86400000, 43200000], [604800000, 86400000], [1814400000, 604800000],
  [3628800000, 2592000000],
];

export function roundInterval(ms) {
  for (const [lim, v] of STEPS) if (ms < lim) return v;
  return 31536000000;
}

// "30s", "1m", "1h30m", "500ms": the way Grafana writes intervals into queries.
export function formatDuration(ms) {
  if (ms <= 0) return '0s';
  if (ms < 1000 || ms % 1000) return `${Math.round(ms)}ms`;
  let s = ms / 1000;
  const units = [['y', 31536000], ['w', 604800], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  let out = '';
  for (const [u, n] of units) {
    if (s >= n) {
      out += Math.floor(s / n) + u;
      s %= n;
    }
  }
  return out;
}

// Parses "30s", "1m", "1h30m", "500ms" into ms; NaN when malformed.
export function parseDuration(str) {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)/gy;
  const mult = { ms: 1, s: 1000, m: 60000, h: 3600000, d: 86400000, w: 604800000, y: 31536000000 };
  let total = 0;
  let m;
  let pos = 0;
  const s = String(str).trim();
  if (!s) return NaN;
  while ((m = re.exec(s))) {
    total += parseFloat(m[1]) * mult[m[2]];
    pos = re.lastIndex;
  }
  return pos === s.length ? total : NaN;
}

// The interval for a panel: range / width, rounded, at least the minimum (the panel's own
// `interval`, e.g. ">10s" or "1m", else the data source's), and at most MAX_POINTS points.
export function computeInterval(fromMs, toMs, widthPx, opts = {}) {
  const range = Math.max(1, toMs - fromMs);
  let minMs = opts.minInterval ? parseDuration(String(opts.minInterval).replace(/^>/, '')) : NaN;
  if (!(minMs > 0)) minMs = MIN_INTERVAL_MS;
  const points = Math.max(1, Math.min(opts.maxDataPoints || widthPx || 1000, MAX_POINTS));
  let ms = roundInterval(range / points);
  if (ms < minMs) ms = minMs;
  if (range / ms > MAX_POINTS) ms = Math.ceil(range / MAX_POINTS / 1000) * 1000;
  return ms;
}

// Grafana's $__rate_interval: max($__interval + scrape interval, 4 × scrape interval).
export function rateInterval(intervalMs, scrapeMs = MIN_INTERVAL_MS) {
  return Math.max(intervalMs + scrapeMs, 4 * scrapeMs);
}

// Replaces Grafana's built-in variables in a query.
export function interpolate(expr, { fromMs, toMs, intervalMs, scrapeMs = MIN_INTERVAL_MS }) {
  const rangeMs = toMs - fromMs;
  const vars = {
    __interval: formatDuration(intervalMs),
    __interval_ms: String(intervalMs),
    __rate_interval: formatDuration(rateInterval(intervalMs, scrapeMs)),
    __rate_interval_ms: String(rateInterval(intervalMs, scrapeMs)),
    __range: `${Math.round(rangeMs / 1000)}s`,
    __range_s: String(Math.round(rangeMs / 1000)),
    __range_ms: String(rangeMs),
  };
  return expr.replace(/\$\{(\w+)\}|\[\[(\w+)\]\]|\$(\w+)/g, (all, a, b, c) => {
    const k = a || b || c;
    return Object.prototype.hasOwnProperty.call(vars, k) ? vars[k] : all;
  });
}

// The query_range window: on multiples of the step, so that refreshes reuse the same sample
// timestamps (as Grafana aligns it); the end rounds up, not down as Grafana's does, so the
// newest samples (those of a tricorder started seconds ago, say) are in the last point. Seconds.
export function alignRange(fromMs, toMs, stepMs) {
  const step = stepMs / 1000;
  const start = Math.floor(fromMs / 1000 / step) * step;
  const end = Math.ceil(toMs / 1000 / step) * step;
  return { start, end: Math.max(end, start), step };
}
