// OTLP forwarding cost (issue 15; not part of the test suite): CPU of tricorder A to ingest
// --exports OTLP/HTTP protobuf exports (real SDK bytes from tests/e2e/lib/payloads.mjs), once
// without forwarding and once forwarding everything over gRPC to a second tricorder B, same
// run. Reports A's CPU seconds (user+sys from /proc) until B has everything, and the ratio.
//
// --tls: B serves TLS (certificates of a test CA) and A forwards over grpcs:// instead.
//
// Usage: TRICORDER_BIN=build/tricorder node bench/otlp_forward/run.mjs [--exports N] [--spans N] [--series N] [--tls]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCerts } from '../../tests/e2e/lib/tls.mjs';
import { start, sleep, metricSum } from '../../tests/e2e/lib/tricorder.mjs';
import { tracesProtobuf, metricsProtobuf } from '../../tests/e2e/lib/payloads.mjs';

const args = process.argv.slice(2);
const opt = (name, def) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : def; };
const EXPORTS = Number(opt('exports', 600));
const TLS = args.includes('--tls');
const certDir = mkdtempSync(join(tmpdir(), 'tricorder-bench-fwd-'));
const certs = TLS ? makeCerts(certDir) : null;
const srv = TLS ? certs.server('b') : null;
const cpu = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
};

const traces = tracesProtobuf(Number(opt('spans', 100)));
const metrics = await metricsProtobuf(Number(opt('series', 100)));
for (const [signal, p, items] of [['traces', traces, traces.spans], ['metrics', metrics, metrics.points]]) {
  const res = {};
  for (const fwd of [false, true]) {
    const b = fwd ? await start(TLS ? { args: ['--tls-cert-file', srv.crt, '--tls-key-file', srv.key, '--http-tls=false'] } : {}) : null;
    const ep = TLS ? `grpcs://127.0.0.1:${b?.ports.grpc};ca=${certs.ca.crt}` : `grpc://127.0.0.1:${b?.ports.grpc}`;
    const a = await start({ args: fwd ? ['--otlp-forward-endpoint', ep] : [] });
    const c0 = cpu(a.child.pid);
    for (let i = 0; i < EXPORTS; i++) {
      const r = await fetch(`${a.otlpHttpUrl}/v1/${signal}`, {
        method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: p.body,
      });
      if (r.status !== 200) throw new Error(`export: ${r.status}`);
    }
    if (fwd) {
      for (;;) {
        const m = await a.metrics();
        if (metricSum(m, 'tricorder_otlp_forward_sent_items_total') >= EXPORTS * items) break;
        await sleep(20);
      }
    }
    res[fwd] = cpu(a.child.pid) - c0;
    await a.stop(); a.cleanup();
    if (b) { await b.stop(); b.cleanup(); }
  }
  console.log(`${signal}: ${EXPORTS} exports x ${items} items (${p.body.length} bytes each): A cpu ` +
    `${res.false.toFixed(2)} s alone, ${res.true.toFixed(2)} s forwarding${TLS ? ' over TLS' : ''} (+${(100 * (res.true / res.false - 1)).toFixed(0)}%)`);
}
rmSync(certDir, { recursive: true, force: true });
