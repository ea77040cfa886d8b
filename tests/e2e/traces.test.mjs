// The trace store through Jaeger's query API: traces exported by the real OpenTelemetry JS
// SDK over gRPC, HTTP/protobuf and HTTP/JSON are found by service, operation, tags and
// duration and come back whole in Jaeger's JSON model (and as OTLP JSON from /api/v3); bad
// parameters get 400; acknowledged spans survive kill -9.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as TraceGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as TraceProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as TraceJson } from '@opentelemetry/exporter-trace-otlp-http';

import { start, metricSum } from './lib/tricorder.mjs';

const transports = {
  grpc: (t) => new TraceGrpc({ url: t.grpcUrl }),
  proto: (t) => new TraceProto({ url: `${t.otlpHttpUrl}/v1/traces` }),
  json: (t) => new TraceJson({ url: `${t.otlpHttpUrl}/v1/traces` }),
};

// One trace: a 120 ms SERVER root with an ERROR status and attributes, a 20 ms CLIENT child
// with an event, in service `svc` (resource host.name=h-<svc>). Returns the finished spans.
function makeTrace(svc, t0 = Date.now() - 1000) {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': svc, 'host.name': `h-${svc}` }),
    spanProcessors: [new SimpleSpanProcessor(mem)],
  });
  const tracer = provider.getTracer('e2e-traces', '3.2.1');
  const root = tracer.startSpan('GET /orders/{id}', {
    kind: SpanKind.SERVER, startTime: t0,
    attributes: { 'http.request.method': 'GET', 'http.response.status_code': 500, 'order.id': `o-${svc}`, ratio: 0.5, cached: false },
  });
  const child = tracer.startSpan('SELECT orders', { kind: SpanKind.CLIENT, startTime: t0 + 10, attributes: { 'db.system': 'postgresql' } },
    trace.setSpan(context.active(), root));
  child.addEvent('retry', { attempt: 2 }, t0 + 15);
  child.end(t0 + 30);
  root.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream timed out' });
  root.end(t0 + 120);
  return { spans: mem.getFinishedSpans(), traceId: root.spanContext().traceId, rootId: root.spanContext().spanId, childId: child.spanContext().spanId, t0 };
}

const exportOnce = (exporter, batch) => new Promise((resolve) => exporter.export(batch, resolve));

let t;
before(async () => { t = await start(); });
after(async () => {
  if (!t) return;
  const r = await t.stop();
  t.cleanup();
  assert.equal(r.code, 0, `exit code ${r.code} signal ${r.signal}: ${t.stderr}`);
});

async function get(path, base = t) {
  const r = await fetch(base.httpUrl + path);
  const text = await r.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  return { status: r.status, body };
}

const tagsParam = (o) => `tags=${encodeURIComponent(JSON.stringify(o))}`;
const ids = (body) => body.data.map((tr) => tr.traceID).sort();

for (const [name, mk] of Object.entries(transports)) {
  test(`spans exported over ${name} are found through the Jaeger API`, async () => {
    const svc = `e2e-${name}`;
    const tr = makeTrace(svc);
    const res = await exportOnce(mk(t), tr.spans);
    assert.equal(res.code, 0, `export over ${name} failed: ${res.error}`);

    let r = await get('/api/services');
    assert.equal(r.status, 200);
    assert.ok(r.body.data.includes(svc), JSON.stringify(r.body));
    assert.equal(r.body.total, r.body.data.length);
    assert.equal(r.body.errors, null);

    r = await get(`/api/services/${encodeURIComponent(svc)}/operations`);
    assert.deepEqual(r.body.data.sort(), ['GET /orders/{id}', 'SELECT orders']);
    r = await get(`/api/operations?service=${svc}&spanKind=server`);
    assert.deepEqual(r.body.data, [{ name: 'GET /orders/{id}', spanKind: 'server' }]);
    assert.equal(r.body.total, 1);

    const win = `start=${(tr.t0 - 60000) * 1000}&end=${(tr.t0 + 60000) * 1000}`;
    const found = async (q) => ids((await get(`/api/traces?service=${svc}&${win}&${q}`)).body);
    assert.deepEqual(await found(''), [tr.traceId]);
    assert.deepEqual(await found('operation=SELECT%20orders'), [tr.traceId]);
    assert.deepEqual(await found('operation=nope'), []);
    assert.deepEqual(await found(tagsParam({ error: 'true' })), [tr.traceId]);
    assert.deepEqual(await found(tagsParam({ 'http.response.status_code': '500', 'span.kind': 'server' })), [tr.traceId]);
    assert.deepEqual(await found('tag=attempt:2&tag=event:retry'), [tr.traceId], 'event fields');
    assert.deepEqual(await found(`tag=host.name:h-${svc}`), [tr.traceId], 'resource attributes');
    assert.deepEqual(await found(tagsParam({ 'db.system': 'postgresql', 'http.request.method': 'GET' })), [], 'tags on different spans');
    assert.deepEqual(await found('minDuration=100ms'), [tr.traceId]);
    assert.deepEqual(await found('minDuration=1s'), []);
    assert.deepEqual(await found('maxDuration=25ms'), [tr.traceId], 'the child is short enough');
    assert.deepEqual(await found('operation=GET%20%2Forders%2F%7Bid%7D&maxDuration=25ms'), []);
    assert.deepEqual(await found('minDuration=15ms&maxDuration=25ms&operation=SELECT%20orders'), [tr.traceId]);

    // the whole trace in Jaeger's model
    r = await get(`/api/traces/${tr.traceId}`);
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body), ['data', 'total', 'limit', 'offset', 'errors']);
    assert.equal(r.body.data.length, 1);
    const jt = r.body.data[0];
    assert.deepEqual(Object.keys(jt), ['traceID', 'spans', 'processes', 'warnings']);
    assert.equal(jt.traceID, tr.traceId);
    assert.equal(jt.spans.length, 2);
    const root = jt.spans.find((s) => s.spanID === tr.rootId);
    const child = jt.spans.find((s) => s.spanID === tr.childId);
    assert.deepEqual(Object.keys(root), ['traceID', 'spanID', 'operationName', 'references', 'startTime', 'duration', 'tags', 'logs', 'processID', 'warnings']);
    assert.equal(root.operationName, 'GET /orders/{id}');
    assert.deepEqual(root.references, []);
    assert.equal(root.startTime, tr.t0 * 1000);
    assert.equal(root.duration, 120000);
    assert.equal(root.warnings, null);
    const tag = (s, k) => s.tags.find((x) => x.key === k);
    assert.deepEqual(tag(root, 'otel.scope.name'), { key: 'otel.scope.name', type: 'string', value: 'e2e-traces' });
    assert.deepEqual(tag(root, 'otel.scope.version'), { key: 'otel.scope.version', type: 'string', value: '3.2.1' });
    assert.deepEqual(tag(root, 'http.response.status_code'), { key: 'http.response.status_code', type: 'int64', value: 500 });
    assert.deepEqual(tag(root, 'ratio'), { key: 'ratio', type: 'float64', value: 0.5 });
    assert.deepEqual(tag(root, 'cached'), { key: 'cached', type: 'bool', value: false });
    assert.deepEqual(tag(root, 'span.kind'), { key: 'span.kind', type: 'string', value: 'server' });
    assert.deepEqual(tag(root, 'otel.status_code'), { key: 'otel.status_code', type: 'string', value: 'ERROR' });
    assert.deepEqual(tag(root, 'error'), { key: 'error', type: 'bool', value: true });
    assert.deepEqual(tag(root, 'otel.status_description'), { key: 'otel.status_description', type: 'string', value: 'upstream timed out' });
    assert.deepEqual(child.references, [{ refType: 'CHILD_OF', traceID: tr.traceId, spanID: tr.rootId }]);
    assert.equal(child.startTime, (tr.t0 + 10) * 1000);
    assert.equal(child.duration, 20000);
    assert.deepEqual(child.logs, [{ timestamp: (tr.t0 + 15) * 1000, fields: [
      { key: 'event', type: 'string', value: 'retry' }, { key: 'attempt', type: 'int64', value: 2 }] }]);
    assert.equal(root.processID, child.processID);
    assert.deepEqual(jt.processes[root.processID], { serviceName: svc, tags: jt.processes[root.processID].tags });
    const ptag = jt.processes[root.processID].tags.find((x) => x.key === 'host.name');
    assert.deepEqual(ptag, { key: 'host.name', type: 'string', value: `h-${svc}` });

    // API v3 in OTLP JSON
    r = await get('/api/v3/services');
    assert.ok(r.body.services.includes(svc));
    r = await get(`/api/v3/operations?service=${svc}`);
    assert.deepEqual(r.body.operations.map((o) => `${o.name}|${o.spanKind}`).sort(), ['GET /orders/{id}|server', 'SELECT orders|client']);
    const iso = (ms) => new Date(ms).toISOString();
    r = await get(`/api/v3/traces?query.serviceName=${svc}&query.startTimeMin=${iso(tr.t0 - 60000)}&query.startTimeMax=${iso(tr.t0 + 60000)}&query.attributes=${encodeURIComponent('{"error":"true"}')}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const spans = r.body.result.resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
    assert.equal(spans.length, 2);
    const v3root = spans.find((s) => s.spanId === tr.rootId);
    assert.equal(v3root.traceId, tr.traceId);
    assert.equal(v3root.kind, 2);
    assert.equal(v3root.startTimeUnixNano, `${tr.t0}000000`);
    assert.deepEqual(v3root.status, { message: 'upstream timed out', code: 2 });
    assert.deepEqual(v3root.attributes.find((a) => a.key === 'http.response.status_code').value, { intValue: '500' });
    r = await get(`/api/v3/traces/${tr.traceId}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.result.resourceSpans[0].resource.attributes.find((a) => a.key === 'service.name').value.stringValue, svc);
  });
}

test('by-id lookups, misses and bad parameters', async () => {
  const tr = makeTrace('e2e-params');
  assert.equal((await exportOnce(transports.proto(t), tr.spans)).code, 0);
  const unknown = '00000000000000000000000000abcdef';
  let r = await get(`/api/traces?traceID=${tr.traceId}&traceID=${unknown}`);
  assert.equal(r.status, 200);
  assert.deepEqual(ids(r.body), [tr.traceId]);
  assert.deepEqual(r.body.errors, [{ msg: 'trace not found', traceID: '0000000000abcdef' }]);
  r = await get(`/api/traces/${unknown}`);
  assert.equal(r.status, 404);
  assert.deepEqual(r.body, { data: null, total: 0, limit: 0, offset: 0, errors: [{ code: 404, msg: 'trace not found' }] });
  r = await get(`/api/traces/${tr.traceId.toUpperCase()}?start=1&end=2`);
  assert.equal(r.status, 200, 'start/end are hints, not filters');

  const bad = [
    ['/api/traces/xyz', 'strconv.ParseUint: parsing "xyz": invalid syntax'],
    ['/api/traces/123456789012345678901234567890123', 'TraceID cannot be longer than 32 hex characters'],
    ['/api/traces?service=s&minDuration=3d', `unable to parse param 'minDuration': time: unknown unit "d" in duration "3d"`],
    ['/api/traces?service=s&maxDuration=10', `unable to parse param 'maxDuration': time: missing unit in duration "10"`],
    ['/api/traces?service=s&start=abc', `unable to parse param 'start': strconv.ParseInt: parsing "abc": invalid syntax`],
    ['/api/traces?service=s&end=1.5', `unable to parse param 'end'`],
    [`/api/traces?service=s&tags=${encodeURIComponent('{bad')}`, "malformed 'tags' parameter, cannot unmarshal JSON"],
    [`/api/traces?service=s&tags=${encodeURIComponent('{"a":1}')}`, 'cannot unmarshal number into Go value of type string'],
    ['/api/traces?service=s&tag=nocolon', "malformed 'tag' parameter, expecting key:value, received: nocolon"],
    ['/api/traces?service=s&limit=x', 'strconv.ParseInt: parsing "x": invalid syntax'],
    ['/api/traces?service=s&limit=0', "unable to parse param 'limit'"],
    ['/api/traces?service=s&traceID=zz', 'cannot parse traceID param'],
    ['/api/traces?minDuration=1s', "parameter 'service' is required"],
    ['/api/traces?service=s&minDuration=2s&maxDuration=1s', "'maxDuration' should be greater than 'minDuration'"],
    ['/api/operations', "parameter 'service' is required"],
    ['/api/dependencies?endTs=x', `unable to parse param 'endTs'`],
  ];
  for (const [path, msg] of bad) {
    r = await get(path);
    assert.equal(r.status, 400, path);
    assert.equal(r.body.data, null, path);
    assert.equal(r.body.errors[0].code, 400, path);
    assert.ok(r.body.errors[0].msg.includes(msg), `${path}: ${r.body.errors[0].msg}`);
  }
  r = await get('/api/v3/traces?query.serviceName=s');
  assert.equal(r.status, 400);
  assert.deepEqual(r.body, { error: { httpCode: 400, message: 'query.startTimeMin and query.startTimeMax are required' } });
  r = await get('/api/v3/traces?query.startTimeMin=x&query.startTimeMax=2024-01-01T00:00:00Z');
  assert.equal(r.status, 400);
  assert.ok(r.body.error.message.startsWith('malformed parameter query.startTimeMin'));
  r = await get(`/api/v3/traces/${unknown}`);
  assert.equal(r.status, 404);
  assert.deepEqual(r.body, { error: { httpCode: 404, message: 'No traces found' } });

  r = await get(`/api/dependencies?endTs=${Date.now() + 60000}&lookback=3600000`);
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.body.data));
});

test('dependencies: parent→child service calls', async () => {
  const t0 = Date.now() - 2000;
  const mem = new InMemorySpanExporter();
  const mk = (svc) => new BasicTracerProvider({ resource: resourceFromAttributes({ 'service.name': svc }), spanProcessors: [new SimpleSpanProcessor(mem)] });
  const front = mk('e2e-dep-front').getTracer('x'), back = mk('e2e-dep-back').getTracer('x');
  const root = front.startSpan('GET /', { kind: SpanKind.SERVER, startTime: t0 });
  const call = back.startSpan('handle', { kind: SpanKind.SERVER, startTime: t0 + 1 }, trace.setSpan(context.active(), root));
  call.end(t0 + 5);
  root.end(t0 + 10);
  assert.equal((await exportOnce(transports.proto(t), mem.getFinishedSpans())).code, 0);
  const r = await get(`/api/dependencies?endTs=${Date.now()}&lookback=60000&service=e2e-dep-back`);
  assert.deepEqual(r.body.data, [{ parent: 'e2e-dep-front', child: 'e2e-dep-back', callCount: 1 }]);
});

test('acknowledged spans survive kill -9', async () => {
  const s = await start({ keepDataDir: true });
  const traceIds = [];
  try {
    for (let i = 0; i < 20; i++) {
      const tr = makeTrace('e2e-crash');
      assert.equal((await exportOnce(transports.proto(s), tr.spans)).code, 0);
      traceIds.push(tr.traceId);
    }
    const m = await s.metrics();
    assert.equal(metricSum(m, 'tricorder_traces_spans_stored_total'), 40);
    await s.kill9();
  } catch (e) {
    await s.kill9();
    throw e;
  }
  const s2 = await start({ dataDir: s.dataDir });
  try {
    const r = await get(`/api/traces?${traceIds.map((id) => `traceID=${id}`).join('&')}`, s2);
    assert.equal(r.status, 200);
    assert.equal(r.body.errors, null, JSON.stringify(r.body.errors));
    assert.deepEqual(ids(r.body), [...traceIds].sort());
    for (const jt of r.body.data) assert.equal(jt.spans.length, 2);
    const found = await get(`/api/traces?service=e2e-crash&limit=100&start=${(Date.now() - 3600000) * 1000}&end=${Date.now() * 1000}`, s2);
    assert.equal(found.body.data.length, 20);
  } finally {
    const r = await s2.stop();
    s2.cleanup();
    s.cleanup();
    (await import('node:fs')).rmSync(s.dataDir, { recursive: true, force: true });
    assert.equal(r.code, 0);
  }
});
