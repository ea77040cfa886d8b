// Scotty's alerts reach a real Alertmanager: Debian's prometheus-alertmanager is started with a
// webhook receiver (a small HTTP server here), tricorder is given --alertmanager-url and the
// shipped rules/scotty.yml with test-sized windows (`for: 0s`, [3s] ranges, 1 s interval: the
// expressions and labels are Scotty's), and Scotty's task-failure counter is sent through the
// OpenTelemetry SDK over OTLP. Alertmanager must deliver the firing alert, then its resolution.
// A webhook target (--alert-webhook-url) gets Alertmanager's payload version 4 from tricorder.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { start, freePort, sleep } from './lib/tricorder.mjs';

const AM = '/usr/bin/prometheus-alertmanager';
const skip = !existsSync(AM) && `no ${AM} (apt-get install prometheus-alertmanager)`;
const SCOTTY = new URL('../../rules/scotty.yml', import.meta.url).pathname;

let tr, am, dir, amHook, trHook, amHookUrl, trHookUrl, amUrl;
const fromAm = [], fromTr = [];

function hookServer(into) {
  return new Promise((resolve) => {
    const s = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => { try { into.push(JSON.parse(body)); } catch { into.push({ unparsable: body }); } res.end('ok'); });
    });
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}

async function until(what, cond, ms = 30000) {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'tricorder-am-'));
  amHook = await hookServer(fromAm);
  trHook = await hookServer(fromTr);
  amHookUrl = `http://127.0.0.1:${amHook.address().port}/`;
  trHookUrl = `http://127.0.0.1:${trHook.address().port}/hook`;
  writeFileSync(join(dir, 'am.yml'), `route: {receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}
receivers: [{name: hook, webhook_configs: [{url: '${amHookUrl}', send_resolved: true}]}]
`);
  const port = await freePort();
  amUrl = `http://127.0.0.1:${port}`;
  am = spawn(AM, [`--config.file=${join(dir, 'am.yml')}`, `--storage.path=${join(dir, 'am')}`, `--web.listen-address=127.0.0.1:${port}`,
    '--cluster.listen-address=', '--log.level=warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let amErr = '';
  am.stderr.on('data', (d) => { amErr += d; });
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${amUrl}/-/ready`)).ok) break; } catch { /* starting */ }
    if (i > 200) throw new Error(`alertmanager did not start: ${amErr}`);
    await sleep(50);
  }
  // Scotty's rules, test-sized: no `for`, 3 s windows, evaluated every second
  const rules = readFileSync(SCOTTY, 'utf8').replace(/for: \d+m/g, 'for: 0s').replace(/\[\d+m\]/g, '[3s]').replace('interval: 1m', 'interval: 1s');
  writeFileSync(join(dir, 'scotty.yml'), rules);
  tr = await start({ args: ['--rule-files', join(dir, 'scotty.yml'), '--alertmanager-url', amUrl, '--alert-webhook-url', trHookUrl] });
});

after(async () => {
  if (tr) { await tr.stop(); tr.cleanup(); }
  if (am) { am.kill('SIGTERM'); await new Promise((r) => am.on('exit', r)); }
  amHook?.close();
  trHook?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('Scotty\'s task-failure alert, sent through OTLP, reaches Alertmanager and resolves', { skip, timeout: 60000 }, async () => {
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'scotty', 'service.instance.id': 'scotty-1' }),
    readers: [new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: `${tr.otlpHttpUrl}/v1/metrics` }), exportIntervalMillis: 300 })],
  });
  const failures = provider.getMeter('scotty').createCounter('scotty_task_failures', { description: 'Failed tasks' });
  let failing = true;
  const loop = (async () => { while (failing) { failures.add(20); await sleep(200); } })();

  await until('the firing alert at Alertmanager\'s receiver', () => fromAm.some((p) => p.status === 'firing' && p.alerts.some((a) => a.labels.alertname === 'ScottyTaskFailures')));
  const firing = fromAm.find((p) => p.status === 'firing').alerts.find((a) => a.labels.alertname === 'ScottyTaskFailures');
  assert.equal(firing.labels.severity, 'warning');
  assert.match(firing.annotations.summary, /^Scotty tasks are failing on /);
  assert.match(firing.annotations.description, /task failures per second \(threshold 0\.5\/s\)\.$/);
  assert.match(firing.generatorURL, /\/graph\?g0\.expr=rate%28scotty_task_failures_total/);
  // Alertmanager's own API lists it
  const listed = await (await fetch(`${amUrl}/api/v2/alerts`)).json();
  assert.ok(listed.some((a) => a.labels.alertname === 'ScottyTaskFailures' && a.status.state === 'active'));

  // the counter stops growing: the rate falls to 0 and the resolution is delivered
  failing = false;
  await loop;
  await until('the resolution at Alertmanager\'s receiver', () => fromAm.some((p) => p.status === 'resolved' && p.alerts.some((a) => a.labels.alertname === 'ScottyTaskFailures')));
  await provider.shutdown();

  // the webhook target got the same story in Alertmanager's payload, version 4
  await until('tricorder\'s own webhook', () => fromTr.some((p) => p.status === 'resolved'), 5000);
  for (const p of fromTr) {
    assert.equal(p.version, '4');
    assert.equal(p.receiver, 'tricorder');
    for (const a of p.alerts) {
      assert.equal(a.labels.alertname, 'ScottyTaskFailures');
      assert.match(a.fingerprint, /^[0-9a-f]{16}$/);
      assert.equal(a.status, p.status);
    }
  }
  assert.ok(fromTr.some((p) => p.status === 'firing'));
  const m = await tr.metrics();
  const sent = [...m].filter(([k]) => k.startsWith('tricorder_notifications_sent_total')).reduce((s, [, v]) => s + v, 0);
  assert.ok(sent >= 4, `sent ${sent}`);
});
