// The Docker image, built and run with podman exactly as `docker run` would run it (see
// ../shared/containers.md): the SDK exports into it, /healthz and /metrics answer, the
// HEALTHCHECK passes, it runs as a non-root user, and SIGTERM ends it with exit code 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { freePort, sleep, parseMetrics, metricSum } from './lib/tricorder.mjs';
import { sampleMetrics, sampleSpans } from './lib/payloads.mjs';

const ROOT = new URL('../..', import.meta.url).pathname;
const SHARED = process.env.TR_SHARED_DIR || join(ROOT, '..', 'shared');
const IMAGE = 'localhost/tricorder-e2e';
const NAME = `tricorder-e2e-${process.pid}`;
const podman = (...args) => execFileSync('podman', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
const RUNTIME = ['--runtime', 'runc', '--cgroup-manager=cgroupfs'];

let dataDir, ports;
before(async () => {
  execFileSync('bash', [join(SHARED, 'tools', 'container-base-image')], { stdio: 'inherit' });
  execFileSync('podman', ['build', '--format', 'docker', '--isolation=chroot', '--network=host', '-t', IMAGE, ROOT], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 900000 });
  dataDir = mkdtempSync(join(tmpdir(), 'tricorder-image-'));
  chownSync(dataDir, 10001, 10001);
  ports = { http: await freePort(), grpc: await freePort(), otlp: await freePort() };
  podman(...RUNTIME, 'run', '-d', '--name', NAME, '--network=host', '--ulimit', 'nofile=1024:4096', '--ulimit', 'nproc=1024:4096',
    '-v', `${dataDir}:/data`,
    '-e', `TRICORDER_HTTP_ADDR=127.0.0.1:${ports.http}`, '-e', `TRICORDER_OTLP_GRPC_ADDR=127.0.0.1:${ports.grpc}`,
    '-e', `TRICORDER_OTLP_HTTP_ADDR=127.0.0.1:${ports.otlp}`, IMAGE);
  for (let i = 0; ; i++) {
    try { if ((await fetch(`http://127.0.0.1:${ports.http}/healthz`)).ok) break; } catch { /* starting */ }
    if (i > 200) throw new Error(`container not healthy: ${spawnSync('podman', ['logs', NAME], { encoding: 'utf8' }).stderr}`);
    await sleep(50);
  }
});

after(() => {
  spawnSync('podman', [...RUNTIME, 'rm', '-f', NAME], { stdio: 'ignore' });
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('the image: non-root, /data volume, ports, healthcheck', () => {
  const cfg = JSON.parse(podman('image', 'inspect', IMAGE))[0];
  const c = cfg.Config || cfg.config;
  assert.equal(c.User, 'tricorder');
  assert.ok(Object.keys(c.Volumes || {}).includes('/data'));
  for (const p of ['4317/tcp', '4318/tcp', '8428/tcp']) assert.ok(Object.keys(c.ExposedPorts || {}).includes(p), p);
  assert.ok((cfg.Healthcheck || c.Healthcheck)?.Test?.join(' ').includes('--healthcheck'), 'HEALTHCHECK is set');
  assert.equal(podman('exec', NAME, 'id', '-u').trim(), '10001');
  const hc = spawnSync('podman', [...RUNTIME, 'healthcheck', 'run', NAME], { encoding: 'utf8' });
  assert.equal(hc.status, 0, `healthcheck: ${hc.stdout} ${hc.stderr}`);
});

test('the SDK exports into the container; /metrics counts them; SIGTERM exits 0', async () => {
  const me = new OTLPMetricExporter({ url: `http://127.0.0.1:${ports.otlp}/v1/metrics` });
  const { resourceMetrics } = await sampleMetrics(4);
  let points = 0;
  for (const sm of resourceMetrics.scopeMetrics) for (const m of sm.metrics) points += m.dataPoints.length;
  const r1 = await new Promise((res) => me.export(resourceMetrics, res));
  assert.equal(r1.code, 0, String(r1.error));
  await me.shutdown();
  const te = new OTLPTraceExporter({ url: `http://127.0.0.1:${ports.grpc}` });
  const spans = sampleSpans(3);
  const r2 = await new Promise((res) => te.export(spans, res));
  assert.equal(r2.code, 0, String(r2.error));
  await te.shutdown();

  const m = parseMetrics(await (await fetch(`http://127.0.0.1:${ports.http}/metrics`)).text());
  assert.equal(metricSum(m, 'tricorder_otlp_points_accepted_total'), points);
  assert.equal(metricSum(m, 'tricorder_otlp_spans_accepted_total'), spans.length);

  const t0 = Date.now();
  podman(...RUNTIME, 'stop', '-t', '10', NAME);
  assert.ok(Date.now() - t0 < 10000, 'stopped within 10 s');
  const state = JSON.parse(podman('inspect', NAME))[0].State;
  assert.equal(state.ExitCode, 0, JSON.stringify(state));
  const logs = spawnSync('podman', ['logs', NAME], { encoding: 'utf8' });
  assert.match(logs.stderr + logs.stdout, /msg="tricorder started".*data_dir="\/data"/);
  assert.match(logs.stderr + logs.stdout, /msg="stopped"/);
});
