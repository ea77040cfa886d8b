// Rules side by side: the same rule file (data/rules/timeline.yml) and the same samples, sent by
// remote write to Debian's Prometheus and to tricorder, give the same alerts over a scripted
// timeline: pending, firing (after `for`), kept firing (keep_firing_for), resolved; the same
// ALERTS / ALERTS_FOR_STATE series and recording rule results. Both are restarted while an alert
// is pending: in both the `for` state comes back from ALERTS_FOR_STATE. Finally promtool and
// `tricorder check-rules` print the same on good and bad files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, freePort, sleep, BIN } from './lib/tricorder.mjs';
import { remoteWrite } from './lib/remote_write.mjs';

const PROM = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';
const skip = (!existsSync(PROM) || !existsSync(PROMTOOL)) && `no ${PROM} (apt-get install prometheus)`;
const RULES_DIR = new URL('./data/rules/', import.meta.url).pathname;
const RULES = join(RULES_DIR, 'timeline.yml');
const run = promisify(execFile);

let tr, prom, promUrl, promDir, trDir, writer, temp = 20, writing = true;

async function startTricorder() {
  tr = await start({ dataDir: trDir, args: ['--rule-files', RULES] });
}

// writes temp{room="a"} = `temp` at the current time to both, every 250 ms
function startWriter() {
  const tick = async () => {
    while (writing) {
      const now = Date.now();
      const series = [[[['__name__', 'temp'], ['room', 'a']], [[temp, now]]]];
      await Promise.allSettled([remoteWrite(promUrl, series), tr ? remoteWrite(tr.httpUrl, series) : null]);
      await sleep(250);
    }
  };
  writer = tick();
}

async function get(base, path) {
  const r = await fetch(`${base}${path}`);
  assert.equal(r.status, 200, `${base}${path}`);
  const j = await r.json();
  assert.equal(j.status, 'success');
  return j.data;
}

// the alerts of one rule, in a form both sides share (activeAt differs: each side evaluates
// on its own schedule)
const alertsOf = (data, name) => data.alerts.filter((a) => a.labels.alertname === name)
  .map(({ labels, annotations, state, value }) => ({ labels, annotations, state, value }))
  .sort((x, y) => JSON.stringify(x.labels).localeCompare(JSON.stringify(y.labels)));

// waits until `cond(alerts)` holds on base; returns the alerts
async function waitFor(base, name, cond, ms = 8000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = alertsOf(await get(base, '/api/v1/alerts'), name);
    if (cond(last)) return last;
    if (Date.now() > deadline) throw new Error(`${base}: ${name} never reached the expected state; last: ${JSON.stringify(last)}`);
    await sleep(100);
  }
}
const stateIs = (s) => (a) => a.length === 1 && a[0].state === s;
const none = (a) => a.length === 0;

async function both(name, cond, ms) {
  const [p, t] = await Promise.all([waitFor(promUrl, name, cond, ms), waitFor(tr.httpUrl, name, cond, ms)]);
  assert.deepEqual(t, p, `${name}: tricorder and Prometheus disagree`);
  return t;
}

async function query(base, q) {
  const d = await get(base, `/api/v1/query?query=${encodeURIComponent(q)}`);
  return d.result.map((r) => ({ metric: r.metric, value: r.value[1] }))
    .sort((x, y) => JSON.stringify(x.metric).localeCompare(JSON.stringify(y.metric)));
}

// Prometheus with the rule file; a `for` grace period of 0 restores pending time after a
// restart whatever the `for` (tricorder's behaviour; Prometheus's default of 10m starts alerts
// with a shorter `for` over)
async function startProm() {
  prom = spawn(PROM, [`--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`,
    `--web.listen-address=${new URL(promUrl).host}`, '--web.enable-remote-write-receiver', '--log.level=warn',
    '--rules.alert.for-grace-period=0s'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let promErr = '';
  prom.stderr.on('data', (d) => { promErr += d; });
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${promUrl}/-/ready`)).ok) break; } catch { /* starting */ }
    if (i > 300) throw new Error(`prometheus did not start: ${promErr}`);
    await sleep(50);
  }
}

async function stopProm() {
  const p = prom;
  prom = null;
  p.kill('SIGTERM');
  await new Promise((r) => p.on('exit', r));
}

before(async () => {
  if (skip) return;
  promDir = mkdtempSync(join(tmpdir(), 'tricorder-rules-prom-'));
  trDir = mkdtempSync(join(tmpdir(), 'tricorder-rules-'));
  writeFileSync(join(promDir, 'prometheus.yml'), `global: {evaluation_interval: 1s}\nrule_files: ['${RULES}']\n`);
  promUrl = `http://127.0.0.1:${await freePort()}`;
  await startProm();
  await startTricorder();
  startWriter();
});

after(async () => {
  writing = false;
  await writer;
  if (tr) { await tr.stop(); }
  if (prom) await stopProm();
  if (promDir) rmSync(promDir, { recursive: true, force: true });
  if (trDir) rmSync(trDir, { recursive: true, force: true });
});

test('the same rule file gives the same alerts over a timeline, in Prometheus and tricorder', { skip, timeout: 60000 }, async () => {
  // both list the same rules
  const [pr, tru] = await Promise.all([get(promUrl, '/api/v1/rules'), get(tr.httpUrl, '/api/v1/rules')]);
  const shape = (d) => d.groups.map((g) => ({ name: g.name, file: g.file, interval: g.interval,
    rules: g.rules.map((r) => ({ name: r.name, query: r.query, type: r.type, duration: r.duration, labels: r.labels, annotations: r.annotations })) }));
  assert.deepEqual(shape(tru), shape(pr));

  await both('RoomHot', none);
  temp = 60;
  const pending = await both('RoomHot', stateIs('pending'));
  assert.equal(pending[0].labels.room_upper, 'A');
  assert.equal(pending[0].annotations.summary, 'a at 60 degrees');
  await both('RoomAnyHeat', stateIs('firing')); // no `for`: firing at once
  await both('RoomHot', stateIs('firing'));
  // ALERTS and ALERTS_FOR_STATE, and the recording rule
  for (const q of ['ALERTS{alertname=~"RoomHot|RoomAnyHeat"}', 'room:temp:max', 'count by (alertname) (ALERTS_FOR_STATE{alertname=~"RoomHot|RoomAnyHeat"})',
    'max_over_time(ALERTS{alertname="RoomHot",alertstate="pending"}[1m])']) {
    const [p, t] = await Promise.all([query(promUrl, q), query(tr.httpUrl, q)]);
    assert.deepEqual(t, p, q);
    assert.ok(t.length > 0, q);
  }
  // the groups run at the same instants in both (the offset from the hash of {file, name}, as
  // Prometheus's EvalTimestamp): the newest recording sample has the same timestamp, once both
  // have evaluated the same tick
  let same = false, last;
  for (let i = 0; i < 15 && !same; i++) {
    last = await Promise.all([query(promUrl, 'timestamp(room:temp:max)'), query(tr.httpUrl, 'timestamp(room:temp:max)')]);
    same = last[0].length === 1 && last[0][0].value === last[1][0]?.value;
    if (!same) await sleep(170);
  }
  assert.ok(same, `evaluation instants differ: ${JSON.stringify(last)}`);
  // ALERTS_FOR_STATE holds activeAt in seconds
  const tAlerts = (await get(tr.httpUrl, '/api/v1/alerts')).alerts.find((a) => a.labels.alertname === 'RoomHot');
  const fs = await query(tr.httpUrl, 'ALERTS_FOR_STATE{alertname="RoomHot"}');
  assert.equal(Number(fs[0].value), Math.floor(Date.parse(tAlerts.activeAt) / 1000));

  // cooling below 50: RoomHot resolves at once, RoomAnyHeat (still > 45) keeps firing
  temp = 48;
  await both('RoomHot', none);
  await both('RoomAnyHeat', stateIs('firing'));
  // below 45: RoomAnyHeat keeps firing for 2 s more (keep_firing_for), then resolves
  temp = 30;
  const t0 = Date.now();
  await both('RoomAnyHeat', none);
  assert.ok(Date.now() - t0 >= 1500, `keep_firing_for: resolved after ${Date.now() - t0} ms`);
  for (const q of ['ALERTS{alertname=~"RoomHot|RoomAnyHeat"}']) {
    const [p, t] = await Promise.all([query(promUrl, q), query(tr.httpUrl, q)]);
    assert.deepEqual(t, p, q);
    assert.equal(t.length, 0, 'stale markers end the ALERTS series');
  }
});

test('a restart of both while an alert is pending keeps its `for` state in both (ALERTS_FOR_STATE)', { skip, timeout: 60000 }, async () => {
  temp = 70;
  await both('RoomHotLong', stateIs('pending'));
  const activeAt = async (base) => Date.parse((await get(base, '/api/v1/alerts')).alerts.find((a) => a.labels.alertname === 'RoomHotLong').activeAt);
  const before_ = { tr: await activeAt(tr.httpUrl), prom: await activeAt(promUrl) };
  await sleep(4000); // half of the 8 s `for`
  await Promise.all([tr.stop(), stopProm()]);
  const down = Date.now();
  tr = null;
  await sleep(500);
  await Promise.all([startTricorder(), startProm()]);
  const restarted = Date.now();
  // the pending time already spent counts, the time down does not: both fire about 4 s after
  // the restart instead of 8
  const [pAfter, tAfter] = await Promise.all([promUrl, tr.httpUrl].map(async (base) => {
    await waitFor(base, 'RoomHotLong', stateIs('firing'), 12000);
    return Date.now() - restarted;
  }));
  assert.ok(tAfter < 7000, `tricorder fired ${tAfter} ms after the restart: the pending time was lost`);
  assert.ok(pAfter < 7000, `Prometheus fired ${pAfter} ms after the restart`);
  await both('RoomHotLong', stateIs('firing'));
  for (const [name, base] of [['tr', tr.httpUrl], ['prom', promUrl]]) {
    const shift = (await activeAt(base)) - before_[name];
    assert.ok(shift > 0 && shift < (restarted - down) + 3000, `${name}: activeAt moved by ${shift} ms (down ${restarted - down} ms)`);
  }
  temp = 20;
  await both('RoomHotLong', none);
});

test('promtool check rules and tricorder check-rules agree', { skip }, async () => {
  const files = readdirSync(RULES_DIR).filter((f) => f.endsWith('.yml')).sort();
  assert.ok(files.length >= 6);
  const lines = (s) => [...new Set(s.split('\n').filter(Boolean))].sort();
  for (const f of files) {
    const res = await Promise.all([PROMTOOL, BIN].map((bin) => run(bin, bin === PROMTOOL ? ['check', 'rules', f] : ['check-rules', f], { cwd: RULES_DIR })
      .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }), (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }))));
    const [p, t] = res;
    assert.equal(t.code, p.code, `${f}: exit code`);
    assert.equal(t.stdout, p.stdout, `${f}: stdout`);
    // promtool prints a YAML syntax error twice; the lines are the same
    assert.deepEqual(lines(t.stderr), lines(p.stderr), `${f}: stderr`);
    if (f.startsWith('bad')) assert.equal(p.code, 1, `${f} is meant to be refused`);
  }
});

test('promtool test rules and tricorder test-rules agree on rules/scotty.test.yml and on a broken copy', { skip }, async () => {
  const rulesDir = new URL('../../rules/', import.meta.url).pathname;
  const runBoth = (dir, file) => Promise.all([[PROMTOOL, ['test', 'rules', file]], [BIN, ['test-rules', file]]].map(([bin, args]) => run(bin, args, { cwd: dir })
    .then(({ stdout, stderr }) => ({ code: 0, stdout, stderr }), (e) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }))));
  const [p, t] = await runBoth(rulesDir, 'scotty.test.yml');
  assert.equal(p.code, 0, p.stderr);
  assert.equal(t.code, 0, t.stderr);
  assert.equal(t.stdout, p.stdout);
  // the same tests with two wrong expectations fail in both, with the same report
  const dir = mkdtempSync(join(tmpdir(), 'tricorder-test-rules-'));
  try {
    writeFileSync(join(dir, 'scotty.yml'), readFileSync(join(rulesDir, 'scotty.yml')));
    writeFileSync(join(dir, 'bad.test.yml'), readFileSync(join(rulesDir, 'scotty.test.yml'), 'utf8')
      .replace('description: "2 failed', 'description: "3 failed').replace(/value: 1$/m, 'value: 2'));
    const [pb, tb] = await runBoth(dir, 'bad.test.yml');
    assert.equal(pb.code, 1);
    assert.equal(tb.code, 1);
    assert.ok(pb.stderr.includes('alertname: ScottyWebSocketAuthFailures, time: 10m'), pb.stderr);
    // the same report, word for word
    assert.equal(tb.stdout, pb.stdout);
    assert.equal(tb.stderr, pb.stderr);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});
