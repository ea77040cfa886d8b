// TLS benchmark (issue 13, item 1; not part of the test suite).
//
// 1. Handshake rate: `openssl s_time` against the TLS gRPC and OTLP/HTTP ports, full
//    handshakes (TLS 1.3 and 1.2) and resumed ones (TLS 1.2), --seconds each; reports
//    connections per wall second and the server's CPU per handshake (utime+stime from
//    /proc/<pid>/stat), next to `openssl s_server` on the same certificate as a reference.
// 2. OTLP/HTTP throughput over TLS vs plain HTTP on the same data: the very same protobuf
//    bodies (made by the OTel SDK's serializers: traces of --spans spans, metrics of
//    --series series) POSTed --requests times over --conns keep-alive connections to the
//    OTLP/HTTP listener of a fresh tricorder started once with TLS and once without (one at a
//    time, so they do not compete for the cores). Reports requests/s, MB/s of bodies and the
//    server's CPU per request, and the TLS/plain ratios.
//
// Usage: node bench/tls/run.mjs [--bin build/tricorder] [--requests 4000] [--conns 4]
//        [--spans 100] [--series 200] [--seconds 5] [--rounds 3]
// (tests/e2e's node_modules must be installed: the payloads come from its OTel SDK.)
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { freePort, sleep } from '../../tests/e2e/lib/tricorder.mjs';
import { makeCerts, read } from '../../tests/e2e/lib/tls.mjs';
import { tracesProtobuf, metricsProtobuf } from '../../tests/e2e/lib/payloads.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : def;
};
const BIN = opt('bin', process.env.TRICORDER_BIN || new URL('../../build/tricorder', import.meta.url).pathname);
const REQUESTS = Number(opt('requests', 4000));
const CONNS = Number(opt('conns', 4));
const SPANS = Number(opt('spans', 100));
const SERIES = Number(opt('series', 200));
const SECONDS = Number(opt('seconds', 5));
const ROUNDS = Number(opt('rounds', 3));
const CLK_TCK = 100;
// s_time closes before TLS 1.3 tickets arrive, so resumption is measured with TLS 1.2
const MODES = ['-new -tls1_3', '-new -tls1_2', '-reuse -tls1_2'];

const dir = mkdtempSync(join(tmpdir(), 'tricorder-bench-tls-'));
const certs = makeCerts(dir);
const srv = certs.server('srv');
const ca = read(certs.ca.crt);

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
}

async function startServer(useTls) {
  const ports = { http: await freePort(), grpc: await freePort(), otlp: await freePort() };
  const data = mkdtempSync(join(dir, 'data-'));
  const a = ['--data-dir', data, '--http-addr', `127.0.0.1:${ports.http}`, '--otlp-grpc-addr', `127.0.0.1:${ports.grpc}`,
    '--otlp-http-addr', `127.0.0.1:${ports.otlp}`, '--self-scrape-interval', '0', '--trace-sync', 'normal',
    '--log-level', 'warn'];
  if (useTls) a.push('--tls-cert-file', srv.crt, '--tls-key-file', srv.key, '--http-tls=false');
  const child = spawn(BIN, a, { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 200; i++) {
    try { if ((await fetch(`http://127.0.0.1:${ports.http}/-/ready`)).ok) break; } catch { /* starting */ }
    await sleep(50);
  }
  return {
    child, ports, data,
    async stop() { child.kill('SIGTERM'); await new Promise((r) => child.on('exit', r)); },
  };
}

function run(cmd, a) {
  return new Promise((resolve) => execFile(cmd, a, { timeout: (SECONDS + 30) * 1000 }, (err, out, errout) => resolve(`${out}${errout}`)));
}

async function sTime(pid, port, mode) {
  const c0 = cpuSeconds(pid);
  const [m0, ver] = mode.split(' ');
  const text = await run('openssl', ['s_time', '-connect', `127.0.0.1:${port}`, m0, ver, '-time', String(SECONDS), '-CAfile', certs.ca.crt]);
  const c1 = cpuSeconds(pid);
  const m = text.match(/(\d+) connections in ([\d.]+) real seconds/);
  if (!m) throw new Error(`s_time: ${text}`);
  const n = Number(m[1]), secs = Number(m[2]);
  return { n, rate: n / secs, cpuUs: ((c1 - c0) / n) * 1e6 };
}

// tricorder's gRPC and HTTP ports, and `openssl s_server` with the same certificate as the
// reference for what this machine does
async function handshakes() {
  const s = await startServer(true);
  const out = {};
  for (const mode of MODES) {
    out[`grpc ${mode}`] = await sTime(s.child.pid, s.ports.grpc, mode);
    out[`otlp-http ${mode}`] = await sTime(s.child.pid, s.ports.otlp, mode);
  }
  await s.stop();
  const port = await freePort();
  const ref = spawn('openssl', ['s_server', '-quiet', '-cert', srv.crt, '-key', srv.key, '-accept', `127.0.0.1:${port}`], { stdio: 'ignore' });
  await sleep(500);
  for (const mode of MODES) out[`openssl s_server ${mode}`] = await sTime(ref.pid, port, mode);
  ref.kill();
  return out;
}

async function throughput(useTls, body, path) {
  const s = await startServer(useTls);
  const mod = useTls ? https : http;
  const agent = new mod.Agent({ keepAlive: true, maxSockets: CONNS, ca });
  const url = `${useTls ? 'https' : 'http'}://127.0.0.1:${s.ports.otlp}${path}`;
  const post = () => new Promise((resolve, reject) => {
    const req = mod.request(url, {
      method: 'POST', agent, servername: 'localhost',
      headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length },
    }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
  for (let i = 0; i < CONNS * 4; i++) await post(); // warm up: connections open
  let sent = 0;
  const c0 = cpuSeconds(s.child.pid);
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONNS }, async () => {
    while (sent < REQUESTS) { sent++; await post(); }
  }));
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(s.child.pid) - c0;
  agent.destroy();
  await s.stop();
  return { rps: sent / secs, mbps: (sent * body.length) / secs / 1e6, cpuUs: (cpu / sent) * 1e6 };
}

const fmt = (x, d = 0) => x.toFixed(d);
console.log(`tricorder TLS benchmark: ${BIN}`);
const h = await handshakes();
console.log(`handshakes (openssl s_time, ${SECONDS}s each, ECDSA P-256; -new: full, -reuse: resumed):`);
for (const [k, v] of Object.entries(h)) {
  console.log(`  ${k.padEnd(32)} ${fmt(v.rate).padStart(6)} /s   server CPU ${fmt(v.cpuUs)} µs per handshake (${v.n} in ${SECONDS}s)`);
}

const payloads = [
  { name: `traces ${SPANS} spans`, body: tracesProtobuf(SPANS).body, path: '/v1/traces' },
  { name: `metrics ${SERIES * 2} points`, body: (await metricsProtobuf(SERIES)).body, path: '/v1/metrics' },
];
console.log(`OTLP/HTTP protobuf, ${REQUESTS} requests over ${CONNS} keep-alive connections:`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const p of payloads) {
  // alternated, --rounds times each; medians reported (the machine is shared)
  const runs = { plain: [], tls: [] };
  for (let r = 0; r < ROUNDS; r++) {
    runs.plain.push(await throughput(false, p.body, p.path));
    runs.tls.push(await throughput(true, p.body, p.path));
  }
  const med = (k) => ({
    rps: median(runs[k].map((x) => x.rps)), mbps: median(runs[k].map((x) => x.mbps)), cpuUs: median(runs[k].map((x) => x.cpuUs)),
  });
  const plain = med('plain'), tlsr = med('tls');
  console.log(`  ${p.name} (${p.body.length} B/request), median of ${ROUNDS}`);
  console.log(`    plain  ${fmt(plain.rps)} req/s  ${fmt(plain.mbps, 1)} MB/s  server CPU ${fmt(plain.cpuUs)} µs/request`);
  console.log(`    TLS    ${fmt(tlsr.rps)} req/s  ${fmt(tlsr.mbps, 1)} MB/s  server CPU ${fmt(tlsr.cpuUs)} µs/request`);
  console.log(`    TLS/plain: throughput ${fmt((tlsr.rps / plain.rps) * 100, 1)}%  server CPU ${fmt((tlsr.cpuUs / plain.cpuUs) * 100, 1)}%`);
}
rmSync(dir, { recursive: true, force: true });
