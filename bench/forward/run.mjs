// Cost of remote write out (issue 15): CPU that forwarding to one remote-write target adds to
// tricorder's ingest, side by side with vmagent doing the same forwarding, in one run.
//
// The same Prometheus remote-write requests (built here: --series series × --samples samples,
// 15 s apart, 2,000 samples per request, 4 senders) go to
//   A. tricorder alone (no target): ingest CPU;
//   B. tricorder with --remote-write-url pointing at victoria-metrics: ingest + forwarding CPU,
//      measured until tricorder reports every sample acknowledged by the target;
//   C. vmagent (-remoteWrite.url = the same victoria-metrics): receive + forward CPU, measured
//      until victoria-metrics has inserted every row.
// CPU is utime+stime of the process from /proc/<pid>/stat, from before the first request to the
// moment everything was forwarded (A: to the last acknowledgement plus the same settle).
// Report: CPU s per million samples for each, forwarding = B - A, and its share of A.
// The servers run one at a time (victoria-metrics as target in B and C, its CPU not counted).
//
// Usage: node bench/forward/run.mjs [--series 10000] [--samples 200] [--bin build/tricorder]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeRequest, snappyLiteral } from '../../tests/e2e/lib/remote_write.mjs';

const args = process.argv.slice(2);
const opt = (n, d) => { const i = args.indexOf(`--${n}`); return i >= 0 ? args[i + 1] : d; };
const SERIES = Number(opt('series', 10000));
const SAMPLES = Number(opt('samples', 200));
const BIN = opt('bin', new URL('../../build/tricorder', import.meta.url).pathname);
const PER = 2000;
const TOTAL = SERIES * SAMPLES;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((res) => { const s = createServer(); s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => res(port)); }); });
}
function cpu(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
function spawnQuiet(bin, a) {
  const c = spawn(bin, a, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  c.stderr.on('data', (d) => { log += d; if (log.length > 100000) log = log.slice(-50000); });
  const exited = new Promise((r) => c.on('exit', r));
  return { c, get log() { return log; }, stop: async () => { c.kill('SIGTERM'); await exited; } };
}
async function until(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) { try { if (await fn()) return; } catch { /* not yet */ } if (Date.now() > end) throw new Error(`timeout: ${what}`); await sleep(100); }
}
async function metric(url, name) {
  const t = await (await fetch(url)).text();
  let s = 0;
  for (const l of t.split('\n')) if (l.startsWith(name) && (l[name.length] === '{' || l[name.length] === ' ')) s += Number(l.slice(l.lastIndexOf(' ') + 1));
  return s;
}

// requests: series in shards of 2000/k, time-ordered per sender
const t0 = Date.now() - SAMPLES * 15000 - 60000;
function buildRequests() {
  const reqs = [];
  const perSeries = Math.max(1, Math.floor(PER / SERIES) || 1);
  for (let s0 = 0; s0 < SERIES; s0 += PER) {
    const group = [];
    for (let s = s0; s < Math.min(SERIES, s0 + PER); s++) group.push(s);
    for (let i = 0; i < SAMPLES; i += perSeries) {
      const series = group.map((s) => [[['__name__', `bench_fwd_${s % 50}_total`], ['instance', `10.0.${s >> 8}.${s & 255}:9100`], ['job', 'bench']],
        Array.from({ length: Math.min(perSeries, SAMPLES - i) }, (_, k) => [s * 7 + (i + k) * 3, t0 + (i + k) * 15000])]);
      reqs.push({ sender: (s0 / PER) % 4, body: snappyLiteral(writeRequest(...series)) });
    }
  }
  return reqs;
}

async function drive(url, reqs) {
  const lanes = [[], [], [], []];
  for (const r of reqs) lanes[r.sender].push(r.body);
  await Promise.all(lanes.map(async (lane) => {
    for (const body of lane) {
      const r = await fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'snappy', 'X-Prometheus-Remote-Write-Version': '0.1.0' } });
      if (r.status >= 300) throw new Error(`${url}: ${r.status} ${await r.text()}`);
    }
  }));
}

async function startVM(dir) {
  const port = await freePort();
  const p = spawnQuiet('/usr/bin/victoria-metrics', [`-storageDataPath=${join(dir, 'vm')}`, `-httpListenAddr=127.0.0.1:${port}`, '-loggerLevel=ERROR']);
  const url = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${url}/health`)).ok, 15000, 'vm');
  return { ...p, url };
}

async function runTricorder(reqs, target) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-fwd-'));
  const ports = [await freePort(), await freePort(), await freePort()];
  const a = ['--data-dir', dir, '--http-addr', `127.0.0.1:${ports[0]}`, '--otlp-grpc-addr', `127.0.0.1:${ports[1]}`,
    '--otlp-http-addr', `127.0.0.1:${ports[2]}`, '--self-scrape-interval', '0', '--no-default-rules'];
  if (target) a.push('--remote-write-url', `${target}/api/v1/write`);
  const p = spawnQuiet(BIN, a);
  const url = `http://127.0.0.1:${ports[0]}`;
  await until(async () => (await fetch(`${url}/-/ready`)).ok, 15000, 'tricorder');
  const c0 = cpu(p.c.pid), w0 = Date.now();
  await drive(`${url}/api/v1/write`, reqs);
  if (target) await until(async () => await metric(`${url}/metrics`, 'prometheus_remote_storage_samples_total') >= TOTAL, 300000, 'forwarded');
  await sleep(1000);
  const c1 = cpu(p.c.pid), w1 = Date.now();
  await p.stop();
  rmSync(dir, { recursive: true, force: true });
  return { cpu: c1 - c0, wall: (w1 - w0) / 1000 };
}

async function runVmagent(reqs, target) {
  const dir = mkdtempSync(join(tmpdir(), 'bench-vmagent-'));
  const port = await freePort();
  const p = spawnQuiet('/usr/bin/vmagent', [`-httpListenAddr=127.0.0.1:${port}`, `-remoteWrite.url=${target}/api/v1/write`,
    `-remoteWrite.tmpDataPath=${join(dir, 'q')}`, '-loggerLevel=ERROR']);
  const url = `http://127.0.0.1:${port}`;
  await until(async () => (await fetch(`${url}/health`)).ok, 15000, 'vmagent');
  const before = await metric(`${target}/metrics`, 'vm_rows_inserted_total');
  const c0 = cpu(p.c.pid), w0 = Date.now();
  await drive(`${url}/api/v1/write`, reqs);
  await until(async () => await metric(`${target}/metrics`, 'vm_rows_inserted_total') - before >= TOTAL, 300000, 'vmagent forwarded');
  await sleep(1000);
  const c1 = cpu(p.c.pid), w1 = Date.now();
  await p.stop();
  rmSync(dir, { recursive: true, force: true });
  return { cpu: c1 - c0, wall: (w1 - w0) / 1000 };
}

const reqs = buildRequests();
const M = TOTAL / 1e6;
console.log(`${SERIES} series x ${SAMPLES} samples = ${TOTAL} samples in ${reqs.length} requests`);
const A = await runTricorder(reqs, null);
const vmdir = mkdtempSync(join(tmpdir(), 'bench-fwd-vm-'));
const vm = await startVM(vmdir);
const B = await runTricorder(reqs, vm.url);
const C = await runVmagent(reqs, vm.url);
await vm.stop();
rmSync(vmdir, { recursive: true, force: true });
const f = (x) => x.toFixed(2);
console.log(`tricorder ingest only          : ${f(A.cpu / M)} CPU s per million samples (${f(A.cpu)} s, wall ${f(A.wall)} s)`);
console.log(`tricorder ingest + remote write: ${f(B.cpu / M)} CPU s per million samples (${f(B.cpu)} s, wall ${f(B.wall)} s)`);
console.log(`  forwarding alone             : ${f((B.cpu - A.cpu) / M)} CPU s per million samples forwarded = ${(100 * (B.cpu - A.cpu) / A.cpu).toFixed(0)}% of ingest CPU (goal <= 30%)`);
console.log(`vmagent receive + forward      : ${f(C.cpu / M)} CPU s per million samples (${f(C.cpu)} s, wall ${f(C.wall)} s)`);
