// Fault injection into the metrics store, through the real binary: for each kind of damage
// (bit flips and truncation in WAL segments, block chunks, block index, meta.json; kill -9
// during a flush and during compaction) the exact outcome is stated and checked: which
// samples come back, what is quarantined, what is logged and counted, what `tricorder check`
// says — and that no damaged byte is ever served as a value (every exported sample is compared
// with what was written).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, BIN, sleep, metricSum } from './lib/tricorder.mjs';

const H = 3600_000;

// Batch `tag`: `n` series × `k` samples, each value unique to (tag, series, sample), so that a
// damaged byte served as data cannot equal an expected value by chance.
function batch(tag, n, k, t0, step = 1000) {
  const samples = new Map();
  const lines = [];
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < k; i++) {
      const key = `fault_total{batch="${tag}",series="${s}"}`;
      const t = t0 + i * step;
      const v = tag.charCodeAt(0) * 1e6 + s * 1000 + i + 0.25;
      samples.set(`${key} ${t}`, v);
      lines.push(`${key} ${v} ${t}`);
    }
  }
  return { tag, samples, text: lines.join('\n') + '\n' };
}

async function importBatch(t, b) {
  const r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: b.text });
  assert.equal(r.status, 204, `import ${b.tag}: ${r.status} ${await r.text()}`);
}

// Every exported sample as Map("series ts" → value), and the warning the streamed export puts
// in comment lines at its end (its headers are sent before any block is read).
async function exportAll(t) {
  const r = await fetch(`${t.httpUrl}/api/v1/export/prometheus?match[]=${encodeURIComponent('{__name__="fault_total"}')}`);
  const text = await r.text();
  assert.equal(r.status, 200, text);
  const got = new Map();
  const warnings = [];
  for (const line of text.split('\n').filter(Boolean)) {
    if (line.startsWith('# warning: ')) { warnings.push(line.slice(11)); continue; }
    const m = line.match(/^(\S+\}) (\S+) (\d+)$/);
    assert.ok(m, `unparsable export line: ${line}`);
    const key = `${m[1].replace(/,?instance=""/, '')} ${m[3]}`;
    got.set(key, Number(m[2]));
  }
  return { got, warning: warnings.length ? warnings.join('\n') : null };
}

// The export must be exactly the union of `batches`: nothing missing, nothing extra, every
// value equal to what was written.
function assertExactly(got, batches, what) {
  const want = new Map();
  for (const b of batches) for (const [k, v] of b.samples) want.set(k, v);
  for (const [k, v] of got) {
    assert.ok(want.has(k), `${what}: served a sample that was never written (or was lost): ${k} ${v}`);
    assert.equal(v, want.get(k), `${what}: ${k} served ${v}, written ${want.get(k)}`);
  }
  assert.equal(got.size, want.size, `${what}: ${got.size} samples served, ${want.size} expected`);
}

function check(dataDir, repair = false) {
  const r = spawnSync(BIN, ['check', dataDir, ...(repair ? ['--repair'] : [])], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

function walDir(dataDir) { return join(dataDir, 'metrics', 'wal'); }

// The newest WAL segment holding data, and its records: { off, hdr, len, type }.
function walRecords(dataDir) {
  const dir = walDir(dataDir);
  const segs = readdirSync(dir).filter((f) => /^\d{8}$/.test(f)).sort()
    .filter((f) => statSync(join(dir, f)).size > 0);
  const path = join(dir, segs[segs.length - 1]);
  const buf = readFileSync(path);
  const recs = [];
  for (let off = 0; off + 13 <= buf.length;) {
    const type = buf[off];
    assert.ok(type & 0x80, 'format 2 records');
    const len = buf.readUInt32LE(off + 1);
    recs.push({ off, hdr: 13, len, type: type & 0x7f });
    off += 13 + len;
  }
  return { path, buf, recs };
}

function flipByte(path, off, mask = 0x10) {
  const b = readFileSync(path);
  b[off] ^= mask;
  writeFileSync(path, b);
}

function blockDirs(dataDir) {
  const d = join(dataDir, 'metrics', 'blocks');
  return readdirSync(d).filter((f) => !f.endsWith('.tmp'));
}

function quarantined(dataDir) {
  const d = join(dataDir, 'metrics', 'quarantine');
  return existsSync(d) ? readdirSync(d) : [];
}

async function withDir(fn) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tricorder-faults-'));
  try { await fn(dataDir); } finally { rmSync(dataDir, { recursive: true, force: true }); }
}

// Three acknowledged batches A, B, C (one commit each: a series record and a samples record),
// then kill -9: they live only in the WAL.
async function threeBatchesInWal(dataDir) {
  const now = Date.now();
  const A = batch('A', 10, 20, now - 600_000);
  const B = batch('B', 10, 20, now - 500_000);
  const C = batch('C', 10, 20, now - 400_000);
  const t = await start({ dataDir });
  for (const b of [A, B, C]) await importBatch(t, b);
  await t.kill9();
  return { A, B, C };
}

test('WAL: a bit flipped in the payload of an older record loses that record only', async () => {
  await withDir(async (dataDir) => {
    const { A, B, C } = await threeBatchesInWal(dataDir);
    const { path, recs } = walRecords(dataDir);
    assert.deepEqual(recs.map((r) => r.type), [1, 2, 1, 2, 1, 2]);
    const bs = recs[3]; // B's samples
    flipByte(path, bs.off + bs.hdr + Math.floor(bs.len / 2));

    const t = await start({ dataDir });
    const { got } = await exportAll(t);
    assertExactly(got, [A, C], 'after the flip');
    assert.match(t.stderr, /msg="WAL: damaged records skipped, replay resumed after them".*records_skipped=1 .*samples_in_skipped_records=200 /);
    const m = await t.metrics();
    assert.equal(metricSum(m, 'tricorder_tsdb_wal_corrupt_records_total'), 1);
    assert.equal(metricSum(m, 'tricorder_tsdb_wal_samples_dropped_total'), 200);
    assert.ok(existsSync(`${path}.corrupt`), 'the damaged segment is kept as .corrupt');
    // the store goes on: new writes, a clean stop, a restart
    const D = batch('D', 2, 5, Date.now() - 10_000);
    await importBatch(t, D);
    assert.equal((await t.stop()).code, 0);
    const t2 = await start({ dataDir });
    assertExactly((await exportAll(t2)).got, [A, C, D], 'after a clean restart');
    assert.equal((await t2.stop()).code, 0);
  });
});

test('WAL: a flipped header (series record of B) is resynchronised past; B is dropped and counted', async () => {
  await withDir(async (dataDir) => {
    const { A, B, C } = await threeBatchesInWal(dataDir);
    const { path, recs } = walRecords(dataDir);
    flipByte(path, recs[2].off + 2, 0x01); // B's series record: its length field
    const before = check(dataDir);
    assert.equal(before.code, 1, before.out);
    assert.match(before.out, /metrics WAL \d{8}: DAMAGED: 1 damaged record/);

    const t = await start({ dataDir });
    assertExactly((await exportAll(t)).got, [A, C], 'B has no series definition left');
    assert.match(t.stderr, /records_skipped=1 /);
    assert.match(t.stderr, /msg="WAL replayed".* samples_dropped=200 /, 'B\'s samples are counted as dropped');
    assert.equal((await t.stop()).code, 0);
    void B;
  });
});

test('WAL: a segment truncated in the middle of the newest record loses that record only', async () => {
  await withDir(async (dataDir) => {
    const { A, B } = await threeBatchesInWal(dataDir);
    const { path, recs } = walRecords(dataDir);
    truncateSync(path, recs[5].off + 20); // inside C's samples record
    const t = await start({ dataDir });
    assertExactly((await exportAll(t)).got, [A, B], 'after the truncation');
    assert.match(t.stderr, /msg="WAL: torn tail ignored/);
    assert.ok(!existsSync(`${path}.corrupt`), 'a torn tail is what a crash leaves: no copy');
    assert.equal((await t.stop()).code, 0);
  });
});

// One block (batches A and B, cut at a clean stop), then batch C in the WAL only.
async function blockAndHead(dataDir) {
  const now = Date.now();
  // A and B within one 2h block range, at least 4 minutes old
  const base = Math.floor(now / (2 * H)) * 2 * H;
  const t0 = now - base >= 25 * 60_000 ? base + 60_000 : base - H;
  const A = batch('A', 20, 60, t0, 10_000);
  const B = batch('B', 20, 60, t0 + 600_000, 10_000);
  let t = await start({ dataDir });
  await importBatch(t, A);
  await importBatch(t, B);
  assert.equal((await t.stop()).code, 0);
  const blocks = blockDirs(dataDir);
  assert.equal(blocks.length, 1, 'the clean stop cut one block (all within one 2h range)');
  const C = batch('C', 5, 10, now - 300_000);
  t = await start({ dataDir });
  await importBatch(t, C);
  await t.kill9();
  return { A, B, C, id: blocks[0] };
}

test('block chunks: a flipped bit is never served; the query answers the rest with a warning and the block is quarantined', async () => {
  await withDir(async (dataDir) => {
    const { C, id } = await blockAndHead(dataDir);
    const chunks = join(dataDir, 'metrics', 'blocks', id, 'chunks');
    flipByte(chunks, Math.floor(statSync(chunks).size / 2), 0x04);
    const t = await start({ dataDir });
    const first = await exportAll(t);
    assertExactly(first.got, [C], 'the damaged block is left out');
    assert.ok(first.warning && first.warning.includes(`block ${id} is damaged`), `warning: ${first.warning}`);
    assert.match(t.stderr, new RegExp(`msg="damaged block quarantined" block=${id} error="chunks: checksum mismatch`));
    assert.equal(t.stderr.split('damaged block quarantined').length - 1, 1, 'logged once');
    const second = await exportAll(t);
    assertExactly(second.got, [C], 'still the rest');
    assert.equal(second.warning, null, 'the block is gone from the store: no more warnings');
    assert.equal(metricSum(await t.metrics(), 'tricorder_tsdb_quarantined_blocks_total'), 1);
    assert.deepEqual(quarantined(dataDir), [id]);
    assert.deepEqual(blockDirs(dataDir).filter((b) => b === id), []);
    assert.ok(existsSync(join(dataDir, 'metrics', 'quarantine', id, 'chunks')), 'moved, never deleted');
    assert.equal((await t.stop()).code, 0);
  });
});

for (const [what, damage, reason] of [
  ['a flipped bit in the index', (dir) => { const p = join(dir, 'index'); flipByte(p, Math.floor(statSync(p).size / 2), 0x01); }, /index section \w+: checksum mismatch/],
  ['a truncated index', (dir) => { const p = join(dir, 'index'); truncateSync(p, statSync(p).size - 3); }, /index/],
  ['truncated chunks', (dir) => { const p = join(dir, 'chunks'); truncateSync(p, statSync(p).size - 1); }, /chunks truncated/],
  ['meta.json missing a field', (dir) => {
    const p = join(dir, 'meta.json');
    writeFileSync(p, readFileSync(p, 'utf8').replace(/"maxTime":\d+,/, ''));
  }, /meta.json: field maxTime missing/],
  ['meta.json that does not parse', (dir) => { writeFileSync(join(dir, 'meta.json'), '{"version":2,"minTi'); }, /meta.json does not parse/],
  ['meta.json with a digit changed', (dir) => {
    const p = join(dir, 'meta.json');
    writeFileSync(p, readFileSync(p, 'utf8').replace(/"minTime":(\d+)/, (_, d) => `"minTime":${Number(d) + 1}`));
  }, /meta.json disagrees with the index/],
]) {
  test(`block: ${what} is quarantined at start, never loaded, never deleted`, async () => {
    await withDir(async (dataDir) => {
      const { C, id } = await blockAndHead(dataDir);
      damage(join(dataDir, 'metrics', 'blocks', id));
      const chk = check(dataDir);
      assert.equal(chk.code, 1, chk.out);
      assert.ok(chk.out.includes(`metrics block ${id}: DAMAGED`), chk.out);
      // a short retention: a block loaded with made-up times would be deleted by it
      const t = await start({ dataDir, args: ['--retention', '2d'] });
      const { got, warning } = await exportAll(t);
      assertExactly(got, [C], 'only the head');
      assert.equal(warning, null);
      assert.match(t.stderr, new RegExp(`msg="damaged block quarantined" block=${id} error="[^"]*`));
      assert.match(t.stderr.split('damaged block quarantined')[1], reason);
      assert.equal(metricSum(await t.metrics(), 'tricorder_tsdb_quarantined_blocks_total'), 1);
      assert.equal((await t.stop()).code, 0);
      assert.deepEqual(quarantined(dataDir), [id]);
      assert.ok(existsSync(join(dataDir, 'metrics', 'quarantine', id, 'chunks')));
      const after = check(dataDir);
      assert.equal(after.code, 0, after.out);
      assert.match(after.out, /1 block\(s\) in quarantine/);
    });
  });
}

test('tricorder check --repair quarantines a damaged block and keeps only intact WAL records', async () => {
  await withDir(async (dataDir) => {
    const { id } = await blockAndHead(dataDir);
    flipByte(join(dataDir, 'metrics', 'blocks', id, 'chunks'), 5);
    const { path, recs } = walRecords(dataDir);
    flipByte(path, recs[1].off + recs[1].hdr + 3); // C's samples
    const r1 = check(dataDir, true);
    assert.equal(r1.code, 1, r1.out);
    assert.match(r1.out, /repaired: moved to .*quarantine/);
    assert.match(r1.out, /repaired: 1 intact records kept/);
    assert.ok(existsSync(`${path}.corrupt`));
    const r2 = check(dataDir);
    assert.equal(r2.code, 0, r2.out);
    // a running tricorder keeps check out
    const t = await start({ dataDir });
    const r3 = check(dataDir);
    assert.equal(r3.code, 2);
    assert.match(r3.out, /in use by a running tricorder/);
    assert.equal((await exportAll(t)).got.size, 0, 'the block is in quarantine and C\'s samples were damaged');
    assert.equal((await t.stop()).code, 0);
  });
});

test('kill -9 during flushes and during compaction: every acknowledged sample survives, check is clean', async () => {
  await withDir(async (dataDir) => {
    const now = Date.now();
    const all = [];
    // backfill: 12 hours of older data, so that flushes write several 2h blocks and the
    // background compaction has windows to merge
    for (let round = 0; round < 6; round++) {
      const t = await start({ dataDir });
      const b = batch(String.fromCharCode(65 + round), 20, 72, now - 14 * H + round * 2 * H, 100_000);
      await importBatch(t, b);
      all.push(b);
      fetch(`${t.httpUrl}/internal/force_flush`, { method: 'POST' }).catch(() => {});
      await sleep([0, 3, 10, 30, 60, 120][round]);
      await t.kill9();
      const t2 = await start({ dataDir });
      assertExactly((await exportAll(t2)).got, all, `after kill -9 during flush ${round}`);
      // the compaction thread runs every 5 s: kill it somewhere in its round
      await sleep(4000 + round * 300);
      await t2.kill9();
    }
    const t = await start({ dataDir });
    assertExactly((await exportAll(t)).got, all, 'at the end');
    await sleep(6000); // one more maintenance round, undisturbed
    assertExactly((await exportAll(t)).got, all, 'after compaction');
    assert.equal(metricSum(await t.metrics(), 'tricorder_tsdb_quarantined_blocks_total'), 0);
    assert.equal((await t.stop()).code, 0);
    const chk = check(dataDir);
    assert.equal(chk.code, 0, chk.out);
    assert.deepEqual(quarantined(dataDir), []);
    // blocks are bounded: a level-L block lies within one aligned window of 2h·3^L
    const ids = blockDirs(dataDir);
    assert.ok(ids.length >= 2, `never everything in one block: ${ids.length}`);
    for (const id of ids) {
      const meta = JSON.parse(readFileSync(join(dataDir, 'metrics', 'blocks', id, 'meta.json'), 'utf8'));
      const w = 2 * H * 3 ** meta.level;
      assert.equal(Math.floor(meta.minTime / w), Math.floor(meta.maxTime / w), `block ${id} (level ${meta.level}) crosses its window`);
      assert.equal(meta.version, 2);
    }
  });
});

test('replay in the background: /-/ready answers 503 and writes get a retryable 503 until it is done', async () => {
  await withDir(async (dataDir) => {
    // a WAL big enough that its replay takes a moment
    let t = await start({ dataDir });
    const now = Date.now();
    const big = [];
    for (let i = 0; i < 8; i++) {
      const b = batch(String.fromCharCode(97 + i), 500, 100, now - 3_000_000 + i * 200_000, 1000);
      await importBatch(t, b);
      big.push(b);
    }
    await t.kill9();
    t = await start({ dataDir, noWaitReady: true });
    const seen = new Set();
    const small = batch('Z', 1, 1, now);
    for (let i = 0; i < 2000; i++) {
      const w = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: small.text });
      const body = await w.text();
      const ready = (await fetch(`${t.httpUrl}/-/ready`)).status;
      seen.add(`${w.status}/${ready}`);
      if (w.status === 503) assert.match(body, /replaying its write-ahead log/, 'refused retryably, saying why');
      else assert.equal(w.status, 204, body);
      if (w.status === 204) {
        assert.equal(ready, 200, 'a write is accepted only once the replay is done');
        break;
      }
      await sleep(2);
    }
    assert.ok(seen.has('204/200'), `the store became ready: ${[...seen]}`);
    if (process.env.TR_E2E_VERBOSE) console.log('write/ready statuses seen during the replay:', [...seen]);
    assertExactly((await exportAll(t)).got, [...big, small], 'everything after the replay');
    assert.equal((await t.stop()).code, 0);
  });
});
