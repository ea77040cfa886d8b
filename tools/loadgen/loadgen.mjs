#!/usr/bin/env node
// A Scotty-shaped load generator. It sends tricorder what Scotty (factorial-io/scotty 0.3.3)
// sends: the 51 metric instruments of its OtelRecorder (same names, kinds, units,
// descriptions, attributes and the SDK's default histogram buckets), exported every 10 s
// with cumulative temporality over OTLP/gRPC, and HTTP server spans named "METHOD /route"
// with Scotty's attributes, children for the app operations, 5xx marked as errors.
//
//   node tools/loadgen/loadgen.mjs [--endpoint http://localhost:4317] [--protocol grpc|http]
//        [--interval 10s] [--rps 5] [--duration 0 (forever)] [--token T] [--seed N]
//
// Prints one line per metrics export; stops cleanly on SIGINT/SIGTERM (flushing).
import { metrics, trace, context, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';

const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : 'true']);
  return acc;
}, []));
const protocol = args.protocol || 'grpc';
const endpoint = args.endpoint || (protocol === 'grpc' ? 'http://localhost:4317' : 'http://localhost:4318');
const intervalMs = parseDur(args.interval || '10s');
const rps = Number(args.rps || 5);
const durationMs = parseDur(args.duration || '0');
const headers = args.token ? { Authorization: `Bearer ${args.token}` } : undefined;
let seed = Number(args.seed || Date.now() % 100000);

function parseDur(s) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(s));
  if (!m) throw new Error(`bad duration ${s}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2] || 's'];
}
// a small deterministic PRNG, so runs can be repeated with --seed
function rand() {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
}
const pick = (a) => a[Math.floor(rand() * a.length)];
const exp = (mean) => -Math.log(1 - rand()) * mean;

async function exporters() {
  if (protocol === 'grpc') {
    const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-grpc');
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-grpc');
    const { Metadata } = await import('@grpc/grpc-js');
    const md = new Metadata();
    if (args.token) md.set('authorization', `Bearer ${args.token}`);
    return [new OTLPMetricExporter({ url: endpoint, metadata: md }), new OTLPTraceExporter({ url: endpoint, metadata: md })];
  }
  const { OTLPMetricExporter } = await import('@opentelemetry/exporter-metrics-otlp-http');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
  return [new OTLPMetricExporter({ url: `${endpoint}/v1/metrics`, headers }), new OTLPTraceExporter({ url: `${endpoint}/v1/traces`, headers })];
}

const [metricExporter, traceExporter] = await exporters();
// Scotty: service.name forced to "scotty", service.version 0.3.3, the SDK's telemetry.sdk.*
const resource = resourceFromAttributes({
  'service.name': 'scotty', 'service.version': '0.3.3',
  'telemetry.sdk.name': 'opentelemetry', 'telemetry.sdk.language': 'rust', 'telemetry.sdk.version': '0.31.0',
});
let exports = 0;
const loggingExporter = {
  export(batch, cb) {
    metricExporter.export(batch, (r) => {
      exports++;
      const n = batch.scopeMetrics.reduce((a, s) => a + s.metrics.length, 0);
      console.log(`export ${exports}: ${n} metrics ${r.code === 0 ? 'ok' : `failed: ${r.error && r.error.message}`}`);
      cb(r);
    });
  },
  forceFlush: () => metricExporter.forceFlush(),
  shutdown: () => metricExporter.shutdown(),
  selectAggregationTemporality: (k) => metricExporter.selectAggregationTemporality(k),
};
const meterProvider = new MeterProvider({ resource, readers: [new PeriodicExportingMetricReader({ exporter: loggingExporter, exportIntervalMillis: intervalMs })] });
metrics.setGlobalMeterProvider(meterProvider);
const tracerProvider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(traceExporter, { scheduledDelayMillis: 1000 })] });
const tracer = tracerProvider.getTracer('');
const meter = meterProvider.getMeter('scotty');

// opentelemetry_sdk 0.31's default buckets, which every Scotty histogram uses
const BUCKETS = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];
const hist = (name, desc, unit) => meter.createHistogram(name, { description: desc, unit, advice: { explicitBucketBoundaries: BUCKETS } });
const counter = (name, desc) => meter.createCounter(name, { description: desc, valueType: 1 });
const gauge = (name, desc, unit) => meter.createGauge(name, { description: desc, unit, valueType: 1 });

const m = {
  logStreamsActive: gauge('scotty.log_streams.active', 'Active log streams'),
  logStreamsTotal: counter('scotty.log_streams.total', 'Total log streams'),
  logStreamDuration: hist('scotty.log_stream.duration', 'Log stream duration', 's'),
  logLines: counter('scotty.log_stream.lines', 'Log lines received'),
  logErrors: counter('scotty.log_stream.errors', 'Log streaming errors'),
  shellActive: gauge('scotty.shell_sessions.active', 'Active shell sessions'),
  shellTotal: counter('scotty.shell_sessions.total', 'Total shell sessions'),
  shellDuration: hist('scotty.shell_session.duration', 'Shell session duration', 's'),
  shellErrors: counter('scotty.shell_session.errors', 'Shell session errors'),
  shellTimeouts: counter('scotty.shell_session.timeouts', 'Shell session timeouts'),
  wsConnections: gauge('scotty.websocket.connections', 'Active WebSocket connections'),
  wsSent: counter('scotty.websocket.messages_sent', 'WebSocket messages sent'),
  wsReceived: counter('scotty.websocket.messages_received', 'WebSocket messages received'),
  wsAuthFailures: counter('scotty.websocket.auth_failures', 'WebSocket authentication failures'),
  tasksActive: gauge('scotty.tasks.active', 'Active tasks'),
  tasksTotal: counter('scotty.tasks.total', 'Total tasks executed'),
  taskDuration: hist('scotty.task.duration', 'Task execution duration', 's'),
  taskFailures: counter('scotty.task.failures', 'Failed tasks'),
  taskOutputLines: counter('scotty.task.output_lines', 'Task output lines streamed'),
  taskOutputActive: gauge('scotty.task_output_streams.active', 'Active task output streams'),
  taskOutputTotal: counter('scotty.task_output_streams.total', 'Total task output streams'),
  rss: gauge('scotty.memory.rss_bytes', 'Resident Set Size (RSS) in bytes', 'bytes'),
  virt: gauge('scotty.memory.virtual_bytes', 'Virtual memory size in bytes', 'bytes'),
  workers: gauge('scotty.tokio.workers.count', 'Number of Tokio worker threads'),
  tokioActive: gauge('scotty.tokio.tasks.active', 'Number of active instrumented tasks'),
  tokioDropped: counter('scotty.tokio.tasks.dropped', 'Number of completed tasks'),
  pollCount: counter('scotty.tokio.poll.count', 'Total number of task polls'),
  pollDuration: hist('scotty.tokio.poll.duration', 'Task poll duration', 's'),
  slowPolls: counter('scotty.tokio.poll.slow_count', 'Number of slow task polls'),
  idleDuration: hist('scotty.tokio.idle.duration', 'Task idle duration between polls', 's'),
  scheduled: counter('scotty.tokio.scheduled.count', 'Number of times tasks were scheduled'),
  firstPoll: hist('scotty.tokio.first_poll.delay', 'Delay between task creation and first poll', 's'),
  httpTotal: counter('scotty.http.requests.total', 'Total HTTP requests'),
  httpDuration: hist('scotty.http.request.duration', 'HTTP request duration', 's'),
  httpActive: meter.createUpDownCounter('scotty.http.requests.active', { description: 'Active HTTP requests', valueType: 1 }),
  appsTotal: gauge('scotty.apps.total', 'Total number of managed applications'),
  appsByStatus: gauge('scotty.apps.by_status', 'Number of apps by status'),
  appServices: hist('scotty.app.services.count', 'Number of services per application'),
  appCheckAge: hist('scotty.app.last_check.age', 'Time since last health check', 's'),
  deviceFlowSessions: gauge('scotty.oauth.device_flow_sessions.active', 'Active OAuth device flow sessions'),
  webFlowSessions: gauge('scotty.oauth.web_flow_sessions.active', 'Active OAuth web flow sessions'),
  // scotty.oauth.sessions.active and scotty.oauth.flows.failures exist but are never
  // recorded by Scotty: created here, never recorded either, so they export nothing.
  oauthSessions: gauge('scotty.oauth.sessions.active', 'Active OAuth sessions'),
  sessionsCleaned: counter('scotty.oauth.sessions.expired_cleaned', 'Expired OAuth sessions cleaned up'),
  deviceFlows: counter('scotty.oauth.device_flows.total', 'Total OAuth device flows started'),
  webFlows: counter('scotty.oauth.web_flows.total', 'Total OAuth web flows started'),
  flowFailures: counter('scotty.oauth.flows.failures', 'Failed OAuth flows'),
  validations: counter('scotty.oauth.token_validations.total', 'Total OAuth token validations'),
  validationDuration: hist('scotty.oauth.token_validation.duration', 'OAuth token validation duration', 's'),
  validationFailures: counter('scotty.oauth.token_validations.failures', 'Failed OAuth token validations'),
  rateLimit: counter('scotty.rate_limit.requests.total', 'Total rate limit requests (allowed and denied)'),
  rateLimitErrors: counter('scotty.rate_limit.extractor.errors', 'Rate limit key extraction failures'),
};

const APPS = ['nginx-demo', 'wordpress', 'drupal-site', 'api-gateway', 'shop', 'docs'];
const STATUSES = ['running', 'stopped', 'starting', 'creating', 'destroying', 'unsupported'];
const ROUTES = [
  ['GET', '/api/v1/health', null, 0.002],
  ['GET', '/api/v1/authenticated/apps/list', null, 0.02],
  ['GET', '/api/v1/authenticated/apps/info/{app_id}', 'inspect_app', 0.03],
  ['POST', '/api/v1/authenticated/apps/run/{app_id}', 'run_app', 0.3],
  ['POST', '/api/v1/authenticated/apps/stop/{app_id}', 'stop_app', 0.2],
  ['POST', '/api/v1/authenticated/apps/create', 'run_app_prepare', 0.8],
  ['GET', '/api/v1/authenticated/tasks/{task_id}', null, 0.01],
  ['GET', '/ws', 'ws_handler', 0.005],
];
const state = { logStreams: 0, shells: 0, ws: 0, tasks: 0, outStreams: 0, t0: Date.now(), polls: 0, dropped: 0, sched: 0, slow: 0 };

// One HTTP request: the server span, its children, and the metrics Scotty's middleware records.
function request() {
  const [method, route, op, mean] = pick(ROUTES);
  const app = pick(APPS);
  const path = route.replace('{app_id}', app).replace('{task_id}', String(Math.floor(rand() * 1000)));
  const status = rand() < 0.03 ? 500 : rand() < 0.05 ? 404 : method === 'POST' ? 202 : 200;
  const seconds = exp(mean) * (status === 500 ? 3 : 1);
  const end = Date.now();
  const start = end - seconds * 1000;
  m.httpActive.add(1);
  const span = tracer.startSpan(`${method} ${route}`, {
    kind: SpanKind.SERVER, startTime: start,
    attributes: { 'http.request.method': method, 'http.route': route, 'network.protocol.version': '1.1', 'server.address': 'scotty.example.org',
      'user_agent.original': 'scottyctl/0.3.3', 'url.path': path, 'url.scheme': '', 'span.type': 'web' },
  });
  if (op) {
    const ctx = trace.setSpan(context.active(), span);
    const childStart = start + seconds * 100;
    const child = tracer.startSpan(op, { startTime: childStart, attributes: { app_name: app, 'code.namespace': 'scotty::docker' } }, ctx);
    const cctx = trace.setSpan(ctx, child);
    const steps = 1 + Math.floor(rand() * 3);
    let t = childStart;
    const slice = (seconds * 800) / steps;
    for (let i = 0; i < steps; i++) {
      const g = tracer.startSpan(pick(['inspect_docker_compose', 'get_running_services', 'inspect_docker_container', 'transition']), { startTime: t, attributes: { app_name: app } }, cctx);
      if (i === 0 && rand() < 0.3) g.addEvent('docker api call', { 'docker.endpoint': '/containers/json' }, t + slice / 3);
      g.end(t + slice * 0.9);
      t += slice;
    }
    child.end(start + seconds * 950);
  }
  span.setAttribute('http.response.status_code', status);
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR, message: 'Internal Server Error' });
  span.end(end);
  const attrs = { method, route: path, status: String(status) };
  m.httpTotal.add(1, attrs);
  m.httpDuration.record(seconds, attrs);
  m.httpActive.add(-1);
  const tier = route.includes('authenticated') ? 'authenticated' : route.includes('oauth') ? 'oauth' : 'public_auth';
  m.rateLimit.add(1, { tier, decision: rand() < 0.04 ? 'denied' : 'allowed' });
  if (rand() < 0.005) m.rateLimitErrors.add(1);
}

// The rest of Scotty's activity, per tick of one second.
function tick() {
  if (rand() < 0.2) { state.logStreams++; m.logStreamsTotal.add(1); }
  if (state.logStreams > 0 && rand() < 0.15) { state.logStreams--; m.logStreamDuration.record(exp(40)); if (rand() < 0.1) m.logErrors.add(1); }
  m.logStreamsActive.record(state.logStreams);
  m.logLines.add(Math.floor(state.logStreams * exp(30)));
  if (rand() < 0.08) { state.shells++; m.shellTotal.add(1); }
  if (state.shells > 0 && rand() < 0.06) {
    state.shells--;
    m.shellDuration.record(exp(120));
    const r = rand();
    if (r < 0.1) m.shellErrors.add(1); else if (r < 0.2) m.shellTimeouts.add(1);
  }
  m.shellActive.record(state.shells);
  if (rand() < 0.1) state.ws++;
  if (state.ws > 0 && rand() < 0.08) state.ws--;
  m.wsConnections.record(state.ws);
  m.wsSent.add(Math.floor(state.ws * exp(4)));
  m.wsReceived.add(Math.floor(state.ws * exp(1)));
  if (rand() < 0.01) m.wsAuthFailures.add(1);
  if (rand() < 0.1) { state.tasks++; m.tasksTotal.add(1); state.outStreams++; m.taskOutputTotal.add(1); }
  if (state.tasks > 0 && rand() < 0.08) { state.tasks--; m.taskDuration.record(exp(20)); if (rand() < 0.1) m.taskFailures.add(1); }
  if (state.outStreams > 0 && rand() < 0.1) state.outStreams--;
  m.tasksActive.record(state.tasks);
  m.taskOutputActive.record(state.outStreams);
  m.taskOutputLines.add(Math.floor(state.tasks * exp(12)));
  const up = (Date.now() - state.t0) / 1000;
  m.rss.record(Math.floor(48e6 + 4e6 * Math.sin(up / 60) + rand() * 1e6));
  m.virt.record(Math.floor(1.2e9 + rand() * 1e7));
  m.workers.record(4);
  // Tokio samples every 10 s add cumulative totals, as Scotty does (TELEMETRY.md §5)
  if (Math.floor(up) % 10 === 0) {
    state.polls += Math.floor(800 + rand() * 400); state.dropped += Math.floor(rand() * 20);
    state.sched += Math.floor(900 + rand() * 300); state.slow += Math.floor(rand() * 3);
    m.pollCount.add(state.polls); m.tokioDropped.add(state.dropped); m.scheduled.add(state.sched); m.slowPolls.add(state.slow);
    m.tokioActive.record(20 + Math.floor(rand() * 10));
    m.pollDuration.record(exp(0.05)); m.idleDuration.record(exp(8)); m.firstPoll.record(exp(0.002));
  }
  if (Math.floor(up) % 30 === 0) {
    m.appsTotal.record(APPS.length);
    const counts = {};
    APPS.forEach((a, i) => { const s = i < 4 ? 'running' : pick(STATUSES); counts[s] = (counts[s] || 0) + 1; });
    for (const [s, c] of Object.entries(counts)) m.appsByStatus.record(c, { status: s });
    APPS.forEach(() => { m.appServices.record(1 + Math.floor(rand() * 4)); m.appCheckAge.record(exp(60)); });
    m.deviceFlowSessions.record(Math.floor(rand() * 3));
    m.webFlowSessions.record(Math.floor(rand() * 5));
  }
  if (rand() < 0.05) m.deviceFlows.add(1);
  if (rand() < 0.1) m.webFlows.add(1);
  const v = Math.floor(rps * 0.3 + rand() * 2);
  for (let i = 0; i < v; i++) { m.validations.add(1); m.validationDuration.record(exp(0.01)); if (rand() < 0.05) m.validationFailures.add(1); }
  if (Math.floor(up) % 300 === 0) m.sessionsCleaned.add(1 + Math.floor(rand() * 3)); // the 5-minute cleanup
  const n = Math.floor(rps * (0.5 + rand()));
  for (let i = 0; i < n; i++) request();
}

// Counters that count rare events (errors, timeouts, failures) would export nothing until the
// first one happens; starting them at 0 gives their panels a (flat) series from the first export.
// The two instruments Scotty never records stay unrecorded.
for (const c of [m.logErrors, m.shellErrors, m.shellTimeouts, m.wsAuthFailures, m.taskFailures, m.validationFailures, m.rateLimitErrors,
  m.logStreamsTotal, m.shellTotal, m.tasksTotal, m.taskOutputTotal, m.deviceFlows, m.webFlows, m.validations, m.sessionsCleaned]) c.add(0);
// ... and as if Scotty had been up for a while: one finished log stream, shell session and task
m.logStreamDuration.record(exp(40));
m.shellDuration.record(exp(120));
m.taskDuration.record(exp(20));
m.validationDuration.record(exp(0.01));
console.log(`loadgen: Scotty-shaped telemetry to ${endpoint} (${protocol}), metrics every ${intervalMs} ms, ~${rps} requests/s`);
const timer = setInterval(tick, 1000);
tick();
let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  await meterProvider.forceFlush().catch(() => {});
  await tracerProvider.forceFlush().catch(() => {});
  await Promise.allSettled([meterProvider.shutdown(), tracerProvider.shutdown()]);
  process.exit(0);
}
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
if (durationMs > 0) setTimeout(stop, durationMs);
