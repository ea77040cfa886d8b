// Test harness: starts a real tricorder binary on free loopback ports with its own data dir,
// and reads its /metrics. Every e2e suite uses this; nothing here fakes the server.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = process.env.TRICORDER_BIN || new URL('../../../build/tricorder', import.meta.url).pathname;

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// start({ args: [...], env: {...}, dataDir, ports }) → a running tricorder (ports: fixed ones, e.g. for a
// restart on the same addresses).
export async function start(opts = {}) {
  const dataDir = opts.dataDir || mkdtempSync(join(tmpdir(), 'tricorder-e2e-'));
  const ports = opts.ports || { http: await freePort(), grpc: await freePort(), otlpHttp: await freePort() };
  const args = [
    '--data-dir', dataDir,
    '--http-addr', `127.0.0.1:${ports.http}`,
    '--otlp-grpc-addr', `127.0.0.1:${ports.grpc}`,
    '--otlp-http-addr', `127.0.0.1:${ports.otlpHttp}`,
    ...(opts.args || []),
  ];
  // tricorder stores its own /metrics by default (job="tricorder"); suites that count series or
  // label values get a store holding only what they send unless they ask for the self-scrape
  if (!args.includes('--self-scrape-interval') && !(opts.env || {}).TRICORDER_SELF_SCRAPE_INTERVAL) args.push('--self-scrape-interval', '0');
  // opts.wrapper: a command the binary runs under (['prlimit', '--nofile=256:256', '--'])
  const cmd = opts.wrapper ? [...opts.wrapper, BIN] : [BIN];
  const child = spawn(cmd[0], [...cmd.slice(1), ...args], { env: { ...process.env, ...(opts.env || {}) }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; if (process.env.TR_E2E_VERBOSE) process.stderr.write(d); });
  child.stdout.on('data', () => {});
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const t = {
    child, dataDir, ports, exited,
    get stderr() { return stderr; },
    httpUrl: `http://127.0.0.1:${ports.http}`,
    otlpHttpUrl: `http://127.0.0.1:${ports.otlpHttp}`,
    grpcUrl: `http://127.0.0.1:${ports.grpc}`,
    // Sends SIGTERM and waits for the exit; returns { code, signal, ms }.
    async stop(signal = 'SIGTERM') {
      const t0 = Date.now();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const r = await exited;
      return { ...r, ms: Date.now() - t0 };
    },
    async kill9() { child.kill('SIGKILL'); return exited; },
    cleanup() { if (!opts.dataDir && !opts.keepDataDir) rmSync(dataDir, { recursive: true, force: true }); },
    async metrics() { return parseMetrics(await (await fetch(`${t.httpUrl}/metrics`, { headers: opts.metricsHeaders || {} })).text()); },
  };
  const deadline = Date.now() + 10000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tricorder exited at start: ${stderr}`);
    try {
      // up, and (unless the test watches the replay itself) done replaying the metrics WAL
      // opts.ready(t): the suite's own probe (e.g. HTTPS when the HTTP listener serves TLS)
      if (opts.ready ? await opts.ready(t) : (await fetch(`${t.httpUrl}${opts.noWaitReady ? '/healthz' : '/-/ready'}`)).ok) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) { child.kill('SIGKILL'); throw new Error(`tricorder did not become healthy: ${stderr}`); }
    await sleep(50);
  }
  return t;
}

// Parses the Prometheus text format into Map("name{labels}" → number).
export function parseMetrics(text) {
  const m = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

// Sum of every series of `name` whose labels include all of `match` (an object).
export function metricSum(metrics, name, match = {}) {
  let sum = 0;
  for (const [k, v] of metrics) {
    const brace = k.indexOf('{');
    const n = brace < 0 ? k : k.slice(0, brace);
    if (n !== name) continue;
    const labels = brace < 0 ? '' : k.slice(brace);
    if (Object.entries(match).every(([lk, lv]) => labels.includes(`${lk}="${lv}"`))) sum += v;
  }
  return sum;
}

// Polls fn every 200 ms until it returns something truthy (returned), or throws after ms.
export async function eventually(fn, ms = 20000, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) { last = e; }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${last instanceof Error ? last.stack : JSON.stringify(last)}`);
    await sleep(200);
  }
}

// Starts a peer server (prometheus, victoria-metrics, vmagent …) and keeps its output.
export function spawnLogged(bin, args, cwd) {
  const child = spawn(bin, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout.on('data', (d) => { log += d; });
  child.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((r) => child.on('exit', r));
  return { child, get log() { return log; }, async stop() { if (child.exitCode === null) child.kill('SIGTERM'); await exited; } };
}

// Latency bounds on a machine that may be shared (load averages of 7 on 2 cores were seen): a
// probe now and then takes longer whatever the server does, so at most 5% of the probes may
// pass the bound and none may pass `worst` times it (4 unless said). A loop that something
// blocks stalls the probes for seconds, far past either.
export function assertLatency(assert, lat, bound, what, worst = 4) {
  assert.ok(lat.length > 0, `${what}: no probes`);
  const max = Math.max(...lat);
  const over = lat.filter((x) => x > bound).length;
  assert.ok(over <= Math.ceil(lat.length * 0.05) && max < worst * bound,
    `${what}: ${over} of ${lat.length} probes over ${bound.toFixed(0)} ms, the slowest ${max.toFixed(1)} ms: ` +
    lat.map((x) => x.toFixed(1)).join(','));
}
