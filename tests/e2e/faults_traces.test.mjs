// Faults around the trace store, each with its exact expected outcome:
// - SIGTERM with keep-alive clients: every request sent before the signal is answered, the
//   last reply of a connection that was busy says `Connection: close`, idle keep-alive
//   connections are closed, the process exits 0 within --shutdown-timeout, and every export
//   answered 200 is stored.
// - a bit flip inside a span chunk of traces.db: the chunk is never served (Jaeger answers
//   the rest, with an `errors` entry naming the chunk), it is quarantined (metric, log line
//   with its id), the other traces come back exactly as sent.
// - a bit flip in traces.db-wal after kill -9: SQLite's frame checksums stop recovery at the
//   damaged frame; the exports committed before it come back exactly, the later ones are
//   absent (never wrong), and tricorder logs how many frames were dropped.
// - traces.db-wal cut short after kill -9: the commits whole before the cut come back
//   exactly, the cut one is absent, and the loss is logged (the WAL index, -shm, of the
//   process that died counted more committed frames than are left).
// - a full disk (an 8 MiB tmpfs): exports are refused with 503 / UNAVAILABLE while it is
//   full, the failure is logged with its errno (rate-limited) and counted in
//   tricorder_storage_errors_total{store="traces",kind="disk_full"}; once space is freed,
//   exports are stored again.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readFileSync, writeFileSync, existsSync, rmSync, mkdtempSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind, context, trace } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';

import { start, sleep, metricSum } from './lib/tricorder.mjs';
import { tracesProtobuf } from './lib/payloads.mjs';

// One trace of `n` spans in service `svc`; returns { spans, traceId, names }.
function makeTrace(svc, n = 3) {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': svc }),
    spanProcessors: [new SimpleSpanProcessor(mem)],
  });
  const tracer = provider.getTracer('faults');
  const t0 = Date.now() - 2000;
  const root = tracer.startSpan(`root-${svc}`, { kind: SpanKind.SERVER, startTime: t0, attributes: { 'k.svc': svc } });
  const parent = trace.setSpan(context.active(), root);
  for (let i = 1; i < n; i++) {
    const c = tracer.startSpan(`child-${svc}-${i}`, { startTime: t0 + i, attributes: { idx: i } }, parent);
    c.end(t0 + i + 1);
  }
  root.end(t0 + 50);
  const spans = mem.getFinishedSpans();
  return { spans, traceId: root.spanContext().traceId, names: spans.map((s) => s.name).sort() };
}

async function postTraces(t, spans) {
  const body = Buffer.from(ProtobufTraceSerializer.serializeRequest(spans));
  const r = await fetch(`${t.otlpHttpUrl}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/x-protobuf' }, body });
  await r.arrayBuffer();
  return r.status;
}

async function jaeger(t, path) {
  const r = await fetch(t.httpUrl + path);
  const text = await r.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: r.status, body };
}

// The spans of a Jaeger trace as sorted operation names, checked against what was sent.
function assertExact(jt, sent) {
  assert.equal(jt.traceID, sent.traceId);
  assert.deepEqual(jt.spans.map((s) => s.operationName).sort(), sent.names, 'served spans are exactly those sent');
  const ids = new Set(sent.spans.map((s) => s.spanContext().spanId));
  for (const s of jt.spans) assert.ok(ids.has(s.spanID), `span ${s.spanID} was sent`);
}

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
function offsetsOf(buf, needle) {
  const out = [];
  for (let i = buf.indexOf(needle); i >= 0; i = buf.indexOf(needle, i + 1)) out.push(i);
  return out;
}

async function waitFor(fn, ms = 5000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) return v;
    await sleep(50);
  }
}

// ---- SIGTERM with keep-alive clients ----

// A raw HTTP/1.1 keep-alive client: send() writes one request; responses are parsed as they
// come (Content-Length bodies) into `replies` with their headers.
function rawClient(port) {
  const c = { replies: [], sent: 0, closedByServer: false, error: null, buf: Buffer.alloc(0) };
  c.sock = connect(port, '127.0.0.1');
  c.ready = new Promise((r) => c.sock.once('connect', r));
  c.closed = new Promise((r) => c.sock.once('close', r));
  c.sock.on('end', () => { c.closedByServer = true; });
  c.sock.on('error', (e) => { c.error = e; });
  c.waiters = [];
  c.sock.on('data', (d) => {
    c.buf = Buffer.concat([c.buf, d]);
    for (;;) {
      const he = c.buf.indexOf('\r\n\r\n');
      if (he < 0) return;
      const head = c.buf.subarray(0, he).toString('latin1').split('\r\n');
      const status = Number(head[0].split(' ')[1]);
      const headers = {};
      for (const l of head.slice(1)) { const i = l.indexOf(':'); headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim(); }
      const len = Number(headers['content-length'] || 0);
      if (c.buf.length < he + 4 + len) return;
      c.replies.push({ status, headers, at: Date.now() });
      c.buf = c.buf.subarray(he + 4 + len);
      const w = c.waiters.shift();
      if (w) w();
    }
  });
  c.send = (req) => { c.sent++; c.sock.write(req); };
  c.roundTrip = (req) => new Promise((r) => { c.waiters.push(r); c.send(req); });
  return c;
}

function exportRequest() {
  const { body } = tracesProtobuf(1);
  return Buffer.concat([Buffer.from(
    `POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${body.length}\r\n\r\n`), body]);
}

test('SIGTERM with keep-alive clients: every request sent before it is answered, the last reply says Connection: close', async () => {
  const t = await start({ args: ['--shutdown-timeout', '5s'] });
  const busy = [0, 1, 2].map(() => rawClient(t.ports.otlpHttp));
  const idle = rawClient(t.ports.http);
  await Promise.all([...busy, idle].map((c) => c.ready));
  for (let round = 0; round < 5; round++)
    for (const c of busy) await c.roundTrip(exportRequest());
  await idle.roundTrip('GET /api/services HTTP/1.1\r\nHost: x\r\n\r\n');
  for (const c of busy) for (const r of c.replies) assert.equal(r.status, 200);
  assert.equal(idle.replies[0].headers.connection, undefined, 'keep-alive before the signal');
  // one more request each: on the first connection written whole just before the signal; on
  // the others all but its last bytes before the signal and the rest 50 ms after (a request
  // being read when the signal comes is waited for, then answered)
  busy[0].send(exportRequest());
  const tails = [];
  for (const c of busy.slice(1)) {
    const req = exportRequest();
    c.send(req.subarray(0, req.length - 8));
    tails.push(() => c.sock.write(req.subarray(req.length - 8)));
  }
  const t0 = Date.now();
  t.child.kill('SIGTERM');
  await sleep(50);
  for (const f of tails) f();
  const exit = await t.exited;
  const ms = Date.now() - t0;
  await Promise.all([...busy, idle].map((c) => c.closed));
  assert.equal(exit.code, 0, t.stderr);
  assert.ok(ms < 5000, `exited in ${ms} ms, within --shutdown-timeout`);
  for (const c of busy) {
    assert.equal(c.replies.length, c.sent, `every request sent before SIGTERM answered (${c.replies.length}/${c.sent})`);
    const last = c.replies[c.replies.length - 1];
    assert.equal(last.status, 200, 'the request read before the signal is stored and acknowledged');
    // a reply written after the signal ends keep-alive; busy[0]'s may have gone out before
    // the signal was handled (then its connection was closed as idle)
    if (c !== busy[0]) assert.equal(last.headers.connection, 'close', 'the last reply ends keep-alive');
    for (const r of c.replies.slice(0, -1)) assert.notEqual(r.headers.connection, 'close');
    assert.ok(c.closedByServer, 'then the server closes the connection');
    assert.equal(c.error, null);
  }
  assert.ok(idle.closedByServer, 'an idle keep-alive connection is closed');
  assert.equal(idle.error, null);
  // every acknowledged export is stored
  const t2 = await start({ dataDir: t.dataDir });
  try {
    const { body } = await jaeger(t2, '/api/traces?service=payloads&limit=1000&lookback=1h');
    const spans = body.data.reduce((n, tr) => n + tr.spans.length, 0);
    assert.equal(spans, 3 * 6 * 2, 'the two spans of every acknowledged export');
  } finally {
    await t2.stop();
    rmSync(t.dataDir, { recursive: true, force: true });
  }
});

// ---- bit flips ----

async function exportServices(t, svcs) {
  const sent = [];
  for (const svc of svcs) {
    const tr = makeTrace(svc);
    assert.equal(await postTraces(t, tr.spans), 200);
    sent.push(tr);
  }
  return sent;
}

test('a bit flip inside a span chunk of traces.db: never served, the rest is, the chunk is quarantined, counted and logged', async () => {
  const t = await start({ keepDataDir: true });
  const sent = await exportServices(t, ['alpha', 'beta', 'gamma']); // one chunk each: ids 1, 2, 3
  assert.equal((await t.stop()).code, 0);
  const path = join(t.dataDir, 'traces.db');
  assert.ok(!existsSync(`${path}-wal`) || readFileSync(`${path}-wal`).length === 0, 'a clean stop checkpoints the WAL');
  const file = readFileSync(path);
  const blobs = offsetsOf(file, ZSTD_MAGIC);
  assert.equal(blobs.length, 3, 'three chunk blobs (zstd frames) in the file');
  file[blobs[1] + 12] ^= 0x04; // inside the second chunk's compressed bytes
  // and in the operation list: the row of gamma's root operation reads "Root-gamma"
  const op = offsetsOf(file, Buffer.from('root-gamma'));
  assert.ok(op.length >= 1, 'the operation row is in the file');
  for (const o of op) file[o] ^= 0x20;
  writeFileSync(path, file);

  const t2 = await start({ dataDir: t.dataDir });
  try {
    const ids = sent.map((s) => s.traceId);
    const r = await jaeger(t2, `/api/traces?traceID=${ids.join('&traceID=')}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.data.length, 2, 'the two intact traces are served');
    const served = new Map(r.body.data.map((d) => [d.traceID, d]));
    assert.ok(!served.has(sent[1].traceId), 'the damaged chunk\'s trace is not served');
    assertExact(served.get(sent[0].traceId), sent[0]);
    assertExact(served.get(sent[2].traceId), sent[2]);
    const dmg = r.body.errors.filter((e) => /chunk 2 is damaged/.test(e.msg));
    assert.equal(dmg.length, 1, `Jaeger's errors name the chunk: ${JSON.stringify(r.body.errors)}`);
    // a search over everything never returns the damaged spans either
    for (const [i, svc] of ['alpha', 'beta', 'gamma'].entries()) {
      const q = await jaeger(t2, `/api/traces?service=${svc}&lookback=1h`);
      assert.equal(q.status, 200);
      if (svc === 'beta') assert.equal(q.body.data.length, 0);
      else assertExact(q.body.data[0], sent[i]);
    }
    // quarantined: counted, logged once with its id; then simply absent
    const m = await waitFor(async () => metricSum(await t2.metrics(), 'tricorder_traces_chunks_quarantined_total') === 1);
    assert.ok(m, 'tricorder_traces_chunks_quarantined_total is 1');
    const lines = t2.stderr.split('\n').filter((l) => l.includes('damaged chunk quarantined'));
    assert.equal(lines.length, 1, t2.stderr);
    assert.match(lines[0], /chunk=2 reason="checksum mismatch"/);
    // the damaged operation row is never listed; the intact ones are
    const ops = await jaeger(t2, '/api/services/gamma/operations');
    assert.equal(ops.status, 200);
    assert.ok(!ops.body.data.includes('Root-gamma'), `a damaged name is never served: ${ops.body.data}`);
    assert.deepEqual(ops.body.data.filter((n) => !sent[2].names.includes(n)), [], 'only names that were sent');
    assert.ok(ops.body.data.includes('child-gamma-1'));
    assert.match(t2.stderr, /operation row fails its checksum; left out of the lists" service="gamma" operation="Root-gamma"/);
    const again = await jaeger(t2, `/api/traces/${sent[1].traceId}`);
    assert.equal(again.status, 404, 'after quarantine the trace is simply not found');
    const one = await jaeger(t2, `/api/traces/${sent[0].traceId}`);
    assertExact(one.body.data[0], sent[0]);
  } finally {
    await t2.stop();
  }
  // kept, not deleted: after a restart the quarantine table still holds the chunk
  const t3 = await start({ dataDir: t.dataDir });
  try {
    assert.equal(metricSum(await t3.metrics(), 'tricorder_traces_quarantine_chunks'), 1);
    assert.equal(metricSum(await t3.metrics(), 'tricorder_traces_chunks_quarantined_total'), 0, 'nothing new to quarantine');
  } finally {
    await t3.stop();
    rmSync(t.dataDir, { recursive: true, force: true });
  }
});

test('a bit flip in traces.db-wal after kill -9: the commits before it come back exactly, the later ones are absent, the loss is logged', async () => {
  const t = await start({ keepDataDir: true });
  const sent = await exportServices(t, ['alpha', 'beta', 'gamma']); // three commits
  await t.kill9();
  const wal = join(t.dataDir, 'traces.db-wal');
  const file = readFileSync(wal);
  // the chunk table's leaf page is written again by every commit: blob 1 appears in the
  // first commit's frame, blobs 1-2 in the second's, 1-3 in the third's
  const blobs = offsetsOf(file, ZSTD_MAGIC);
  assert.equal(blobs.length, 6, `1 + 2 + 3 copies of the blobs in the WAL, found ${blobs.length}`);
  file[blobs[1] + 12] ^= 0x04; // in the second commit's copy of the page
  writeFileSync(wal, file);

  const t2 = await start({ dataDir: t.dataDir });
  try {
    const ids = sent.map((s) => s.traceId);
    const r = await jaeger(t2, `/api/traces?traceID=${ids.join('&traceID=')}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.data.length, 1, 'only the commit before the damaged frame is kept');
    assertExact(r.body.data[0], sent[0]);
    for (const svc of ['beta', 'gamma']) {
      const q = await jaeger(t2, `/api/traces?service=${svc}&lookback=1h`);
      assert.equal(q.body.data.length, 0, 'the dropped commits are absent, never half-served');
    }
    const line = t2.stderr.split('\n').find((l) => l.includes('trace WAL damaged'));
    assert.ok(line, t2.stderr);
    assert.match(line, /commits_dropped=2 commits_kept=\d+/);
    const copy = line.match(/copy="([^"]+)"/)[1];
    assert.ok(existsSync(copy), 'a copy of the damaged WAL is kept');
    assert.equal(metricSum(await t2.metrics(), 'tricorder_storage_errors_total', { store: 'traces', kind: 'wal_corrupt' }), 1);
    // new exports are stored after the recovery
    const fresh = makeTrace('delta');
    assert.equal(await postTraces(t2, fresh.spans), 200);
    assertExact((await jaeger(t2, `/api/traces/${fresh.traceId}`)).body.data[0], fresh);
  } finally {
    await t2.stop();
    rmSync(t.dataDir, { recursive: true, force: true });
  }
});

for (const cut of ['last frame', 'to zero bytes']) {
  test(`traces.db-wal cut short (${cut}) after kill -9: the commits whole before the cut come back exactly, the others are absent, the loss is logged`, async () => {
    const t = await start({ keepDataDir: true });
    const sent = await exportServices(t, ['alpha', 'beta', 'gamma']); // three commits
    await t.kill9();
    const wal = join(t.dataDir, 'traces.db-wal');
    const file = readFileSync(wal);
    const frame = 24 + file.readUInt32BE(8);
    assert.equal((file.length - 32) % frame, 0);
    // 'last frame': the last commit loses its commit frame; 'to zero bytes': every commit
    writeFileSync(wal, cut === 'last frame' ? file.subarray(0, file.length - frame) : Buffer.alloc(0));
    const kept = cut === 'last frame' ? 2 : 0;

    const t2 = await start({ dataDir: t.dataDir });
    try {
      const r = await jaeger(t2, `/api/traces?traceID=${sent.map((s) => s.traceId).join('&traceID=')}`);
      assert.equal(r.body.data.length, kept);
      const served = new Map(r.body.data.map((d) => [d.traceID, d]));
      for (let i = 0; i < 3; i++) {
        if (i < kept) assertExact(served.get(sent[i].traceId), sent[i]);
        else assert.ok(!served.has(sent[i].traceId), 'a cut commit is absent');
      }
      const line = t2.stderr.split('\n').find((l) => l.includes('trace WAL shorter than its index'));
      assert.ok(line, t2.stderr);
      const m = line.match(/frames_committed=(\d+) frames_present=(\d+)/);
      assert.ok(Number(m[1]) > Number(m[2]), line);
      assert.equal(metricSum(await t2.metrics(), 'tricorder_storage_errors_total', { store: 'traces', kind: 'wal_corrupt' }), 1);
      // and ingest goes on
      const fresh = makeTrace('delta');
      assert.equal(await postTraces(t2, fresh.spans), 200);
      assertExact((await jaeger(t2, `/api/traces/${fresh.traceId}`)).body.data[0], fresh);
    } finally {
      await t2.stop();
      rmSync(t.dataDir, { recursive: true, force: true });
    }
  });
}

// ---- a full disk ----

function randomSpans(n) {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'filler' }),
    spanProcessors: [new SimpleSpanProcessor(mem)],
  });
  const tracer = provider.getTracer('faults');
  for (let i = 0; i < n; i++) {
    const s = tracer.startSpan(`op-${i}`, { attributes: { noise: Buffer.from(Array.from({ length: 600 }, () => Math.random() * 256)).toString('base64') } });
    s.end();
  }
  return mem.getFinishedSpans();
}

test('a full disk (8 MiB tmpfs): exports refused with 503 and UNAVAILABLE, logged with errno (rate-limited) and counted; stored again once freed', async (ctx) => {
  const mnt = mkdtempSync(join(tmpdir(), 'tricorder-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
  } catch (e) {
    rmSync(mnt, { recursive: true, force: true });
    ctx.skip(`cannot mount a tmpfs here (${e.message.split('\n')[0]}): needs root`);
    return;
  }
  let t;
  try {
    t = await start({ dataDir: join(mnt, 'data'), args: ['--log-level', 'info'] });
    const before = makeTrace('before');
    assert.equal(await postTraces(t, before.spans), 200);
    // fill the file system
    const filler = join(mnt, 'filler');
    const chunk = Buffer.alloc(64 * 1024, 0x5a);
    let fillerBytes = 0;
    for (;;) {
      try { writeFileSync(filler, chunk, { flag: 'a' }); fillerBytes += chunk.length; } catch { break; }
    }
    assert.ok(fillerBytes > 1 << 20, 'the filler took the free space');
    const statuses = [];
    for (let i = 0; i < 40; i++) statuses.push(await postTraces(t, randomSpans(50)));
    const refused = statuses.filter((s) => s === 503).length;
    assert.ok(refused >= 10, `exports are refused once the disk is full: ${statuses.join(',')}`);
    assert.ok(statuses.every((s) => s === 200 || s === 503), `only 200 or 503: ${statuses.join(',')}`);
    // gRPC: UNAVAILABLE (14), retryable
    const { default: http2 } = await import('node:http2');
    const { body } = tracesProtobuf(1);
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), body]);
    frame.writeUInt32BE(body.length, 1);
    const c = http2.connect(t.grpcUrl);
    c.on('error', () => {});
    const grpcStatus = await new Promise((resolve) => {
      const req = c.request({ ':method': 'POST', ':path': '/opentelemetry.proto.collector.trace.v1.TraceService/Export', 'content-type': 'application/grpc', te: 'trailers' });
      let st;
      req.on('response', (h) => { if (h['grpc-status'] !== undefined) st = Number(h['grpc-status']); });
      req.on('trailers', (h) => { st = Number(h['grpc-status']); });
      req.on('data', () => {});
      req.on('close', () => resolve(st));
      req.end(frame);
    });
    c.close();
    assert.equal(grpcStatus, 14, 'gRPC answers UNAVAILABLE');
    // logged with errno, rate-limited; counted
    const lines = t.stderr.split('\n').filter((l) => l.includes('msg="trace store write failed"'));
    assert.ok(lines.length >= 1, t.stderr);
    assert.match(lines[0], /kind=disk_full .*errno=28 errno_text="No space left on device"/);
    assert.ok(lines.length <= 3, `rate-limited: ${lines.length} lines for ${refused + 1} failures`);
    const errs = metricSum(await t.metrics(), 'tricorder_storage_errors_total', { store: 'traces', kind: 'disk_full' });
    assert.ok(errs >= refused, `tricorder_storage_errors_total{store="traces",kind="disk_full"} = ${errs}`);
    // freed: stored again, and what was acknowledged before is intact
    rmSync(filler);
    const after = makeTrace('after');
    const st = await waitFor(async () => (await postTraces(t, after.spans)) === 200, 5000);
    assert.ok(st, 'exports are stored again once space is freed');
    assertExact((await jaeger(t, `/api/traces/${after.traceId}`)).body.data[0], after);
    assertExact((await jaeger(t, `/api/traces/${before.traceId}`)).body.data[0], before);
  } finally {
    if (t) await t.stop();
    execFileSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});
