// Reductions of a series to one number, named as Grafana's reduceOptions.calcs and legend
// calcs name them. Nulls and NaN are skipped except where the name says otherwise.

function finite(vals) {
  return vals.filter((v) => v !== null && v !== undefined && !Number.isNaN(v));
}

function percentile(vals, p) {
  const s = finite(vals).sort((a, b) => a - b);
  if (!s.length) return null;
  const idx = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[idx];
}

const calcs = {
  lastNotNull: (v) => { const f = finite(v); return f.length ? f[f.length - 1] : null; },
  last: (v) => (v.length ? v[v.length - 1] : null),
  firstNotNull: (v) => { const f = finite(v); return f.length ? f[0] : null; },
  first: (v) => (v.length ? v[0] : null),
  mean: (v) => { const f = finite(v); return f.length ? f.reduce((a, b) => a + b, 0) / f.length : null; },
  max: (v) => { const f = finite(v); return f.length ? Math.max(...f) : null; },
  min: (v) => { const f = finite(v); return f.length ? Math.min(...f) : null; },
  sum: (v) => { const f = finite(v); return f.length ? f.reduce((a, b) => a + b, 0) : null; },
  count: (v) => finite(v).length,
  range: (v) => { const f = finite(v); return f.length ? Math.max(...f) - Math.min(...f) : null; },
  delta: (v) => {
    // the total increase, counter resets counted from zero, as Grafana's delta
    const f = finite(v);
    let d = 0;
    for (let i = 1; i < f.length; i++) d += f[i] >= f[i - 1] ? f[i] - f[i - 1] : f[i];
    return f.length ? d : null;
  },
  diff: (v) => { const f = finite(v); return f.length ? f[f.length - 1] - f[0] : null; },
  median: (v) => percentile(v, 50),
  variance: (v) => {
    const f = finite(v);
    if (!f.length) return null;
    const m = f.reduce((a, b) => a + b, 0) / f.length;
    return f.reduce((a, b) => a + (b - m) * (b - m), 0) / f.length;
  },
  stdDev: (v) => { const x = calcs.variance(v); return x === null ? null : Math.sqrt(x); },
  allIsNull: (v) => finite(v).length === 0,
  allIsZero: (v) => { const f = finite(v); return f.length > 0 && f.every((x) => x === 0); },
  changeCount: (v) => { let c = 0; for (let i = 1; i < v.length; i++) if (v[i] !== v[i - 1]) c++; return c; },
  distinctCount: (v) => new Set(finite(v)).size,
};
calcs.avg = calcs.mean;
calcs.total = calcs.sum;
calcs.current = calcs.lastNotNull;

export const CALC_NAMES = {
  lastNotNull: 'Last *', last: 'Last', firstNotNull: 'First *', first: 'First', mean: 'Mean', max: 'Max',
  min: 'Min', sum: 'Total', count: 'Count', range: 'Range', delta: 'Delta', diff: 'Difference', median: 'Median',
  variance: 'Variance', stdDev: 'StdDev', changeCount: 'Change count', distinctCount: 'Distinct count',
};

export function calcName(id) {
  const p = /^p(\d{1,2})$/.exec(id);
  if (p) return `P${p[1]}`;
  return CALC_NAMES[id] || id;
}

// reduce([1,2,null], 'mean') -> 1.5; pNN percentiles too ('p99').
export function reduce(values, calc) {
  const p = /^p(\d{1,2})$/.exec(calc);
  if (p) return percentile(values, Number(p[1]));
  const f = calcs[calc] || calcs.lastNotNull;
  return f(values);
}
