// The real OpenTelemetry JS SDK exporters (gRPC, HTTP/protobuf, HTTP/JSON; plain and gzip)
// export metrics and traces to tricorder; every export must succeed, and tricorder's own
// /metrics must count exactly the data points and spans the SDK sent.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPMetricExporter as MetricsGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as MetricsProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPMetricExporter as MetricsJson } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPTraceExporter as TraceGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as TraceProto } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as TraceJson } from '@opentelemetry/exporter-trace-otlp-http';

import { start, metricSum } from './lib/tricorder.mjs';

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

const resource = resourceFromAttributes({ 'service.name': 'e2e-sdk', 'service.version': '1.2.3' });

// Records one of each instrument kind with a few attribute sets; returns the collected batch
// and how many data points it holds.
async function collectMetrics(round) {
  const reader = new TestReader();
  const provider = new MeterProvider({ resource, readers: [reader] });
  const meter = provider.getMeter('e2e-scope', '0.1.0');
  const counter = meter.createCounter('e2e.requests.total');
  const updown = meter.createUpDownCounter('e2e.active');
  const hist = meter.createHistogram('e2e.duration', { unit: 's' });
  const gauge = meter.createGauge('e2e.memory.rss_bytes', { unit: 'bytes' });
  for (let i = 0; i < 3 + round; i++) {
    const attrs = { route: `/r/${i}`, method: i % 2 ? 'GET' : 'POST' };
    counter.add(i + 1, attrs);
    updown.add(1, attrs);
    hist.record(0.01 * (i + 1), attrs);
    gauge.record(1000 + i, attrs);
  }
  const { resourceMetrics, errors } = await reader.collect();
  assert.equal(errors.length, 0);
  let points = 0;
  for (const sm of resourceMetrics.scopeMetrics) for (const m of sm.metrics) points += m.dataPoints.length;
  await provider.shutdown();
  return { resourceMetrics, points };
}

function collectSpans(n, name) {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(mem)] });
  const tracer = provider.getTracer('e2e-tracer', '0.1.0');
  for (let i = 0; i < n; i++) {
    tracer.startActiveSpan(`${name} ${i}`, (root) => {
      root.setAttribute('http.route', `/items/${i}`);
      const child = tracer.startSpan('child');
      child.addEvent('something happened', { detail: i });
      child.end();
      root.end();
    });
  }
  return mem.getFinishedSpans();
}

const exportOnce = (exporter, batch) => new Promise((resolve) => exporter.export(batch, resolve));

let t;
before(async () => { t = await start(); });
after(async () => {
  const r = await t.stop();
  t.cleanup();
  assert.equal(r.code, 0, `exit code ${r.code} signal ${r.signal}: ${t.stderr}`);
});

const transports = [
  { name: 'grpc', label: 'grpc', metrics: (u, o) => new MetricsGrpc({ url: u.grpc, ...o }), traces: (u, o) => new TraceGrpc({ url: u.grpc, ...o }) },
  { name: 'http/protobuf', label: 'http_protobuf', metrics: (u, o) => new MetricsProto({ url: `${u.http}/v1/metrics`, ...o }), traces: (u, o) => new TraceProto({ url: `${u.http}/v1/traces`, ...o }) },
  { name: 'http/json', label: 'http_json', metrics: (u, o) => new MetricsJson({ url: `${u.http}/v1/metrics`, ...o }), traces: (u, o) => new TraceJson({ url: `${u.http}/v1/traces`, ...o }) },
];

for (const tr of transports) {
  for (const compression of ['none', 'gzip']) {
    test(`SDK exports over ${tr.name} (${compression}) are all acknowledged and counted exactly`, async () => {
      const urls = { grpc: t.grpcUrl, http: t.otlpHttpUrl };
      const before = await t.metrics();
      const opts = { compression, timeoutMillis: 10000 };

      const me = tr.metrics(urls, opts);
      let sentPoints = 0;
      for (let round = 0; round < 3; round++) {
        const { resourceMetrics, points } = await collectMetrics(round);
        const res = await exportOnce(me, resourceMetrics);
        assert.equal(res.code, 0, `metrics export failed: ${res.error}`);
        sentPoints += points;
      }
      await me.shutdown();

      const te = tr.traces(urls, opts);
      let sentSpans = 0;
      for (let round = 0; round < 3; round++) {
        const spans = collectSpans(5 + round, `GET /round/${round}`);
        const res = await exportOnce(te, spans);
        assert.equal(res.code, 0, `trace export failed: ${res.error}`);
        sentSpans += spans.length;
      }
      await te.shutdown();

      const after = await t.metrics();
      const delta = (name, match) => metricSum(after, name, match) - metricSum(before, name, match);
      assert.equal(delta('tricorder_otlp_points_accepted_total'), sentPoints);
      assert.equal(delta('tricorder_otlp_spans_accepted_total'), sentSpans);
      assert.equal(delta('tricorder_otlp_points_rejected_total'), 0);
      assert.equal(delta('tricorder_otlp_spans_rejected_total'), 0);
      assert.equal(delta('tricorder_otlp_requests_total', { transport: tr.label, signal: 'metrics' }), 3);
      assert.equal(delta('tricorder_otlp_requests_total', { transport: tr.label, signal: 'traces' }), 3);
      assert.equal(delta('tricorder_otlp_request_errors_total', { transport: tr.label }), 0);
      assert.ok(delta('tricorder_otlp_received_bytes_total', { transport: tr.label }) > 0);
      assert.equal(delta('tricorder_otlp_request_duration_seconds_count', { transport: tr.label }), 6);
    });
  }
}

test('OTLP/HTTP is served on --http-addr too', async () => {
  const me = new MetricsProto({ url: `${t.httpUrl}/v1/metrics` });
  const { resourceMetrics } = await collectMetrics(0);
  const res = await exportOnce(me, resourceMetrics);
  assert.equal(res.code, 0, String(res.error));
  await me.shutdown();
});
