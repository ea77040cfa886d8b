// Writes the seed corpora of the fuzz targets (fuzz_otlp_pb, fuzz_otlp_json, fuzz_gunzip):
// - from the real OpenTelemetry JS SDK, what its HTTP/JSON and HTTP/protobuf exporters send for
//   a small set of metrics (sum, up-down sum, gauge, histogram, exponential histogram) and spans
//   (kinds, events, links, attributes of every type, error status); the unit tests
//   (tests/unit/otlp) read these files as realistic fixtures;
// - small hand-made inputs, valid and invalid, for what the SDK never sends (summaries,
//   snake_case keys, enum names, bad ids, invalid UTF-8, deep nesting, gzip bombs, ...).
// Run by hand when the SDK changes:
//   node tests/fuzz/make_corpus.mjs
// (needs tests/e2e/node_modules: `cd tests/e2e && npm ci`).
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, '../e2e/package.json'));
const { MeterProvider, MetricReader, AggregationType } = require('@opentelemetry/sdk-metrics');
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { SpanKind, SpanStatusCode, ValueType } = require('@opentelemetry/api');
const {
  JsonMetricsSerializer, JsonTraceSerializer, ProtobufMetricsSerializer, ProtobufTraceSerializer,
} = require('@opentelemetry/otlp-transformer');

const resource = resourceFromAttributes({ 'service.name': 'corpus', 'service.version': '1.2.3', 'host.cpus': 2 });

class Reader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

async function metrics() {
  const reader = new Reader();
  const provider = new MeterProvider({
    resource,
    readers: [reader],
    views: [{ instrumentName: 'latency_exp', aggregation: { type: AggregationType.EXPONENTIAL_HISTOGRAM } }],
  });
  const m = provider.getMeter('corpus-meter', '0.1.0');
  m.createCounter('requests', { description: 'Requests served', unit: '{request}', valueType: ValueType.INT }).add(3, { route: '/a', ok: true });
  m.createCounter('bytes', { valueType: ValueType.DOUBLE }).add(1.5, { route: '/b' });
  m.createUpDownCounter('queue_depth').add(-2, { q: 'x' });
  m.createObservableGauge('temperature', { unit: 'Cel' }).addCallback((r) => r.observe(21.5, { room: 'kitchen' }));
  const h = m.createHistogram('latency', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 1, 10] } });
  for (const v of [0.05, 0.5, 5, 50]) h.record(v, { route: '/a' });
  const e = m.createHistogram('latency_exp', { unit: 'ms' });
  for (const v of [1, 2, 4, 1000, 0]) e.record(v);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}

function spans() {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('corpus-tracer', '0.2.0');
  const t0 = [1700000000, 123456789];
  const root = tracer.startSpan('GET /checkout', { kind: SpanKind.SERVER, startTime: t0, attributes: {
    'http.method': 'GET', 'http.status_code': 500, 'retry': false, 'ratio': 0.25,
    'tags': ['a', 'b'], 'ports': [80, 443], 'unicode': 'grüße ✓',
  } });
  root.addEvent('exception', { 'exception.message': 'boom' }, [1700000000, 223456789]);
  root.setStatus({ code: SpanStatusCode.ERROR, message: 'payment failed' });
  const ctx = require('@opentelemetry/api').trace.setSpan(require('@opentelemetry/api').context.active(), root);
  const child = tracer.startSpan('charge card', {
    kind: SpanKind.CLIENT, startTime: [1700000000, 200000000],
    links: [{ context: root.spanContext(), attributes: { reason: 'retry' } }],
  }, ctx);
  child.end([1700000000, 300000000]);
  tracer.startSpan('produce', { kind: SpanKind.PRODUCER, startTime: t0 }, ctx).end([1700000000, 130000000]);
  root.end([1700000001, 0]);
  return exporter.getFinishedSpans();
}

function write(target, name, data) {
  const dir = join(here, 'corpus', target);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, name), data);
}

const rm = await metrics();
const sp = spans();
write('fuzz_otlp_json', 'sdk_metrics.json', JsonMetricsSerializer.serializeRequest(rm));
write('fuzz_otlp_json', 'sdk_traces.json', JsonTraceSerializer.serializeRequest(sp));
write('fuzz_otlp_pb', 'sdk_metrics.pb', ProtobufMetricsSerializer.serializeRequest(rm));
write('fuzz_otlp_pb', 'sdk_traces.pb', ProtobufTraceSerializer.serializeRequest(sp));

// ---- hand-made protobuf seeds (a minimal encoder: enough for these few messages) ----
const varint = (n) => {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
};
const ld = (field, ...parts) => {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : p)));
  return Buffer.concat([varint((field << 3) | 2), varint(body.length), body]);
};
const vi = (field, n) => Buffer.concat([varint(field << 3), varint(n)]);
const f64 = (field, n) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(n)); return Buffer.concat([varint((field << 3) | 1), b]); };
const dbl = (field, x) => { const b = Buffer.alloc(8); b.writeDoubleLE(x); return Buffer.concat([varint((field << 3) | 1), b]); };
const attr = (k, v) => ld(1, ld(1, k), ld(2, ld(1, v)));
// metrics: a summary with two quantiles and a gauge with an int point
const summaryMetric = ld(2, ld(1, 'rpc_seconds'), ld(11, ld(1, attr('route', '/a'), f64(3, 1700000000000000000n), f64(4, 10), dbl(5, 2.5),
  ld(6, dbl(1, 0.5), dbl(2, 0.1)), ld(6, dbl(1, 0.99), dbl(2, 0.9)))));
const gaugeMetric = ld(2, ld(1, 'temp'), ld(5, ld(1, f64(3, 1n), Buffer.from([0x31, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))));
write('fuzz_otlp_pb', 'summary_gauge.pb', ld(1, ld(2, ld(1, ld(1, 'meter')), summaryMetric, gaugeMetric)));
const tid = Buffer.from('5b8efff798038103d269b633813fc60c', 'hex');
const sid = Buffer.from('eee19b7ec3c1b174', 'hex');
const span = (...extra) => ld(1, ld(2, ld(2, ld(1, tid), ld(2, sid), ...extra)));
write('fuzz_otlp_pb', 'span_bad_utf8.pb', span(ld(5, 'bad \xc0\x80 name')));
write('fuzz_otlp_pb', 'span_short_trace_id.pb', ld(1, ld(2, ld(2, ld(1, tid.subarray(0, 15)), ld(2, sid)))));
write('fuzz_otlp_pb', 'span_unknown_fields.pb', span(vi(99, 7), ld(100, 'x'), f64(101, 1n)));
let nested = ld(1, 'leaf');
for (let i = 0; i < 40; i++) nested = ld(5, ld(1, nested)); // AnyValue.array_value.values[0] ...
write('fuzz_otlp_pb', 'span_nested_40.pb', span(ld(9, ld(1, 'deep'), ld(2, nested))));
write('fuzz_otlp_pb', 'truncated.pb', Buffer.from(ProtobufTraceSerializer.serializeRequest(sp)).subarray(0, 100));
write('fuzz_otlp_pb', 'empty.pb', Buffer.alloc(0));
write('fuzz_otlp_pb', 'garbage.pb', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0b, 0x00]));

// ---- hand-made JSON seeds ----
const J = (name, text) => write('fuzz_otlp_json', name, text);
J('metrics_all_types.json', JSON.stringify({ resourceMetrics: [{ scopeMetrics: [{ metrics: [
  { name: 'g', gauge: { dataPoints: [{ asInt: '-9223372036854775808', timeUnixNano: '1700000000000000001' }, { asDouble: 'NaN' }] } },
  { name: 's', sum: { aggregationTemporality: 'AGGREGATION_TEMPORALITY_DELTA', isMonotonic: true, dataPoints: [{ asDouble: 'Infinity' }] } },
  { name: 'h', histogram: { aggregationTemporality: 2, dataPoints: [{ count: '6', sum: 7.5, bucketCounts: ['1', 2, 3], explicitBounds: [0.5, 1],
    exemplars: [{ asInt: '4', traceId: '0102030405060708090A0B0C0D0E0F10', spanId: 'a1a2a3a4a5a6a7a8' }] }] } },
  { name: 'e', exponentialHistogram: { dataPoints: [{ count: 10, scale: -3, zeroCount: '1', positive: { offset: -2, bucketCounts: ['2', 3] } }] } },
  { name: 'q', summary: { dataPoints: [{ count: '100', sum: 12.5, quantileValues: [{ quantile: 0.5, value: 0.1 }] }] } },
] }] }] }));
J('traces_snake_case.json', '{"resource_spans":[{"scope_spans":[{"spans":[{"trace_id":"5B8EFFF798038103D269B633813FC60C",' +
  '"span_id":"eee19b7ec3c1b174","kind":"SPAN_KIND_CLIENT","start_time_unix_nano":1700000000000000000,' +
  '"attributes":[{"key":"b","value":{"bytesValue":"aGVsbG8="}},{"key":"u","value":{"stringValue":"\\u00e9\\ud83d\\ude00"}}],' +
  '"status":{"code":"STATUS_CODE_ERROR","message":null}}]}]}],"unknown":{"x":[1,2,{"y":null}]}}');
J('bad_hex_id.json', '{"resourceSpans":[{"scopeSpans":[{"spans":[{},{"traceId":"5b8efff798038103d269b633813fc6zz"}]}]}]}');
J('wrong_type.json', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":5}]}]}]}');
J('oneof_twice.json', '{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"gauge":{},"sum":{}}]}]}]}');
J('broken.json', '{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}]}]}');
J('deep.json', '{"x":' + '['.repeat(300) + ']'.repeat(300) + '}');
J('deep_attr.json', '{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":' + '{"arrayValue":{"values":['.repeat(33) +
  '{"intValue":1}' + ']}}'.repeat(33) + '}]}}]}');
J('bad_utf8.json', Buffer.concat([Buffer.from('{"resourceSpans":[{"schemaUrl":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}]}')]));
J('lone_surrogate.json', '{"resourceSpans":[{"schemaUrl":"\\ud800"}]}');
J('empty.json', '');

// ---- gzip seeds ----
const G = (name, data) => write('fuzz_gunzip', name, data);
G('text.gz', gzipSync('hello, tricorder'));
G('two_members.gz', Buffer.concat([gzipSync('first '), gzipSync('second')]));
G('empty_member.gz', gzipSync(Buffer.alloc(0)));
G('bomb_1mib.gz', gzipSync(Buffer.alloc(1 << 20)));
G('truncated.gz', gzipSync('some text to cut short').subarray(0, 20));
G('trailing_garbage.gz', Buffer.concat([gzipSync('x'), Buffer.from('junk')]));
G('not_gzip.gz', Buffer.from('plain text'));
console.log('wrote seeds to', join(here, 'corpus'));
