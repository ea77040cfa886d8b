// Query benchmark (issue 10; not part of the test suite).
//
// Loads the same data into tricorder, Debian's victoria-metrics and prometheus (all three
// running, same run): Scotty's instruments from tests/e2e/lib/promql_data.mjs, repeated for
// --instances copies (instance="scotty-<k>:21342"), 100 minutes at 15 s, sent by remote write
// in time order. Then asks each server every query of Scotty's dashboard (scotty-metrics.json,
// $__rate_interval = 1m) as a range query over the last hour of data at a 15 s step, --rounds
// times, one server at a time, and reports per server: the median and total wall time of the
// whole dashboard, peak RSS while querying (VmRSS sampled every 20 ms), and tricorder's ratios.
// VictoriaMetrics runs with -search.disableCache so that it computes each answer, as the
// others do.
//
// Usage: node bench/query/run.mjs [--instances N] [--rounds N] [--bin path/to/tricorder]
//        [--only tricorder,victoria-metrics,prometheus]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dataset, timeOrderedBatches } from '../../tests/e2e/lib/promql_data.mjs';
import { remoteWrite } from '../../tests/e2e/lib/remote_write.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const INSTANCES = Number(opt('instances', 20));
const ROUNDS = Number(opt('rounds', 5));
const BIN = opt('bin', process.env.TRICORDER_BIN || new URL('../../build/tricorder', import.meta.url).pathname);
const ONLY = opt('only', 'tricorder,victoria-metrics,prometheus').split(',');
const SHARED = process.env.TR_SHARED_DIR || new URL('../../../shared', import.meta.url).pathname;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
async function waitReady(url, child, name) {
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited at start`);
    try { if ((await fetch(url)).ok) return; } catch { /* not yet */ }
    if (i > 300) throw new Error(`${name} not ready`);
    await sleep(100);
  }
}

const root = mkdtempSync(join(tmpdir(), 'tricorder-qbench-'));
const starters = {
  tricorder: async () => {
    const [p, g, o] = [await freePort(), await freePort(), await freePort()];
    const child = spawn(BIN, ['--data-dir', join(root, 'tr'), '--http-addr', `127.0.0.1:${p}`, '--otlp-grpc-addr', `127.0.0.1:${g}`,
      '--otlp-http-addr', `127.0.0.1:${o}`, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitReady(`http://127.0.0.1:${p}/healthz`, child, 'tricorder');
    return { child, base: `http://127.0.0.1:${p}` };
  },
  'victoria-metrics': async () => {
    const p = await freePort();
    const child = spawn('/usr/bin/victoria-metrics', [`-storageDataPath=${join(root, 'vm')}`, `-httpListenAddr=127.0.0.1:${p}`,
      '-loggerLevel=ERROR', '-retentionPeriod=1y', '-search.disableCache', '-search.latencyOffset=0s'], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitReady(`http://127.0.0.1:${p}/health`, child, 'victoria-metrics');
    return { child, base: `http://127.0.0.1:${p}` };
  },
  prometheus: async () => {
    const p = await freePort();
    writeFileSync(join(root, 'prom.yml'), 'global: {}\n');
    const child = spawn('/usr/bin/prometheus', [`--config.file=${join(root, 'prom.yml')}`, `--storage.tsdb.path=${join(root, 'prom')}`,
      `--web.listen-address=127.0.0.1:${p}`, '--web.enable-remote-write-receiver', '--log.level=error'], { stdio: ['ignore', 'ignore', 'inherit'] });
    await waitReady(`http://127.0.0.1:${p}/-/ready`, child, 'prometheus');
    return { child, base: `http://127.0.0.1:${p}` };
  },
};

function dashboardQueries() {
  const d = JSON.parse(readFileSync(join(SHARED, 'reference/scotty/scotty-metrics.json'), 'utf8'));
  const out = [];
  const walk = (ps) => { for (const p of ps || []) { for (const t of p.targets || []) if (t.expr) out.push(t.expr); walk(p.panels); } };
  walk(d.panels);
  return out.map((e) => e.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '1h'));
}

const t0 = Math.floor(Date.now() / 60000) * 60000 - 110 * 60000;
const one = dataset(t0).series.filter(([labels]) => labels.some(([n, v]) => n === '__name__' && v.startsWith('scotty_')));
const series = [];
for (let k = 0; k < INSTANCES; k++) {
  for (const [labels, samples] of one) series.push([labels.map(([n, v]) => [n, n === 'instance' ? `scotty-${k}:21342` : v]), samples]);
}
const nsamples = series.reduce((a, [, s]) => a + s.length, 0);
console.log(`data: ${series.length} series, ${nsamples} samples; ${dashboardQueries().length} dashboard queries × ${ROUNDS} rounds`);

const running = {};
process.on('exit', () => { for (const s of Object.values(running)) s.child.kill('SIGKILL'); });
for (const name of ONLY) running[name] = await starters[name]();
for (const batch of timeOrderedBatches(series, 60000)) {
  for (let i = 0; i < batch.length; i += 500) {
    const part = batch.slice(i, i + 500);
    await Promise.all(Object.values(running).map((s) => remoteWrite(s.base, part)));
  }
}
await sleep(3000); // VictoriaMetrics makes new samples searchable within a second or two

const queries = dashboardQueries();
const params = (q) => new URLSearchParams({ query: q, start: String((t0 + 40 * 60000) / 1000), end: String((t0 + 100 * 60000) / 1000), step: '15' });
const results = {};
for (const [name, s] of Object.entries(running)) {
  // a warm-up round, which also checks that every query succeeds
  let failed = 0;
  for (const q of queries) {
    const text = await (await fetch(`${s.base}/api/v1/query_range`, { method: 'POST', body: params(q) })).text();
    let ok = false;
    try { ok = JSON.parse(text).status === 'success'; } catch { /* not JSON: a failure */ }
    if (!ok) failed++;
  }
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, rssBytes(s.child.pid)); }, 20);
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const a = performance.now();
    for (const q of queries) await (await fetch(`${s.base}/api/v1/query_range`, { method: 'POST', body: params(q) })).arrayBuffer();
    rounds.push(performance.now() - a);
  }
  clearInterval(sampler);
  rounds.sort((x, y) => x - y);
  results[name] = { median: rounds[rounds.length >> 1], total: rounds.reduce((x, y) => x + y, 0), peak, failed };
  console.log(`${name.padEnd(17)} dashboard ${results[name].median.toFixed(1)} ms (median of ${ROUNDS}), peak RSS ${(peak / 1048576).toFixed(1)} MiB, failed queries ${failed}`);
}
if (results.tricorder) {
  for (const peer of Object.keys(results).filter((n) => n !== 'tricorder')) {
    console.log(`tricorder / ${peer}: time ${(results.tricorder.median / results[peer].median).toFixed(2)}×, peak RSS ${(results.tricorder.peak / results[peer].peak).toFixed(2)}×`);
  }
}
for (const s of Object.values(running)) s.child.kill('SIGTERM');
await sleep(500);
rmSync(root, { recursive: true, force: true });
