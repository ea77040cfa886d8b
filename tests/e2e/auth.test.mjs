// Credentials and request-level hardening (issue 13 items 2 and 3): bcrypt users from a file
// made by Debian's `htpasswd -B` (apache2-utils), right password in, wrong one out, an unknown
// user in the same timing class, the per-address back-off (429 + Retry-After), reload of the
// users file and of the token file, NUL bytes in credentials, duplicate Content-Length, the
// ingest-only listener serving exactly the OTLP routes, admin calls POST-only and always
// behind auth, and the security headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, readFileSync, readdirSync } from 'node:fs';
import { connect } from 'node:net';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { start, sleep, metricSum, parseMetrics } from './lib/tricorder.mjs';
import { metricsProtobuf, metricsJson, tracesProtobuf } from './lib/payloads.mjs';

const basic = (u, p) => ({ Authorization: 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64') });
const bearer = (t) => ({ Authorization: `Bearer ${t}` });

function htpasswd(file, user, pass, { create = false, cost = 5 } = {}) {
  execFileSync('htpasswd', [...(create ? ['-c'] : []), '-b', '-B', '-C', String(cost), file, user, pass], { stdio: 'ignore' });
}

async function get(url, headers = {}) {
  const t0 = performance.now();
  const r = await fetch(url, { headers });
  const body = await r.text();
  return { status: r.status, headers: r.headers, body, ms: performance.now() - t0 };
}

// A raw HTTP/1.1 exchange: returns the response head and body as one string.
function raw(port, text) {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d) => { out += d; });
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.setTimeout(5000, () => { s.destroy(); resolve(out); });
    s.write(text);
  });
}

function tmp() { return mkdtempSync(join(tmpdir(), 'tr-auth-')); }

async function waitFor(fn, what, ms = 8000) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(700);
  }
}

test('bcrypt users: right in, wrong out, unknown user costs the same, 401 carries a challenge', async () => {
  const dir = tmp();
  const file = join(dir, 'users');
  htpasswd(file, 'alice', 'wonderland', { create: true, cost: 10 });
  htpasswd(file, 'bob', 'builder', { cost: 10 });
  const t = await start({ args: ['--basic-auth-file', file], metricsHeaders: basic('alice', 'wonderland') });
  try {
    const url = `${t.httpUrl}/api/v1/labels`;
    assert.equal((await get(url, basic('alice', 'wonderland'))).status, 200);
    assert.equal((await get(url, basic('bob', 'builder'))).status, 200);
    const none = await get(url);
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate'), /^Basic realm="tricorder"/);
    // two rounds of (wrong password, unknown user): 4 failures, under the 5 free ones
    const wrong = [], unknown = [];
    for (let i = 0; i < 2; i++) {
      const w = await get(url, basic('alice', 'not-it'));
      const u = await get(url, basic('mallory', 'not-it'));
      assert.equal(w.status, 401);
      assert.equal(u.status, 401);
      assert.equal(w.body, u.body, 'the same answer for a wrong password and an unknown user');
      wrong.push(w.ms);
      unknown.push(u.ms);
    }
    const mw = Math.min(...wrong), mu = Math.min(...unknown);
    // bcrypt at cost 10 takes tens of milliseconds: both pay it (an unknown user is checked
    // against a dummy hash of the same cost), so neither is answered at once
    assert.ok(mu > 10 && mw > 10, `both pay bcrypt: wrong ${mw.toFixed(1)} ms, unknown ${mu.toFixed(1)} ms`);
    assert.ok(mu / mw < 2.5 && mw / mu < 2.5, `same timing class: wrong ${mw.toFixed(1)} ms, unknown ${mu.toFixed(1)} ms`);
    // a verified pair is cached: the loop does not run bcrypt again
    const again = await get(url, basic('alice', 'wonderland'));
    assert.equal(again.status, 200);
    // /healthz stays open
    assert.equal((await get(`${t.httpUrl}/healthz`)).status, 200);
    const m = await t.metrics();
    assert.ok(metricSum(m, 'tricorder_auth_failures_total') >= 4, 'failures counted');
  } finally {
    await t.stop();
    t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('failed logins back off per address: 429 with Retry-After, even for the right password, then forgiven', async () => {
  const dir = tmp();
  const file = join(dir, 'users');
  htpasswd(file, 'alice', 'wonderland', { create: true });
  const t = await start({ args: ['--basic-auth-file', file] });
  try {
    const url = `${t.httpUrl}/api/v1/labels`;
    // requests without credentials are no guesses (a browser's first request to each
    // resource): 401, never counted, never throttled
    for (let i = 0; i < 10; i++) assert.equal((await get(url)).status, 401);
    assert.equal((await get(url, basic('alice', 'wonderland'))).status, 200);
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push((await get(url, basic('alice', `guess-${i}`))).status);
    assert.deepEqual(codes.slice(0, 5), [401, 401, 401, 401, 401]);
    const r = await get(url, basic('alice', 'guess-x'));
    assert.equal(r.status, 429, `after 6 failures: ${codes}`);
    const after = Number(r.headers.get('retry-after'));
    assert.ok(after >= 1 && after <= 300, `Retry-After ${after}`);
    // throttled: the right password is refused too (else a guess would show through)
    assert.equal((await get(url, basic('alice', 'wonderland'))).status, 429);
    // a refused body is not read into memory: the 429 comes without it
    const post = await fetch(`${t.httpUrl}/api/v1/write`, { method: 'POST', headers: basic('alice', 'x'), body: Buffer.alloc(1 << 20) });
    assert.equal(post.status, 429);
    await sleep(after * 1000 + 100);
    assert.equal((await get(url, basic('alice', 'wonderland'))).status, 200, 'allowed again after Retry-After');
    // the success cleared the address: five free failures again
    for (let i = 0; i < 5; i++) assert.equal((await get(url, basic('alice', 'nope'))).status, 401);
    const m = parseMetrics(await (await fetch(`${t.httpUrl}/metrics`, { headers: basic('alice', 'wonderland') })).text());
    assert.ok(metricSum(m, 'tricorder_auth_throttled_total') >= 3, 'throttled requests counted');
  } finally {
    await t.stop();
    t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the users file and the token file are reloaded when they change; a broken file keeps the old ones', async () => {
  const dir = tmp();
  const users = join(dir, 'users');
  const tokens = join(dir, 'tokens');
  htpasswd(users, 'alice', 'wonderland', { create: true });
  writeFileSync(tokens, '# ingest tokens\ntok-a\n\n');
  const t = await start({ args: ['--basic-auth-file', users, '--ingest-token-file', tokens] });
  try {
    const url = `${t.httpUrl}/api/v1/labels`;
    assert.equal((await get(url, basic('alice', 'wonderland'))).status, 200);
    htpasswd(users, 'carol', 'secret');
    await waitFor(async () => (await get(url, basic('carol', 'secret'))).status === 200, 'carol added');
    execFileSync('htpasswd', ['-D', users, 'alice'], { stdio: 'ignore' });
    await waitFor(async () => (await get(url, basic('alice', 'wonderland'))).status === 401, 'alice removed');
    // a file that does not parse: carol stays, one log line says why
    const good = readFileSync(users, 'utf8');
    writeFileSync(users, good + 'dave:plaintext-password\n');
    await waitFor(async () => /basic-auth file not reloaded/.test(t.stderr), 'the refusal logged');
    assert.equal((await get(url, basic('carol', 'secret'))).status, 200);
    assert.equal((t.stderr.match(/basic-auth file not reloaded/g) || []).length, 1, 'logged once');

    // tokens: OTLP/HTTP on the ingest listener
    const { body } = await metricsProtobuf(1);
    const otlp = (tok) => fetch(`${t.otlpHttpUrl}/v1/metrics`, {
      method: 'POST', headers: { 'Content-Type': 'application/x-protobuf', ...bearer(tok) }, body,
    }).then(async (r) => { await r.arrayBuffer(); return r.status; });
    assert.equal(await otlp('tok-a'), 200);
    assert.equal(await otlp('tok-b'), 401);
    writeFileSync(tokens, 'tok-a\ntok-b\n');
    await waitFor(async () => (await otlp('tok-b')) === 200, 'tok-b added');
    writeFileSync(tokens, 'tok-b\n');
    await waitFor(async () => (await otlp('tok-a')) === 401, 'tok-a removed');
  } finally {
    await t.stop();
    t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('NUL in credentials and in OTLP JSON strings, duplicate Content-Length', async () => {
  const t = await start({ args: ['--basic-auth', 'admin:pw'] });
  try {
    const url = `${t.httpUrl}/api/v1/labels`;
    assert.equal((await get(url, basic('admin', 'pw'))).status, 200);
    // "admin\0:pw" and "admin:pw\0" must not pass as admin:pw (a C string would cut them)
    for (const pair of ['admin\u0000:pw', 'admin:pw\u0000', 'admin:pw\u0000x']) {
      const r = await get(url, { Authorization: 'Basic ' + Buffer.from(pair).toString('base64') });
      assert.equal(r.status, 401, JSON.stringify(pair));
    }
    const auth = 'Basic ' + Buffer.from('admin:pw').toString('base64');
    const dup = await raw(t.ports.http, `POST /api/v1/write HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n` +
      'Content-Type: application/x-protobuf\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd');
    assert.match(dup, /^HTTP\/1\.1 400 /, dup);
    const same = await raw(t.ports.http, `GET /api/v1/labels HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth}\r\n` +
      'Content-Length: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    assert.match(same, /^HTTP\/1\.1 400 /, same);
    // a NUL inside an OTLP JSON string: refused, naming the field (a C string would cut it)
    const { body } = await metricsJson(1);
    const text = body.toString();
    assert.ok(text.includes('"v0"'));
    const bad = text.replace('"v0"', '"v\\u0000x"');
    const r = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: bad });
    const msg = await r.text();
    assert.equal(r.status, 400, msg);
    assert.match(msg, /stringValue/, msg);
    assert.match(msg, /NUL/, msg);
    const fine = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: text.replace('"v0"', '"v\\u0001x"') });
    await fine.arrayBuffer();
    assert.equal(fine.status, 200);
  } finally {
    await t.stop();
    t.cleanup();
  }
});

test('the OTLP/HTTP listener serves exactly the OTLP routes', async () => {
  const t = await start({ args: ['--basic-auth', 'admin:pw'] });
  try {
    const { body } = await metricsProtobuf(1);
    // OTLP without credentials on :4318 (no ingest token set): open, as documented
    const r = await fetch(`${t.otlpHttpUrl}/v1/metrics`, { method: 'POST', headers: { 'Content-Type': 'application/x-protobuf' }, body });
    await r.arrayBuffer();
    assert.equal(r.status, 200);
    for (const path of ['/api/v1/write', '/api/v1/import/prometheus', '/api/v1/labels', '/internal/force_flush', '/']) {
      const x = await fetch(`${t.otlpHttpUrl}${path}`, { method: 'POST', body: 'up 1\n' });
      await x.arrayBuffer();
      assert.equal(x.status, 404, path);
    }
    // on the main listener the import is behind basic auth
    const imp = await fetch(`${t.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: 'up 1\n' });
    await imp.arrayBuffer();
    assert.equal(imp.status, 401);
  } finally {
    await t.stop();
    t.cleanup();
  }
});

test('admin calls: POST only, always behind auth, one at a time; old snapshots pruned', async () => {
  const t = await start({ args: ['--basic-auth', 'admin:pw', '--snapshots-keep', '2'] });
  try {
    const flush = `${t.httpUrl}/internal/force_flush`;
    assert.equal((await get(flush)).status, 401);
    const g = await get(flush, basic('admin', 'pw'));
    assert.equal(g.status, 405);
    assert.equal(g.headers.get('allow'), 'POST');
    const p = await fetch(flush, { method: 'POST' });
    assert.equal(p.status, 401);
    const ok = await fetch(flush, { method: 'POST', headers: basic('admin', 'pw') });
    assert.equal(ok.status, 200);
    const snap = `${t.httpUrl}/api/v1/admin/tsdb/snapshot`;
    assert.equal((await get(snap, basic('admin', 'pw'))).status, 405);
    // two at once: one runs, the other is told to retry
    const both = await Promise.all([1, 2, 3].map(() => fetch(snap, { method: 'POST', headers: basic('admin', 'pw') })
      .then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), body: await r.text() }))));
    assert.ok(both.some((r) => r.status === 200), JSON.stringify(both));
    for (const r of both.filter((x) => x.status !== 200)) {
      assert.equal(r.status, 503, JSON.stringify(r));
      assert.equal(r.retry, '1');
    }
    // one after the other: only the newest two stay
    const names = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(snap, { method: 'POST', headers: basic('admin', 'pw') });
      assert.equal(r.status, 200);
      names.push((await r.json()).data.name);
    }
    assert.deepEqual(readdirSync(join(t.dataDir, 'metrics', 'snapshots')).sort(), names.slice(1).sort());
  } finally {
    await t.stop();
    t.cleanup();
  }
  // only an ingest token set: the admin calls take it and are not open
  const t2 = await start({ args: ['--ingest-token', 'tok'] });
  try {
    const flush = `${t2.httpUrl}/internal/force_flush`;
    const r = await fetch(flush, { method: 'POST' });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate'), /^Bearer/);
    assert.equal((await fetch(flush, { method: 'POST', headers: bearer('tok') })).status, 200);
    // reads stay open with only a token (it guards writes)
    assert.equal((await get(`${t2.httpUrl}/api/v1/labels`)).status, 200);
  } finally {
    await t2.stop();
    t2.cleanup();
  }
  // --auth-reads=false: reads open, writes and admin still behind basic auth
  const t3 = await start({ args: ['--basic-auth', 'admin:pw', '--auth-reads=false'] });
  try {
    assert.equal((await get(`${t3.httpUrl}/api/v1/labels`)).status, 200);
    assert.equal((await fetch(`${t3.httpUrl}/internal/force_flush`, { method: 'POST' })).status, 401);
    const w = await fetch(`${t3.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: 'up 1\n' });
    assert.equal(w.status, 401);
    assert.equal((await fetch(`${t3.httpUrl}/api/v1/import/prometheus`, { method: 'POST', body: 'up 1\n', headers: basic('admin', 'pw') })).status, 204);
  } finally {
    await t3.stop();
    t3.cleanup();
  }
});

test('security headers on the UI and the API', async () => {
  const t = await start();
  try {
    for (const path of ['/', '/ui/js/main.js', '/api/v1/labels', '/no-such-page']) {
      const r = await get(`${t.httpUrl}${path}`);
      const csp = r.headers.get('content-security-policy') || '';
      assert.match(csp, /frame-ancestors 'none'/, path);
      if (path === '/' || path.startsWith('/ui/')) assert.match(csp, /script-src 'self'/, path);
      else assert.match(csp, /default-src 'none'/, path);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', path);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer', path);
    }
  } finally {
    await t.stop();
    t.cleanup();
  }
});

// One unary gRPC export on an HTTP/2 session: resolves with its grpc-status.
function grpcExport(session, body, token) {
  return new Promise((resolve, reject) => {
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    body.copy(frame, 5);
    const st = session.request({
      ':method': 'POST', ':path': '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      'content-type': 'application/grpc', te: 'trailers', ...(token ? { authorization: `Bearer ${token}` } : {}),
    });
    let status = null;
    st.on('response', (h) => { if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']); });
    st.on('trailers', (h) => { status = Number(h['grpc-status']); });
    st.on('data', () => {});
    st.on('end', () => resolve(status));
    st.on('error', reject);
    st.end(frame);
  });
}

test('gRPC takes the tokens of --ingest-token-file besides --ingest-token, and follows its reloads', async () => {
  const dir = tmp();
  const tokens = join(dir, 'tokens');
  writeFileSync(tokens, 'file-tok\n');
  const t = await start({ args: ['--ingest-token', 'flag-tok', '--ingest-token-file', tokens] });
  // a session per call: a refused call may end its connection
  const c = { request: (...a) => { const x = http2.connect(t.grpcUrl); x.on('error', () => {}); const st = x.request(...a); st.on('close', () => x.close()); return st; } };
  try {
    const { body } = tracesProtobuf(1);
    assert.equal(await grpcExport(c, body, 'flag-tok'), 0);
    assert.equal(await grpcExport(c, body, 'file-tok'), 0);
    assert.equal(await grpcExport(c, body, 'other'), 16);
    assert.equal(await grpcExport(c, body, null), 16);
    writeFileSync(tokens, 'other\n');
    await waitFor(async () => (await grpcExport(c, body, 'other')) === 0, 'the new token');
    assert.equal(await grpcExport(c, body, 'file-tok'), 16, 'the removed token');
    assert.equal(await grpcExport(c, body, 'flag-tok'), 0, '--ingest-token stays');
  } finally {
    await t.stop();
    t.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});
