// Real OTLP payloads for tests, made by the OTel JS SDK and its own serializers (so the bytes
// are what the SDK's exporters put on the wire), plus helpers to corrupt them.
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  ProtobufMetricsSerializer, ProtobufTraceSerializer, JsonMetricsSerializer, JsonTraceSerializer,
} from '@opentelemetry/otlp-transformer';

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

const resource = resourceFromAttributes({ 'service.name': 'payloads', 'service.instance.id': 'i-1' });

// Returns { resourceMetrics, points }: a counter and a histogram over `series` attribute sets.
export async function sampleMetrics(series = 3) {
  const reader = new TestReader();
  const provider = new MeterProvider({ resource, readers: [reader] });
  const meter = provider.getMeter('payloads');
  const c = meter.createCounter('payload.requests');
  const h = meter.createHistogram('payload.latency', { unit: 'ms' });
  for (let i = 0; i < series; i++) {
    c.add(i + 1, { k: `v${i}` });
    h.record(i * 3, { k: `v${i}` });
  }
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return { resourceMetrics, points: 2 * series };
}

// Returns finished spans: `n` traces of a root and one child.
export function sampleSpans(n = 2) {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(mem)] });
  const tracer = provider.getTracer('payloads');
  for (let i = 0; i < n; i++) {
    tracer.startActiveSpan(`op ${i}`, (root) => {
      tracer.startSpan('child').end();
      root.end();
    });
  }
  return mem.getFinishedSpans();
}

export async function metricsProtobuf(series) {
  const { resourceMetrics, points } = await sampleMetrics(series);
  return { body: Buffer.from(ProtobufMetricsSerializer.serializeRequest(resourceMetrics)), points };
}
export async function metricsJson(series) {
  const { resourceMetrics, points } = await sampleMetrics(series);
  return { body: Buffer.from(JsonMetricsSerializer.serializeRequest(resourceMetrics)), points };
}
export function tracesProtobuf(n) {
  const spans = sampleSpans(n);
  return { body: Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)), spans: spans.length };
}
export function tracesJson(n) {
  const spans = sampleSpans(n);
  return { body: Buffer.from(JsonTraceSerializer.serializeRequest(spans)), spans: spans.length };
}

// Encodes a protobuf varint.
export function varint(n) {
  const out = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
// A length-delimited protobuf field.
export const pbField = (num, bytes) => Buffer.concat([varint((num << 3) | 2), varint(bytes.length), bytes]);
