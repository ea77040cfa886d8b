// RSS soak with series churn (not part of the test suite): every second 2,000 series get a
// sample; every minute the whole set is replaced by new series (the instance label changes).
// RSS is printed every 30 s. Usage: node bench/metrics/soak.mjs path/to/tricorder [minutes]
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { remoteWrite } from '../../tests/e2e/lib/remote_write.mjs';
const BIN = process.argv[2], MIN = Number(process.argv[3] || 25);
const DIR = join(mkdtempSync(join(tmpdir(), 'tricorder-soak-')), 'data');
const p = spawn(BIN, ['--data-dir', DIR, '--http-addr', '127.0.0.1:19601', '--otlp-grpc-addr', '127.0.0.1:19602', '--otlp-http-addr', '127.0.0.1:19603', '--retention', '2h', '--log-level', 'warn'], { stdio: 'inherit' });
await new Promise((r) => setTimeout(r, 1500));
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p.pid}/status`, 'utf8'))[1]) / 1024;
const t0 = Date.now();
let next = t0;
while (Date.now() - t0 < MIN * 60000) {
  const gen = Math.floor((Date.now() - t0) / 60000);
  const now = Date.now();
  const series = [];
  for (let i = 0; i < 2000; i++) series.push([[['__name__', 'soak_metric'], ['instance', `g${gen}-i${i}`], ['job', 'soak']], [[i + now % 1000, now]]]);
  await remoteWrite('http://127.0.0.1:19601', series);
  if (now >= next) { console.log(`${((now - t0) / 60000).toFixed(1)} min  RSS ${rss().toFixed(1)} MB  generation ${gen}`); next += 30000; }
  await new Promise((r) => setTimeout(r, 1000));
}
console.log(`end RSS ${rss().toFixed(1)} MB`);
p.kill('SIGTERM');
await new Promise((r) => p.on('exit', r));
rmSync(DIR, { recursive: true, force: true });
