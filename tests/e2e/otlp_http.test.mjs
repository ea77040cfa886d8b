// OTLP/HTTP bad input: each malformed or unacceptable request gets its specified answer
// (status code and a google.rpc.Status body), while good requests keep working and the
// process stays up.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { connect } from 'node:net';

import { start, metricSum, sleep } from './lib/tricorder.mjs';
import { metricsProtobuf, metricsJson, tracesProtobuf, tracesJson, pbField } from './lib/payloads.mjs';

let t;
before(async () => { t = await start({ args: ['--otlp-max-message-bytes', '256KiB'] }); });
after(async () => {
  const r = await t.stop();
  t.cleanup();
  assert.equal(r.code, 0, `exit ${r.code} ${r.signal}: ${t.stderr}`);
});

async function post(path, body, headers = {}, base = t.otlpHttpUrl, method = 'POST') {
  const r = await fetch(`${base}${path}`, { method, body: method === 'GET' ? undefined : body, headers });
  return { status: r.status, headers: r.headers, body: Buffer.from(await r.arrayBuffer()) };
}
const PB = { 'Content-Type': 'application/x-protobuf' };
const JSONH = { 'Content-Type': 'application/json' };

async function stillServing() {
  const { body, points } = await metricsProtobuf(2);
  const r = await post('/v1/metrics', body, PB);
  assert.equal(r.status, 200, 'a good request after bad input must succeed');
  const h = await fetch(`${t.httpUrl}/healthz`);
  assert.equal(h.status, 200);
  return points;
}

// Decodes the google.rpc.Status protobuf body: returns { code, message }.
function decodeStatus(buf) {
  let i = 0, code = 0, message = '';
  const readVarint = () => { let v = 0, s = 0, b; do { b = buf[i++]; v += (b & 0x7f) * 2 ** s; s += 7; } while (b & 0x80); return v; };
  while (i < buf.length) {
    const key = readVarint();
    if (key === 0x08) code = readVarint();
    else if (key === 0x12) { const n = readVarint(); message = buf.subarray(i, i + n).toString(); i += n; }
    else break;
  }
  return { code, message };
}

test('valid protobuf and JSON requests answer 200 in the request encoding', async () => {
  const pb = await metricsProtobuf(3);
  let r = await post('/v1/metrics', pb.body, PB);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/x-protobuf');
  const js = await metricsJson(3);
  r = await post('/v1/metrics', js.body, JSONH);
  assert.equal(r.status, 200, r.body.toString());
  assert.equal(r.headers.get('content-type'), 'application/json');
  assert.deepEqual(JSON.parse(r.body.toString()), {});
  r = await post('/v1/traces', tracesJson(2).body, { 'Content-Type': 'application/json; charset=utf-8' });
  assert.equal(r.status, 200, r.body.toString());
  r = await post('/v1/traces', gzipSync(tracesProtobuf(2).body), { ...PB, 'Content-Encoding': 'gzip' });
  assert.equal(r.status, 200);
});

test('garbage and truncated protobuf → 400 with a google.rpc.Status', async () => {
  let r = await post('/v1/metrics', Buffer.from('this is not protobuf at all \xff\xff\xff'), PB);
  assert.equal(r.status, 400);
  const st = decodeStatus(r.body);
  assert.equal(st.code, 3);
  assert.match(st.message, /protobuf|invalid|malformed/i);
  const { body } = tracesProtobuf(3);
  for (const cut of [1, 7, Math.floor(body.length / 2), body.length - 1]) {
    r = await post('/v1/traces', body.subarray(0, cut), PB);
    assert.equal(r.status, 400, `truncated at ${cut} of ${body.length}`);
  }
  await stillServing();
});

test('broken JSON → 400 with a JSON status', async () => {
  for (const bad of ['{', '{"resourceMetrics": [', 'null', '[1,2,3]', '{"resourceMetrics": "nope"}', '\u0000\u0001']) {
    const r = await post('/v1/metrics', Buffer.from(bad), JSONH);
    assert.equal(r.status, 400, `body ${JSON.stringify(bad)} → ${r.status}`);
    const st = JSON.parse(r.body.toString());
    assert.equal(st.code, 3);
    assert.ok(st.message.length > 0);
  }
  await stillServing();
});

test('invalid UTF-8 in a string field → 400', async () => {
  // ExportTraceServiceRequest{resource_spans{scope_spans{spans{trace_id, span_id, name=<bad utf8>}}}}
  const span = Buffer.concat([
    pbField(1, Buffer.alloc(16, 1)), pbField(2, Buffer.alloc(8, 2)), pbField(5, Buffer.from([0x66, 0xff, 0xfe, 0x6f])),
  ]);
  const body = pbField(1, pbField(2, pbField(2, span)));
  const r = await post('/v1/traces', body, PB);
  assert.equal(r.status, 400);
  assert.match(decodeStatus(r.body).message, /utf-?8/i);
  await stillServing();
});

test('wrong content type → 415, wrong encoding → 415, wrong method → 405', async () => {
  const { body } = await metricsProtobuf(1);
  let r = await post('/v1/metrics', body, { 'Content-Type': 'text/plain' });
  assert.equal(r.status, 415);
  r = await post('/v1/metrics', body, {});
  assert.equal(r.status, 415);
  r = await post('/v1/metrics', body, { ...PB, 'Content-Encoding': 'br' });
  assert.equal(r.status, 415);
  r = await post('/v1/metrics', null, {}, t.otlpHttpUrl, 'GET');
  assert.equal(r.status, 405);
  assert.equal(r.headers.get('allow'), 'POST');
  r = await post('/v1/traces', body, PB, t.otlpHttpUrl, 'PUT');
  assert.equal(r.status, 405);
  await stillServing();
});

test('logs are answered 404 with a status, not a hang', async () => {
  const r = await post('/v1/logs', Buffer.alloc(0), PB);
  assert.equal(r.status, 404);
  assert.match(decodeStatus(r.body).message, /logs/);
});

test('oversized bodies → 413, gzip bombs → 413 without inflating them', async () => {
  const big = Buffer.alloc(300 * 1024, 0x41);
  let r = await post('/v1/metrics', big, PB);
  assert.equal(r.status, 413);
  // 64 MiB of zeros compress to ~64 KiB: under the body limit, far over the message limit.
  const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024));
  assert.ok(bomb.length < 256 * 1024);
  const t0 = Date.now();
  r = await post('/v1/metrics', bomb, { ...PB, 'Content-Encoding': 'gzip' });
  assert.equal(r.status, 413);
  assert.match(decodeStatus(r.body).message, /limit/);
  assert.ok(Date.now() - t0 < 5000, 'a bomb must be refused quickly');
  r = await post('/v1/metrics', Buffer.from('not gzip'), { ...PB, 'Content-Encoding': 'gzip' });
  assert.equal(r.status, 400);
  await stillServing();
  const m = await t.metrics();
  assert.ok(metricSum(m, 'process_resident_memory_bytes') < 200 * 1024 * 1024, 'RSS stays bounded after bombs');
});

test('a client that sends half a request and stalls does not block others', async () => {
  const sock = connect(t.ports.otlpHttp, '127.0.0.1');
  await new Promise((r) => sock.on('connect', r));
  sock.write('POST /v1/metrics HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\nContent-Length: 1000\r\n\r\nabc');
  await sleep(100);
  await stillServing();
  sock.destroy();
});

test('unknown paths → 404; OTLP listener serves only OTLP', async () => {
  let r = await fetch(`${t.otlpHttpUrl}/metrics`);
  assert.equal(r.status, 404);
  r = await fetch(`${t.httpUrl}/no/such/path`);
  assert.equal(r.status, 404);
});

test('errors are counted by transport and signal', async () => {
  const m = await t.metrics();
  assert.ok(metricSum(m, 'tricorder_otlp_request_errors_total', { transport: 'http_protobuf', signal: 'metrics' }) >= 3);
  assert.ok(metricSum(m, 'tricorder_otlp_request_errors_total', { transport: 'http_json', signal: 'metrics' }) >= 6);
});
