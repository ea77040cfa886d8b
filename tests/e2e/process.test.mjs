// The binary as a user meets it: --help/--version, flags and their environment variables,
// clear one-line errors for busy ports and a locked data dir, auth, the start-up log line,
// /healthz, /metrics, and a clean exit on SIGTERM and SIGINT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BIN, start, freePort, metricSum } from './lib/tricorder.mjs';
import { metricsProtobuf } from './lib/payloads.mjs';

const run = (args, env = {}) => spawnSync(BIN, args, { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 10000 });

test('--help lists every flag with its environment variable; --version prints the version', () => {
  const h = run(['--help']);
  assert.equal(h.status, 0);
  for (const f of ['data-dir', 'http-addr', 'otlp-grpc-addr', 'otlp-http-addr', 'retention', 'log-level', 'basic-auth', 'basic-auth-file', 'ingest-token', 'otlp-max-message-bytes']) {
    assert.match(h.stdout, new RegExp(`--${f}\\b`), `--help lacks --${f}`);
    assert.match(h.stdout, new RegExp(`TRICORDER_${f.toUpperCase().replaceAll('-', '_')}\\b`));
  }
  const v = run(['--version']);
  assert.equal(v.status, 0);
  assert.match(v.stdout, /^tricorder \d+\.\d+\.\d+/);
});

test('bad flags and env values exit 1 with one clear line', () => {
  let r = run(['--retention', 'forever']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /level=error .*invalid duration forever/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
  r = run([], { TRICORDER_LOG_LEVEL: 'chatty' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /TRICORDER_LOG_LEVEL: invalid log level chatty/);
  r = run(['--bogus']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unknown flag --bogus/);
});

test('an address in use: one clear line, exit 1', async () => {
  const busy = createServer();
  await new Promise((r) => busy.listen(0, '127.0.0.1', r));
  const port = busy.address().port;
  const dir = mkdtempSync(join(tmpdir(), 'tr-busy-'));
  const r = run(['--data-dir', dir, '--http-addr', `127.0.0.1:${port}`, '--otlp-grpc-addr', `127.0.0.1:${await freePort()}`, '--otlp-http-addr', `127.0.0.1:${await freePort()}`]);
  busy.close();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`listen on 127\\.0\\.0\\.1:${port}: Address already in use`));
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});

test('a second tricorder on the same data dir is refused; env configures the first', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tr-lock-'));
  const t = await start({ dataDir: join(dir, 'nested', 'data'), env: { TRICORDER_RETENTION: '14d', TRICORDER_LOG_LEVEL: 'debug' } });
  try {
    assert.match(t.stderr, /msg="tricorder started".*http=127\.0\.0\.1:\d+ otlp_grpc=127\.0\.0\.1:\d+ otlp_http=127\.0\.0\.1:\d+ data_dir=".*nested\/data" retention=14d/);
    const r = run(['--data-dir', join(dir, 'nested', 'data'), '--http-addr', `127.0.0.1:${await freePort()}`, '--otlp-grpc-addr', `127.0.0.1:${await freePort()}`, '--otlp-http-addr', `127.0.0.1:${await freePort()}`]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /data dir .* is in use by another tricorder \(pid \d+\)/);
  } finally {
    const s = await t.stop();
    assert.equal(s.code, 0);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM and SIGINT: clean exit 0 well within 10 s, with log lines', async () => {
  for (const sig of ['SIGTERM', 'SIGINT']) {
    const t = await start();
    const { body } = await metricsProtobuf(2);
    await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf' } });
    const r = await t.stop(sig);
    assert.equal(r.code, 0, `${sig}: ${t.stderr}`);
    assert.ok(r.ms < 10000, `${sig} took ${r.ms} ms`);
    assert.match(t.stderr, /msg="shutting down"/);
    assert.match(t.stderr, /msg="stopped"/);
    t.cleanup();
  }
});

test('basic auth guards every endpoint but /healthz; the ingest token guards OTLP', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tr-auth-'));
  const file = join(dir, 'auth');
  // an htpasswd file (bcrypt) made by Apache's htpasswd; a password may hold ':'
  execFileSync('htpasswd', ['-c', '-b', '-B', '-C', '5', file, 'admin', 'pa55:word'], { stdio: 'ignore' });
  const t = await start({ args: ['--basic-auth-file', file, '--ingest-token', 'tok3n'] });
  try {
    const good = 'Basic ' + Buffer.from('admin:pa55:word').toString('base64');
    const bad = 'Basic ' + Buffer.from('admin:nope').toString('base64');
    assert.equal((await fetch(`${t.httpUrl}/healthz`)).status, 200);
    let r = await fetch(`${t.httpUrl}/metrics`);
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /^Basic realm=/);
    assert.equal((await fetch(`${t.httpUrl}/metrics`, { headers: { Authorization: bad } })).status, 401);
    assert.equal((await fetch(`${t.httpUrl}/metrics`, { headers: { Authorization: good } })).status, 200);
    const { body } = await metricsProtobuf(1);
    const pb = { 'Content-Type': 'application/x-protobuf' };
    for (const url of [t.otlpHttpUrl, t.httpUrl]) {
      r = await fetch(`${url}/v1/metrics`, { method: 'POST', body, headers: pb });
      assert.equal(r.status, 401, `${url} without token`);
      r = await fetch(`${url}/v1/metrics`, { method: 'POST', body, headers: { ...pb, Authorization: 'Bearer wrong' } });
      assert.equal(r.status, 401);
      r = await fetch(`${url}/v1/metrics`, { method: 'POST', body, headers: { ...pb, Authorization: 'Bearer tok3n' } });
      assert.equal(r.status, 200, `${url} with token`);
    }
  } finally {
    await t.stop();
    t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('/metrics carries the process and receiver metrics; idle RSS is small', async () => {
  const t = await start();
  try {
    const text = await (await fetch(`${t.httpUrl}/metrics`)).text();
    for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'process_open_fds', 'tricorder_open_connections',
      'tricorder_otlp_requests_total', 'tricorder_otlp_request_errors_total', 'tricorder_otlp_received_bytes_total',
      'tricorder_otlp_request_duration_seconds', 'tricorder_otlp_points_accepted_total', 'tricorder_otlp_spans_rejected_total']) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `missing ${name}`);
    }
    assert.ok(metricSum((await t.metrics()), 'tricorder_open_connections', { listener: 'http' }) >= 1);
    const rss = metricSum(await t.metrics(), 'process_resident_memory_bytes');
    assert.ok(rss > 0 && rss < 64 * 1024 * 1024, `idle RSS ${rss}`);
  } finally {
    await t.stop();
    t.cleanup();
  }
});

test('query parameters are percent-decoded in names too (match%5B%5D as Grafana sends it)', async () => {
  const t = await start();
  try {
    const body = 'encoded_probe{job="x"} 1\n';
    let r = await fetch(`${t.httpUrl}/api/v1/import/prometheus?extra%5Flabel=src%3Dtest`, { method: 'POST', body });
    assert.equal(r.status, 204, await r.text());
    r = await fetch(`${t.httpUrl}/api/v1/series?match%5B%5D=${encodeURIComponent('encoded_probe{src="test"}')}`);
    const j = await r.json();
    assert.equal(r.status, 200, JSON.stringify(j));
    assert.deepEqual(j.data, [{ __name__: 'encoded_probe', job: 'x', src: 'test' }]);
    r = await fetch(`${t.httpUrl}/api/v1/series`, { method: 'POST', headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'match%5B%5D=encoded_probe' });
    assert.equal((await r.json()).data.length, 1);
  } finally {
    await t.stop();
    t.cleanup();
  }
});
