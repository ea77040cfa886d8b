// Outgoing TLS of both forwarders (issue 15): tricorder A forwards OTLP (grpcs://, https://) and
// remote write (https:// with tls_config) to tricorders B1 and B2 that serve TLS with
// certificates of a test CA made with the openssl command line and require client certificates
// (--tls-client-ca-file): every span and sample arrives. A target whose certificate does not
// chain to the CA A trusts, and one A offers no client certificate to, are refused: retried
// and logged, nothing acknowledged is lost; insecure / insecure_skip_verify accepts it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPMetricExporter as MetricsProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as TraceProto } from '@opentelemetry/exporter-trace-otlp-proto';

import { makeCerts, httpsRequest, read } from './lib/tls.mjs';
import { remoteWrite } from './lib/remote_write.mjs';
import { start, freePort, metricSum, eventually, sleep, spawnLogged } from './lib/tricorder.mjs';

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
const exportOnce = (exporter, batch) => new Promise((resolve) => exporter.export(batch, resolve));

function makeSpans(service, n) {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [new SimpleSpanProcessor(mem)],
  });
  const tracer = provider.getTracer('fwd-tls');
  for (let i = 0; i < n; i++) tracer.startSpan(`op ${i}`).end();
  return mem.getFinishedSpans();
}

async function makeMetrics(service) {
  const reader = new TestReader();
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': service }), readers: [reader] });
  provider.getMeter('fwd-tls').createCounter('fwdtls.requests').add(7, { route: '/a' });
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}

const dir = mkdtempSync(join(tmpdir(), 'tricorder-e2e-fwdtls-'));
const certs = makeCerts(dir);
const srv = certs.server('srv');
const cli = certs.client('fwd');
const ca = read(certs.ca.crt);
let a, b1, b2;

const httpsUp = (t) => httpsRequest(`https://127.0.0.1:${t.ports.http}/healthz`, { ca }).then((r) => r.status === 200);
const startB = () => start({
  args: ['--tls-cert-file', srv.crt, '--tls-key-file', srv.key, '--tls-client-ca-file', certs.ca.crt],
  ready: httpsUp,
});
const getJson = async (t, path) => JSON.parse((await httpsRequest(`https://127.0.0.1:${t.ports.http}${path}`, { ca })).body);

async function spanIds(t, service) {
  const body = await getJson(t, `/api/traces?service=${service}&limit=1000&lookback=1h`);
  const seen = new Map();
  for (const tr of body.data || []) for (const s of tr.spans) seen.set(s.spanID, (seen.get(s.spanID) || 0) + 1);
  return seen;
}
const query = async (t, q) => (await getJson(t, `/api/v1/query?query=${encodeURIComponent(q)}`)).data.result;

before(async () => {
  b1 = await startB();
  b2 = await startB();
  const tls = `ca=${certs.ca.crt};cert=${cli.crt};key=${cli.key}`;
  const rogue = `ca=${certs.rogueCa.crt};cert=${cli.crt};key=${cli.key}`;
  const cfg = join(dir, 'rw.yml');
  const q = '    queue_config: {batch_send_deadline: 200ms, min_backoff: 100ms, max_backoff: 500ms}';
  writeFileSync(cfg, [
    'remote_write:',
    `  - url: https://localhost:${b1.ports.http}/api/v1/write`,
    '    name: verified',
    `    tls_config: {ca_file: ${certs.ca.crt}, cert_file: ${cli.crt}, key_file: ${cli.key}}`, q,
    `  - url: https://127.0.0.1:${b1.ports.http}/api/v1/write`,
    '    name: rogue',
    `    tls_config: {ca_file: ${certs.rogueCa.crt}, cert_file: ${cli.crt}, key_file: ${cli.key}}`, q,
    `  - url: https://127.0.0.1:${b2.ports.http}/api/v1/write`,
    '    name: insecure',
    `    tls_config: {insecure_skip_verify: true, cert_file: ${cli.crt}, key_file: ${cli.key}}`, q,
    '',
  ].join('\n'));
  a = await start({
    args: [
      '--remote-write-config', cfg, '--shutdown-timeout', '1s', // the rogue target never takes its batch
      // gRPC over TLS, the IP address checked against the certificate's IP SAN
      '--otlp-forward-endpoint', `grpcs://127.0.0.1:${b1.ports.grpc};${tls}`,
      // OTLP/HTTP over TLS, the name checked (and sent as SNI)
      '--otlp-forward-endpoint', `https://localhost:${b2.ports.otlpHttp};${tls};signals=traces`,
      // a CA that did not sign B's certificate: refused
      '--otlp-forward-endpoint', `grpcs://localhost:${b1.ports.grpc};${rogue}`,
      // the same, not verified: accepted
      '--otlp-forward-endpoint', `https://127.0.0.1:${b2.ports.otlpHttp};${rogue};insecure;signals=metrics`,
      // verified, but no client certificate: B refuses it in the handshake
      '--otlp-forward-endpoint', `grpcs://localhost:${b2.ports.grpc};ca=${certs.ca.crt};signals=traces`,
    ],
  });
});

after(async () => {
  for (const t of [a, b1, b2]) {
    if (!t) continue;
    const r = await t.stop();
    assert.equal(r.code, 0, t.stderr);
    t.cleanup();
  }
  rmSync(dir, { recursive: true, force: true });
});

test('OTLP forwarding over grpcs:// and https:// with a client certificate: every span arrives once; a wrong CA or a missing client certificate is retried, not lost', async () => {
  const spans = makeSpans('fwd-tls', 20);
  const te = new TraceProto({ url: `${a.otlpHttpUrl}/v1/traces` });
  assert.equal((await exportOnce(te, spans)).code, 0);
  await te.shutdown();
  const me = new MetricsProto({ url: `${a.otlpHttpUrl}/v1/metrics` });
  assert.equal((await exportOnce(me, await makeMetrics('fwd-tls'))).code, 0);
  await me.shutdown();
  const ids = spans.map((s) => s.spanContext().spanId);
  for (const [b, what] of [[b1, 'grpcs'], [b2, 'https']]) {
    let got;
    await eventually(async () => (got = await spanIds(b, 'fwd-tls')).size >= ids.length, 20000, `spans over ${what}`);
    for (const id of ids) assert.equal(got.get(id), 1, `${what}: span ${id}`);
    assert.equal(got.size, ids.length);
  }
  // metrics: over grpcs to B1, and to B2 only through the insecure endpoint
  for (const b of [b1, b2]) {
    await eventually(async () => (await query(b, 'fwdtls_requests_total')).length === 1, 20000, 'the forwarded counter');
    assert.equal((await query(b, 'fwdtls_requests_total'))[0].value[1], '7');
  }
  const ep = (host, port) => ({ endpoint: `grpcs://${host}:${port}` });
  await eventually(async () => metricSum(await a.metrics(), 'tricorder_otlp_forward_retries_total', ep('localhost', b1.ports.grpc)) >= 2, 15000, 'retries on the wrong CA');
  await eventually(async () => metricSum(await a.metrics(), 'tricorder_otlp_forward_retries_total', ep('localhost', b2.ports.grpc)) >= 2, 15000, 'retries without a client certificate');
  const m = await a.metrics();
  for (const [host, port] of [['localhost', b1.ports.grpc], ['localhost', b2.ports.grpc]]) {
    assert.equal(metricSum(m, 'tricorder_otlp_forward_sent_items_total', ep(host, port)), 0);
    assert.equal(metricSum(m, 'tricorder_otlp_forward_failed_items_total', ep(host, port)), 0);
    assert.equal(metricSum(m, 'tricorder_otlp_forward_dropped_items_total', ep(host, port)), 0);
    assert.ok(metricSum(m, 'tricorder_otlp_forward_queue_bytes', ep(host, port)) > 0, 'still queued');
  }
  assert.match(a.stderr, new RegExp(`endpoint=grpcs://localhost:${b1.ports.grpc} reason="TLS handshake with localhost: certificate verify failed`));
  assert.match(a.stderr, new RegExp(`otlp forward failed, retrying.*endpoint=grpcs://localhost:${b2.ports.grpc}`));
  assert.equal(metricSum(m, 'tricorder_otlp_forward_sent_items_total', { endpoint: `https://127.0.0.1:${b2.ports.otlpHttp}` }) > 0, true);
});

test('remote write over https:// with tls_config: the samples arrive; a wrong CA is retried and logged, nothing acknowledged; insecure_skip_verify accepts', async () => {
  const now = Date.now();
  const series = [];
  for (let s = 0; s < 5; s++) series.push([[['__name__', 'fwdtls_rw_total'], ['shard', String(s)]], [[s + 1, now - 2000], [s + 10, now - 1000]]]);
  await remoteWrite(a.httpUrl, series);
  for (const [b, name] of [[b1, 'verified'], [b2, 'insecure']]) {
    await eventually(async () => metricSum(await a.metrics(), 'prometheus_remote_storage_samples_total', { remote_name: name }) >= 10, 20000, `${name} acknowledged`);
    const r = await query(b, 'fwdtls_rw_total');
    assert.deepEqual(r.map((x) => [x.metric.shard, x.value[1]]).sort(), [0, 1, 2, 3, 4].map((s) => [String(s), String(s + 10)]), name);
  }
  await eventually(async () => metricSum(await a.metrics(), 'prometheus_remote_storage_samples_retried_total', { remote_name: 'rogue' }) > 0, 15000, 'rogue retried');
  await sleep(300);
  const m = await a.metrics();
  assert.equal(metricSum(m, 'prometheus_remote_storage_samples_total', { remote_name: 'rogue' }), 0);
  assert.equal(metricSum(m, 'prometheus_remote_storage_samples_failed_total', { remote_name: 'rogue' }), 0);
  assert.ok(metricSum(m, 'prometheus_remote_storage_samples_pending', { remote_name: 'rogue' }) > 0, 'pending, not dropped');
  assert.match(a.stderr, /cannot reach the target; retrying.*remote_name="rogue".*certificate verify failed/);
});

test('remote write over https:// to Debian\'s Prometheus (Go TLS stack) requiring a client certificate', { skip: !existsSync('/usr/bin/prometheus') && 'no prometheus' }, async () => {
  const pdir = mkdtempSync(join(dir, 'prom-'));
  const port = await freePort();
  writeFileSync(join(pdir, 'prometheus.yml'), 'global: {scrape_interval: 1m}\n');
  writeFileSync(join(pdir, 'web.yml'), `tls_server_config:\n  cert_file: ${srv.crt}\n  key_file: ${srv.key}\n` +
    `  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ${certs.ca.crt}\n`);
  const p = spawnLogged('/usr/bin/prometheus', [
    `--config.file=${join(pdir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(pdir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`, `--web.config.file=${join(pdir, 'web.yml')}`,
    '--web.enable-remote-write-receiver', '--log.level=warn',
  ], pdir);
  const opts = { ca, cert: read(cli.crt), key: read(cli.key) };
  const base = `https://127.0.0.1:${port}`;
  const cfg = join(pdir, 'rw.yml');
  writeFileSync(cfg, `remote_write:\n  - url: ${base}/api/v1/write\n    name: prom\n` +
    `    tls_config: {ca_file: ${certs.ca.crt}, cert_file: ${cli.crt}, key_file: ${cli.key}}\n` +
    '    queue_config: {batch_send_deadline: 200ms, min_backoff: 100ms, max_backoff: 500ms}\n');
  let c;
  try {
    await eventually(async () => (await httpsRequest(`${base}/-/ready`, opts)).status === 200, 20000, 'prometheus ready');
    c = await start({ args: ['--remote-write-config', cfg] });
    const now = Date.now();
    await remoteWrite(c.httpUrl, [[[['__name__', 'fwdtls_prom_total'], ['a', 'b']], [[1, now - 2000], [2, now - 1000]]]]);
    await eventually(async () => metricSum(await c.metrics(), 'prometheus_remote_storage_samples_total', { remote_name: 'prom' }) >= 2, 20000, 'acknowledged by prometheus');
    const r = JSON.parse((await httpsRequest(`${base}/api/v1/query?query=${encodeURIComponent('fwdtls_prom_total[1h]')}&time=${now / 1000 + 1}`, opts)).body);
    assert.deepEqual(r.data.result.map((x) => x.values.map((v) => [Math.round(v[0] * 1000), v[1]])), [[[now - 2000, '1'], [now - 1000, '2']]]);
  } finally {
    if (c) { await c.stop(); c.cleanup(); }
    await p.stop();
  }
});
