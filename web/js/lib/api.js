// Calls to tricorder's APIs: a few at a time (so a dashboard of forty panels does not open
// forty requests at once), with the API's own error message surfaced.

const MAX_CONCURRENT = 4;
let running = 0;
const waiting = [];

function acquire() {
  if (running < MAX_CONCURRENT) {
    running++;
    return Promise.resolve();
  }
  return new Promise((resolve) => waiting.push(resolve));
}

function release() {
  const next = waiting.shift();
  if (next) next();
  else running--;
}

export class ApiError extends Error {
  constructor(message, status, type) {
    super(message);
    this.status = status;
    this.type = type;
  }
}

export async function getJSON(path, params, opts = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) v.forEach((x) => qs.append(k, x));
    else qs.append(k, String(v));
  }
  const url = qs.toString() ? `${path}?${qs}` : path;
  await acquire();
  try {
    const res = await fetch(url, { signal: opts.signal, headers: { Accept: 'application/json' } });
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      throw new ApiError(`${res.status} ${res.statusText}: ${text.slice(0, 200)}`, res.status);
    }
    if (!res.ok || (body && body.status === 'error')) {
      const msg = (body && (body.error || (body.errors && body.errors[0] && body.errors[0].msg))) || `${res.status} ${res.statusText}`;
      throw new ApiError(msg, res.status, body && body.errorType);
    }
    return body;
  } finally {
    release();
  }
}

export async function getText(path, opts = {}) {
  await acquire();
  try {
    const res = await fetch(path, { signal: opts.signal });
    if (!res.ok) throw new ApiError(`${res.status} ${res.statusText}`, res.status);
    return await res.text();
  } finally {
    release();
  }
}

export function queryRange(expr, start, end, step, opts) {
  return getJSON('/api/v1/query_range', { query: expr, start, end, step }, opts);
}

export function queryInstant(expr, time, opts) {
  return getJSON('/api/v1/query', { query: expr, time }, opts);
}

// The series selectors of an expression that name histogram buckets: what
// /api/v1/query_exemplars is asked for (it wants selectors; exemplars hang on _bucket series).
export function bucketSelectors(expr) {
  const out = new Set();
  const re = /([a-zA-Z_:][a-zA-Z0-9_:]*_bucket)\s*(\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\})?/g;
  let m;
  while ((m = re.exec(expr))) out.add(m[1] + (m[2] || ''));
  return [...out];
}
