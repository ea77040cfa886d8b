// Jaeger wire compatibility beyond the basics: the search flow of Jaeger UI 2.19+ (services →
// operations → /api/v3/trace-summaries → trace, with the exact requests that UI sends) and the
// search keys of Jaeger v2.20's storage (error=false, span.status, span.kind in any case,
// scope.name/scope.version, the resource. prefix).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';

import { start } from './lib/tricorder.mjs';

let t;
before(async () => { t = await start(); });
after(async () => {
  if (!t) return;
  const r = await t.stop();
  t.cleanup();
  assert.equal(r.code, 0, `exit code ${r.code} signal ${r.signal}: ${t.stderr}`);
});

async function get(path) {
  const r = await fetch(t.httpUrl + path);
  const text = await r.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: r.status, body, type: r.headers.get('content-type') };
}

const exportOnce = (exporter, batch) => new Promise((resolve) => exporter.export(batch, resolve));

// frontend (SERVER root, OK) → orders (SERVER, ERROR) → db (CLIENT, unset, scope "pg" 1.2);
// a second trace in frontend with one span whose status is unset.
function makeTraces(t0) {
  const mem = new InMemorySpanExporter();
  const mk = (svc, extra = {}) => new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': svc, 'deployment.environment': 'prod', ...extra }),
    spanProcessors: [new SimpleSpanProcessor(mem)],
  });
  const fe = mk('wire-frontend'), orders = mk('wire-orders', { 'host.name': 'h1' });
  const root = fe.getTracer('http', '0.52.0').startSpan('GET /checkout', { kind: SpanKind.SERVER, startTime: t0 });
  const mid = orders.getTracer('http', '0.52.0').startSpan('POST /orders', { kind: SpanKind.SERVER, startTime: t0 + 5 },
    trace.setSpan(context.active(), root));
  const db = orders.getTracer('pg', '1.2').startSpan('INSERT', { kind: SpanKind.CLIENT, startTime: t0 + 10, attributes: { 'db.system': 'postgresql' } },
    trace.setSpan(context.active(), mid));
  db.end(t0 + 20);
  mid.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
  mid.end(t0 + 40);
  root.setStatus({ code: SpanStatusCode.OK });
  root.end(t0 + 50);
  const other = fe.getTracer('http', '0.52.0').startSpan('GET /health', { kind: SpanKind.SERVER, startTime: t0 + 100 });
  other.end(t0 + 101);
  return { spans: mem.getFinishedSpans(), traceId: root.spanContext().traceId, otherId: other.spanContext().traceId, t0 };
}

let tr;
test('export the traces', async () => {
  tr = makeTraces(Date.now() - 5000);
  const res = await exportOnce(new OTLPTraceExporter({ url: `${t.otlpHttpUrl}/v1/traces` }), tr.spans);
  assert.equal(res.code, 0, String(res.error));
});

test('Jaeger UI 2.19+ search flow: services → operations → trace-summaries → trace', async () => {
  let r = await get('/api/v3/services');
  assert.equal(r.status, 200);
  assert.ok(r.body.services.includes('wire-frontend'));
  r = await get('/api/v3/operations?service=wire-frontend');
  assert.deepEqual(r.body.operations.map((o) => o.name).sort(), ['GET /checkout', 'GET /health']);
  // what the UI sends (Date.toISOString(), millisecond precision, Z), with its defaults
  const q = new URLSearchParams({
    'query.serviceName': 'wire-frontend',
    'query.startTimeMin': new Date(tr.t0 - 3600e3).toISOString(),
    'query.startTimeMax': new Date(tr.t0 + 60e3).toISOString(),
    'query.searchDepth': '20',
  });
  r = await get(`/api/v3/trace-summaries?${q}`);
  assert.equal(r.status, 200);
  assert.match(r.type, /application\/json/);
  assert.deepEqual(Object.keys(r.body), ['summaries']);
  assert.deepEqual(r.body.summaries.map((s) => s.traceId), [tr.otherId, tr.traceId], 'newest first');
  const s = r.body.summaries[1];
  assert.deepEqual(s, {
    traceId: tr.traceId,
    rootServiceName: 'wire-frontend',
    rootOperationName: 'GET /checkout',
    minStartTimeUnixNano: `${tr.t0}000000`,
    maxEndTimeUnixNano: `${tr.t0 + 50}000000`,
    spanCount: 3,
    errorSpanCount: 1,
    services: [
      { name: 'wire-frontend', spanCount: 1 },
      { name: 'wire-orders', spanCount: 2, errorSpanCount: 1 },
    ],
  });
  assert.equal(r.body.summaries[0].spanCount, 1);
  assert.equal(r.body.summaries[0].errorSpanCount, undefined, 'zero values are left out');
  // the operation and attribute filters of the form
  q.set('query.operationName', 'GET /health');
  r = await get(`/api/v3/trace-summaries?${q}`);
  assert.deepEqual(r.body.summaries.map((x) => x.traceId), [tr.otherId]);
  q.delete('query.operationName');
  q.set('query.attributes', JSON.stringify({ 'db.system': 'postgresql' }));
  q.set('query.serviceName', 'wire-orders');
  r = await get(`/api/v3/trace-summaries?${q}`);
  assert.deepEqual(r.body.summaries.map((x) => x.traceId), [tr.traceId]);
  // nothing found: an empty list with 200 (not 404 as /api/v3/traces answers)
  q.set('query.serviceName', 'no-such-service');
  r = await get(`/api/v3/trace-summaries?${q}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { summaries: [] });
  // bad parameters in the v3 error shape
  r = await get('/api/v3/trace-summaries?query.serviceName=x');
  assert.equal(r.status, 400);
  assert.deepEqual(r.body, { error: { httpCode: 400, message: 'query.startTimeMin and query.startTimeMax are required' } });
  // the trace view, as the UI then fetches it
  r = await get(`/api/traces/${encodeURIComponent(tr.traceId)}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.data[0].spans.length, 3);
});

test('the search keys of Jaeger v2.20 storage', async () => {
  const win = `start=${(tr.t0 - 60000) * 1000}&end=${(tr.t0 + 60000) * 1000}`;
  const found = async (svc, tags) => {
    const r = await get(`/api/traces?service=${svc}&${win}&tags=${encodeURIComponent(JSON.stringify(tags))}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.data.map((x) => x.traceID).sort();
  };
  const both = [tr.traceId, tr.otherId].sort();
  assert.deepEqual(await found('wire-frontend', { error: 'false' }), [tr.traceId], 'error=false: status OK only');
  assert.deepEqual(await found('wire-frontend', { error: 'true' }), []);
  assert.deepEqual(await found('wire-orders', { error: 'true' }), [tr.traceId]);
  assert.deepEqual(await found('wire-frontend', { 'span.status': 'ok' }), [tr.traceId]);
  assert.deepEqual(await found('wire-frontend', { 'span.status': 'UNSET' }), [tr.otherId]);
  assert.deepEqual(await found('wire-orders', { 'span.status': 'ERROR' }), [tr.traceId]);
  assert.deepEqual(await found('wire-orders', { 'span.kind': 'CLIENT' }), [tr.traceId], 'span.kind in any case');
  assert.deepEqual(await found('wire-frontend', { 'span.kind': 'client' }), []);
  assert.deepEqual(await found('wire-orders', { 'scope.name': 'pg', 'scope.version': '1.2' }), [tr.traceId]);
  assert.deepEqual(await found('wire-orders', { 'scope.name': 'pg', 'scope.version': '9' }), []);
  assert.deepEqual(await found('wire-orders', { 'scope.name': 'pg', 'span.status': 'ERROR' }), [], 'all keys on one span');
  assert.deepEqual(await found('wire-orders', { 'resource.host.name': 'h1' }), [tr.traceId]);
  assert.deepEqual(await found('wire-frontend', { 'resource.deployment.environment': 'prod' }), both);
  assert.deepEqual(await found('wire-orders', { 'resource.db.system': 'postgresql' }), [], 'resource. reads the resource only');
  assert.deepEqual(await found('wire-orders', { 'otel.scope.name': 'pg' }), [tr.traceId], 'displayed tags stay searchable');
  // the same keys through v3
  const q = new URLSearchParams({
    'query.serviceName': 'wire-frontend',
    'query.startTimeMin': new Date(tr.t0 - 60e3).toISOString(),
    'query.startTimeMax': new Date(tr.t0 + 60e3).toISOString(),
    'query.attributes': JSON.stringify({ error: 'false' }),
  });
  const r = await get(`/api/v3/trace-summaries?${q}`);
  assert.deepEqual(r.body.summaries.map((x) => x.traceId), [tr.traceId]);
});

test('trace ids in base64 in v3 and legacy paths; raw=true skips the adjusters', async () => {
  const b64 = Buffer.from(tr.traceId, 'hex').toString('base64');
  let r = await get(`/api/v3/traces/${encodeURIComponent(b64)}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.result.resourceSpans[0].scopeSpans[0].spans[0].traceId, tr.traceId);
  r = await get(`/api/traces/${b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '')}`);
  assert.equal(r.status, 200);
  assert.equal(r.body.data[0].traceID, tr.traceId);
  r = await get('/api/v3/traces/not-an-id');
  assert.equal(r.status, 400);
  assert.match(r.body.error.message, /^malformed parameter trace_id: /);
  // every span's tags sorted by key unless raw
  r = await get(`/api/traces/${tr.traceId}`);
  const keys = (s) => s.tags.map((x) => x.key);
  const db = r.body.data[0].spans.find((s) => s.operationName === 'INSERT');
  assert.deepEqual(keys(db), ['otel.scope.name', 'otel.scope.version', 'db.system', 'span.kind']);
  r = await get(`/api/traces/${tr.traceId}?raw=true`);
  assert.equal(r.status, 200);
  r = await get(`/api/traces/${tr.traceId}?raw=maybe`);
  assert.equal(r.status, 400);
  assert.equal(r.body.errors[0].msg, "unable to parse param 'raw': strconv.ParseBool: parsing \"maybe\": invalid syntax");
});

test('unknown routes, other methods and prettyPrint as jaeger-query answers them', async () => {
  for (const [method, path] of [['GET', '/api/nope'], ['POST', '/api/traces'], ['DELETE', '/api/services'], ['POST', '/api/v3/trace-summaries']]) {
    const r = await fetch(t.httpUrl + path, { method });
    assert.equal(r.status, 404, `${method} ${path}`);
    assert.equal(await r.text(), '404 page not found\n');
    assert.match(r.headers.get('content-type'), /^text\/plain; charset=utf-8/);
  }
  let r = await fetch(`${t.httpUrl}/api/services?prettyPrint=true`);
  let text = await r.text();
  assert.match(text, /^\{\n    "data": \[\n        "/);
  assert.match(text, /\n    "errors": null\n\}$/);
  assert.deepEqual(JSON.parse(text).data, (await get('/api/services')).body.data);
  r = await fetch(`${t.httpUrl}/api/services?prettyPrint=false`);
  assert.match(await r.text(), /^\{"data":\["/);
  r = await fetch(`${t.httpUrl}/api/dependencies?prettyPrint=1&endTs=1`);
  assert.equal(await r.text(), '{\n    "data": [],\n    "total": 0,\n    "limit": 0,\n    "offset": 0,\n    "errors": null\n}');
  // errors stay compact, as http.Error writes them
  r = await fetch(`${t.httpUrl}/api/traces?prettyPrint=1`);
  assert.equal(await r.text(), '{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":400,"msg":"parameter \'service\' is required"}]}\n');
  // gzip when asked for it (a large enough body)
  r = await fetch(`${t.httpUrl}/api/traces/${tr.traceId}`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(r.headers.get('content-encoding'), 'gzip');
  assert.equal((await r.json()).data[0].traceID, tr.traceId);
});

// One trace over OTLP/JSON with everything the adjusters touch: a library attribute on a span, a
// numeric ip, a zero-id link, events out of name order, unsorted attributes, and a child on
// another host that starts before its parent (clock skew).
function adjTrace(t0ms) {
  const tid = '5a'.repeat(16), P = '0000000000000a01', C = '0000000000000c01';
  const ns = (ms) => String(BigInt(t0ms) * 1000000n + BigInt(Math.round(ms * 1e6)));
  const str = (k, v) => ({ key: k, value: { stringValue: v } });
  const body = { resourceSpans: [
    { resource: { attributes: [str('service.name', 'wire-adj'), str('zeta', 'z'), str('host.name', 'hA'), str('alpha', 'a')] },
      scopeSpans: [{ scope: { name: 'lib', attributes: [str('y', '1'), str('b', '2')] }, spans: [{
        traceId: tid, spanId: P, name: 'parent', kind: 2, startTimeUnixNano: ns(0), endTimeUnixNano: ns(100),
        attributes: [str('z', '1'), { key: 'ip', value: { intValue: '167772161' } }, str('telemetry.sdk.language', 'nodejs'), str('a', 'x')],
        events: [{ timeUnixNano: ns(10), name: 'zz', attributes: [str('k2', 'v'), str('k1', 'v')] }, { timeUnixNano: ns(20), name: 'aa' }],
        links: [{ traceId: '00'.repeat(16), spanId: '0000000000000001' }, { traceId: '7b'.repeat(16), spanId: '0000000000000002', attributes: [str('q', '1'), str('p', '2')] }],
      }] }] },
    { resource: { attributes: [str('service.name', 'wire-adj-child'), str('host.name', 'hB')] },
      scopeSpans: [{ scope: { name: 'lib' }, spans: [{
        traceId: tid, spanId: C, parentSpanId: P, name: 'child', kind: 3, startTimeUnixNano: ns(-30), endTimeUnixNano: ns(-10),
        events: [{ timeUnixNano: ns(-20), name: 'e' }],
      }] }] },
  ] };
  return { tid, body };
}

const v3spans = (r) => r.body.result.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((sp) => ({ ...sp, resource: rs.resource, scope: ss.scope }))));
const akeys = (a) => (a || []).map((x) => x.key);
const warnings = (sp) => (sp.attributes || []).find((x) => x.key === '@jaeger@warnings')?.value.arrayValue.values.map((v) => v.stringValue);

test('/api/v3/traces applies the query-time adjusters as Jaeger v2 does; raw_traces=true skips them', async () => {
  const { tid, body } = adjTrace(Date.now() - 4000);
  const post = await fetch(`${t.httpUrl}/v1/traces`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
  assert.equal(post.status, 200);
  let r = await get(`/api/v3/traces/${tid}`);
  assert.equal(r.status, 200);
  const [p, c] = ['parent', 'child'].map((n) => v3spans(r).find((s) => s.name === n));
  // sorted resource attributes, the library attribute moved onto the resource (appended)
  assert.deepEqual(akeys(p.resource.attributes), ['alpha', 'host.name', 'service.name', 'zeta', 'telemetry.sdk.language']);
  assert.deepEqual(akeys(p.scope.attributes), ['b', 'y']);
  // span attributes sorted, ip dotted, the library attribute gone, warnings appended
  assert.deepEqual(akeys(p.attributes), ['a', 'ip', 'z', '@jaeger@warnings']);
  assert.deepEqual(p.attributes.find((x) => x.key === 'ip').value, { stringValue: '10.0.0.1' });
  assert.deepEqual(warnings(p), ['Invalid span link removed']);
  assert.deepEqual(p.links.map((l) => l.traceId), ['7b'.repeat(16)]);
  assert.deepEqual(akeys(p.links[0].attributes), ['p', 'q']);
  assert.deepEqual(p.events.map((e) => e.name), ['aa', 'zz']);
  assert.deepEqual(akeys(p.events[1].attributes), ['k1', 'k2']);
  // clock skew: not applied with the default --jaeger-max-clock-skew-adjust 0, warned as the legacy route does
  const legacy = (await get(`/api/traces/${tid}`)).body.data[0];
  const lc = legacy.spans.find((s) => s.operationName === 'child');
  assert.equal(warnings(c).length, 1);
  assert.match(warnings(c)[0], /^clock skew adjustment disabled; not applying calculated delta of /);
  assert.deepEqual(warnings(c), lc.warnings);
  assert.equal(BigInt(c.startTimeUnixNano) / 1000n, BigInt(lc.startTime));
  // raw: as stored
  r = await get(`/api/v3/traces/${tid}?raw_traces=true`);
  const [rp, rc] = ['parent', 'child'].map((n) => v3spans(r).find((s) => s.name === n));
  assert.deepEqual(akeys(rp.resource.attributes), ['service.name', 'zeta', 'host.name', 'alpha']);
  assert.deepEqual(akeys(rp.attributes), ['z', 'ip', 'telemetry.sdk.language', 'a']);
  assert.deepEqual(rp.attributes[1].value, { intValue: '167772161' });
  assert.equal(rp.links.length, 2);
  assert.deepEqual(rp.events.map((e) => e.name), ['zz', 'aa']);
  assert.equal(warnings(rc), undefined);
  assert.equal((await get(`/api/v3/traces/${tid}?raw_traces=false`)).body.result.resourceSpans[0].resource.attributes[0].key, 'alpha');
  // the search route adjusts too
  r = await get(`/api/v3/traces?query.service_name=wire-adj&query.start_time_min=${new Date(Date.now() - 60000).toISOString()}&query.start_time_max=${new Date().toISOString()}`);
  assert.equal(r.status, 200);
  assert.deepEqual(akeys(v3spans(r).find((s) => s.name === 'parent').attributes), ['a', 'ip', 'z', '@jaeger@warnings']);
});

test('/api/v3/traces shifts a skewed span and its events within --jaeger-max-clock-skew-adjust', async () => {
  const t2 = await start({ args: ['--jaeger-max-clock-skew-adjust', '1s'] });
  try {
    const { tid, body } = adjTrace(Date.now() - 4000);
    const post = await fetch(`${t2.httpUrl}/v1/traces`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
    assert.equal(post.status, 200);
    const r = await (await fetch(`${t2.httpUrl}/api/v3/traces/${tid}`)).json();
    const c = r.result.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans)).find((s) => s.name === 'child');
    const orig = body.resourceSpans[1].scopeSpans[0].spans[0];
    const delta = BigInt(c.startTimeUnixNano) - BigInt(orig.startTimeUnixNano);
    assert.ok(delta > 0n, 'moved later, into its parent');
    assert.equal(BigInt(c.endTimeUnixNano) - BigInt(orig.endTimeUnixNano), delta);
    assert.equal(BigInt(c.events[0].timeUnixNano) - BigInt(orig.events[0].timeUnixNano), delta);
    assert.match(warnings(c)[0], /^This span's timestamps were adjusted by /);
    const lc = (await (await fetch(`${t2.httpUrl}/api/traces/${tid}`)).json()).data[0].spans.find((s) => s.operationName === 'child');
    assert.deepEqual(warnings(c), lc.warnings);
    assert.equal(BigInt(c.startTimeUnixNano) / 1000n, BigInt(lc.startTime));
  } finally { await t2.stop(); t2.cleanup(); }
});
