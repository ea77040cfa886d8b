// Metrics read benchmark (issue 9: the cost of verifying block checksums on read; not part
// of the test suite).
//
// Imports N series × M samples (15 s apart, ending now) into a fresh data dir through
// /api/v1/import/prometheus, cuts everything into blocks (/internal/force_flush), restarts
// (so that every read comes from the blocks on disk), then reports: the time from start to
// /-/ready (block loading: every index read and verified), and for R exports of every series
// (each one reads and verifies every chunk frame) the median wall time and the server's CPU
// seconds per million samples read (utime+stime from /proc/<pid>/stat).
//
// Usage: cd bench/metrics && node query.mjs [--bin path/to/tricorder] [--series N]
//        [--samples N] [--rounds R]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const SERIES = Number(opt('series', 10000));
const SAMPLES = Number(opt('samples', 360));
const ROUNDS = Number(opt('rounds', 5));
const BIN = opt('bin', new URL('../../build-rel/tricorder', import.meta.url).pathname);
const STEP = 15000;
const CLK_TCK = 100;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function freePort() {
  return new Promise((res) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); });
  });
}
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

async function startServer(dataDir) {
  const [h, g, o] = [await freePort(), await freePort(), await freePort()];
  const t0 = Date.now();
  const child = spawn(BIN, ['--data-dir', dataDir, '--http-addr', `127.0.0.1:${h}`, '--otlp-grpc-addr', `127.0.0.1:${g}`,
    '--otlp-http-addr', `127.0.0.1:${o}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.on('data', () => {});
  const url = `http://127.0.0.1:${h}`;
  for (;;) {
    try { if ((await fetch(`${url}/-/ready`)).ok) break; } catch { /* not yet */ }
    await sleep(5);
  }
  return { child, url, readyMs: Date.now() - t0 };
}
async function stop(s) {
  const done = new Promise((r) => s.child.on('exit', r));
  s.child.kill('SIGTERM');
  await done;
}

const dataDir = mkdtempSync(join(tmpdir(), 'tricorder-qbench-'));
try {
  let s = await startServer(dataDir);
  const end = Math.floor(Date.now() / STEP) * STEP;
  const PER = 100;
  for (let base = 0; base < SERIES; base += PER) {
    const lines = [];
    for (let k = base; k < Math.min(SERIES, base + PER); k++) {
      let v = (k * 7919) % 100000;
      for (let i = 0; i < SAMPLES; i++) {
        v += (k + i) % 13 === 0 ? 0.5 : (i * k) % 7;
        lines.push(`bench_read_total{job="svc-${k % 10}",instance="10.0.${k >> 8}.${k & 255}:9100",series="${k}"} ${v} ${end - (SAMPLES - 1 - i) * STEP}`);
      }
    }
    const r = await fetch(`${s.url}/api/v1/import/prometheus`, { method: 'POST', body: lines.join('\n') + '\n' });
    if (r.status !== 204) throw new Error(`import: ${r.status} ${await r.text()}`);
  }
  const f = await fetch(`${s.url}/internal/force_flush`, { method: 'POST' });
  if (!f.ok) throw new Error(`flush: ${f.status}`);
  await stop(s);

  s = await startServer(dataDir);
  const walls = [];
  let samples = 0;
  const cpu0 = cpuSeconds(s.child.pid);
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = process.hrtime.bigint();
    const res = await fetch(`${s.url}/api/v1/export/prometheus?match[]=${encodeURIComponent('{__name__="bench_read_total"}')}`);
    const text = await res.text();
    walls.push(Number(process.hrtime.bigint() - t0) / 1e6);
    let n = 0;
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
    if (n !== SERIES * SAMPLES) throw new Error(`export returned ${n} samples, ${SERIES * SAMPLES} written`);
    samples += n;
  }
  const cpu = cpuSeconds(s.child.pid) - cpu0;
  await stop(s);
  walls.sort((a, b) => a - b);
  console.log(JSON.stringify({
    bin: BIN, series: SERIES, samples_per_series: SAMPLES, rounds: ROUNDS,
    ready_ms: s.readyMs,
    export_median_ms: Math.round(walls[Math.floor(walls.length / 2)]),
    export_cpu_s_per_million_samples: +(cpu / (samples / 1e6)).toFixed(3),
  }));
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
