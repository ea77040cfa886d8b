// Abuse at the connection level and of the resource ceilings (issue 13, item 3): slow headers
// and bodies, many idle connections past the per-address and total caps, the gRPC lock-out
// (unauthenticated HTTP/2 connections kept busy with PINGs), accept() out of descriptors, an
// import of very many families, and writes past --memory-limit. In every case a normal client
// keeps being served within the latency bound, and the server's RSS stays under a stated bound.
// Clients bind to other loopback addresses (127.0.0.2 …) to be other client addresses.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPMetricExporter as MetricsGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { Metadata } from '@grpc/grpc-js'; // the exporter's own gRPC library (its dependency)
import { start, sleep, metricSum, assertLatency } from './lib/tricorder.mjs';
import { metricsProtobuf } from './lib/payloads.mjs';

// 100 ms is the product's bound for a normal client (normal build); ./dev's ASan+UBSan pass
// sets TR_E2E_LATENCY_BOUND_MS higher, as for house_http.
const BOUND_MS = Math.max(100, Number(process.env.TR_E2E_LATENCY_BOUND_MS || 100));
const MiB = 1 << 20;
// how much slower than the normal build this build is (the ASan pass sets the bound higher)
const SLOWER = BOUND_MS / 100;

const servers = [];
async function server(opts) {
  const t = await start(opts);
  servers.push(t);
  return t;
}
after(async () => {
  for (const t of servers) {
    const r = await t.stop();
    t.cleanup();
    assert.equal(r.code, 0, `exit ${r.code} ${r.signal}: ${t.stderr.slice(-2000)}`);
  }
});

function rssBytes(t) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${t.child.pid}/status`, 'utf8'));
  return Number(m[1]) * 1024;
}
function cpuSeconds(t) {
  const f = readFileSync(`/proc/${t.child.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 1/100 s
}

// A normal client asking /healthz every 50 ms until stop() is called; returns the latencies.
// It runs in its own process, so the test's own clients (a thousand HTTP/2 sessions set up on
// this process's loop) do not delay it. With `keepAlive`, its one connection is opened at once
// and reused (to be served while the server cannot accept new ones).
function prober(url, keepAlive = false) {
  const code = `
    const http = require('node:http');
    const agent = new http.Agent({ keepAlive: ${keepAlive}, maxSockets: 1 });
    let on = true;
    const lat = [];
    process.stdin.on('data', () => { on = false; });
    (async () => {
      while (on) {
        const t0 = performance.now();
        const body = await new Promise((resolve) => {
          http.get(${JSON.stringify(url)} + '/healthz', { agent }, (res) => {
            let b = '';
            res.on('data', (d) => { b += d; });
            res.on('end', () => resolve(b));
          }).on('error', (e) => resolve('error: ' + e.message));
        });
        if (body !== 'ok\\n') { process.stdout.write(JSON.stringify({ error: body })); process.exit(1); }
        lat.push(performance.now() - t0);
        if (lat.length === 1) process.stderr.write('ready');
        await new Promise((r) => setTimeout(r, 50));
      }
      process.stdout.write(JSON.stringify({ lat }));
      process.exit(0);
    })();`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const ready = new Promise((resolve) => child.stderr.once('data', resolve));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    ready,
    async stop() {
      child.stdin.write('x');
      await exited;
      const r = JSON.parse(out || '{"error":"no output"}');
      assert.ok(!r.error, `the normal client failed: ${r.error}`);
      return r.lat;
    },
  };
}
// The bound is the product's, or twice the worst of the baseline probes taken before the
// abuse when that is more; assertLatency (lib) allows the odd slow probe of a shared machine.
async function baseline(url) {
  const p = prober(url);
  await p.ready;
  await sleep(1000);
  const lat = await p.stop();
  return Math.max(BOUND_MS, 2 * Math.max(...lat));
}
function assertFast(lat, bound, what) {
  assertLatency(assert, lat, bound, `${what}: /healthz`);
}

// A raw TCP client: resolves `closed` with everything it read and when the server closed.
function raw(port, localAddress = '127.0.0.1') {
  const s = net.connect({ port, host: '127.0.0.1', localAddress });
  const t0 = Date.now();
  let data = '';
  s.on('data', (d) => { data += d; });
  s.on('error', () => {});
  const closed = new Promise((resolve) => s.on('close', () => resolve({ data, ms: Date.now() - t0 })));
  const connected = new Promise((resolve) => s.on('connect', resolve));
  return { s, closed, connected };
}
// Writes `text` one byte every `ms` until the socket closes.
async function trickle(c, text, ms) {
  for (const ch of text) {
    if (c.s.destroyed || c.s.writableEnded) return;
    c.s.write(ch);
    await sleep(ms);
  }
}

test('slow headers and slow bodies get 408 and are closed at their absolute deadline; keep-alive idle is not cut', async () => {
  const t = await server({ args: ['--header-timeout', '2s', '--body-timeout', '3s', '--idle-timeout', '30s'] });
  const bound = await baseline(t.httpUrl);
  const p = prober(t.httpUrl);
  await p.ready;
  const rss0 = rssBytes(t);

  // headers: the request line and one byte every 300 ms, forever
  const h = raw(t.ports.http);
  await h.connected;
  h.s.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
  trickle(h, 'X-Slow: ' + 'a'.repeat(100), 300);
  // body: complete headers, then one byte of the body every 300 ms
  const b = raw(t.ports.http);
  await b.connected;
  b.s.write('POST /api/v1/import/prometheus HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n');
  const bodySent = Date.now();
  trickle(b, 'x'.repeat(1000), 300);
  // never a byte: the header deadline runs from the accept
  const n = raw(t.ports.http);
  // keep-alive: a request, 3 s idle (past --header-timeout), another on the same socket
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const get = () => new Promise((resolve, reject) => {
    const req = http.get(`${t.httpUrl}/healthz`, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode, reused: req.reusedSocket }));
    });
    req.on('error', reject);
  });
  assert.equal((await get()).status, 200);

  const [hr, br, nr] = await Promise.all([h.closed, b.closed, n.closed]);
  assert.match(hr.data, /^HTTP\/1\.1 408 /, 'slow headers are answered 408');
  assert.match(hr.data, /Connection: close/);
  assert.ok(hr.ms >= 1800 && hr.ms < 4000, `slow headers closed after ${hr.ms} ms (deadline 2 s)`);
  assert.match(br.data, /^HTTP\/1\.1 408 /, 'a slow body is answered 408');
  assert.match(br.data, /body did not arrive in time/);
  const bodyMs = Date.now() - bodySent;
  assert.ok(bodyMs >= 2800 && bodyMs < 5000, `slow body closed ${bodyMs} ms after its headers (deadline 3 s)`);
  assert.match(nr.data, /^HTTP\/1\.1 408 /);
  assert.ok(nr.ms < 4000, `a silent connection closed after ${nr.ms} ms`);

  await sleep(Math.max(0, 3200 - 0));
  const again = await get();
  assert.equal(again.status, 200);
  assert.equal(again.reused, true, 'the idle keep-alive connection outlived --header-timeout');
  agent.destroy();

  const m = await t.metrics();
  assert.ok(metricSum(m, 'tricorder_http_request_timeouts_total', { phase: 'headers' }) >= 2);
  assert.ok(metricSum(m, 'tricorder_http_request_timeouts_total', { phase: 'body' }) >= 1);
  assertFast(await p.stop(), bound, 'during slow clients');
  assert.ok(rssBytes(t) < rss0 + 32 * MiB, 'RSS grew by less than 32 MiB');
});

test('many idle connections: the per-address cap, then the total cap, are enforced at accept and counted', async () => {
  const t = await server({ args: ['--max-connections-per-ip', '20', '--max-connections', '50'] });
  const bound = await baseline(t.httpUrl);
  const p = prober(t.httpUrl);
  await p.ready;
  const rss0 = rssBytes(t);
  const port = t.ports.otlpHttp;
  const open = async (addr, k) => {
    const cs = [];
    for (let i = 0; i < k; i++) cs.push(raw(port, addr));
    await Promise.all(cs.map((c) => c.connected));
    return cs;
  };
  const a = await open('127.0.0.2', 20);
  await sleep(200);
  // the 21st from the same address is closed at once, without a byte
  const over = raw(port, '127.0.0.2');
  const or = await Promise.race([over.closed, sleep(2000).then(() => null)]);
  assert.ok(or, 'a connection past the per-address cap is closed');
  assert.equal(or.data, '');
  // another address is still served, on the same listener
  const { body } = await metricsProtobuf(2);
  const ok = await fetch(`http://127.0.0.1:${port}/v1/metrics`, {
    method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf' },
  });
  assert.equal(ok.status, 200);
  // fill the listener to its total (20 + 20 + 10), then a fourth address is refused
  const b = await open('127.0.0.3', 20);
  const c = await open('127.0.0.4', 10);
  await sleep(200);
  const m1 = await t.metrics();
  // every open connection counts, also those that never sent a byte (the /metrics one too)
  assert.ok(metricSum(m1, 'tricorder_open_connections', { listener: 'http' }) >= 50);
  const total = raw(port, '127.0.0.5');
  const tr = await Promise.race([total.closed, sleep(2000).then(() => null)]);
  assert.ok(tr, 'a connection past the total cap is closed');
  const m = await t.metrics();
  assert.ok(metricSum(m, 'tricorder_connections_refused_total', { listener: 'otlp_http', reason: 'per_address' }) >= 1);
  assert.ok(metricSum(m, 'tricorder_connections_refused_total', { listener: 'otlp_http', reason: 'total' }) >= 1);
  for (const x of [...a, ...b, ...c]) x.s.destroy();
  await sleep(300);
  const m2 = await t.metrics();
  assert.ok(metricSum(m2, 'tricorder_open_connections', { listener: 'http' }) <= 3, 'the gauge follows the closes');
  // the listener accepts again
  const again = await fetch(`http://127.0.0.1:${port}/v1/metrics`, {
    method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf' },
  });
  assert.equal(again.status, 200);
  assertFast(await p.stop(), bound, 'with idle connections held');
  assert.ok(rssBytes(t) < rss0 + 32 * MiB);
});

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
async function collect() {
  const reader = new TestReader();
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'abuse' }), readers: [reader] });
  provider.getMeter('abuse').createCounter('abuse.real.exports').add(1, { k: 'v' });
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}

const ATTACKERS = Number(process.env.TR_E2E_GRPC_ATTACKERS || 1024);
test(`gRPC lock-out: ${ATTACKERS} unauthenticated HTTP/2 connections sending PINGs do not keep a real exporter out`, async () => {
  const token = 'abuse-token';
  const t = await server({ args: ['--ingest-token', token, '--max-connections-per-ip', '300'] });
  const bound = await baseline(t.httpUrl);
  const p = prober(t.httpUrl);
  await p.ready;
  const rss0 = rssBytes(t);
  const { body } = await metricsProtobuf(1);
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  // attackers from four addresses (ATTACKERS/4 each, under the per-address cap of 300): one
  // request without the token, then a PING every 200 ms
  const sessions = [];
  let closed = 0, unauth = 0, refused = 0;
  const pinging = [];
  for (let i = 0; i < ATTACKERS; i++) {
    const localAddress = `127.0.0.${2 + (i % 4)}`;
    const s = http2.connect(t.grpcUrl, { localAddress });
    s.on('error', () => {});
    s.on('close', () => { closed++; });
    sessions.push(s);
    const req = s.request({ ':method': 'POST', ':path': '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('response', (h) => { if (h['grpc-status'] === '16') unauth++; });
    req.on('trailers', (h) => { if (h['grpc-status'] === '16') unauth++; });
    req.on('error', () => { refused++; });
    req.resume();
    req.end(frame);
    pinging.push(setInterval(() => { if (!s.closed && !s.destroyed) s.ping(() => {}); }, 200));
  }
  // connections that send nothing but PINGs (no request at all) from a fifth address
  const idle = [];
  for (let i = 0; i < 5; i++) {
    const s = http2.connect(t.grpcUrl, { localAddress: '127.0.0.6' });
    s.on('error', () => {});
    const c = new Promise((resolve) => s.on('close', resolve));
    idle.push({ s, c, t0: Date.now() });
    pinging.push(setInterval(() => { if (!s.closed && !s.destroyed) s.ping(() => {}); }, 200));
  }
  try {
    const deadline = Date.now() + 20000;
    while (closed < ATTACKERS && Date.now() < deadline) await sleep(100);
    assert.equal(closed, ATTACKERS, `every unauthenticated connection ended (${closed} closed, ${unauth} got UNAUTHENTICATED)`);
    // the server answers every one UNAUTHENTICATED before its GOAWAY (counted below); a client
    // whose PING reaches the server after its close gets a reset that can discard that answer
    // (the server reads what has arrived before closing, which leaves only that race; 860, 988
    // and 1,024 of 1,024 read it in runs on a loaded machine): most must, all must be closed
    console.log(`# ${unauth} of ${ATTACKERS} attackers read UNAUTHENTICATED before the close`);
    assert.ok(unauth >= ATTACKERS * 0.5, `${unauth} got UNAUTHENTICATED before the close`);
    // the real exporter, with the token, exports
    const metadata = new Metadata();
    metadata.set('authorization', `Bearer ${token}`);
    const exporter = new MetricsGrpc({ url: t.grpcUrl, metadata, timeoutMillis: 10000 });
    const res = await new Promise(async (resolve) => exporter.export(await collect(), resolve));
    assert.equal(res.code, 0, `the real exporter failed: ${res.error}`);
    await exporter.shutdown();
    // PINGs are not activity: connections that never completed a request go after ~10 s
    const ends = await Promise.all(idle.map(async (x) => { await x.c; return Date.now() - x.t0; }));
    for (const ms of ends) assert.ok(ms >= 9000 && ms < 15000, `a PING-only connection closed after ${ms} ms`);
  } finally {
    for (const iv of pinging) clearInterval(iv);
    for (const s of sessions) s.destroy();
    for (const x of idle) x.s.destroy();
  }
  const m = await t.metrics();
  // (under ASan on a loaded machine some attackers' requests were not read before the 10 s
  // first-request deadline closed them: closed either way, which is what the lock-out needs)
  const authCloses = metricSum(m, 'tricorder_grpc_unauthenticated_closes_total');
  console.log(`# ${authCloses} connections closed by the server after UNAUTHENTICATED`);
  assert.ok(authCloses >= ATTACKERS * 0.5, `${authCloses} closed after UNAUTHENTICATED`);
  assertFast(await p.stop(), bound, 'during the gRPC lock-out attempt');
  assert.ok(rssBytes(t) < rss0 + 96 * MiB, `RSS ${rssBytes(t)} grew by less than 96 MiB`);
});

test('accept() out of descriptors: the listener pauses and logs once, without spinning; it accepts again after', async () => {
  const t = await server({ wrapper: ['prlimit', '--nofile=160:160', '--'] });
  // a keep-alive connection opened before: the normal client keeps being served on it
  const bound = await baseline(t.httpUrl);
  const p = prober(t.httpUrl, true);
  await p.ready;
  const logBefore = t.stderr.length;
  const cs = [];
  for (let i = 0; i < 250; i++) cs.push(raw(t.ports.http, `127.0.0.${2 + (i % 4)}`));
  await sleep(500);
  const cpu0 = cpuSeconds(t);
  await sleep(3000);
  const cpu = cpuSeconds(t) - cpu0;
  assert.ok(cpu < 0.6, `${cpu.toFixed(2)} s of CPU in 3 s while out of descriptors`);
  const log = t.stderr.slice(logBefore);
  assert.match(log, /accept failed: pausing the listener/);
  assert.ok(log.length < 4096, `${log.length} bytes of log in 3.5 s`);
  assertFast(await p.stop(), bound, 'out of descriptors (keep-alive client)');
  for (const c of cs) c.s.destroy();
  await sleep(600);
  const r = await fetch(`${t.httpUrl}/healthz`);
  assert.equal(await r.text(), 'ok\n');
});

test('an import of 160k families (# TYPE lines) finishes in seconds, the loop stays responsive, their metadata is served', async () => {
  const t = await server({});
  const bound = await baseline(t.httpUrl);
  const rss0 = rssBytes(t);
  const lines = [];
  for (let i = 0; i < 160000; i++) lines.push(`# TYPE fam_${i} counter\n`);
  const body = lines.join('');
  const p = prober(t.httpUrl);
  await p.ready;
  const t0 = Date.now();
  const r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body });
  const ms = Date.now() - t0;
  assert.equal(r.status, 204, await r.text());
  assertFast(await p.stop(), bound, 'during the import');
  assert.ok(ms < 8000 * SLOWER, `the import took ${ms} ms`);
  assert.ok(rssBytes(t) < rss0 + 160 * MiB, `RSS ${rssBytes(t)} after 160k families`);
  const md = await (await fetch(`${t.httpUrl}/api/v1/metadata?metric=fam_159999`)).json();
  assert.deepEqual(md.data.fam_159999?.[0]?.type, 'counter');
  const h = await fetch(`${t.httpUrl}/healthz`);
  assert.equal(h.status, 200);
});

test('writes past --memory-limit are refused retryably (503 + Retry-After, RESOURCE_EXHAUSTED with RetryInfo) and counted; reads still work', async () => {
  // the ceiling: 64 MiB above what this build takes at start (ASan takes far more)
  const probe = await start({ args: ['--memory-limit', '0'] });
  await sleep(300);
  const LIMIT = Math.ceil(rssBytes(probe) / MiB) * MiB + 64 * MiB;
  await probe.stop();
  probe.cleanup();
  // --max-series 0: the series cap (auto: the limit / 2 KiB) would refuse new series first
  const t = await server({ args: ['--memory-limit', String(LIMIT), '--max-series', '0'] });
  // series until the ceiling: 20k new series per import
  let status = 0, batches = 0, lastText = '';
  for (; batches < 200 && status !== 503; batches++) {
    const lines = [];
    for (let i = 0; i < 20000; i++) lines.push(`mem_series{batch="${batches}",i="${i}",pad="${'p'.repeat(40)}"} ${i}`);
    const r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: lines.join('\n') + '\n' });
    status = r.status;
    lastText = await r.text();
    if (status === 503) assert.equal(r.headers.get('retry-after'), '5');
    else assert.equal(status, 204, lastText);
  }
  assert.equal(status, 503, `no refusal after ${batches} batches`);
  // (the imports that filled it each held the loop while appending 20k series: the normal
  // client is measured from here, at the ceiling)
  const bound = await baseline(t.httpUrl);
  const p = prober(t.httpUrl);
  await p.ready;
  assert.match(lastText, /memory limit/);
  assert.ok(rssBytes(t) < LIMIT + 64 * MiB, `RSS ${rssBytes(t)} stays near the limit ${LIMIT}`);
  // OTLP/HTTP: 503 with Retry-After
  const { body } = await metricsProtobuf(2);
  const o = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf' } });
  assert.equal(o.status, 503);
  assert.equal(o.headers.get('retry-after'), '5');
  // gRPC: RESOURCE_EXHAUSTED with a RetryInfo detail
  const s = http2.connect(t.grpcUrl);
  s.on('error', () => {});
  const frame = Buffer.alloc(5 + body.length);
  frame.writeUInt32BE(body.length, 1);
  body.copy(frame, 5);
  const g = await new Promise((resolve, reject) => {
    const req = s.request({ ':method': 'POST', ':path': '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export', 'content-type': 'application/grpc', te: 'trailers' });
    let hdr = {};
    req.on('response', (h) => { hdr = { ...hdr, ...h }; });
    req.on('trailers', (h) => { hdr = { ...hdr, ...h }; });
    req.on('end', () => resolve(hdr));
    req.on('error', reject);
    req.resume();
    req.end(frame);
  });
  s.close();
  assert.equal(g['grpc-status'], '8');
  const details = Buffer.from(g['grpc-status-details-bin'] || '', 'base64');
  assert.ok(details.includes(Buffer.from('type.googleapis.com/google.rpc.RetryInfo')), 'RetryInfo in grpc-status-details-bin');
  // counted; reads and the server still fine
  const m = await t.metrics();
  assert.ok(metricSum(m, 'tricorder_memory_limit_refusals_total') >= 3);
  assert.equal(metricSum(m, 'tricorder_memory_limit_bytes'), LIMIT);
  const q = await fetch(`${t.httpUrl}/api/v1/query?query=count(mem_series)`);
  assert.equal(q.status, 200);
  const n = Number((await q.json()).data.result[0].value[1]);
  assert.ok(n >= 20000, `${n} series stored before the ceiling`);
  assertFast(await p.stop(), bound, 'at the memory ceiling');
});
