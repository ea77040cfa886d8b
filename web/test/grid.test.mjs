import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { layout, sections, compact } from '../js/lib/grid.js';

const P = (id, x, y, w, h, extra = {}) => ({ id, type: 'timeseries', gridPos: { x, y, w, h }, ...extra });
const R = (id, y, extra = {}) => ({ id, type: 'row', title: `row ${id}`, gridPos: { x: 0, y, w: 24, h: 1 }, ...extra });
const at = (items, id) => items.find((i) => i.panel.id === id);

test('panels rise into free space and stay in (y, x) order', () => {
  const items = layout([P(1, 0, 5, 12, 8), P(2, 12, 10, 12, 8)]);
  assert.deepEqual([at(items, 1).y, at(items, 2).y], [0, 0]);
});

test('overlapping panels are pushed down below what they overlap', () => {
  const items = layout([P(1, 0, 0, 12, 8), P(2, 6, 4, 12, 8), P(3, 0, 4, 6, 2)]);
  // 3 (x=0,y=4) comes before 2 (x=6,y=4): it moves under 1; 2 goes under 1 too
  assert.equal(at(items, 1).y, 0);
  assert.equal(at(items, 3).y, 8);
  assert.equal(at(items, 2).y, 8);
  for (const a of items) for (const b of items) {
    if (a === b) continue;
    const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    assert.equal(overlap, false, `${a.panel.id} overlaps ${b.panel.id}`);
  }
});

test('rows own the panels below them by position, not JSON order; collapsed rows hide theirs', () => {
  const panels = [R(100, 0), P(1, 0, 1, 24, 8), R(200, 9, { collapsed: true, panels: [P(3, 0, 10, 24, 8)] }), R(300, 10), P(2, 0, 5, 12, 8)];
  const secs = sections(panels);
  assert.deepEqual(secs.map((s) => s.row && s.row.id), [100, 200, 300]);
  assert.deepEqual(secs[0].panels.map((p) => p.id), [1, 2], 'panel 2 (y=5) belongs to the first row although listed last');
  const items = layout(panels);
  assert.equal(at(items, 3), undefined, 'a collapsed row hides its panels');
  assert.equal(at(items, 200).y, 17);
  const open = layout(panels, () => false);
  assert.equal(at(open, 3).y, 18, 'expanding puts the row panels right under it');
  assert.equal(at(open, 300).y, 26, 'and pushes what follows down');
});

test('out-of-range gridPos values are clamped to the 24 columns', () => {
  const items = compact([{ x: 20, y: 0, w: 10, h: 2 }]);
  assert.ok(items[0].x + items[0].w <= 24 || items[0].w > 24 === false);
  const l = layout([P(1, 30, 0, 40, 2)]);
  assert.equal(l[0].w, 24);
  assert.equal(l[0].x, 0);
});

test("Scotty's original file: the duplicate row id and the overlapping rows lay out without overlaps", { skip: !process.env.TR_SHARED_DIR && 'TR_SHARED_DIR not set' }, () => {
  const d = JSON.parse(readFileSync(`${process.env.TR_SHARED_DIR}/reference/scotty/scotty-metrics.json`, 'utf8'));
  const items = layout(d.panels);
  assert.equal(items.filter((i) => i.panel.type !== 'row').length, 41);
  for (const a of items) for (const b of items) {
    if (a === b) continue;
    assert.ok(!(a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h), `${a.panel.title} overlaps ${b.panel.title}`);
  }
  // panel 706 sits at y=128 like the Rate Limiting row: it is ordered after the row (x=12 > 0)
  const secs = sections(d.panels);
  const rl = secs.find((s) => s.row && s.row.title === 'Rate Limiting');
  assert.deepEqual(rl.panels.map((p) => p.id).sort(), [706, 707, 708, 801, 802, 803].sort());
});

test("tricorder's scotty-metrics.json keeps every panel in the row it is listed under", () => {
  const d = JSON.parse(readFileSync(new URL('../../dashboards/scotty-metrics.json', import.meta.url), 'utf8'));
  const ids = d.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, 'ids are unique');
  assert.equal(d.refresh, '5s');
  assert.deepEqual(d.time, { from: 'now-1h', to: 'now' });
  let row = null;
  const listed = new Map();
  for (const p of d.panels) if (p.type === 'row') row = p.id; else listed.set(p.id, row);
  for (const s of sections(d.panels)) for (const p of s.panels) assert.equal(listed.get(p.id), s.row.id, `panel ${p.id}`);
  const items = layout(d.panels);
  for (const it of items) {
    const g = it.panel.gridPos;
    assert.equal(it.y, g.y, `panel ${it.panel.id} needs no push-down`);
  }
});
