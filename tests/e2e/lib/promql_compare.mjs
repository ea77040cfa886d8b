// Comparing PromQL answers (Prometheus's JSON) and expanding the query file's <<a|b>> groups.

// Expands <<a|b>> groups into every combination.
export function expand(line) {
  const m = line.match(/<<([^>]*(?:>(?!>)[^>]*)*)>>/);
  if (!m) return [line];
  const alts = m[1].split('|');
  return alts.flatMap((a) => expand(line.slice(0, m.index) + a + line.slice(m.index + m[0].length)));
}

const num = (s) => (s === '+Inf' ? Infinity : s === '-Inf' ? -Infinity : Number(s));
function sameValue(a, b) {
  const x = num(a), y = num(b);
  if (Number.isNaN(x) || Number.isNaN(y)) return Number.isNaN(x) && Number.isNaN(y);
  if (x === y) return true;
  return Math.abs(x - y) <= 1e-9 * Math.max(Math.abs(x), Math.abs(y));
}
const key = (metric) => JSON.stringify(Object.entries(metric).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

// Returns null when the two answers agree, else a short description of the first difference.
export function diff(want, got, ordered) {
  if (want.status !== got.status) return `status ${want.status}(${want.errorType || ''}: ${want.error || ''}) vs ${got.status}(${got.errorType || ''}: ${got.error || ''})`;
  if (want.status !== 'success') return want.errorType === got.errorType ? null : `errorType ${want.errorType} vs ${got.errorType} (${got.error})`;
  const a = want.data, b = got.data;
  if (a.resultType !== b.resultType) return `resultType ${a.resultType} vs ${b.resultType}`;
  if (a.resultType === 'scalar' || a.resultType === 'string') {
    if (a.result[0] !== b.result[0]) return `time ${a.result[0]} vs ${b.result[0]}`;
    return (a.resultType === 'string' ? a.result[1] === b.result[1] : sameValue(a.result[1], b.result[1])) ? null : `value ${a.result[1]} vs ${b.result[1]}`;
  }
  if (a.result.length !== b.result.length) return `${a.result.length} series vs ${b.result.length}: ${JSON.stringify(a.result.map((s) => s.metric)).slice(0, 300)} vs ${JSON.stringify(b.result.map((s) => s.metric)).slice(0, 300)}`;
  const bm = new Map(b.result.map((s, i) => [key(s.metric), [s, i]]));
  for (const [i, s] of a.result.entries()) {
    const found = bm.get(key(s.metric));
    if (!found) return `series ${JSON.stringify(s.metric)} missing; got ${JSON.stringify(b.result.map((x) => x.metric)).slice(0, 300)}`;
    const [t, j] = found;
    if (ordered && i !== j) return `order: ${JSON.stringify(s.metric)} at ${i} vs ${j}`;
    const va = s.values || [s.value], vb = t.values || [t.value];
    if (va.length !== vb.length) return `${JSON.stringify(s.metric)}: ${va.length} points vs ${vb.length}`;
    for (let k = 0; k < va.length; k++) {
      if (va[k][0] !== vb[k][0]) return `${JSON.stringify(s.metric)}: t ${va[k][0]} vs ${vb[k][0]}`;
      if (!sameValue(va[k][1], vb[k][1])) return `${JSON.stringify(s.metric)} @${va[k][0]}: ${va[k][1]} vs ${vb[k][1]}`;
    }
  }
  return null;
}
