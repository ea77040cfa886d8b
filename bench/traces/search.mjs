// Search latency half of the trace-store benchmark: runs the Jaeger searches Grafana and the
// Jaeger UI make (by service, operation, tag, duration, trace id) against a filled store and
// prints p50/p95 per kind. usage: node search.mjs HTTP_URL IDS_FILE [ROUNDS]
import { readFileSync } from 'node:fs';

const [url, idsFile, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 40);
const ids = readFileSync(idsFile, 'utf8').split('\n').filter(Boolean);
const services = ['scotty', 'scotty-api', 'scotty-runner', 'scotty-proxy'];
const ops = ['GET /api/v1/health', 'POST /api/v1/authenticated/apps/create', 'GET /api/v1/authenticated/apps/list', 'run_app', 'transition'];
const endUs = Date.now() * 1000, startUs = endUs - 3 * 3600 * 1e6;
const win = `start=${startUs}&end=${endUs}&limit=20`;
const kinds = {
  service: (i) => `/api/traces?service=${services[i % 4]}&${win}`,
  operation: (i) => `/api/traces?service=${services[i % 4]}&operation=${encodeURIComponent(ops[i % ops.length])}&${win}`,
  tag: (i) => `/api/traces?service=${services[i % 4]}&tags=${encodeURIComponent(JSON.stringify({ 'app.name': `app-${(i * 7) % 200}` }))}&${win}`,
  error: (i) => `/api/traces?service=${services[i % 4]}&tags=${encodeURIComponent('{"error":"true"}')}&${win}`,
  duration: (i) => `/api/traces?service=${services[i % 4]}&minDuration=2s&${win}`,
  traceById: (i) => `/api/traces/${ids[(i * 13) % ids.length]}`,
};
const pct = (a, p) => a[Math.min(a.length - 1, Math.floor(a.length * p))];
// The server's own view: tricorder_traces_search_duration_seconds buckets (upper bounds).
async function buckets() {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new Map();
  for (const line of text.split('\n')) {
    const g = line.match(/^tricorder_traces_search_duration_seconds_bucket\{le="([^"]+)"\} (\S+)/);
    if (g) m.set(g[1], Number(g[2]));
  }
  return m;
}
function serverPct(b0, b1, p) {
  const les = [...b1.keys()];
  const total = b1.get('+Inf') - b0.get('+Inf');
  for (const le of les) if (b1.get(le) - b0.get(le) >= total * p) return le === '+Inf' ? 'inf' : `<=${Number(le) * 1000}`;
  return '?';
}
for (const [kind, mk] of Object.entries(kinds)) {
  const ms = [];
  let traces = 0;
  const b0 = await buckets();
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    const r = await fetch(url + mk(i));
    const body = await r.json();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (r.status !== 200) throw new Error(`${kind}: HTTP ${r.status} ${JSON.stringify(body)}`);
    traces += body.data.length;
  }
  ms.sort((a, b) => a - b);
  const b1 = await buckets();
  console.log(`${kind.padEnd(10)} client p50 ${pct(ms, 0.5).toFixed(1).padStart(6)} ms  p95 ${pct(ms, 0.95).toFixed(1).padStart(6)} ms` +
    `  | server store time p50 ${serverPct(b0, b1, 0.5)} ms p95 ${serverPct(b0, b1, 0.95)} ms  (${rounds} queries, ${(traces / rounds).toFixed(1)} traces/answer)`);
}
