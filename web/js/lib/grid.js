// Grafana's dashboard layout: panels on a 24-column grid (gridPos x, y, w, h), rows that own
// the panels below them (by position, not by order in the JSON), collapsed rows that keep
// theirs in row.panels, and the vertical compaction of Grafana's grid (react-grid-layout):
// every item, taken in (y, x) order, rises as far as it can and is pushed below anything it
// overlaps. Overlapping panels in a file (Scotty's has some) end up one under the other.

export const COLS = 24;

function pos(p) {
  const g = p.gridPos || {};
  const w = Math.min(COLS, Math.max(1, Number(g.w) || 12));
  const x = Math.min(COLS - w, Math.max(0, Number(g.x) || 0));
  return { x, y: Math.max(0, Number(g.y) || 0), w, h: Math.max(1, Number(g.h) || 8) };
}

const byRowCol = (a, b) => a.y - b.y || a.x - b.x;

// Groups the dashboard's panels into sections: [{ row: rowPanel|null, panels: [...] }], in
// the order Grafana shows them. Panels of a collapsed row come from row.panels.
export function sections(panels) {
  const items = (panels || []).map((p, i) => ({ p, i, ...pos(p) })).sort((a, b) => byRowCol(a, b) || a.i - b.i);
  const out = [];
  let cur = { row: null, panels: [] };
  for (const it of items) {
    if (it.p.type === 'row') {
      if (cur.row || cur.panels.length) out.push(cur);
      cur = { row: it.p, panels: [] };
      if (it.p.collapsed && Array.isArray(it.p.panels)) cur.panels.push(...it.p.panels);
    } else {
      cur.panels.push(it.p);
    }
  }
  if (cur.row || cur.panels.length) out.push(cur);
  return out;
}

function collides(a, b) {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

// Vertical compaction of items {x, y, w, h} (mutated and returned in (y, x) order).
export function compact(items) {
  const sorted = [...items].sort(byRowCol);
  const placed = [];
  for (const it of sorted) {
    const bottom = placed.reduce((m, o) => Math.max(m, o.y + o.h), 0);
    it.y = Math.min(bottom, it.y);
    while (it.y > 0 && !placed.some((o) => collides(o, { ...it, y: it.y - 1 }))) it.y--;
    let c;
    while ((c = placed.find((o) => collides(o, it)))) it.y = c.y + c.h;
    placed.push(it);
  }
  return sorted;
}

// The layout for the current collapse state: `collapsed(row)` says whether a row is folded
// (default: row.collapsed). Returns [{ panel, row, x, y, w, h }] with rows as full-width,
// one-unit items and a folded row's panels left out.
export function layout(panels, collapsed = (r) => !!r.collapsed) {
  const items = [];
  for (const sec of sections(panels)) {
    let top = 0;
    if (sec.row) {
      const rp = pos(sec.row);
      items.push({ panel: sec.row, row: null, x: 0, y: rp.y, w: COLS, h: 1 });
      top = rp.y + 1;
      if (collapsed(sec.row)) continue;
    }
    // panels kept in a row's own list carry positions relative to where the row was saved:
    // place them under the row, keeping their relative offsets
    const ps = sec.panels.map(pos);
    const minY = ps.length ? Math.min(...ps.map((p) => p.y)) : 0;
    const shift = sec.row && sec.row.collapsed && minY < top ? top - minY : 0;
    sec.panels.forEach((p, i) => items.push({ panel: p, row: sec.row, ...ps[i], y: ps[i].y + shift }));
  }
  return compact(items);
}
