// Derives dashboards/scotty-metrics.json from Scotty's last scotty-metrics.json (commit
// d14478d7, in ../shared/reference/scotty/), fixing what DASHBOARDS.md lists:
//  - refresh 5s and the last hour by default, as Scotty's documentation promises;
//  - the duplicate row id 400 ("HTTP Server" becomes 450);
//  - panels listed under the row they are shown in, and positions without overlaps: panel 30
//    ("Task Output Throughput") sits in "WebSocket & Tasks", panels 23-26 in "Application
//    Metrics", 706-708 in "OAuth Authentication" above the "Rate Limiting" row;
//  - the "Application Metrics" row gets collapsed/panels like the others and loses its stray
//    datasource;
//  - percentiles aggregate buckets by le (HTTP, Tokio, apps, OAuth drew one curve per label set
//    under one legend name);
//  - rate limiting queries use the metric Scotty emits (scotty_rate_limit_requests_total with
//    decision="denied"), not the names it never sent.
// Usage: node tools/dashboards/fix-scotty.mjs ../shared/reference/scotty/scotty-metrics.json > dashboards/scotty-metrics.json
import { readFileSync } from 'node:fs';

const src = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const d = structuredClone(src);
d.id = null;
d.refresh = '5s';
d.time = { from: 'now-1h', to: 'now' };
d.description = 'Scotty\'s metrics as tricorder serves them (from Scotty\'s scotty-metrics.json, with the fixes listed in tools/dashboards/fix-scotty.mjs)';

// group by position, as Grafana does
const sorted = [...d.panels].sort((a, b) => a.gridPos.y - b.gridPos.y || a.gridPos.x - b.gridPos.x);
const groups = [];
for (const p of sorted) {
  if (p.type === 'row') groups.push({ row: p, panels: [] });
  else groups[groups.length - 1].panels.push(p);
}
// 706-708 belong to OAuth (the Rate Limiting row was put over them)
const oauth = groups.find((g) => g.row.id === 700);
const rl = groups.find((g) => g.row.id === 800);
for (const id of [706, 707, 708]) {
  const i = rl.panels.findIndex((p) => p.id === id);
  if (i >= 0) oauth.panels.push(...rl.panels.splice(i, 1));
}
// panel 30 was placed at y=42, overlapping the Memory row; it is WebSocket & Tasks' last panel
const ws = groups.find((g) => g.row.id === 300);
const p30 = ws.panels.find((p) => p.id === 30);
p30.gridPos = { x: 0, y: 43, w: 24, h: 8 };

const fixExpr = (e) => e
  .replace(/histogram_quantile\(([\d.]+),\s*rate\(([a-z_]+_bucket)\[(\w+)\]\)\)/g, 'histogram_quantile($1, sum by (le) (rate($2[$3])))')
  .replace(/sum\(rate\(([a-z_]+_bucket)\[(\w+)\]\)\) by \(le\)/g, 'sum by (le) (rate($1[$2]))')
  .replace(/^rate\(scotty_rate_limit_hits_total\[(\w+)\]\)$/, 'sum(rate(scotty_rate_limit_requests_total{decision="denied"}[$1]))')
  .replace(/^scotty_rate_limit_hits_total$/, 'sum(scotty_rate_limit_requests_total{decision="denied"})')
  .replace(/^rate\(scotty_rate_limit_hits_by_tier\{tier="(\w+)"\}\[(\w+)\]\)$/, 'sum(rate(scotty_rate_limit_requests_total{decision="denied",tier="$1"}[$2]))');

// lay the rows out top to bottom, each row's panels keeping their relative positions
let y = 0;
const panels = [];
for (const g of groups) {
  const row = g.row;
  if (row.id === 400 && row.title === 'HTTP Server') row.id = 450;
  delete row.datasource;
  row.collapsed = false;
  row.panels = [];
  row.gridPos = { x: 0, y, w: 24, h: 1 };
  panels.push(row);
  y += 1;
  const top = Math.min(...g.panels.map((p) => p.gridPos.y));
  let bottom = y;
  for (const p of g.panels.sort((a, b) => a.gridPos.y - b.gridPos.y || a.gridPos.x - b.gridPos.x)) {
    p.gridPos = { ...p.gridPos, y: y + (p.gridPos.y - top) };
    bottom = Math.max(bottom, p.gridPos.y + p.gridPos.h);
    for (const t of p.targets || []) t.expr = fixExpr(t.expr);
    panels.push(p);
  }
  y = bottom;
}
d.panels = panels;
process.stdout.write(JSON.stringify(d, null, 2) + '\n');
