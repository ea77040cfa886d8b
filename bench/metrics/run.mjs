// Metrics ingest benchmark (issue 4, item 7; not part of the test suite).
//
// Starts tricorder, Debian's victoria-metrics and prometheus (remote-write receiver) on
// loopback, one at a time so that they do not compete for the two cores, and sends each the
// very same Prometheus remote-write 1.0 requests (snappy-compressed WriteRequest protobufs,
// built here): by default 10,000 series × 360 samples (15 s apart, the last 90 minutes) of
// realistic counters, gauges and histogram buckets, 2,000 samples per request, one sender per
// shard of 2,000 series sending in time order, as a Prometheus would. Then reports per server: CPU seconds per million samples (from
// /proc/<pid>/stat, utime+stime of the whole process, measured from before the first request
// to the end of a 5 s settle; also up to the exit after SIGTERM, so a final flush counts), RSS
// after ingest (VmRSS), bytes per sample on disk after a clean
// shutdown (sum of file sizes of the data directory; tricorder: its metrics directory), and the
// ratios to each peer; plus tricorder's rate for the same data over OTLP/HTTP protobuf.
//
// Usage: cd bench/metrics && npm install && node run.mjs [--series N] [--samples N]
//        [--bin path/to/tricorder] [--only tricorder,victoria-metrics,prometheus] [--no-otlp]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SnappyJS from 'snappyjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const SERIES = Number(opt('series', 10000));
const SAMPLES = Number(opt('samples', 360));
const PER_REQUEST = Number(opt('per-request', 2000));
const STEP_MS = 15000;
const BIN = opt('bin', process.env.TRICORDER_BIN || new URL('../../build/tricorder', import.meta.url).pathname);
const ONLY = opt('only', 'tricorder,victoria-metrics,prometheus').split(',');
const OTLP = !args.includes('--no-otlp');
const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux

// ---- deterministic data ----

let seed = 0x2545f4914f6cdd1dn;
function rnd() { // xorshift64*, as a float in [0,1)
  seed ^= seed >> 12n; seed ^= (seed << 25n) & 0xffffffffffffffffn; seed ^= seed >> 27n;
  return Number(((seed * 0x2545f4914f6cdd1dn) & 0xffffffffffffffffn) >> 11n) / 2 ** 53;
}

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HANDLERS = ['/api/v1/query', '/api/v1/write', '/metrics', '/healthz'];

// One instance's 100 series: 24 request counters, 56 histogram series (4 handlers × (11
// buckets + +Inf + sum + count)), 20 gauges/counters of process and runtime state.
function instanceSeries(inst) {
  const job = `svc-${inst % 10}`, instance = `10.0.${inst >> 8}.${inst & 255}:9100`;
  const base = [['instance', instance], ['job', job]];
  const out = [];
  const add = (name, extra, kind, gen) => {
    const labels = [['__name__', name], ...base, ...extra].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    out.push({ name, labels, kind, gen, extra });
  };
  for (const method of ['GET', 'POST'])
    for (const code of ['200', '404', '500'])
      for (const handler of HANDLERS) {
        const rate = code === '200' ? 50 : code === '404' ? 3 : 1;
        let v = Math.floor(rnd() * 100000);
        add('http_requests_total', [['method', method], ['code', code], ['handler', handler]], 'counter', () => (v += Math.floor(rnd() * rate * 2)));
      }
  for (const handler of HANDLERS) {
    // a cumulative histogram advancing consistently
    const counts = new Array(BUCKETS.length + 1).fill(0);
    let sum = 0, lastStep = -1;
    const advance = (step) => {
      if (step === lastStep) return;
      lastStep = step;
      const n = Math.floor(rnd() * 40);
      for (let k = 0; k < n; k++) {
        const lat = -Math.log(1 - rnd()) * 0.08;
        sum += lat;
        let b = BUCKETS.findIndex((x) => lat <= x);
        if (b < 0) b = BUCKETS.length;
        for (let j = b; j < counts.length; j++) counts[j]++;
      }
    };
    BUCKETS.forEach((le, j) =>
      add('http_request_duration_seconds_bucket', [['handler', handler], ['le', String(le)]], 'hist', (step) => (advance(step), counts[j])));
    add('http_request_duration_seconds_bucket', [['handler', handler], ['le', '+Inf']], 'hist', (step) => (advance(step), counts[BUCKETS.length]));
    add('http_request_duration_seconds_sum', [['handler', handler]], 'hist', (step) => (advance(step), sum));
    add('http_request_duration_seconds_count', [['handler', handler]], 'hist', (step) => (advance(step), counts[BUCKETS.length]));
  }
  let cpu = rnd() * 1000, mem = 50e6 + Math.floor(rnd() * 200e6), heap = 20e6, gor = 50 + Math.floor(rnd() * 50);
  let gc = Math.floor(rnd() * 1000), fds = 20, temp = 40 + Math.floor(rnd() * 200) / 10, bytesIn = Math.floor(rnd() * 1e9);
  add('process_cpu_seconds_total', [], 'counter', () => (cpu = Math.round((cpu + rnd() * 0.3) * 100) / 100));
  add('process_resident_memory_bytes', [], 'gauge', () => (mem += Math.floor((rnd() - 0.5) * 1e6) * 4096 / 4096));
  add('go_memstats_heap_alloc_bytes', [], 'gauge', () => (heap = Math.max(1e6, heap + Math.floor((rnd() - 0.5) * 4e6))));
  add('go_goroutines', [], 'gauge', () => (gor = Math.max(1, gor + Math.floor((rnd() - 0.5) * 6))));
  add('go_gc_duration_seconds_count', [], 'counter', () => (gc += Math.floor(rnd() * 3)));
  add('process_open_fds', [], 'gauge', () => (fds = Math.max(5, fds + Math.floor((rnd() - 0.5) * 3))));
  add('node_hwmon_temp_celsius', [['sensor', 'temp1']], 'gauge', () => (temp = Math.round((temp + (rnd() - 0.5)) * 10) / 10));
  add('node_network_receive_bytes_total', [['device', 'eth0']], 'counter', () => (bytesIn += Math.floor(rnd() * 5e5)));
  add('node_load1', [], 'gauge', () => Math.round(rnd() * 400) / 100);
  add('node_memory_utilisation_ratio', [], 'gauge', () => 0.3 + rnd() * 0.4); // full-precision float
  for (let k = 0; out.length < 100; k++) {
    let q = Math.floor(rnd() * 100);
    add('app_queue_length', [['queue', `q${k}`]], 'gauge', () => (q = Math.max(0, q + Math.floor((rnd() - 0.5) * 10))));
  }
  return out;
}

const instances = Math.ceil(SERIES / 100);
const series = [];
for (let i = 0; i < instances; i++) series.push(...instanceSeries(i));
series.length = SERIES;
const END = Math.floor(Date.now() / STEP_MS) * STEP_MS - 60000;
const START = END - (SAMPLES - 1) * STEP_MS;
const TOTAL = SERIES * SAMPLES;

// values[step][series]: computed once, so every server gets identical data
console.error(`generating ${SERIES} series × ${SAMPLES} samples = ${TOTAL} samples …`);
const values = [];
for (let s = 0; s < SAMPLES; s++) {
  const row = new Float64Array(SERIES);
  for (let i = 0; i < SERIES; i++) row[i] = series[i].gen(s);
  values.push(row);
}

// ---- protobuf encoding ----

class PB {
  constructor(size = 1 << 16) { this.b = Buffer.allocUnsafe(size); this.n = 0; }
  ensure(k) {
    if (this.n + k <= this.b.length) return;
    let c = this.b.length * 2;
    while (c < this.n + k) c *= 2;
    const nb = Buffer.allocUnsafe(c);
    this.b.copy(nb, 0, 0, this.n);
    this.b = nb;
  }
  varint(v) { // v: non-negative Number < 2^53, or BigInt
    this.ensure(10);
    if (typeof v === 'bigint') {
      while (v >= 0x80n) { this.b[this.n++] = Number(v & 0x7fn) | 0x80; v >>= 7n; }
      this.b[this.n++] = Number(v);
      return;
    }
    while (v >= 0x80) { this.b[this.n++] = (v % 0x80) | 0x80; v = Math.floor(v / 0x80); }
    this.b[this.n++] = v;
  }
  tag(f, wt) { this.varint(f * 8 + wt); }
  str(f, s) { const l = Buffer.byteLength(s); this.tag(f, 2); this.varint(l); this.ensure(l); this.n += this.b.write(s, this.n); }
  double(f, v) { this.tag(f, 1); this.ensure(8); this.b.writeDoubleLE(v, this.n); this.n += 8; }
  fixed64(f, v) { this.tag(f, 1); this.ensure(8); this.b.writeBigUInt64LE(BigInt(v), this.n); this.n += 8; }
  // nested message: reserve 3 bytes for the length (messages < 2 MiB), then fix up
  open(f) { this.tag(f, 2); this.ensure(3); const at = this.n; this.n += 3; return at; }
  close(at) {
    const l = this.n - at - 3;
    if (l >= 1 << 21) throw new Error('message too large');
    this.b[at] = (l & 0x7f) | 0x80; this.b[at + 1] = ((l >> 7) & 0x7f) | 0x80; this.b[at + 2] = l >> 14;
  }
  bytes() { return this.b.subarray(0, this.n); }
}

function snappy(buf) { return Buffer.from(SnappyJS.compress(new Uint8Array(buf.buffer, buf.byteOffset, buf.length))); }

// Remote write bodies: time-ordered, PER_REQUEST series (one sample each) per request.
console.error('encoding remote-write requests …');
const rwBodies = [];
let rawBytes = 0;
for (let s = 0; s < SAMPLES; s++) {
  const t = START + s * STEP_MS;
  for (let first = 0; first < SERIES; first += PER_REQUEST) {
    const pb = new PB();
    for (let i = first; i < Math.min(SERIES, first + PER_REQUEST); i++) {
      const ts = pb.open(1);
      for (const [n, v] of series[i].labels) { const l = pb.open(1); pb.str(1, n); pb.str(2, v); pb.close(l); }
      const sm = pb.open(2); pb.double(1, values[s][i]); pb.tag(2, 0); pb.varint(t); pb.close(sm);
      pb.close(ts);
    }
    rawBytes += pb.n;
    rwBodies.push(snappy(pb.bytes()));
  }
}
const rwBytes = rwBodies.reduce((a, b) => a + b.length, 0);
console.error(`${rwBodies.length} requests, ${(rawBytes / 1e6).toFixed(1)} MB raw, ${(rwBytes / 1e6).toFixed(1)} MB snappy`);

// OTLP bodies: the same values, as OTel instruments (one resource per instance).
function otlpBodies() {
  const bodies = [];
  const perReq = Math.max(1, Math.floor(PER_REQUEST / 100));
  let samples = 0;
  for (let s = 0; s < SAMPLES; s++) {
    const tn = BigInt(START + s * STEP_MS) * 1000000n, t0 = BigInt(START - STEP_MS) * 1000000n;
    for (let i0 = 0; i0 < instances; i0 += perReq) {
      const pb = new PB();
      for (let inst = i0; inst < Math.min(instances, i0 + perReq); inst++) {
        const rows = [];
        for (let k = inst * 100; k < Math.min(SERIES, inst * 100 + 100); k++) rows.push(k);
        if (!rows.length) continue;
        const lab = Object.fromEntries(series[rows[0]].labels);
        const rm = pb.open(1);
        const res = pb.open(1);
        for (const [k, v] of [['service.name', lab.job], ['service.instance.id', lab.instance]]) {
          const kv = pb.open(1); pb.str(1, k); const av = pb.open(2); pb.str(1, v); pb.close(av); pb.close(kv);
        }
        pb.close(res);
        const sc = pb.open(2);
        const scope = pb.open(1); pb.str(1, 'bench'); pb.close(scope);
        // group rows into metrics by name; histograms rebuilt from their buckets
        const byName = new Map();
        for (const k of rows) {
          const se = series[k];
          const base = se.name.replace(/_(bucket|sum|count)$/, '');
          const key = se.kind === 'hist' ? base : se.name;
          if (!byName.has(key)) byName.set(key, []);
          byName.get(key).push(k);
        }
        for (const [name, ks] of byName) {
          const kind = series[ks[0]].kind;
          const m = pb.open(2);
          if (kind === 'hist') {
            pb.str(1, name); pb.str(3, 's');
            const h = pb.open(9);
            for (const handler of HANDLERS) {
              const mine = ks.filter((k) => series[k].extra.find((e) => e[0] === 'handler' && e[1] === handler));
              if (!mine.length) continue;
              const buckets = mine.filter((k) => series[k].name.endsWith('_bucket'));
              const cum = buckets.map((k) => values[s][k]);
              const sumK = mine.find((k) => series[k].name.endsWith('_sum'));
              const dp = pb.open(1);
              const kv = pb.open(9); pb.str(1, 'handler'); const av = pb.open(2); pb.str(1, handler); pb.close(av); pb.close(kv);
              pb.fixed64(2, t0); pb.fixed64(3, tn);
              pb.fixed64(4, cum[cum.length - 1] || 0);
              if (sumK !== undefined) pb.double(5, values[s][sumK]);
              const bc = pb.open(6);
              cum.forEach((c, j) => { const d = c - (j ? cum[j - 1] : 0); pb.ensure(8); pb.b.writeBigUInt64LE(BigInt(d), pb.n); pb.n += 8; });
              pb.close(bc);
              const eb = pb.open(7);
              BUCKETS.slice(0, Math.max(0, cum.length - 1)).forEach((x) => { pb.ensure(8); pb.b.writeDoubleLE(x, pb.n); pb.n += 8; });
              pb.close(eb);
              pb.close(dp);
              samples += cum.length + 2;
            }
            pb.tag(2, 0); pb.varint(2); // cumulative
            pb.close(h);
          } else {
            const isCounter = kind === 'counter';
            pb.str(1, isCounter ? name.replace(/_total$/, '') : name);
            const data = pb.open(isCounter ? 7 : 5);
            for (const k of ks) {
              const dp = pb.open(1);
              for (const [ln, lv] of series[k].extra) { const kv = pb.open(7); pb.str(1, ln); const av = pb.open(2); pb.str(1, lv); pb.close(av); pb.close(kv); }
              pb.fixed64(2, t0); pb.fixed64(3, tn); pb.double(4, values[s][k]);
              pb.close(dp);
              samples++;
            }
            if (isCounter) { pb.tag(2, 0); pb.varint(2); pb.tag(3, 0); pb.varint(1); }
            pb.close(data);
          }
          pb.close(m);
        }
        pb.close(sc);
        pb.close(rm);
      }
      bodies.push(Buffer.from(pb.bytes()));
    }
  }
  return { bodies, samples, shards: Math.ceil(instances / perReq) };
}

// ---- processes ----

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function cpuSeconds(pid) {
  const st = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK; // utime, stime
}
function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}
function dirBytes(p) {
  let apparent = 0, allocated = 0;
  for (const e of readdirSync(p, { withFileTypes: true })) {
    const q = join(p, e.name);
    if (e.isDirectory()) { const r = dirBytes(q); apparent += r.apparent; allocated += r.allocated; }
    else if (e.isFile()) { const s = statSync(q); apparent += s.size; allocated += s.blocks * 512; }
  }
  return { apparent, allocated };
}

async function waitReady(url, child, name) {
  const deadline = Date.now() + 30000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} exited at start`);
    try { if ((await fetch(url)).ok) return; } catch { /* not yet */ }
    if (Date.now() > deadline) throw new Error(`${name} not ready`);
    await sleep(100);
  }
}

function servers() {
  return {
    tricorder: async (dir) => {
      const p = await freePort(), g = await freePort(), o = await freePort();
      const child = spawn(BIN, ['--data-dir', dir, '--http-addr', `127.0.0.1:${p}`, '--otlp-grpc-addr', `127.0.0.1:${g}`,
        '--otlp-http-addr', `127.0.0.1:${o}`, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'inherit'] });
      const base = `http://127.0.0.1:${p}`;
      await waitReady(`${base}/healthz`, child, 'tricorder');
      return { child, write: `${base}/api/v1/write`, otlp: `http://127.0.0.1:${o}/v1/metrics`, base, diskDir: join(dir, 'metrics'), count: `${base}/api/v1/status/tsdb` };
    },
    'victoria-metrics': async (dir) => {
      const p = await freePort();
      const child = spawn('/usr/bin/victoria-metrics', [`-storageDataPath=${dir}`, `-httpListenAddr=127.0.0.1:${p}`, '-loggerLevel=ERROR',
        '-retentionPeriod=1y'], { stdio: ['ignore', 'ignore', 'inherit'] });
      const base = `http://127.0.0.1:${p}`;
      await waitReady(`${base}/health`, child, 'victoria-metrics');
      return { child, write: `${base}/api/v1/write`, base, diskDir: dir, count: `${base}/api/v1/series/count` };
    },
    prometheus: async (dir) => {
      const p = await freePort();
      writeFileSync(join(dir, '..', `prom-${p}.yml`), 'global:\n  scrape_interval: 1m\n');
      const child = spawn('/usr/bin/prometheus', [`--config.file=${join(dir, '..', `prom-${p}.yml`)}`, `--storage.tsdb.path=${dir}`,
        `--web.listen-address=127.0.0.1:${p}`, '--web.enable-remote-write-receiver', '--log.level=error'], { stdio: ['ignore', 'ignore', 'inherit'] });
      const base = `http://127.0.0.1:${p}`;
      await waitReady(`${base}/-/ready`, child, 'prometheus');
      return { child, write: `${base}/api/v1/write`, base, diskDir: dir, count: `${base}/api/v1/status/tsdb` };
    },
  };
}

// Bodies are laid out step by step, `shards` per step; like Prometheus' remote-write shards,
// one sender per shard sends its requests in time order, so no series goes out of order.
async function send(url, bodies, headers, shards) {
  let bad = 0, firstErr = '';
  async function worker(w) {
    for (let i = w; i < bodies.length; i += shards) {
      const r = await fetch(url, { method: 'POST', body: bodies[i], headers });
      if (r.status >= 300) { bad++; if (!firstErr) firstErr = `${r.status} ${await r.text()}`; } else await r.arrayBuffer();
    }
  }
  await Promise.all(Array.from({ length: shards }, (_, w) => worker(w)));
  if (bad) console.error(`  ${bad} requests failed, first: ${firstErr.slice(0, 300)}`);
  return bad;
}

async function seriesCount(srv, name) {
  try {
    const j = await (await fetch(srv.count)).json();
    return name === 'victoria-metrics' ? j.data : j.data.headStats.numSeries;
  } catch { return NaN; }
}

// Stops with SIGTERM and returns the process's CPU seconds as last seen before it exited
// (polled every 20 ms), so that the work of a clean shutdown (e.g. a final flush) counts.
async function stop(child) {
  if (child.exitCode !== null) return NaN;
  let last = NaN, exited = false;
  const done = new Promise((r) => child.once('exit', () => { exited = true; r(); }));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 120000);
  while (!exited) {
    try { last = cpuSeconds(child.pid); } catch { /* gone */ }
    await sleep(20);
  }
  await done;
  clearTimeout(t);
  return last;
}

const RW_HEADERS = { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'snappy', 'X-Prometheus-Remote-Write-Version': '0.1.0' };

async function runOne(name) {
  const root = mkdtempSync(join(tmpdir(), `bench-${name}-`));
  const dir = join(root, 'data');
  try {
    const srv = await servers()[name](dir);
    await sleep(1000);
    const cpu0 = cpuSeconds(srv.child.pid), t0 = Date.now();
    const bad = await send(srv.write, rwBodies, RW_HEADERS, Math.ceil(SERIES / PER_REQUEST));
    const wall = (Date.now() - t0) / 1000;
    await sleep(5000);
    const cpu = cpuSeconds(srv.child.pid) - cpu0, rss = rssBytes(srv.child.pid);
    const n = await seriesCount(srv, name);
    const cpuAll = (await stop(srv.child)) - cpu0;
    const disk = dirBytes(srv.diskDir);
    return { name, cpu, cpuAll, wall, rss, disk, series: n, bad };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

async function runOtlp() {
  const { bodies, samples, shards } = otlpBodies();
  const root = mkdtempSync(join(tmpdir(), 'bench-otlp-'));
  try {
    const srv = await servers().tricorder(join(root, 'data'));
    await sleep(500);
    const cpu0 = cpuSeconds(srv.child.pid), t0 = Date.now();
    const bad = await send(srv.otlp, bodies, { 'Content-Type': 'application/x-protobuf' }, shards);
    const wall = (Date.now() - t0) / 1000;
    const cpu = cpuSeconds(srv.child.pid) - cpu0;
    const n = await seriesCount(srv, 'tricorder');
    await stop(srv.child);
    return { samples, requests: bodies.length, wall, cpu, series: n, bad };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const results = [];
for (const name of ONLY) {
  if (name !== 'tricorder' && !existsSync(`/usr/bin/${name}`)) { console.error(`skipping ${name}: not installed`); continue; }
  console.error(`running ${name} …`);
  const r = await runOne(name);
  results.push(r);
  console.error(`  done in ${r.wall.toFixed(1)} s, ${r.series} series`);
}

const fmt = (x, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
console.log(`\nData: ${SERIES} series × ${SAMPLES} samples = ${TOTAL} samples over remote write (${rwBodies.length} requests, ${(rwBytes / 1e6).toFixed(1)} MB snappy), one sender per shard of ${PER_REQUEST} series (${Math.ceil(SERIES / PER_REQUEST)} in flight)\n`);
console.log('| server | CPU s / M samples | … incl. clean shutdown | ingest wall s | RSS after ingest MB | disk bytes / sample (apparent / allocated) | series seen | failed requests |');
console.log('|---|---|---|---|---|---|---|---|');
for (const r of results)
  console.log(`| ${r.name} | ${fmt(r.cpu / (TOTAL / 1e6), 3)} | ${fmt(r.cpuAll / (TOTAL / 1e6), 3)} | ${fmt(r.wall, 1)} | ${fmt(r.rss / 1048576, 1)} | ${fmt(r.disk.apparent / TOTAL, 3)} / ${fmt(r.disk.allocated / TOTAL, 3)} | ${r.series} | ${r.bad} |`);
const tr = results.find((r) => r.name === 'tricorder');
if (tr) {
  console.log('\nRatios tricorder / peer (goal vs VictoriaMetrics: ≤ 0.5 each):\n');
  console.log('| peer | CPU | RSS | disk (apparent) |');
  console.log('|---|---|---|---|');
  for (const r of results.filter((x) => x !== tr))
    console.log(`| ${r.name} | ${fmt(tr.cpu / r.cpu)} | ${fmt(tr.rss / r.rss)} | ${fmt(tr.disk.apparent / r.disk.apparent)} |`);
}
if (OTLP && ONLY.includes('tricorder')) {
  console.error('running tricorder over OTLP/HTTP …');
  const o = await runOtlp();
  console.log(`\nOTLP/HTTP protobuf into tricorder: ${o.samples} Prometheus samples in ${o.requests} requests, ${fmt(o.wall, 1)} s wall, ` +
    `${fmt(o.samples / o.wall / 1e6, 3)} M samples/s, ${fmt(o.cpu / (o.samples / 1e6), 3)} CPU s / M samples, ${o.series} series, ${o.bad} failed requests`);
}
