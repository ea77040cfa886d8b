// The HTTP house: heavy reads run on the work queue and stream, so the loop stays free for
// health checks and ingestion; the router answers 405 with Allow; parameters are parsed as
// Go parses them (Prometheus' and Jaeger's own servers).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { start, sleep, assertLatency } from './lib/tricorder.mjs';
import { metricsProtobuf } from './lib/payloads.mjs';

const SERIES = Number(process.env.TR_E2E_SERIES || 1_000_000);
const BATCH = 100_000;
let t;

before(async () => {
  t = await start({ args: ['--otlp-max-message-bytes', '64MiB'] });
});
after(async () => {
  await t.stop();
  t.cleanup();
});

async function post(url, body, headers = {}) {
  const r = await fetch(url, { method: 'POST', body, headers });
  return { status: r.status, text: await r.text(), headers: r.headers };
}

async function timed(fn) {
  const t0 = performance.now();
  const r = await fn();
  return { ms: performance.now() - t0, r };
}

// The machine running the suite may be shared (other builds and tests) and an OTLP export
// waits for an fsync, so the same probes are first timed without an export: when even those
// pass 50 ms, the bound becomes twice their worst time; at most 5% of the probes may pass the
// bound and none four times it (assertLatency: one fsync queued behind another is not a
// blocked loop; 115 ms once in 178 probes was seen on a loaded machine). A loop blocked by an export stalls a
// probe for the whole export (11 s for 1M series before the work queue), far past either.
// 50 ms is the product's bound (the normal build); ./dev's ASan+UBSan pass, where everything
// runs several times slower, sets TR_E2E_LATENCY_BOUND_MS higher: there the test still
// catches a loop that the export blocks (seconds), not the sanitizer's overhead.
const BOUND_MS = Number(process.env.TR_E2E_LATENCY_BOUND_MS || 50);
// n probes, and more while `until()` is false (at most for 120 s)
async function probes(t, otlp, n, until = () => true) {
  const health = [], exports = [], t0 = Date.now();
  for (let i = 0; i < n || (!until() && Date.now() - t0 < 120_000); i++) {
    const h = await timed(() => fetch(`${t.httpUrl}/healthz`).then((r) => r.text()));
    assert.equal(h.r, 'ok\n');
    health.push(h.ms);
    const o = await timed(() => post(`${t.otlpHttpUrl}/v1/metrics`, otlp, { 'Content-Type': 'application/x-protobuf' }));
    assert.equal(o.r.status, 200);
    exports.push(o.ms);
    await sleep(25);
  }
  return { health, exports };
}

test(`an export of ${SERIES} series streams while /healthz and OTLP exports are answered in under 50 ms`, async () => {
  const ts = Date.now() - 60_000;
  const t0 = Date.now();
  for (let base = 0; base < SERIES; base += BATCH) {
    const lines = [];
    for (let i = base; i < Math.min(SERIES, base + BATCH); i++) lines.push(`e2e_load{job="load",instance="i-${i}"} ${i} ${ts}`);
    const r = await post(`${t.httpUrl}/api/v1/import/prometheus`, lines.join('\n') + '\n');
    assert.equal(r.status, 204, r.text);
  }
  const loadMs = Date.now() - t0;
  const card = await (await fetch(`${t.httpUrl}/api/v1/status/tsdb`)).json();
  assert.ok(card.data.headStats.numSeries >= SERIES, JSON.stringify(card.data.headStats));

  const { body: otlp } = await metricsProtobuf(2);
  const base = await probes(t, otlp, 100);
  const max = (a) => Math.max(...a);
  const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
  const bound = (a) => (max(a) < BOUND_MS ? BOUND_MS : 2 * max(a));
  const hBound = bound(base.health), oBound = bound(base.exports);

  // the export, read slowly: the client takes a little now and then, so the reply (tens of
  // MB) stays in progress and the server's producer waits on back-pressure. The probes start
  // with the request, not with its answer: an export prepared on the loop would block them.
  let received = 0, ended = false, chunked = false, status = 0, trickle;
  const req = http.get(`${t.httpUrl}/api/v1/export/prometheus?match[]=e2e_load`);
  req.on('response', (res) => {
    status = res.statusCode;
    chunked = res.headers['transfer-encoding'] === 'chunked';
    res.on('data', (d) => { received += d.length; res.pause(); });
    res.on('end', () => { ended = true; });
    trickle = setInterval(() => res.resume(), 20);
  });
  req.on('error', () => {});
  await sleep(100); // the server has the export request
  // probing goes on until the first bytes came: selecting 1M series takes a while (on a worker)
  const { health, exports } = await probes(t, otlp, 20, () => received > 0);
  const stillStreaming = !ended;
  clearInterval(trickle);
  assert.equal(status, 200);
  console.log(`loaded ${SERIES} series in ${loadMs} ms; export: ${received} bytes so far, chunked=${chunked}; ` +
    `healthz max ${max(health).toFixed(1)} ms (bound ${hBound.toFixed(1)}), ` +
    `OTLP export max ${max(exports).toFixed(1)} ms (bound ${oBound.toFixed(1)}); ${health.length} probes (baseline max: healthz ${max(base.health).toFixed(1)}, OTLP ${max(base.exports).toFixed(1)})`);
  assert.ok(chunked, 'the export is streamed with chunked transfer encoding');
  assert.ok(stillStreaming && received > 0, `the export was still streaming during the probes (received ${received})`);
  assertLatency(assert, health, hBound, 'healthz');
  // an OTLP export is acknowledged only after its WAL fsync, so one acknowledgement can be slow
  // without the loop being blocked (295 ms once in 70 probes on a CI-style run while /healthz
  // stayed under its bound); /healthz above is the loop's check, and a store lock held by the
  // export would still stall the OTLP probes for seconds
  assertLatency(assert, exports, oBound, 'OTLP export', 20);
  assert.ok(median(health) < BOUND_MS && median(exports) < BOUND_MS, `medians under ${BOUND_MS} ms`);

  // the client goes away mid-reply: the job is cancelled and the server carries on
  req.destroy();
  await sleep(200);
  const s = await fetch(`${t.httpUrl}/api/v1/series?match[]=e2e_load{instance="i-7"}`);
  assert.deepEqual((await s.json()).data, [{ __name__: 'e2e_load', instance: 'i-7', job: 'load' }]);
  // and a whole export still completes, every series once
  const whole = await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=e2e_load&match[]={job="load"}`);
  const text = await whole.text();
  assert.equal(text.split('\n').filter(Boolean).length, SERIES);
});

test('router: 405 with Allow for a known path, 404 for an unknown one, OPTIONS 204', async () => {
  let r = await fetch(`${t.httpUrl}/api/v1/label/job/values`, { method: 'POST' });
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'GET, HEAD');
  r = await fetch(`${t.httpUrl}/api/v1/series`, { method: 'DELETE' });
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'GET, HEAD, POST');
  r = await fetch(`${t.httpUrl}/api/traces/abc`, { method: 'POST' });
  assert.equal(r.status, 404, 'jaeger-query v2: its /api/ catch-all answers other methods');
  r = await fetch(`${t.httpUrl}/api/v1/nonexistent`, { method: 'OPTIONS' });
  assert.equal(r.status, 404);
  r = await fetch(`${t.httpUrl}/api/v1/query`, { method: 'OPTIONS' }); // as Prometheus 2.42 answers
  assert.equal(r.status, 204);
  r = await fetch(`${t.httpUrl}/api/v1/labels`, { method: 'OPTIONS' });
  assert.equal(r.status, 204);
  r = await fetch(`${t.httpUrl}/api/v1/nonexistent`);
  assert.equal(r.status, 404);
  assert.equal(await r.text(), '404 page not found\n');
  r = await fetch(`${t.httpUrl}/api/v1/label/job/values?match[]=e2e_load{instance="i-1"}`);
  assert.deepEqual(await r.json(), { status: 'success', data: ['load'] });
});

test('parameters as Go parses them: semicolons refused, CR/LF kept, the body before the URL', async () => {
  let r = await fetch(`${t.httpUrl}/api/v1/labels?match[]=up;x=1`);
  assert.equal(r.status, 400);
  assert.deepEqual(await r.json(), { status: 'error', errorType: 'bad_data', error: 'error parsing form values: invalid semicolon separator in query' });
  r = await fetch(`${t.httpUrl}/api/v1/labels?match[]=%zz`);
  assert.equal((await r.json()).error, 'error parsing form values: invalid URL escape "%zz"');
  // a multi-line selector in a form body, and the body's match[] comes before the URL's
  const body = new URLSearchParams({ 'match[]': 'e2e_load{\n  instance="i-3",\r\n  job="load"\n}' }).toString();
  r = await fetch(`${t.httpUrl}/api/v1/series?match[]=${encodeURIComponent('e2e_load{instance="i-4"}')}`, {
    method: 'POST', body, headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  const got = (await r.json()).data.map((s) => s.instance);
  assert.deepEqual(got, ['i-3', 'i-4']);
  // times: NaN is a float to Go; 2023-02-30 is not a date
  r = await fetch(`${t.httpUrl}/api/v1/labels?start=2023-02-30T00:00:00Z`);
  assert.equal(r.status, 400);
  r = await fetch(`${t.httpUrl}/api/v1/labels?start=2023-01-01T00:00:60Z`);
  assert.equal(r.status, 400);
  r = await fetch(`${t.httpUrl}/api/v1/labels?start=NaN&match[]=e2e_load{instance="i-1"}`);
  assert.equal(r.status, 200);
});
