// HTTP on the wire: a body over the limit is answered 413 after the body is read to its end
// (lingering close), so clients that write the whole body before reading — Python's urllib,
// the OTel SDK exporters — read the 413 instead of a broken pipe or a reset.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

import { start, metricSum } from './lib/tricorder.mjs';
import { writeRequest, snappyLiteral } from './lib/remote_write.mjs';

let t;
before(async () => { t = await start({ args: ['--otlp-max-message-bytes', '256KiB', '--max-import-bytes', '1MiB'] }); });
after(async () => {
  if (!t) return;
  const r = await t.stop();
  t.cleanup();
  assert.equal(r.code, 0, `exit code ${r.code} signal ${r.signal}: ${t.stderr}`);
});

const PY = `
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], data=b'x' * int(sys.argv[2]), headers={'Content-Type': sys.argv[3]})
try:
    r = urllib.request.urlopen(req, timeout=20)
    print(r.status)
except urllib.error.HTTPError as e:
    print(e.code, e.headers.get('Content-Type') if len(sys.argv) > 4 else '', e.read().decode()[:120] if len(sys.argv) > 4 else '')
except Exception as e:
    print('EXC', type(e).__name__, e)
`;

function urllibPost(url, size, ctype) {
  const r = spawnSync('python3', ['-c', PY, url, String(size), ctype], { encoding: 'utf8', timeout: 60000 });
  return r.stdout.trim() || r.stderr.trim();
}

function urllibPostVerbose(url, size, ctype) {
  const r = spawnSync('python3', ['-c', PY, url, String(size), ctype, 'v'], { encoding: 'utf8', timeout: 60000 });
  return r.stdout.trim() || r.stderr.trim();
}

test('python urllib reads the 413 of a body over the limit (several MB, sent whole)', () => {
  for (const [path, ctype] of [['/v1/traces', 'application/x-protobuf'], ['/api/v1/write', 'application/x-protobuf'], ['/api/v1/import', 'text/plain']]) {
    assert.equal(urllibPost(t.httpUrl + path, 8 << 20, ctype), '413', path);
  }
  assert.equal(urllibPost(`${t.otlpHttpUrl}/v1/traces`, 8 << 20, 'application/x-protobuf'), '413', 'OTLP/HTTP listener');
});

test('the OTel JS exporter gets a 413, not a connection error, and the server keeps serving', async () => {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': 'big' }), spanProcessors: [new SimpleSpanProcessor(mem)] });
  const tracer = provider.getTracer('x');
  const pad = 'p'.repeat(4000);
  for (let i = 0; i < 400; i++) tracer.startSpan(`s${i}`, { attributes: { pad } }).end();
  const exp = new OTLPTraceExporter({ url: `${t.otlpHttpUrl}/v1/traces` });
  const res = await new Promise((resolve) => exp.export(mem.getFinishedSpans(), resolve));
  assert.equal(res.code, 1);
  assert.match(String(res.error), /413|Payload Too Large|Entity Too Large/, String(res.error));
  assert.doesNotMatch(String(res.error), /EPIPE|ECONNRESET|socket hang up/);
  const r = await fetch(`${t.httpUrl}/api/v3/services`);
  assert.equal(r.status, 200);
});

async function rw(series) {
  const r = await fetch(`${t.httpUrl}/api/v1/write`, {
    method: 'POST', body: snappyLiteral(writeRequest(...series)),
    headers: { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'snappy', 'X-Prometheus-Remote-Write-Version': '0.1.0' },
  });
  return { status: r.status, text: await r.text() };
}

test('remote write: another value at an existing timestamp and samples far ahead are refused and counted', async () => {
  const L = [['__name__', 'wire_dup'], ['job', 'x']];
  const t0 = Date.now() - 60000;
  assert.equal((await rw([[L, [[1, t0], [2, t0 + 1000], [3, t0 + 2000]]]])).status, 204);
  assert.equal((await rw([[L, [[3, t0 + 2000]]]])).status, 204, 'the same value again is fine');
  let r = await rw([[L, [[9, t0 + 2000]]]]);
  assert.equal(r.status, 400);
  assert.match(r.text, /duplicate sample for timestamp/);
  r = await rw([[L, [[9, t0 + 1000]]]]);
  assert.equal(r.status, 400, 'a timestamp inside the in-order data, older than the newest');
  assert.match(r.text, /duplicate sample for timestamp/);
  assert.equal((await rw([[L, [[2, t0 + 1000]]]])).status, 204);
  assert.equal((await rw([[L, [[5, t0 + 500]]]])).status, 204, 'out of order within the window');
  r = await rw([[L, [[6, t0 + 500]]]]);
  assert.equal(r.status, 400);
  assert.match(r.text, /duplicate sample for timestamp/);
  r = await rw([[L, [[7, Date.now() + 3 * 3600e3]]]]);
  assert.equal(r.status, 400);
  assert.match(r.text, /too far in the future/);
  r = await rw([[L, [[7, Number.MAX_SAFE_INTEGER]]]]);
  assert.equal(r.status, 400);
  assert.equal((await rw([[L, [[8, Date.now() + 3600e3]]]])).status, 204, 'within --future-window (2h)');
  const m = await t.metrics();
  assert.equal(metricSum(m, 'tricorder_tsdb_duplicate_samples_total'), 3);
  assert.equal(metricSum(m, 'tricorder_tsdb_too_new_samples_total'), 2);
  // the stored values are the first ones
  const q = await (await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=wire_dup&start=${(t0 - 1000) / 1000}&end=${(t0 + 3000) / 1000}`)).text();
  assert.deepEqual(q.trim().split('\n').map((l) => l.split(' ')[1]), ['1', '5', '2', '3']);
});

test('remote write and import: a sample already cut into an on-disk block is checked too', async () => {
  const L = [['__name__', 'wire_dup_block'], ['job', 'x']];
  const t0 = Date.now() - 3 * 3600e3; // backfill, hours old
  assert.equal((await rw([[L, [[1, t0], [2, t0 + 1000], [3, t0 + 2000]]]])).status, 204);
  assert.equal((await fetch(`${t.httpUrl}/internal/force_flush`, { method: 'POST' })).status < 300, true);
  const before = metricSum(await t.metrics(), 'tricorder_tsdb_duplicate_samples_total');
  let r = await rw([[L, [[9, t0 + 1000]]]]);
  assert.equal(r.status, 400);
  assert.match(r.text, /duplicate sample for timestamp/);
  assert.equal((await rw([[L, [[2, t0 + 1000]]]])).status, 204, 'the same value again is fine');
  assert.equal((await rw([[L, [[4, t0 + 1500]]]])).status, 204, 'a timestamp the block lacks');
  const imp = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: `wire_dup_block{job="x"} 8 ${t0 + 2000}\n` });
  assert.equal(imp.status, 400);
  assert.match(await imp.text(), /duplicate sample for timestamp/);
  assert.equal(metricSum(await t.metrics(), 'tricorder_tsdb_duplicate_samples_total') - before, 2);
  const q = await (await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=wire_dup_block&start=${(t0 - 1000) / 1000}&end=${(t0 + 3000) / 1000}`)).text();
  assert.deepEqual(q.trim().split('\n').map((l) => l.split(' ')[1]), ['1', '2', '4', '3']);
});

test('request lines and headers up to 1 MiB as Go allows; trailing slashes and CORS as Prometheus answers them', async () => {
  let r = await fetch(`${t.httpUrl}/api/v1/labels?x=${'a'.repeat(1000000)}`);
  assert.equal(r.status, 200);
  r = await fetch(`${t.httpUrl}/api/v1/labels`, { headers: { 'x-big': 'b'.repeat(1000000) } });
  assert.equal(r.status, 200);
  r = await fetch(`${t.httpUrl}/api/v1/labels/?match[]=up`, { redirect: 'manual' });
  assert.equal(r.status, 301);
  assert.equal(r.headers.get('location'), '/api/v1/labels?match[]=up');
  r = await fetch(`${t.httpUrl}/api/v1/series/`, { method: 'POST', redirect: 'manual' });
  assert.equal(r.status, 307);
  r = await fetch(`${t.httpUrl}/api/traces/`, { redirect: 'manual' });
  assert.equal(r.status, 404, 'Jaeger routes do not redirect');
  r = await fetch(`${t.httpUrl}/api/v1/labels`, { headers: { Origin: 'http://grafana.example' } });
  assert.equal(r.headers.get('access-control-allow-origin'), '*');
  assert.equal(r.headers.get('access-control-expose-headers'), 'Date');
  const t2 = await start({ args: ['--web-cors-origin', 'https?://(grafana|ui)\\.example'] });
  try {
    for (const [origin, want] of [['http://grafana.example', 'http://grafana.example'], ['https://ui.example', 'https://ui.example'],
      ['http://grafana.example.evil', null], ['http://other.example', null]]) {
      r = await fetch(`${t2.httpUrl}/api/v1/labels`, { headers: { Origin: origin } });
      assert.equal(r.headers.get('access-control-allow-origin'), want, origin);
      assert.equal(r.headers.get('access-control-allow-methods'), 'GET, POST, OPTIONS');
    }
  } finally { await t2.stop(); t2.cleanup(); }
});

test('the text import parses a large body of short lines in pieces (as VictoriaMetrics streams it)', async () => {
  const now = Date.now();
  let body = '';
  for (let i = 0; i < 40000; i++) body += `wire_imp${i % 50} ${i} ${now}\n`;
  assert.ok(body.length > 900000);
  const t2 = await start(); // the default body limit (4 MiB)
  try {
    let r = await fetch(`${t2.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body });
    assert.equal(r.status, 204, await r.text());
    const s = await (await fetch(`${t2.httpUrl}/api/v1/series?match[]={__name__=~"wire_imp.*"}`)).json();
    assert.equal(s.data.length, 50);
    // a bad line far into the body is reported with its line number in the whole body
    r = await fetch(`${t2.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: `${body}oops\n` });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /line 40001: /);
  } finally { await t2.stop(); t2.cleanup(); }
});

test('labels and label values with start/end: only series with samples in the window (series precision)', async () => {
  const now = Date.now();
  const body = `wire_old_m{oldlbl="x"} 1 ${now - 90 * 60000}\nwire_new_m{newlbl="y"} 2 ${now - 1000}\n`;
  assert.equal((await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body })).status, 204);
  const get = async (q) => (await (await fetch(`${t.httpUrl}${q}`)).json()).data;
  const recent = (now - 600000) / 1000, older = (now - 60 * 60000) / 1000;
  assert.ok(!(await get(`/api/v1/labels?start=${recent}`)).includes('oldlbl'));
  assert.ok((await get(`/api/v1/labels?start=${recent}`)).includes('newlbl'));
  assert.ok((await get(`/api/v1/labels?end=${older}`)).includes('oldlbl'));
  assert.ok(!(await get(`/api/v1/labels?end=${older}`)).includes('newlbl'));
  const names = await get(`/api/v1/label/__name__/values?start=${recent}&match[]=${encodeURIComponent('{__name__=~"wire_.*_m"}')}`);
  assert.deepEqual(names, ['wire_new_m']);
  assert.deepEqual(await get(`/api/v1/label/__name__/values?end=${older}&match[]=${encodeURIComponent('{__name__=~"wire_.*_m"}')}`), ['wire_old_m']);
  assert.deepEqual(await get('/api/v1/label/oldlbl/values'), ['x'], 'without a window: everything');
});

test("requests libevent refuses itself get plain text as Go's server writes, never an HTML page", async () => {
  // over the route's limit (--otlp-max-message-bytes; only the import takes --max-import-bytes,
  // set from the headers before any of the body is kept): refused by libevent
  assert.equal(urllibPostVerbose(t.httpUrl + '/api/v1/write', 8 << 20, 'application/x-protobuf'),
    '413 text/plain; charset=utf-8 413 Request Entity Too Large: the request body is over the limit of 262144 bytes');
  assert.equal(urllibPostVerbose(t.httpUrl + '/api/v1/import/prometheus', 8 << 20, 'text/plain'),
    '413 text/plain; charset=utf-8 413 Request Entity Too Large: the request body is over the limit of 1048576 bytes');
  assert.equal(urllibPostVerbose(t.otlpHttpUrl + '/v1/traces', 8 << 20, 'application/x-protobuf'),
    '413 text/plain; charset=utf-8 413 Request Entity Too Large: the request body is over the limit of 262144 bytes');
  // under it but over the route's own (--otlp-max-message-bytes): the same answer from the router
  assert.equal(urllibPostVerbose(t.httpUrl + '/api/v1/write', 600000, 'application/x-protobuf'),
    '413 text/plain; charset=utf-8 413 Request Entity Too Large: the request body is over the limit of 262144 bytes');
  const net = await import('node:net');
  const reply = await new Promise((resolve) => {
    const c = net.connect(Number(new URL(t.httpUrl).port), '127.0.0.1', () => c.write('GARBAGE\r\n\r\n'));
    let d = '';
    c.on('data', (x) => { d += x; });
    c.on('close', () => resolve(d));
  });
  assert.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(reply, /\r\n\r\n400 Bad Request$/, 'the body as Go writes it, no newline');
  assert.doesNotMatch(reply, /<HTML>/i);
});

// Sends raw bytes and reads until the server closes (or 20 s).
async function rawExchange(bytes) {
  const net = await import('node:net');
  return new Promise((resolve) => {
    const c = net.connect(Number(new URL(t.httpUrl).port), '127.0.0.1', () => c.write(bytes));
    let d = '';
    c.on('data', (x) => { d += x; });
    c.on('error', () => {}); // the server may close while we still write
    c.on('close', () => resolve(d));
    setTimeout(() => { c.destroy(); resolve(d); }, 20000);
  });
}

test("request lines and headers over 1 MiB get Go's 431, under it they are served", async () => {
  const body431 = '431 Request Header Fields Too Large';
  // one big header (fetch), many headers, a huge request line (raw)
  let r = await fetch(`${t.httpUrl}/api/v1/labels`, { headers: { 'x-big': 'b'.repeat(2 << 20) } });
  assert.equal(r.status, 431);
  assert.equal(r.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(r.headers.get('connection'), 'close');
  assert.equal(await r.text(), body431);
  let many = '';
  for (let i = 0; i < 30000; i++) many += `X-H${i}: ${'v'.repeat(40)}\r\n`;
  assert.ok(many.length > (1 << 20) + 4096);
  let reply = await rawExchange(`GET /api/v1/labels HTTP/1.1\r\nHost: x\r\n${many}\r\n`);
  assert.match(reply, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  assert.ok(reply.endsWith(`\r\n\r\n${body431}`), reply.slice(-200));
  reply = await rawExchange(`GET /api/v1/labels?x=${'a'.repeat((1 << 20) + 10000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
  assert.match(reply, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  // many headers under 1 MiB in total are fine
  many = '';
  for (let i = 0; i < 15000; i++) many += `X-H${i}: ${'v'.repeat(40)}\r\n`;
  reply = await rawExchange(`GET /api/v1/labels HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${many}\r\n`);
  assert.match(reply, /^HTTP\/1\.1 200 OK\r\n/);
  r = await fetch(`${t.httpUrl}/api/v1/labels`, { headers: { 'x-big': 'b'.repeat(1000000) } });
  assert.equal(r.status, 200);
});

test('--max-import-bytes bounds the text import apart from the OTLP limit', async () => {
  const now = Date.now();
  let body = '';
  for (let i = 0; body.length < 900000; i++) body += `wire_bigimp{n="${i % 100}"} ${i} ${now}\n`;
  // 900 KB: over --otlp-max-message-bytes (256 KiB), under --max-import-bytes (1 MiB)
  let r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body });
  assert.equal(r.status, 204, await r.text());
  r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: body + body });
  assert.equal(r.status, 413);
  assert.equal(await r.text(), '413 Request Entity Too Large: the request body is over the limit of 1048576 bytes\n');
  const { gzipSync } = await import('node:zlib');
  r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: gzipSync(body + body), headers: { 'Content-Encoding': 'gzip' } });
  assert.equal(r.status, 413);
  assert.equal(await r.text(), 'decompressed body over the --max-import-bytes limit of 1048576 bytes\n');
  // the other routes keep their own limit on the same listener
  r = await fetch(`${t.httpUrl}/api/v1/query`, { method: 'POST', body: `query=up&x=${'a'.repeat(300000)}`, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  assert.equal(r.status, 413);
  r = await fetch(`${t.otlpHttpUrl}/api/v1/import/prometheus`, { method: 'POST', body });
  assert.equal(r.status, 413, 'the OTLP listener keeps --otlp-max-message-bytes');
  await assert.rejects(start({ args: ['--max-import-bytes', '512'] }), /--max-import-bytes must be between 1KiB and 1GiB/);
});
