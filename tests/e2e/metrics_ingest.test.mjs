// Metrics coming in, end to end, from real senders:
//  - the OTel JS SDK metrics exporters (gRPC, HTTP/protobuf, HTTP/JSON) with a
//    PeriodicExportingMetricReader, emitting all 51 of Scotty's instruments shaped as Scotty's
//    Rust SDK sends them: /api/v1/series must list exactly the Prometheus names and labels
//    Scotty's collector → VictoriaMetrics stack produces;
//  - Debian's Prometheus and vmagent scraping a page served here and remote-writing to
//    tricorder;
//  - VictoriaMetrics' text import, and remote write / OTLP refusals answered as specified.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { writeRequest, snappyLiteral } from './lib/remote_write.mjs';

import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPMetricExporter as MetricsGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as MetricsProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPMetricExporter as MetricsJson } from '@opentelemetry/exporter-metrics-otlp-http';

import { start, freePort, sleep, eventually, spawnLogged } from './lib/tricorder.mjs';

// TELEMETRY.md §4: OTel name, instrument, unit, attributes recorded here, Prometheus name.
const G = 'gauge', C = 'counter', H = 'histogram', U = 'updown';
const HTTP = { method: 'GET', route: '/api/v1/health', status: '200' };
const SCOTTY = [
  ['scotty.log_streams.active', G, '', {}, 'scotty_log_streams_active'],
  ['scotty.log_streams.total', C, '', {}, 'scotty_log_streams_total'],
  ['scotty.log_stream.duration', H, 's', {}, 'scotty_log_stream_duration_seconds'],
  ['scotty.log_stream.lines', C, '', {}, 'scotty_log_stream_lines_total'],
  ['scotty.log_stream.errors', C, '', {}, 'scotty_log_stream_errors_total'],
  ['scotty.shell_sessions.active', G, '', {}, 'scotty_shell_sessions_active'],
  ['scotty.shell_sessions.total', C, '', {}, 'scotty_shell_sessions_total'],
  ['scotty.shell_session.duration', H, 's', {}, 'scotty_shell_session_duration_seconds'],
  ['scotty.shell_session.errors', C, '', {}, 'scotty_shell_session_errors_total'],
  ['scotty.shell_session.timeouts', C, '', {}, 'scotty_shell_session_timeouts_total'],
  ['scotty.websocket.connections', G, '', {}, 'scotty_websocket_connections'],
  ['scotty.websocket.messages_sent', C, '', {}, 'scotty_websocket_messages_sent_total'],
  ['scotty.websocket.messages_received', C, '', {}, 'scotty_websocket_messages_received_total'],
  ['scotty.websocket.auth_failures', C, '', {}, 'scotty_websocket_auth_failures_total'],
  ['scotty.tasks.active', G, '', {}, 'scotty_tasks_active'],
  ['scotty.tasks.total', C, '', {}, 'scotty_tasks_total'],
  ['scotty.task.duration', H, 's', {}, 'scotty_task_duration_seconds'],
  ['scotty.task.failures', C, '', {}, 'scotty_task_failures_total'],
  ['scotty.task.output_lines', C, '', {}, 'scotty_task_output_lines_total'],
  ['scotty.task_output_streams.active', G, '', {}, 'scotty_task_output_streams_active'],
  ['scotty.task_output_streams.total', C, '', {}, 'scotty_task_output_streams_total'],
  ['scotty.memory.rss_bytes', G, 'bytes', {}, 'scotty_memory_rss_bytes'],
  ['scotty.memory.virtual_bytes', G, 'bytes', {}, 'scotty_memory_virtual_bytes'],
  ['scotty.tokio.workers.count', G, '', {}, 'scotty_tokio_workers_count'],
  ['scotty.tokio.tasks.active', G, '', {}, 'scotty_tokio_tasks_active'],
  ['scotty.tokio.tasks.dropped', C, '', {}, 'scotty_tokio_tasks_dropped_total'],
  ['scotty.tokio.poll.count', C, '', {}, 'scotty_tokio_poll_count_total'],
  ['scotty.tokio.poll.duration', H, 's', {}, 'scotty_tokio_poll_duration_seconds'],
  ['scotty.tokio.poll.slow_count', C, '', {}, 'scotty_tokio_poll_slow_count_total'],
  ['scotty.tokio.idle.duration', H, 's', {}, 'scotty_tokio_idle_duration_seconds'],
  ['scotty.tokio.scheduled.count', C, '', {}, 'scotty_tokio_scheduled_count_total'],
  ['scotty.tokio.first_poll.delay', H, 's', {}, 'scotty_tokio_first_poll_delay_seconds'],
  ['scotty.http.requests.total', C, '', HTTP, 'scotty_http_requests_total'],
  ['scotty.http.request.duration', H, 's', HTTP, 'scotty_http_request_duration_seconds'],
  ['scotty.http.requests.active', U, '', {}, 'scotty_http_requests_active'],
  ['scotty.apps.total', G, '', {}, 'scotty_apps_total'],
  ['scotty.apps.by_status', G, '', { status: 'running' }, 'scotty_apps_by_status'],
  ['scotty.app.services.count', H, '', {}, 'scotty_app_services_count'],
  ['scotty.app.last_check.age', H, 's', {}, 'scotty_app_last_check_age_seconds'],
  ['scotty.oauth.device_flow_sessions.active', G, '', {}, 'scotty_oauth_device_flow_sessions_active'],
  ['scotty.oauth.web_flow_sessions.active', G, '', {}, 'scotty_oauth_web_flow_sessions_active'],
  ['scotty.oauth.sessions.active', G, '', {}, 'scotty_oauth_sessions_active'],
  ['scotty.oauth.sessions.expired_cleaned', C, '', {}, 'scotty_oauth_sessions_expired_cleaned_total'],
  ['scotty.oauth.device_flows.total', C, '', {}, 'scotty_oauth_device_flows_total'],
  ['scotty.oauth.web_flows.total', C, '', {}, 'scotty_oauth_web_flows_total'],
  ['scotty.oauth.flows.failures', C, '', {}, 'scotty_oauth_flows_failures_total'],
  ['scotty.oauth.token_validations.total', C, '', {}, 'scotty_oauth_token_validations_total'],
  ['scotty.oauth.token_validation.duration', H, 's', {}, 'scotty_oauth_token_validation_duration_seconds'],
  ['scotty.oauth.token_validations.failures', C, '', {}, 'scotty_oauth_token_validations_failures_total'],
  ['scotty.rate_limit.requests.total', C, '', { tier: 'authenticated', decision: 'allowed' }, 'scotty_rate_limit_requests_total'],
  ['scotty.rate_limit.extractor.errors', C, '', {}, 'scotty_rate_limit_extractor_errors_total'],
];
assert.equal(SCOTTY.length, 51);

const SCOTTY_RESOURCE = {
  'service.name': 'scotty',
  'service.version': '0.3.3',
  'telemetry.sdk.language': 'rust',
  'telemetry.sdk.name': 'opentelemetry',
  'telemetry.sdk.version': '0.31.0',
};
// The labels every Scotty series carries in Scotty's stack (TELEMETRY.md §8).
const SCOTTY_LABELS = {
  job: 'scotty', otel_scope_name: 'scotty', service_name: 'scotty', service_version: '0.3.3',
  telemetry_sdk_language: 'rust', telemetry_sdk_name: 'opentelemetry', telemetry_sdk_version: '0.31.0',
};
const LES = ['0', '5', '10', '25', '50', '75', '100', '250', '500', '750', '1000', '2500', '5000', '7500', '10000', '+Inf'];

const key = (labels) => JSON.stringify(Object.keys(labels).sort().map((k) => [k, labels[k]]));

function expectedScottySeries() {
  const want = new Set();
  for (const [, kind, , attrs, prom] of SCOTTY) {
    const base = { ...SCOTTY_LABELS, ...attrs };
    if (kind === H) {
      for (const le of LES) want.add(key({ __name__: `${prom}_bucket`, ...base, le }));
      want.add(key({ __name__: `${prom}_sum`, ...base }));
      want.add(key({ __name__: `${prom}_count`, ...base }));
    } else {
      want.add(key({ __name__: prom, ...base }));
    }
  }
  const { 'service.name': _, ...rest } = SCOTTY_RESOURCE;
  want.add(key({ __name__: 'target_info', job: 'scotty', ...Object.fromEntries(Object.entries(rest).map(([k, v]) => [k.replaceAll('.', '_'), v])) }));
  return want;
}

// Records every instrument once, as Scotty's code would (ints for counters and gauges, seconds
// for durations), through a periodic reader on the given exporter; then flushes and shuts down.
async function emitScotty(exporter) {
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 300, exportTimeoutMillis: 250 });
  const provider = new MeterProvider({ resource: resourceFromAttributes(SCOTTY_RESOURCE), readers: [reader] });
  const meter = provider.getMeter('scotty');
  for (const [name, kind, unit, attrs] of SCOTTY) {
    const opts = { description: `${name} (e2e)`, ...(unit ? { unit } : {}) };
    if (kind === G) meter.createGauge(name, opts).record(3, attrs);
    else if (kind === C) meter.createCounter(name, opts).add(2, attrs);
    else if (kind === U) { const u = meter.createUpDownCounter(name, opts); u.add(1, attrs); u.add(1, attrs); }
    else { const h = meter.createHistogram(name, opts); h.record(0.25, attrs); h.record(7, attrs); }
  }
  await sleep(700); // at least one periodic export
  await provider.forceFlush();
  await provider.shutdown();
}

async function getJSON(url) {
  const r = await fetch(url);
  const body = await r.text();
  assert.equal(r.status, 200, `${url}: ${body}`);
  return JSON.parse(body);
}

async function series(t, match) {
  const j = await getJSON(`${t.httpUrl}/api/v1/series?match[]=${encodeURIComponent(match)}`);
  assert.equal(j.status, 'success');
  return j.data;
}

// Stops tricorder with SIGTERM; it must exit 0 (under the sanitizers: no error, no leak).
async function stopClean(t) {
  const r = await t.stop();
  t.cleanup();
  assert.equal(r.code, 0, `exit ${r.code} ${r.signal}: ${t.stderr.slice(-4000)}`);
}

const transports = [
  ['grpc', (t) => new MetricsGrpc({ url: t.grpcUrl })],
  ['http/protobuf', (t) => new MetricsProto({ url: `${t.otlpHttpUrl}/v1/metrics` })],
  ['http/json', (t) => new MetricsJson({ url: `${t.otlpHttpUrl}/v1/metrics` })],
];

for (const [name, make] of transports) {
  test(`Scotty's 51 instruments over OTLP ${name} are listed under the names and labels of Scotty's stack`, async () => {
    const t = await start();
    try {
      await emitScotty(make(t));
      const want = expectedScottySeries();
      const got = await eventually(async () => {
        const s = await series(t, '{job="scotty"}');
        return s.length >= want.size ? s : null;
      }, 15000, 'all Scotty series');
      const have = new Set(got.map(key));
      const missing = [...want].filter((k) => !have.has(k));
      const extra = [...have].filter((k) => !want.has(k));
      assert.deepEqual({ missing, extra }, { missing: [], extra: [] });
      const hists = SCOTTY.filter((r) => r[1] === H).length;
      assert.equal(hists, 10);
      assert.equal(got.length, 41 + hists * 18 + 1, '41 plain series, 10 histograms of 18 series, target_info');
      // metadata: type, help (the OTLP description) and unit, as Prometheus' metadata API lists them
      const md = await getJSON(`${t.httpUrl}/api/v1/metadata?metric=scotty_http_request_duration_seconds`);
      assert.deepEqual(md.data.scotty_http_request_duration_seconds, [{ type: 'histogram', help: 'scotty.http.request.duration (e2e)', unit: 'seconds' }]);
      const mc = await getJSON(`${t.httpUrl}/api/v1/metadata?metric=scotty_http_requests_total`);
      assert.equal(mc.data.scotty_http_requests_total[0].type, 'counter');
      // the values: a cumulative counter, a cumulative bucket count, the histogram's sum
      const exp = await (await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=${encodeURIComponent('{__name__=~"scotty_http_requests_total|scotty_task_duration_seconds_(bucket|sum)"}')}`)).text();
      const last = (re) => { const m = [...exp.matchAll(re)]; assert.ok(m.length, `${re} in\n${exp}`); return Number(m.at(-1)[1]); };
      assert.equal(last(/^scotty_http_requests_total\{[^}]*\} (\S+) \d+$/gm), 2);
      assert.equal(last(/^scotty_task_duration_seconds_bucket\{[^}]*le="5"[^}]*\} (\S+) \d+$/gm), 1);
      assert.equal(last(/^scotty_task_duration_seconds_bucket\{[^}]*le="10"[^}]*\} (\S+) \d+$/gm), 2);
      assert.equal(last(/^scotty_task_duration_seconds_sum\{[^}]*\} (\S+) \d+$/gm), 7.25);
    } finally {
      await stopClean(t);
    }
  });
}

// ---------------------------------------------------------------- remote write from real senders

// A tiny /metrics page for Prometheus and vmagent to scrape.
async function serveMetricsPage() {
  const port = await freePort();
  let n = 0;
  const srv = createServer((req, res) => {
    n++;
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4' });
    res.end([
      '# HELP e2e_page_requests_total Requests served by the page.',
      '# TYPE e2e_page_requests_total counter',
      `e2e_page_requests_total{path="/a"} ${n}`,
      `e2e_page_requests_total{path="/b"} ${2 * n}`,
      '# HELP e2e_page_temperature_celsius A temperature.',
      '# TYPE e2e_page_temperature_celsius gauge',
      'e2e_page_temperature_celsius 21.5',
      '',
    ].join('\n'));
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  return { port, close: () => new Promise((r) => srv.close(r)) };
}

test('Prometheus (Debian) scrapes a page and remote-writes it to tricorder', { skip: !existsSync('/usr/bin/prometheus') && 'no /usr/bin/prometheus' }, async () => {
  const t = await start();
  const page = await serveMetricsPage();
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-prom-'));
  const promPort = await freePort();
  writeFileSync(join(dir, 'prometheus.yml'), [
    'global:',
    '  scrape_interval: 1s',
    '  external_labels: {sender: prometheus}',
    'scrape_configs:',
    '  - job_name: page',
    `    static_configs: [{targets: ['127.0.0.1:${page.port}']}]`,
    'remote_write:',
    `  - url: ${t.httpUrl}/api/v1/write`,
    '    queue_config: {batch_send_deadline: 500ms, max_samples_per_send: 50, min_backoff: 100ms, max_backoff: 1s}',
    '    metadata_config: {send: true, send_interval: 1s}',
    '',
  ].join('\n'));
  const prom = spawnLogged('/usr/bin/prometheus', [
    `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
  ], dir);
  try {
    const got = await eventually(async () => {
      const s = await series(t, 'e2e_page_requests_total');
      return s.length === 2 ? s : null;
    }, 30000, 'the scraped series via remote write');
    const a = got.find((s) => s.path === '/a');
    assert.deepEqual(a, { __name__: 'e2e_page_requests_total', instance: `127.0.0.1:${page.port}`, job: 'page', path: '/a', sender: 'prometheus' });
    // Prometheus' own synthetic series come along too
    const up = await eventually(async () => (await series(t, 'up{job="page"}')).length === 1, 10000, 'up');
    assert.ok(up);
    // the values are the scraped ones: /b is always twice /a at the same scrape
    const text = await eventually(async () => {
      const r = await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=e2e_page_requests_total`);
      const body = await r.text();
      return body.split('\n').filter((l) => l.includes('path="/b"')).length >= 2 ? body : null;
    }, 10000, 'several samples');
    const vals = (p) => new Map(text.split('\n').filter((l) => l.includes(`path="${p}"`)).map((l) => { const f = l.split(' '); return [f[2], Number(f[1])]; }));
    const va = vals('/a'), vb = vals('/b');
    let compared = 0;
    for (const [ts, v] of va) if (vb.has(ts)) { assert.equal(vb.get(ts), 2 * v); compared++; }
    assert.ok(compared >= 2, text);
    // metadata sent by Prometheus' metadata_config
    const md = await eventually(async () => {
      const j = await getJSON(`${t.httpUrl}/api/v1/metadata?metric=e2e_page_requests_total`);
      return j.data.e2e_page_requests_total ? j : null;
    }, 15000, 'remote-written metadata');
    assert.deepEqual(md.data.e2e_page_requests_total[0], { type: 'counter', help: 'Requests served by the page.', unit: '' });
    // tricorder counted the requests and the samples
    const m = await t.metrics();
    assert.ok(m.get('tricorder_ingest_samples_total{endpoint="remote_write",result="stored"}') > 0);
    assert.equal(m.get('tricorder_ingest_request_errors_total{endpoint="remote_write"}'), 0, prom.log);
  } finally {
    await prom.stop();
    await page.close();
    rmSync(dir, { recursive: true, force: true });
    await stopClean(t);
  }
});

test('vmagent (Debian) scrapes a page and remote-writes it to tricorder', { skip: !existsSync('/usr/bin/vmagent') && 'no /usr/bin/vmagent' }, async () => {
  const t = await start();
  const page = await serveMetricsPage();
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-vmagent-'));
  writeFileSync(join(dir, 'scrape.yml'), [
    'global: {scrape_interval: 1s}',
    'scrape_configs:',
    '  - job_name: vmpage',
    `    static_configs: [{targets: ['127.0.0.1:${page.port}']}]`,
    '',
  ].join('\n'));
  const vm = spawnLogged('/usr/bin/vmagent', [
    `-promscrape.config=${join(dir, 'scrape.yml')}`, `-remoteWrite.url=${t.httpUrl}/api/v1/write`,
    `-remoteWrite.tmpDataPath=${join(dir, 'q')}`, `-httpListenAddr=127.0.0.1:${await freePort()}`,
    '-remoteWrite.flushInterval=500ms', '-loggerLevel=WARN',
  ], dir);
  try {
    const got = await eventually(async () => {
      const s = await series(t, 'e2e_page_temperature_celsius{job="vmpage"}');
      return s.length === 1 ? s : null;
    }, 30000, 'vmagent data');
    assert.deepEqual(got[0], { __name__: 'e2e_page_temperature_celsius', instance: `127.0.0.1:${page.port}`, job: 'vmpage' });
    const m = await t.metrics();
    assert.equal(m.get('tricorder_ingest_request_errors_total{endpoint="remote_write"}'), 0, vm.log);
  } finally {
    await vm.stop();
    await page.close();
    rmSync(dir, { recursive: true, force: true });
    await stopClean(t);
  }
});

// ---------------------------------------------------------------- text import and refusals

test('text import: timestamps, extra_label, gzip, bad lines reported while good ones are kept', async () => {
  const t = await start();
  try {
    const now = Date.now();
    const body = [
      '# TYPE imp_jobs_total counter',
      '# HELP imp_jobs_total Jobs done.',
      `imp_jobs_total{queue="a"} 5 ${now - 60000}`,
      `imp_jobs_total{queue="a"} 7 ${now - 30000}`,
      'imp_temp{room="x",dc="override-me"} 19.5',
      '',
    ].join('\n');
    let r = await fetch(`${t.httpUrl}/api/v1/import/prometheus?extra_label=dc=west&extra_label=src=import`, { method: 'POST', body });
    assert.equal(r.status, 204, await r.text());
    const s = await series(t, '{src="import"}');
    const names = s.map((x) => x.__name__).sort();
    assert.deepEqual(names, ['imp_jobs_total', 'imp_temp']);
    assert.deepEqual(s.find((x) => x.__name__ === 'imp_temp'), { __name__: 'imp_temp', dc: 'west', room: 'x', src: 'import' });
    const exp = await (await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=imp_jobs_total`)).text();
    assert.match(exp, new RegExp(`imp_jobs_total\\{[^}]*\\} 5 ${now - 60000}`));
    assert.match(exp, new RegExp(`imp_jobs_total\\{[^}]*\\} 7 ${now - 30000}`));
    const md = await getJSON(`${t.httpUrl}/api/v1/metadata?metric=imp_jobs_total`);
    assert.deepEqual(md.data.imp_jobs_total[0], { type: 'counter', help: 'Jobs done.', unit: '' });

    // gzip
    r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: gzipSync('imp_gz 1\n'), headers: { 'Content-Encoding': 'gzip' } });
    assert.equal(r.status, 204, await r.text());
    assert.equal((await series(t, 'imp_gz')).length, 1);

    // a bad line: 400 naming it, the good lines stored anyway
    r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: 'imp_ok 1\nimp_bad{x=} 2\nimp_ok2 3\n' });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /1 lines skipped \(first: line 2: .*imp_bad/);
    assert.equal((await series(t, '{__name__=~"imp_ok2?"}')).length, 2);

    r = await fetch(`${t.httpUrl}/api/v1/import/prometheus?extra_label=bad`, { method: 'POST', body: 'x 1\n' });
    assert.equal(r.status, 400);
    r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'GET' });
    assert.equal(r.status, 405);
  } finally {
    await stopClean(t);
  }
});

test('remote write refusals: content types, encodings, limits, garbage, too-old samples', async () => {
  const t = await start();
  try {
    const url = `${t.httpUrl}/api/v1/write`;
    const post = (body, headers = {}) => fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'snappy', ...headers } });
    let r = await post(Buffer.from([0]));
    assert.equal(r.status, 204, 'an empty WriteRequest is fine');
    r = await post(Buffer.from([0]), { 'Content-Type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request' });
    assert.equal(r.status, 415);
    assert.match(await r.text(), /2\.0/);
    r = await post(Buffer.from([0]), { 'Content-Encoding': 'zstd' });
    assert.equal(r.status, 415);
    r = await post(Buffer.from([0]), { 'Content-Type': 'application/json' });
    assert.equal(r.status, 415);
    r = await post(Buffer.from('definitely not snappy'));
    assert.equal(r.status, 400);
    r = await post(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f]));
    assert.equal(r.status, 413, 'the claimed size is checked before anything is allocated');
    // a real WriteRequest, hand-encoded: one series with one sample from 1970 (outside the
    // retention) and one from now; the old one is refused with a reason, the other stored
    const now = BigInt(Date.now());
    const body = snappyLiteral(writeRequest([[['__name__', 'rw_hand'], ['k', 'v']], [[1, 1000n], [2, now]]]));
    r = await post(body);
    assert.equal(r.status, 400);
    assert.match(await r.text(), /1 of 2 samples refused \(first: .*rw_hand\{k="v"\} at 1000\)/);
    const exp = await (await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=rw_hand`)).text();
    assert.match(exp, new RegExp(`^rw_hand\\{k="v"\\} 2 ${now}$`, 'm'));
  } finally {
    await stopClean(t);
  }
});

test('OTLP partial success: points the store refuses are counted and explained, the rest is stored', async () => {
  const t = await start();
  try {
    const nowNs = `${BigInt(Date.now()) * 1000000n}`;
    const body = {
      resourceMetrics: [{
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'ps' } }] },
        scopeMetrics: [{
          scope: { name: 's' },
          metrics: [{
            name: 'ps.value', gauge: { dataPoints: [
              { timeUnixNano: '1000000', asDouble: 1 },
              { timeUnixNano: nowNs, asDouble: 2, attributes: [{ key: 'k', value: { stringValue: 'new' } }] },
            ] },
          }],
        }],
      }],
    };
    const r = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
    const j = await r.json();
    assert.equal(r.status, 200);
    assert.equal(Number(j.partialSuccess.rejectedDataPoints), 1);
    assert.match(j.partialSuccess.errorMessage, /1 of 2 data points rejected: .*ps_value/);
    const s = await series(t, 'ps_value');
    assert.deepEqual(s, [{ __name__: 'ps_value', job: 'ps', k: 'new', otel_scope_name: 's', service_name: 'ps' }]);
  } finally {
    await stopClean(t);
  }
});

test('limits: OTLP answers partial_success, remote write 400, both with the reason; the rest is stored and counted', async () => {
  const t = await start({ args: ['--max-label-value-length', '16', '--max-series', '6'] });
  try {
    const nowNs = `${BigInt(Date.now()) * 1000000n}`;
    const attr = (v) => [{ key: 'k', value: { stringValue: v } }];
    const body = {
      resourceMetrics: [{
        scopeMetrics: [{
          metrics: [{
            name: 'lim.value', gauge: { dataPoints: [
              { timeUnixNano: nowNs, asDouble: 1, attributes: attr('short') },
              { timeUnixNano: nowNs, asDouble: 2, attributes: attr('a value well over sixteen bytes') },
            ] },
          }],
        }],
      }],
    };
    let r = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } });
    const j = await r.json();
    assert.equal(r.status, 200);
    assert.equal(Number(j.partialSuccess.rejectedDataPoints), 1);
    assert.match(j.partialSuccess.errorMessage, /1 of 2 data points rejected: label value too long \(lim_value/);
    assert.deepEqual(await series(t, 'lim_value'), [{ __name__: 'lim_value', k: 'short' }]);

    // remote write: 8 new series against a limit of 6 (one exists already)
    const now = BigInt(Date.now());
    const ts = [];
    for (let i = 0; i < 8; i++) ts.push([[['__name__', 'lim_rw'], ['i', `${i}`]], [[i, now]]]);
    r = await fetch(`${t.httpUrl}/api/v1/write`, { method: 'POST', body: snappyLiteral(writeRequest(...ts)), headers: { 'Content-Encoding': 'snappy' } });
    assert.equal(r.status, 400);
    assert.match(await r.text(), /^3 of 8 samples refused \(first: too many series \(--max-series reached\) for lim_rw\{i="5"\}/);
    assert.equal((await series(t, 'lim_rw')).length, 5);
    const m = await t.metrics();
    assert.equal(m.get('tricorder_tsdb_limit_rejections_total'), 4);
    assert.equal(m.get('tricorder_otlp_points_rejected_total'), 1);
    assert.equal(m.get('tricorder_ingest_samples_total{endpoint="remote_write",result="refused"}'), 3);
    assert.equal(m.get('tricorder_ingest_samples_total{endpoint="remote_write",result="stored"}'), 5);
  } finally {
    await stopClean(t);
  }
});
