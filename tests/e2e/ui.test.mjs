// The built-in web UI in headless Chromium (Debian's, driven by playwright-core), fed by the
// Scotty-shaped load generator (tools/loadgen, the real OpenTelemetry SDK): every page loads
// without console errors, the assets are served gzipped with ETag/304 and a strict CSP behind
// the same basic auth as the APIs, unknown /api/ paths stay API 404s, the time range in the
// URL is honoured, a trace found by search opens its waterfall, values from the network
// (labels, span attributes, service names, dashboard titles) render as text, the page's memory
// stays flat over an hour of 5 s refreshes (simulated clock), and when the query API exists
// every panel of Scotty's dashboard whose metrics are sent draws a series. Screenshots of each
// page go to the build directory (TR_SCREENSHOT_DIR, default <build>/ui-screenshots).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { chromium } from 'playwright-core';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { SpanKind } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';

import { start, sleep, BIN } from './lib/tricorder.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const LOADGEN = new URL('../../tools/loadgen/loadgen.mjs', import.meta.url).pathname;
const LOADGEN_DEPS = new URL('../../tools/loadgen/node_modules/@opentelemetry/sdk-metrics', import.meta.url).pathname;
const NO_LOADGEN = !existsSync(LOADGEN_DEPS) && 'tools/loadgen has no node_modules (run npm ci there, as ./dev test does)';
const SHOTS = process.env.TR_SCREENSHOT_DIR || join(dirname(BIN), 'ui-screenshots');
const XSS = '<img src=x onerror=alert(1)>';
const USER = 'ui';
const PASS = 'pw-ui';
const AUTH = { Authorization: `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}` };

let t;
let loadgen;
let browser;
let dashDir;
let queryApi = false; // /api/v1/query_range answers (the PromQL engine is in)

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium)`);
  dashDir = mkdtempSync(join(tmpdir(), 'tricorder-dash-'));
  // a --dashboards-dir file: a title and a text panel that try to inject markup
  writeFileSync(join(dashDir, 'xss.json'), JSON.stringify({
    uid: 'xss-probe', title: `XSS ${XSS}`, schemaVersion: 38, time: { from: 'now-15m', to: 'now' }, tags: [XSS],
    panels: [
      { id: 1, type: 'text', title: `Text ${XSS}`, gridPos: { x: 0, y: 0, w: 12, h: 6 }, options: { mode: 'markdown', content: `# Heading\n${XSS} and <script>alert(2)</script> **bold** [link](javascript:alert(3))` } },
      { id: 2, type: 'table', title: 'Probe table', gridPos: { x: 12, y: 0, w: 12, h: 6 }, targets: [{ refId: 'A', expr: 'xss_probe' }] },
    ],
  }));
  // for the hour of refreshes: one panel of each kind over tricorder's own metrics (light
  // enough that 720 refreshes stay quick when the query API answers)
  const ts = (id, x, expr, legend) => ({ id, type: 'timeseries', title: `ts ${id}`, gridPos: { x, y: 0, w: 8, h: 8 },
    fieldConfig: { defaults: { unit: 'short' } }, options: { legend: { displayMode: 'table', calcs: ['mean', 'max', 'lastNotNull'] } },
    targets: [{ refId: 'A', expr, legendFormat: legend }] });
  writeFileSync(join(dashDir, 'memory.json'), JSON.stringify({
    uid: 'memory', title: 'Memory check', schemaVersion: 38, refresh: '5s', time: { from: 'now-1h', to: 'now' },
    panels: [
      ts(1, 0, 'rate(tricorder_http_responses_total[$__rate_interval])', '{{code}}'),
      ts(2, 8, 'process_resident_memory_bytes', 'rss'),
      ts(3, 16, 'tricorder_tsdb_head_series', 'series'),
      { id: 4, type: 'stat', title: 'stat', gridPos: { x: 0, y: 8, w: 8, h: 6 }, targets: [{ refId: 'A', expr: 'tricorder_tsdb_head_series' }] },
      { id: 5, type: 'gauge', title: 'gauge', gridPos: { x: 8, y: 8, w: 8, h: 6 }, targets: [{ refId: 'A', expr: 'process_open_fds' }] },
      { id: 6, type: 'table', title: 'table', gridPos: { x: 16, y: 8, w: 8, h: 6 }, targets: [{ refId: 'A', expr: 'tricorder_http_responses_total' }] },
    ],
  }));
  writeFileSync(join(dashDir, 'exemplars.json'), JSON.stringify({
    uid: 'exemplars', title: 'Exemplars', schemaVersion: 38, time: { from: 'now-15m', to: 'now' },
    panels: [{ id: 1, type: 'timeseries', title: 'checkout p99', gridPos: { x: 0, y: 0, w: 24, h: 10 }, fieldConfig: { defaults: { unit: 's' } },
      targets: [{ refId: 'A', expr: 'histogram_quantile(0.99, sum by (le) (rate(checkout_latency_seconds_bucket[1m])))', legendFormat: 'p99' }] }],
  }));
  writeFileSync(join(dashDir, 'broken.json'), '{ not json');
  t = await start({ args: ['--basic-auth', `${USER}:${PASS}`, '--self-scrape-interval', '1s', '--dashboards-dir', dashDir] });
  mkdirSync(SHOTS, { recursive: true });
  if (!NO_LOADGEN) {
    loadgen = spawn(process.execPath, [LOADGEN, '--endpoint', t.grpcUrl, '--interval', '2s', '--rps', '8', '--seed', '7'], { stdio: ['ignore', 'pipe', 'pipe'] });
    loadgen.stdout.on('data', (d) => { if (process.env.TR_E2E_VERBOSE) process.stderr.write(d); });
    loadgen.stderr.on('data', (d) => process.stderr.write(d));
  }
  // a label value and a trace whose service and attributes are markup
  const r = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', headers: AUTH, body: `xss_probe{v="${XSS.replace(/"/g, '\\"')}"} 1\n` });
  assert.equal(r.status, 204, await r.text());
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': XSS }),
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${t.otlpHttpUrl}/v1/traces` }))],
  });
  const span = provider.getTracer('ui-e2e').startSpan(`GET ${XSS}`, { kind: SpanKind.SERVER, attributes: { probe: XSS } });
  span.end();
  await provider.forceFlush();
  await provider.shutdown();
  const q = await fetch(`${t.httpUrl}/api/v1/query_range?query=1&start=0&end=60&step=15`, { headers: AUTH });
  queryApi = q.status !== 404;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (loadgen) { loadgen.kill('SIGTERM'); await new Promise((r) => loadgen.once('exit', r)); }
  if (t) {
    const r = await t.stop();
    t.cleanup();
    assert.equal(r.code, 0, `tricorder exit ${r.code} ${r.signal}: ${t.stderr.slice(-3000)}`); // ASan leaks fail here
  }
  if (dashDir) rmSync(dashDir, { recursive: true, force: true });
});

// A page with the credentials, recording console errors, page errors and dialogs. Failed
// loads of the query API while it does not exist (404) are expected and not counted.
async function openPage(viewport = { width: 1400, height: 1000 }) {
  const ctx = await browser.newContext({ httpCredentials: { username: USER, password: PASS }, viewport });
  const page = await ctx.newPage();
  const errors = [];
  const dialogs = [];
  const queryRequests = [];
  const failed404 = new Set();
  page.on('response', (res) => {
    if (res.status() === 404 && /\/api\/v1\/query(_range)?\?/.test(res.url()) && !queryApi) failed404.add(res.url());
  });
  page.on('request', (req) => { if (/\/api\/v1\/query_range\?/.test(req.url())) queryRequests.push(new URL(req.url())); });
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const loc = m.location() && m.location().url;
    if (!queryApi && /status of 404/.test(m.text()) && loc && /\/api\/v1\/query(_range)?\?/.test(loc)) return;
    errors.push(`${m.text()} (${loc || ''})`);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  return { ctx, page, errors, dialogs, queryRequests };
}

const shot = (page, name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

test('assets: gzip, ETag and 304, CSP, basic auth; unknown /api/ paths stay API 404s', async () => {
  let r = await fetch(`${t.httpUrl}/`);
  assert.equal(r.status, 401, 'the UI sits behind the same basic auth as the APIs');
  r = await fetch(`${t.httpUrl}/`, { headers: { ...AUTH, 'Accept-Encoding': 'gzip' } });
  assert.equal(r.status, 200);
  const csp = r.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.match(r.headers.get('content-type'), /text\/html/);
  const html = await r.text();
  assert.doesNotMatch(html, /<script>|<style>| style=/, 'no inline scripts or styles');
  const etag = r.headers.get('etag');
  assert.ok(etag);
  r = await fetch(`${t.httpUrl}/ui/js/main.js`, { headers: { ...AUTH, 'Accept-Encoding': 'gzip' } });
  assert.equal(r.status, 200);
  const js = await r.text();
  assert.match(js, /import/);
  r = await fetch(`${t.httpUrl}/ui/js/main.js`, { headers: { ...AUTH, 'If-None-Match': r.headers.get('etag') } });
  assert.equal(r.status, 304);
  // raw gzip on the wire: a client that asks for it gets Content-Encoding gzip
  const raw = await new Promise((resolve, reject) => {
    import('node:http').then(({ get }) => get(`${t.httpUrl}/ui/vendor/uPlot.esm.js`, { headers: { ...AUTH, 'Accept-Encoding': 'gzip' } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
    }).on('error', reject));
  });
  assert.equal(raw.headers['content-encoding'], 'gzip');
  assert.match(gunzipSync(raw.body).toString(), /uPlot/);
  r = await fetch(`${t.httpUrl}/api/v1/no_such_thing`, { headers: AUTH });
  assert.equal(r.status, 404, 'an unknown API path gets the API 404');
  assert.doesNotMatch(await r.text(), /<html|<!doctype/i, 'never the UI');
  r = await fetch(`${t.httpUrl}/ui/api/dashboards/no-such-uid`, { headers: AUTH });
  assert.equal(r.status, 404);
  assert.equal((await r.json()).status, 'error');
  r = await fetch(`${t.httpUrl}/`, { method: 'POST', headers: AUTH });
  assert.equal(r.status, 405);
  r = await fetch(`${t.httpUrl}/ui/js/no_such.js`, { headers: AUTH });
  assert.equal(r.status, 404);
  r = await fetch(`${t.httpUrl}/d/scotty-metrics`, { headers: AUTH });
  assert.equal(r.status, 200, 'single-page routes answer index.html');
  r = await fetch(`${t.httpUrl}/ui/api/dashboards`, { headers: AUTH });
  const list = await r.json();
  assert.deepEqual(list.map((d) => d.uid).sort(), ['exemplars', 'memory', 'scotty-metrics', 'tricorder', 'xss-probe']);
});

test('every page loads without console errors; screenshots; the UI weighs under 200 KB gzipped', async () => {
  // the weight: everything the first visit of / downloads from /ui/ (all modules load there)
  const first = await openPage();
  let wire = 0;
  const sizes = [];
  first.page.on('requestfinished', (req) => {
    if (new URL(req.url()).pathname.startsWith('/ui/') && !req.url().includes('/ui/api/')) sizes.push(req.sizes().then((s) => { wire += s.responseBodySize; }));
  });
  await first.page.goto(`${t.httpUrl}/`);
  await first.page.waitForLoadState('networkidle');
  await Promise.all(sizes);
  assert.ok(wire > 20000 && wire < 200 * 1024, `UI assets on the wire: ${wire} bytes`);
  console.log(`# UI assets transferred gzipped on the first visit: ${wire} bytes in ${sizes.length} files`);
  await first.ctx.close();
  const { ctx, page, errors, dialogs } = await openPage();
  for (const [name, path] of [['dashboard-scotty', '/'], ['dashboard-tricorder', '/d/tricorder'], ['dashboards', '/dashboards'],
    ['explore', '/explore?q=tricorder_tsdb_head_series'], ['traces', '/traces'], ['status', '/status']]) {
    await page.goto(`${t.httpUrl}${path}`);
    await page.waitForLoadState('networkidle');
    await shot(page, name);
  }
  assert.deepEqual(errors, []);
  assert.deepEqual(dialogs, []);
  await ctx.close();
});

test('the time range and refresh in the URL are honoured and kept', async () => {
  const { ctx, page, errors, queryRequests } = await openPage();
  await page.goto(`${t.httpUrl}/d/tricorder?from=now-6h&to=now&refresh=10s`);
  await page.waitForSelector('.panel');
  assert.equal(await page.locator('.range-select').inputValue(), 'now-6h');
  assert.equal(await page.locator('.refresh-select').inputValue(), '10s');
  await page.waitForFunction(() => document.querySelector('#main').dataset.refreshed);
  assert.ok(queryRequests.length > 0);
  for (const u of queryRequests) {
    const span = Number(u.searchParams.get('end')) - Number(u.searchParams.get('start'));
    assert.ok(Math.abs(span - 6 * 3600) <= 2 * Number(u.searchParams.get('step')), `queried ${span} s`);
    assert.ok(Number(u.searchParams.get('step')) >= 30, 'the 30 s minimum interval');
  }
  // an absolute range
  const to = Date.now() - 3600000;
  const from = to - 1800000;
  queryRequests.length = 0;
  await page.goto(`${t.httpUrl}/d/tricorder?from=${from}&to=${to}`);
  await page.waitForFunction(() => document.querySelector('#main').dataset.refreshed);
  const u = queryRequests[0];
  assert.ok(Math.abs(Number(u.searchParams.get('start')) - from / 1000) <= 60);
  assert.ok(Math.abs(Number(u.searchParams.get('end')) - to / 1000) <= 60);
  // the picker writes the URL
  await page.locator('.range-select').selectOption('now-30m');
  await page.waitForURL(/from=now-30m/);
  assert.match(page.url(), /to=now/);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('rows fold and unfold; a panel opens full width and back', async () => {
  const { ctx, page, errors } = await openPage();
  await page.goto(`${t.httpUrl}/d/tricorder`);
  await page.locator('.panel').first().waitFor();
  const all = await page.locator('.panel').count();
  const ingestTop = await page.locator('.row-header', { hasText: 'Ingest' }).evaluate((e) => e.offsetTop);
  await page.locator('.row-header', { hasText: 'Overview' }).click();
  assert.equal(await page.locator('.panel').count(), all - 4, 'the Overview row hides its 4 stats');
  const ingestTop2 = await page.locator('.row-header', { hasText: 'Ingest' }).evaluate((e) => e.offsetTop);
  assert.ok(ingestTop2 < ingestTop, 'the rows below move up');
  await page.locator('.row-header', { hasText: 'Overview' }).click();
  assert.equal(await page.locator('.panel').count(), all);
  const panel = page.locator('.panel', { hasText: 'Disk used' });
  await panel.hover();
  await panel.locator('.panel-view').click();
  await page.waitForURL(/viewPanel=/);
  assert.equal(await page.locator('.panel').count(), 1);
  const w = await page.locator('.panel').evaluate((e) => e.offsetWidth);
  assert.ok(w > 1300, `full width: ${w}`);
  await page.locator('.panel-view').click();
  await page.waitForURL((u) => !u.searchParams.has('viewPanel'));
  assert.equal(await page.locator('.panel').count(), all);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('markup from the network renders as text: dashboard titles, text panels, label values, services, span attributes', async () => {
  const { ctx, page, errors, dialogs } = await openPage();
  const noInjected = async () => {
    assert.equal(await page.locator('#main img, #toolbar img, #main script').count(), 0, 'no injected element');
  };
  await page.goto(`${t.httpUrl}/dashboards`);
  await page.getByText(`XSS ${XSS}`).waitFor();
  await noInjected();
  await page.goto(`${t.httpUrl}/d/xss-probe`);
  await page.getByText(`Text ${XSS}`).waitFor();
  await page.locator('.markdown').getByText(XSS, { exact: false }).first().waitFor();
  assert.equal(await page.locator('.markdown a[href^="javascript"]').count(), 0);
  await noInjected();
  await shot(page, 'xss-dashboard');
  // label value completion in Explore
  await page.goto(`${t.httpUrl}/explore`);
  const box = page.locator('textarea.promql');
  await box.fill('xss_probe{v="');
  await box.press('End');
  await box.type('<');
  await page.locator('.suggest li').filter({ hasText: XSS }).waitFor();
  await noInjected();
  // the trace of the service named with markup
  await page.goto(`${t.httpUrl}/traces?service=${encodeURIComponent(XSS)}`);
  await page.locator('.trace-row a').first().click();
  await page.locator('.span-row').first().click();
  await page.locator('.span-detail').getByText(XSS).first().waitFor();
  await noInjected();
  await shot(page, 'xss-trace');
  assert.deepEqual(dialogs, [], 'no script ran');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('a trace found by search opens its waterfall; subtrees fold; span details show', { skip: NO_LOADGEN }, async () => {
  const { ctx, page, errors } = await openPage();
  // the load generator's spans arrive within a few seconds
  const deadline = Date.now() + 30000;
  for (;;) {
    const r = await (await fetch(`${t.httpUrl}/api/traces?service=scotty&operation=${encodeURIComponent('GET /api/v1/authenticated/apps/info/{app_id}')}&limit=1&lookback=1h`, { headers: AUTH })).json();
    if ((r.data || []).length) break;
    assert.ok(Date.now() < deadline, 'no Scotty trace arrived');
    await sleep(500);
  }
  await page.goto(`${t.httpUrl}/traces`);
  await page.locator('select[name=service]').selectOption('scotty');
  await page.locator('select[name=operation] option', { hasText: 'GET /api/v1/authenticated/apps/info/{app_id}' }).waitFor({ state: 'attached' });
  await page.locator('select[name=operation]').selectOption('GET /api/v1/authenticated/apps/info/{app_id}');
  await page.getByRole('button', { name: 'Find traces' }).click();
  await page.locator('.trace-row').first().waitFor();
  assert.match(page.url(), /service=scotty/);
  assert.ok(await page.locator('.scatter canvas').count() > 0, 'the duration scatter plot');
  await shot(page, 'trace-search');
  await page.locator('.trace-row a').first().click();
  await page.waitForURL(/\/trace\/[0-9a-f]{32}/);
  await page.locator('.span-row').first().waitFor();
  const spans = await page.locator('.span-row').count();
  assert.ok(spans >= 3, `waterfall rows: ${spans}`); // the server span, inspect_app, its steps
  await page.locator('.wf-toggle').first().click();
  assert.equal(await page.locator('.span-row').count(), 1, 'folding the root hides its subtree');
  await page.locator('.wf-toggle').first().click();
  await page.locator('.span-row').nth(1).click();
  await page.locator('.span-detail h3', { hasText: 'Tags' }).waitFor();
  await page.locator('.span-detail').getByText('app_name').waitFor();
  await shot(page, 'trace-waterfall');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("Scotty's dashboard: every panel whose metrics are sent draws a series, the others say No data", { skip: NO_LOADGEN }, async (tc) => {
  if (!queryApi) {
    tc.skip('/api/v1/query_range answers 404 here (no PromQL engine in this build): panels cannot draw; run again once it exists');
    return;
  }
  const { ctx, page, errors } = await openPage({ width: 1600, height: 1200 });
  const t0 = Date.now();
  await page.goto(`${t.httpUrl}/?from=now-15m&to=now&refresh=5s`);
  // panels fill as the load generator's exports arrive (and rate() needs two of them)
  const never = new Set([703]); // scotty_oauth_sessions_active: Scotty never records it
  let counts;
  const deadline = Date.now() + 240000; // generous: a loaded machine slows every refresh
  for (;;) {
    counts = await page.$$eval('.panel', (els) => els.map((e) => ({ id: Number(e.dataset.panelId), series: Number(e.dataset.series || -1), text: e.innerText })));
    const missing = counts.filter((c) => !never.has(c.id) && !(c.series > 0));
    if (counts.length === 41 && !missing.length) break; // 41 panels besides the rows
    if (Date.now() > deadline) assert.fail(`panels without series: ${missing.map((m) => m.id).join(', ')}`);
    await sleep(2000);
  }
  console.log(`# Scotty dashboard: ${counts.filter((c) => c.series > 0).length} panels with series, ${Date.now() - t0} ms after navigation`);
  for (const c of counts.filter((c) => never.has(c.id))) assert.match(c.text, /No data/);
  await shot(page, 'dashboard-scotty-data');
  // the figure: navigation to the last panel drawn, with the data in place
  const t1 = Date.now();
  await page.goto(`${t.httpUrl}/?from=now-1h&to=now`);
  await page.waitForFunction(() => document.querySelector('#main').dataset.refreshed);
  const drawn = await page.$$eval('.panel', (els) => els.filter((e) => Number(e.dataset.series) > 0).length);
  console.log(`# Scotty dashboard, last hour: navigation to last panel drawn ${Date.now() - t1} ms (${drawn} panels with series)`);
  assert.equal(drawn, counts.length - never.size);
  // drag across a chart: the range becomes absolute and narrower
  const box = await page.locator('.panel[data-type=timeseries] .u-over').first().boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.8, box.y + box.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.waitForURL(/from=\d+&to=\d+/);
  const u = new URL(page.url());
  const span = Number(u.searchParams.get('to')) - Number(u.searchParams.get('from'));
  assert.ok(span > 10 * 60000 && span < 25 * 60000, `zoomed to ${span} ms of the hour`);
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("tricorder's own dashboard has data from the self-scrape", async (tc) => {
  if (!queryApi) {
    tc.skip('/api/v1/query_range answers 404 here (no PromQL engine in this build)');
    return;
  }
  const { ctx, page, errors } = await openPage();
  await page.goto(`${t.httpUrl}/d/tricorder?refresh=5s`);
  for (const title of ['Head series', 'Resident memory', 'Active series', 'Memory', 'CPU']) {
    await page.waitForFunction((tt) => [...document.querySelectorAll('.panel')].some((p) => p.querySelector('.panel-title').textContent === tt && Number(p.dataset.series) > 0), title, { timeout: 30000 });
  }
  await shot(page, 'dashboard-tricorder-data');
  assert.deepEqual(errors, []);
  await ctx.close();
});

test("the page's memory stays flat over an hour of 5 s refreshes (simulated clock)", async () => {
  const { ctx, page, errors } = await openPage();
  await page.clock.install();
  await page.goto(`${t.httpUrl}/d/memory?refresh=5s`);
  await page.waitForFunction(() => document.querySelector('#main').dataset.refreshed);
  const cdp = await ctx.newCDPSession(page);
  const measure = async () => {
    await cdp.send('HeapProfiler.collectGarbage');
    const { usedSize } = await cdp.send('Runtime.getHeapUsage');
    const nodes = await page.evaluate(() => document.getElementsByTagName('*').length);
    return { heap: usedSize, nodes };
  };
  const tick = async () => {
    const before = await page.evaluate(() => document.querySelector('#main').dataset.refreshed);
    await page.clock.runFor(5000);
    await page.waitForFunction((b) => document.querySelector('#main').dataset.refreshed !== b, before);
  };
  for (let i = 0; i < 60; i++) await tick(); // warm up: 5 minutes
  const first = await measure();
  for (let i = 60; i < 720; i++) await tick(); // the rest of the hour
  const last = await measure();
  console.log(`# heap after 5 min ${first.heap} B, after 1 h ${last.heap} B; DOM elements ${first.nodes} -> ${last.nodes}`);
  assert.ok(last.heap < first.heap * 1.25 + 2e6, `heap grew from ${first.heap} to ${last.heap}`);
  assert.ok(Math.abs(last.nodes - first.nodes) < 200, `DOM grew from ${first.nodes} to ${last.nodes}`);
  assert.deepEqual(errors, []);
  await ctx.close();
});

// A cumulative OTLP/JSON histogram point with the exemplar of a trace. (The OTel JS SDK 2.x
// serialises no exemplars, see exemplars.test.mjs, so the exemplar is written by hand.)
async function sendExemplarPoint(startMs, i, traceId, spanId) {
  const now = Date.now();
  const n = 100 + 10 * i;
  const body = { resourceMetrics: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout' } }] }, scopeMetrics: [{ scope: { name: 'ui-e2e' }, metrics: [{ name: 'checkout.latency', unit: 's', histogram: { aggregationTemporality: 2, dataPoints: [{
    startTimeUnixNano: String(startMs * 1e6), timeUnixNano: String(now * 1e6), count: String(n), sum: n * 0.3, explicitBounds: [0.1, 0.25, 0.5, 1],
    bucketCounts: [String(n / 2), String(n * 0.3), String(n * 0.1), String(n * 0.1), '0'],
    exemplars: [{ timeUnixNano: String((now - 500) * 1e6), asDouble: 0.7, traceId, spanId }] }] } }] }] }] };
  const r = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(r.status, 200, await r.text());
}

test('exemplars on a histogram panel: the point shows its trace id and a click opens the trace', { skip: NO_LOADGEN }, async (tc) => {
  if (!queryApi) {
    tc.skip('/api/v1/query_range answers 404 here (no PromQL engine in this build): the panel cannot draw');
    return;
  }
  const r = await (await fetch(`${t.httpUrl}/api/traces?service=scotty&limit=1&lookback=1h`, { headers: AUTH })).json();
  const trace = r.data[0];
  const span = trace.spans[0];
  const startMs = Date.now() - 60000;
  let i = 0;
  for (; i < 4; i++) { await sendExemplarPoint(startMs, i, trace.traceID, span.spanID); await sleep(1100); }
  const { ctx, page, errors } = await openPage();
  // points keep coming (as from a live service) while the panel refreshes every 5 s
  const feeder = setInterval(() => { sendExemplarPoint(startMs, i++, trace.traceID, span.spanID).catch(() => {}); }, 2000);
  try {
    await page.goto(`${t.httpUrl}/d/exemplars?from=now-5m&to=now&refresh=5s`);
    await page.waitForFunction(() => Number((document.querySelector('[data-type=timeseries]') || {}).dataset?.exemplars) > 0, null, { timeout: 90000 });
  } finally {
    clearInterval(feeder);
  }
  await page.locator('.refresh-select').selectOption(''); // a still chart to hover
  // find an exemplar's diamond on the canvas by its colour, hover it, click it
  const pt = await page.evaluate(() => {
    const c = document.querySelector('[data-type=timeseries] canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const b = c.getBoundingClientRect();
    for (let y = 0; y < c.height; y++) for (let x = 0; x < c.width; x++) {
      const i = (y * c.width + x) * 4;
      if (d[i] === 242 && d[i + 1] === 204 && d[i + 2] === 12) return { x: b.left + (x * b.width) / c.width, y: b.top + (y * b.height) / c.height + 3 };
    }
    return null;
  });
  assert.ok(pt, 'an exemplar is drawn');
  await page.mouse.move(pt.x, pt.y);
  await page.locator('#tooltip').getByText(trace.traceID).waitFor();
  await shot(page, 'exemplar-tooltip');
  await page.mouse.click(pt.x, pt.y);
  await page.waitForURL(new RegExp(`/trace/${trace.traceID}`));
  await page.locator('.span-row').first().waitFor();
  assert.deepEqual(errors, []);
  await ctx.close();
});
