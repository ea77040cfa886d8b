// OTLP/gRPC transport: requests crafted with Node's own HTTP/2 client (and raw TCP where a
// well-behaved client cannot misbehave enough) get the gRPC answers the spec and grpc-go give,
// while good clients on other connections keep exporting and the process stays up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { connect } from 'node:net';
import { gzipSync } from 'node:zlib';

import { start, metricSum, sleep } from './lib/tricorder.mjs';
import { metricsProtobuf, tracesProtobuf, pbField } from './lib/payloads.mjs';

const TRACES = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const METRICS = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';
const LOGS = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
const MAX = 64 * 1024;

let t;
const clients = [];
// Misbehaving peers set up before the other tests, so that their timeouts run meanwhile.
let stalledPreface; // { socket, closed: Promise<ms since start> }
let stalledStreams; // Promise<[results]> of 100 streams that never send DATA

before(async () => {
  t = await start({ args: ['--otlp-max-message-bytes', '64KiB'] });
  stalledPreface = rawClient();
  stalledPreface.socket.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0))]));
  const idle = h2();
  stalledStreams = Promise.all(Array.from({ length: 100 }, () => call(idle, TRACES, null, { end: false })));
  stalledStreams.catch(() => {}); // awaited by its own test (absent from a filtered run)
});

after(async () => {
  for (const c of clients) c.destroy();
  const r = await t.stop();
  t.cleanup();
  assert.equal(r.code, 0, `exit ${r.code} ${r.signal}: ${t.stderr}`);
});

function h2() {
  const c = http2.connect(t.grpcUrl);
  c.on('error', () => {});
  clients.push(c);
  return c;
}

// A gRPC length-prefixed message.
function grpcFrame(msg, compressed = 0, declared = msg.length) {
  const p = Buffer.alloc(5);
  p[0] = compressed;
  p.writeUInt32BE(declared, 1);
  return Buffer.concat([p, msg]);
}

// One unary call. `body` is written as is (already framed) unless null. Resolves with what
// came back: HTTP status, grpc-status and grpc-message (from trailers or a trailers-only
// response), the DATA bytes and the RST_STREAM code.
function call(client, path, body, { headers = {}, end = true } = {}) {
  return new Promise((resolve, reject) => {
    const req = client.request({
      ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers,
    });
    let res = null;
    let trailers = {};
    const chunks = [];
    req.on('response', (h) => { res = h; });
    req.on('trailers', (h) => { trailers = h; });
    req.on('data', (d) => chunks.push(d));
    req.on('error', () => {});
    req.on('close', () => {
      if (!res) return reject(new Error(`stream closed without a response (RST_STREAM ${req.rstCode})`));
      const all = { ...res, ...trailers };
      resolve({
        httpStatus: res[':status'],
        headers: res,
        trailers,
        grpcStatus: all['grpc-status'] === undefined ? undefined : Number(all['grpc-status']),
        grpcMessage: all['grpc-message'] ? decodeURIComponent(all['grpc-message']) : '',
        body: Buffer.concat(chunks),
        rstCode: req.rstCode,
      });
    });
    if (body) req.write(body);
    if (end) req.end();
  });
}

async function exportOk(client = h2()) {
  const { body, spans } = tracesProtobuf(1);
  const before = metricSum(await t.metrics(), 'tricorder_otlp_spans_accepted_total');
  const r = await call(client, TRACES, grpcFrame(body));
  assert.equal(r.grpcStatus, 0, `a good export must succeed: ${r.grpcMessage}`);
  const after = metricSum(await t.metrics(), 'tricorder_otlp_spans_accepted_total');
  assert.equal(after - before, spans);
}

async function stillServing() {
  await exportOk();
  const h = await fetch(`${t.httpUrl}/healthz`);
  assert.equal(h.status, 200);
}

// ---- raw HTTP/2 for peers Node's client will not imitate ----
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
function frame(type, flags, stream, payload) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}
function hpackInt(n, prefixBits, first = 0) {
  const max = (1 << prefixBits) - 1;
  if (n < max) return Buffer.from([first | n]);
  const out = [first | max];
  n -= max;
  while (n >= 128) { out.push((n & 127) | 128); n >>= 7; }
  out.push(n);
  return Buffer.from(out);
}
// A literal header field without indexing, new name, no Huffman.
function hpackLiteral(name, value) {
  const n = Buffer.from(name), v = Buffer.from(value);
  return Buffer.concat([Buffer.from([0]), hpackInt(n.length, 7), n, hpackInt(v.length, 7), v]);
}
function requestBlock(path, extra = []) {
  return Buffer.concat([
    hpackLiteral(':method', 'POST'), hpackLiteral(':scheme', 'http'), hpackLiteral(':path', path),
    hpackLiteral(':authority', 'localhost'), hpackLiteral('content-type', 'application/grpc'),
    hpackLiteral('te', 'trailers'), ...extra.map(([k, v]) => hpackLiteral(k, v)),
  ]);
}
// A TCP client that records the frames the server sends and when the server closes.
function rawClient() {
  const socket = connect(t.ports.grpc, '127.0.0.1');
  const t0 = Date.now();
  let buf = Buffer.alloc(0);
  const frames = [];
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      frames.push({ type: buf[3], flags: buf[4], stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) });
      buf = buf.subarray(9 + len);
    }
  });
  socket.on('error', () => {});
  const closed = new Promise((resolve) => socket.on('close', () => resolve(Date.now() - t0)));
  return { socket, frames, closed };
}
const GOAWAY = 7, RST_STREAM = 3;

function withTimeout(p, ms, what) {
  let timer;
  const expire = new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms); });
  return Promise.race([p, expire]).finally(() => clearTimeout(timer));
}

// ------------------------------------------------------------------------------------------

test('a valid trace export answers 0 with an ExportTraceServiceResponse and is counted', async () => {
  const { body, spans } = tracesProtobuf(3);
  const m0 = await t.metrics();
  const r = await call(h2(), TRACES, grpcFrame(body));
  assert.equal(r.httpStatus, 200);
  assert.equal(r.headers['content-type'], 'application/grpc');
  assert.equal(r.headers['grpc-accept-encoding'], 'gzip');
  assert.equal(r.grpcStatus, 0, r.grpcMessage);
  assert.equal(r.trailers['grpc-status'], '0', 'status must come in trailers after the message');
  // one length-prefixed, uncompressed message: an empty response (no partial_success)
  assert.equal(r.body[0], 0);
  assert.equal(r.body.readUInt32BE(1), r.body.length - 5);
  const m1 = await t.metrics();
  assert.equal(metricSum(m1, 'tricorder_otlp_spans_accepted_total') - metricSum(m0, 'tricorder_otlp_spans_accepted_total'), spans);
  const reqs = (m) => metricSum(m, 'tricorder_otlp_requests_total', { transport: 'grpc', signal: 'traces' });
  assert.equal(reqs(m1) - reqs(m0), 1);
});

test('a valid metrics export answers 0 and counts the points', async () => {
  const { body, points } = await metricsProtobuf(4);
  const m0 = await t.metrics();
  const r = await call(h2(), METRICS, grpcFrame(body));
  assert.equal(r.grpcStatus, 0, r.grpcMessage);
  const m1 = await t.metrics();
  assert.equal(metricSum(m1, 'tricorder_otlp_points_accepted_total') - metricSum(m0, 'tricorder_otlp_points_accepted_total'), points);
  const reqs = (m) => metricSum(m, 'tricorder_otlp_requests_total', { transport: 'grpc', signal: 'metrics' });
  assert.equal(reqs(m1) - reqs(m0), 1);
});

test('grpc-encoding gzip with the compressed flag is inflated', async () => {
  const { body, spans } = tracesProtobuf(2);
  const m0 = await t.metrics();
  const r = await call(h2(), TRACES, grpcFrame(gzipSync(body), 1), { headers: { 'grpc-encoding': 'gzip' } });
  assert.equal(r.grpcStatus, 0, r.grpcMessage);
  const m1 = await t.metrics();
  assert.equal(metricSum(m1, 'tricorder_otlp_spans_accepted_total') - metricSum(m0, 'tricorder_otlp_spans_accepted_total'), spans);
  // gzip declared but this message not compressed (flag 0) is fine too
  const r2 = await call(h2(), TRACES, grpcFrame(body, 0), { headers: { 'grpc-encoding': 'gzip' } });
  assert.equal(r2.grpcStatus, 0, r2.grpcMessage);
});

test('50 concurrent streams on one connection all succeed', async () => {
  const c = h2();
  const m0 = await t.metrics();
  const payloads = Array.from({ length: 50 }, () => tracesProtobuf(1));
  const rs = await Promise.all(payloads.map((p) => call(c, TRACES, grpcFrame(p.body))));
  for (const r of rs) assert.equal(r.grpcStatus, 0, r.grpcMessage);
  const m1 = await t.metrics();
  const sent = payloads.reduce((a, p) => a + p.spans, 0);
  assert.equal(metricSum(m1, 'tricorder_otlp_spans_accepted_total') - metricSum(m0, 'tricorder_otlp_spans_accepted_total'), sent);
});

test('unknown methods and logs answer UNIMPLEMENTED (12) with a message', async () => {
  const c = h2();
  const { body } = tracesProtobuf(1);
  let r = await call(c, '/opentelemetry.proto.collector.trace.v1.TraceService/Nope', grpcFrame(body));
  assert.equal(r.httpStatus, 200);
  assert.equal(r.grpcStatus, 12);
  assert.match(r.grpcMessage, /unknown method/);
  r = await call(c, '/grpc.health.v1.Health/Check', grpcFrame(Buffer.alloc(0)));
  assert.equal(r.grpcStatus, 12);
  r = await call(c, LOGS, grpcFrame(Buffer.alloc(0)));
  assert.equal(r.grpcStatus, 12);
  assert.match(r.grpcMessage, /logs are not stored by tricorder/);
  assert.equal(r.body.length, 0, 'an error is a trailers-only response');
});

test('garbage protobuf answers INVALID_ARGUMENT (3) with a message', async () => {
  const garbage = Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]);
  const m0 = await t.metrics();
  const r = await call(h2(), TRACES, grpcFrame(garbage));
  assert.equal(r.grpcStatus, 3);
  assert.ok(r.grpcMessage.length > 0, 'a reason is given');
  const m1 = await t.metrics();
  const errs = (m) => metricSum(m, 'tricorder_otlp_request_errors_total', { transport: 'grpc', signal: 'traces' });
  assert.equal(errs(m1) - errs(m0), 1);
  // wrong wire type for resource_spans (a varint in field 1)
  const r2 = await call(h2(), TRACES, grpcFrame(Buffer.from([0x08, 0x01])));
  assert.equal(r2.grpcStatus, 3);
});

test('truncated protobuf answers INVALID_ARGUMENT (3)', async () => {
  const { body } = tracesProtobuf(2);
  const cut = body.subarray(0, Math.floor(body.length / 2));
  const r = await call(h2(), TRACES, grpcFrame(cut));
  assert.equal(r.grpcStatus, 3, r.grpcMessage);
  assert.ok(r.grpcMessage.length > 0);
  // a length-delimited field whose length runs past the end
  const r2 = await call(h2(), TRACES, grpcFrame(Buffer.concat([pbField(1, Buffer.alloc(10)).subarray(0, 5)])));
  assert.equal(r2.grpcStatus, 3);
});

test('a declared length over the limit answers RESOURCE_EXHAUSTED (8) before the body is sent', async () => {
  const c = h2();
  const m0 = await t.metrics();
  // declare 1 MiB, send only the prefix and 1 KiB, never end the stream
  const r = await withTimeout(call(c, TRACES, grpcFrame(Buffer.alloc(1024), 0, 1 << 20), { end: false }), 5000, 'early answer');
  assert.equal(r.grpcStatus, 8);
  assert.match(r.grpcMessage, /larger than the limit of 65536 bytes/);
  const m1 = await t.metrics();
  const errs = (m) => metricSum(m, 'tricorder_otlp_request_errors_total', { transport: 'grpc', signal: 'traces' });
  assert.equal(errs(m1) - errs(m0), 1);
  // the same connection keeps working
  await exportOk(c);
});

test('a gzip bomb answers RESOURCE_EXHAUSTED (8)', async () => {
  const bomb = gzipSync(Buffer.alloc(8 << 20)); // 8 MiB of zeros in ~8 KiB
  assert.ok(bomb.length < MAX);
  const r = await call(h2(), TRACES, grpcFrame(bomb, 1), { headers: { 'grpc-encoding': 'gzip' } });
  assert.equal(r.grpcStatus, 8);
  assert.match(r.grpcMessage, /decompressed/);
  const r2 = await call(h2(), TRACES, grpcFrame(Buffer.from('not gzip at all'), 1), { headers: { 'grpc-encoding': 'gzip' } });
  assert.equal(r2.grpcStatus, 3);
});

test('compression errors follow grpc-go: unknown encoding 12, flag without encoding 13', async () => {
  const { body } = tracesProtobuf(1);
  let r = await call(h2(), TRACES, grpcFrame(body, 1), { headers: { 'grpc-encoding': 'snappy' } });
  assert.equal(r.grpcStatus, 12);
  assert.match(r.grpcMessage, /grpc-encoding "snappy" not supported/);
  assert.equal(r.headers['grpc-accept-encoding'], 'gzip');
  r = await call(h2(), TRACES, grpcFrame(body, 1));
  assert.equal(r.grpcStatus, 13);
  assert.match(r.grpcMessage, /compressed flag/);
  r = await call(h2(), TRACES, Buffer.concat([Buffer.from([7]), grpcFrame(body).subarray(1)]));
  assert.equal(r.grpcStatus, 13, 'a flag byte other than 0/1');
});

test('message framing: none, two, and a cut-off message answer INTERNAL (13) as grpc-go does', async () => {
  const { body } = tracesProtobuf(1);
  let r = await call(h2(), TRACES, null);
  assert.equal(r.grpcStatus, 13);
  assert.match(r.grpcMessage, /no message/);
  r = await call(h2(), TRACES, Buffer.concat([grpcFrame(body), grpcFrame(body)]));
  assert.equal(r.grpcStatus, 13);
  assert.match(r.grpcMessage, /more than one message/);
  r = await call(h2(), TRACES, grpcFrame(body).subarray(0, 20));
  assert.equal(r.grpcStatus, 13);
  assert.match(r.grpcMessage, /ended inside a message/);
  // an empty message is a valid (empty) export
  r = await call(h2(), TRACES, grpcFrame(Buffer.alloc(0)));
  assert.equal(r.grpcStatus, 0, r.grpcMessage);
});

test('a non-gRPC content-type answers HTTP 415 with grpc-status 3, as grpc-go does', async () => {
  const { body } = tracesProtobuf(1);
  const r = await call(h2(), TRACES, grpcFrame(body), { headers: { 'content-type': 'application/json' } });
  assert.equal(r.httpStatus, 415);
  assert.equal(r.grpcStatus, 3);
  assert.match(r.grpcMessage, /invalid gRPC request content-type "application\/json"/);
  const ok = await call(h2(), TRACES, grpcFrame(body), { headers: { 'content-type': 'application/grpc+proto' } });
  assert.equal(ok.grpcStatus, 0, ok.grpcMessage);
});

test('with --ingest-token: missing or wrong token 16 (and the connection ends), right token 0', async () => {
  const s = await start({ args: ['--ingest-token', 's3cret'] });
  // a refused request ends its connection (GOAWAY): each attempt gets a new one
  const conns = [];
  const conn = () => {
    const c = http2.connect(s.grpcUrl);
    c.on('error', () => {});
    conns.push(c);
    return c;
  };
  try {
    const { body, spans } = tracesProtobuf(1);
    const c0 = conn();
    const goaway = new Promise((resolve) => c0.on('goaway', resolve));
    let r = await call(c0, TRACES, grpcFrame(body));
    assert.equal(r.grpcStatus, 16);
    assert.match(r.grpcMessage, /token/);
    await goaway;
    r = await call(conn(), TRACES, grpcFrame(body), { headers: { authorization: 'Bearer wrong' } });
    assert.equal(r.grpcStatus, 16);
    r = await call(conn(), TRACES, grpcFrame(body), { headers: { authorization: 'Basic czNjcmV0' } });
    assert.equal(r.grpcStatus, 16);
    r = await call(conn(), TRACES, grpcFrame(body), { headers: { authorization: 'Bearer s3cret' } });
    assert.equal(r.grpcStatus, 0, r.grpcMessage);
    const m = await s.metrics();
    assert.equal(metricSum(m, 'tricorder_otlp_spans_accepted_total'), spans);
    assert.equal(metricSum(m, 'tricorder_otlp_request_errors_total', { transport: 'grpc', signal: 'traces' }), 3);
  } finally {
    for (const c of conns) c.destroy();
    const r = await s.stop();
    s.cleanup();
    assert.equal(r.code, 0);
  }
});

test('clients that reset streams or drop the connection while their export is stored', async () => {
  // the metrics store acknowledges after its commit, later on the loop: the answer then
  // finds the stream gone, and the server must neither crash nor leak (see the ASan run)
  const { body, points } = await metricsProtobuf(3);
  const m0 = await t.metrics();
  for (let round = 0; round < 5; round++) {
    const c = h2();
    const reqs = [];
    for (let i = 0; i < 20; i++) {
      const req = c.request({ ':method': 'POST', ':path': METRICS, 'content-type': 'application/grpc', te: 'trailers' });
      req.on('error', () => {});
      req.end(grpcFrame(body));
      reqs.push(req);
    }
    await sleep(round); // 0..4 ms: sometimes before, sometimes after the commit
    if (round % 2) for (const r of reqs) r.close(http2.constants.NGHTTP2_CANCEL);
    else c.destroy();
  }
  await sleep(200);
  await stillServing();
  const m1 = await t.metrics();
  const accepted = metricSum(m1, 'tricorder_otlp_points_accepted_total') - metricSum(m0, 'tricorder_otlp_points_accepted_total');
  // what arrived whole was stored (a cancelled request may never have arrived)
  assert.equal(accepted % points, 0);
  assert.ok(accepted <= 100 * points);
});

test('SIGTERM: open connections get GOAWAY, an unfinished request UNAVAILABLE (14), exit 0', async () => {
  const s = await start();
  const c = http2.connect(s.grpcUrl);
  c.on('error', () => {});
  try {
    const goaway = new Promise((resolve) => c.on('goaway', (code) => resolve(code)));
    const { body } = tracesProtobuf(1);
    assert.equal((await call(c, TRACES, grpcFrame(body))).grpcStatus, 0);
    // half a message, stream left open
    const pending = call(c, TRACES, grpcFrame(body).subarray(0, 10), { end: false });
    await sleep(100);
    const stopped = s.stop();
    assert.equal(await withTimeout(goaway, 5000, 'GOAWAY on SIGTERM'), 0, 'GOAWAY with NO_ERROR');
    const r = await withTimeout(pending, 5000, 'unfinished request answered');
    assert.equal(r.grpcStatus, 14);
    assert.match(r.grpcMessage, /shutting down/);
    const st = await stopped;
    assert.equal(st.code, 0, s.stderr);
    assert.ok(st.ms < 10000);
  } finally {
    c.destroy();
    await s.stop();
    s.cleanup();
  }
});

test('garbage instead of the connection preface: that connection is dropped, others work', async () => {
  const raw = rawClient();
  raw.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await withTimeout(raw.closed, 3000, 'server closes a connection that sent garbage');
  const raw2 = rawClient();
  raw2.socket.write(Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 131) & 255)));
  await withTimeout(raw2.closed, 3000, 'server closes a connection that sent random bytes');
  await stillServing();
});

test('truncated frames: a HEADERS frame cut short, then the client leaves', async () => {
  const raw = rawClient();
  const block = requestBlock(TRACES);
  const f = frame(1, 0x4, 1, block);
  raw.socket.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), f.subarray(0, 20)]));
  await sleep(100);
  raw.socket.end();
  await withTimeout(raw.closed, 3000, 'close');
  // a frame header that announces more than SETTINGS_MAX_FRAME_SIZE
  const raw2 = rawClient();
  const big = Buffer.alloc(9);
  big.writeUIntBE(1 << 20, 0, 3);
  big[3] = 0; big.writeUInt32BE(1, 5);
  raw2.socket.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), big]));
  await withTimeout(raw2.closed, 3000, 'server drops a connection with an oversized frame');
  assert.ok(raw2.frames.some((fr) => fr.type === GOAWAY), 'a GOAWAY tells why');
  await stillServing();
});

test('huge request headers are refused; endless CONTINUATIONs drop the connection', async () => {
  // one header list over the 32 KiB limit: that stream is reset, the connection lives on
  const raw = rawClient();
  const block = requestBlock(TRACES, [['x-big', 'a'.repeat(12000)], ['x-big2', 'b'.repeat(12000)], ['x-big3', 'c'.repeat(12000)]]);
  assert.ok(block.length > 32768 && block.length < 3 * 16384);
  const parts = [block.subarray(0, 16000), block.subarray(16000, 32000), block.subarray(32000)];
  raw.socket.write(Buffer.concat([
    PREFACE, frame(4, 0, 0, Buffer.alloc(0)),
    frame(1, 0, 1, parts[0]), frame(9, 0, 1, parts[1]), frame(9, 0x4, 1, parts[2]),
  ]));
  await withTimeout((async () => { while (!raw.frames.some((f) => f.type === RST_STREAM && f.stream === 1)) await sleep(20); })(), 3000, 'RST_STREAM for the huge header list');
  raw.socket.destroy();
  // a header block in 40 pieces: more CONTINUATION frames than allowed
  const raw2 = rawClient();
  const small = requestBlock(TRACES, Array.from({ length: 40 }, (_, i) => [`x-h${i}`, 'v'.repeat(50)]));
  const step = Math.ceil(small.length / 40);
  const frames = [frame(1, 0, 1, small.subarray(0, step))];
  for (let i = 1; i < 40; i++) frames.push(frame(9, i === 39 ? 0x4 : 0, 1, small.subarray(i * step, (i + 1) * step)));
  raw2.socket.write(Buffer.concat([PREFACE, frame(4, 0, 0, Buffer.alloc(0)), ...frames]));
  await withTimeout(raw2.closed, 3000, 'server drops a CONTINUATION flood');
  await stillServing();
});

test('a client that opens 100 streams and sends no DATA does not block others; its streams time out', async () => {
  await stillServing();
  const m = await t.metrics();
  assert.ok(metricSum(m, 'tricorder_open_connections', { listener: 'otlp_grpc' }) >= 2);
  // the per-stream deadline (30 s from HEADERS) answers every stalled stream
  const rs = await withTimeout(stalledStreams, 40000, 'stalled streams answered');
  assert.equal(rs.length, 100);
  for (const r of rs) {
    assert.equal(r.grpcStatus, 4);
    assert.match(r.grpcMessage, /not received completely/);
  }
});

test('a client that sends the preface and stalls is closed after the first-request timeout', async () => {
  await stillServing();
  const ms = await withTimeout(stalledPreface.closed, 15000, 'stalled preface closed');
  assert.ok(ms >= 9000, `closed after ${ms} ms, expected the 10 s timeout`);
  assert.ok(stalledPreface.frames.some((f) => f.type === GOAWAY), 'a GOAWAY precedes the close');
  const h = await fetch(`${t.httpUrl}/healthz`);
  assert.equal(h.status, 200);
});
