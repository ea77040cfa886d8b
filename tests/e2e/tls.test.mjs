// TLS on every listener, with certificates made here by the openssl command line: HTTPS on
// the HTTP port, OTLP/HTTP and OTLP/gRPC over TLS from the real OpenTelemetry SDK exporters
// (trusting the test CA), nghttp negotiating h2, plain clients and old protocol versions
// refused cleanly, the certificate reloaded (SIGHUP and file change) while open connections
// keep working, a broken pair refused, and client certificates (mTLS) for ingestion only.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import grpc from '@grpc/grpc-js';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { OTLPMetricExporter as MetricsGrpc } from '@opentelemetry/exporter-metrics-otlp-grpc';
import { OTLPMetricExporter as MetricsProto } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter as TraceGrpc } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as TraceJson } from '@opentelemetry/exporter-trace-otlp-http';

import { start, parseMetrics, metricSum, sleep } from './lib/tricorder.mjs';
import { makeCerts, read, httpsRequest, fileFingerprint } from './lib/tls.mjs';

const dir = mkdtempSync(join(tmpdir(), 'tricorder-tls-'));
const certs = makeCerts(dir);
const srvA = certs.server('srv-a');
const srvB = certs.server('srv-b');
const srvC = certs.server('srv-c');
const client = certs.client('client');
const rogueClient = certs.client('rogue-client', certs.rogueCa);
const ca = read(certs.ca.crt);
// the files tricorder serves from: replaced by rename, as ACME clients do
const certFile = join(dir, 'tls.crt');
const keyFile = join(dir, 'tls.key');
const install = (pair, key = pair.key) => {
  copyFileSync(pair.crt, `${certFile}.new`);
  copyFileSync(key, `${keyFile}.new`);
  renameSync(`${keyFile}.new`, keyFile);
  renameSync(`${certFile}.new`, certFile);
};
const fpA = fileFingerprint(srvA.crt), fpB = fileFingerprint(srvB.crt), fpC = fileFingerprint(srvC.crt);

const run = (cmd, args, input) => new Promise((resolve) => {
  const p = execFile(cmd, args, { timeout: 15000 }, (err, stdout, stderr) =>
    resolve({ code: err ? (err.code ?? 1) : 0, out: `${stdout}${stderr}` }));
  p.stdin.end(input ?? '');
});

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}
async function someMetrics() {
  const reader = new TestReader();
  const provider = new MeterProvider({ readers: [reader] });
  provider.getMeter('tls-e2e').createCounter('tls.requests').add(3, { route: '/x' });
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}
function someSpans(n) {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(mem)] });
  const tracer = provider.getTracer('tls-e2e');
  for (let i = 0; i < n; i++) tracer.startSpan(`span ${i}`).end();
  return mem.getFinishedSpans();
}
const exportOnce = (exporter, batch) => new Promise((resolve) => exporter.export(batch, resolve));

const httpsUp = (t) => httpsRequest(`https://127.0.0.1:${t.ports.http}/healthz`, { ca }).then((r) => r.status === 200);

async function serverMetrics(t) {
  return parseMetrics((await httpsRequest(`https://127.0.0.1:${t.ports.http}/metrics`, { ca })).body);
}

after(() => rmSync(dir, { recursive: true, force: true }));

describe('TLS on every listener', () => {
  let t, base;
  before(async () => {
    install(srvA);
    t = await start({ args: ['--tls-cert-file', certFile, '--tls-key-file', keyFile], ready: httpsUp });
    base = `https://127.0.0.1:${t.ports.http}`;
  });
  after(async () => {
    const r = await t.stop();
    t.cleanup();
    assert.equal(r.code, 0, `exit code ${r.code} signal ${r.signal}: ${t.stderr}`);
  });

  test('HTTPS on the HTTP port: HSTS, http/1.1 by ALPN, never h2', async () => {
    const r = await httpsRequest(`${base}/api/v1/status/buildinfo`, { ca });
    assert.equal(r.status, 200);
    assert.equal(r.fingerprint, fpA);
    assert.equal(r.headers['strict-transport-security'], 'max-age=31536000');
    assert.ok(['TLSv1.3', 'TLSv1.2'].includes(r.protocol), r.protocol);
    const both = await httpsRequest(`${base}/healthz`, { ca, ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(both.alpn, 'http/1.1');
    // a client that only speaks h2 is told there is no common protocol
    await assert.rejects(new Promise((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port: t.ports.http, ca, servername: 'localhost', ALPNProtocols: ['h2'] }, () => { s.end(); resolve(); });
      s.on('error', reject);
    }), /no_application_protocol|alert number 120/i);
  });

  test('OTLP/HTTP over TLS from the SDK exporters (OTLP port and HTTP port)', async () => {
    const before = await serverMetrics(t);
    const me = new MetricsProto({ url: `https://127.0.0.1:${t.ports.otlpHttp}/v1/metrics`, httpAgentOptions: { ca } });
    const r1 = await exportOnce(me, await someMetrics());
    assert.equal(r1.code, 0, String(r1.error));
    await me.shutdown();
    const te = new TraceJson({ url: `${base}/v1/traces`, httpAgentOptions: { ca } });
    const r2 = await exportOnce(te, someSpans(4));
    assert.equal(r2.code, 0, String(r2.error));
    await te.shutdown();
    const now = await serverMetrics(t);
    assert.equal(metricSum(now, 'tricorder_otlp_points_accepted_total') - metricSum(before, 'tricorder_otlp_points_accepted_total'), 1);
    assert.equal(metricSum(now, 'tricorder_otlp_spans_accepted_total') - metricSum(before, 'tricorder_otlp_spans_accepted_total'), 4);
  });

  test('OTLP gRPC over TLS from the SDK exporters (https:// endpoint, test CA as root)', async () => {
    const before = await serverMetrics(t);
    const creds = grpc.credentials.createSsl(ca);
    const url = `https://127.0.0.1:${t.ports.grpc}`;
    const me = new MetricsGrpc({ url, credentials: creds });
    const r1 = await exportOnce(me, await someMetrics());
    assert.equal(r1.code, 0, String(r1.error));
    await me.shutdown();
    const te = new TraceGrpc({ url, credentials: grpc.credentials.createSsl(ca) });
    const r2 = await exportOnce(te, someSpans(6));
    assert.equal(r2.code, 0, String(r2.error));
    await te.shutdown();
    const now = await serverMetrics(t);
    assert.equal(metricSum(now, 'tricorder_otlp_spans_accepted_total') - metricSum(before, 'tricorder_otlp_spans_accepted_total'), 6);
    assert.equal(metricSum(now, 'tricorder_otlp_requests_total', { transport: 'grpc' }) -
      metricSum(before, 'tricorder_otlp_requests_total', { transport: 'grpc' }), 2);
  });

  test('nghttp negotiates h2 over TLS with the gRPC port', async () => {
    const r = await run('nghttp', ['-nv', `https://127.0.0.1:${t.ports.grpc}/opentelemetry.proto.collector.trace.v1.TraceService/Export`]);
    assert.match(r.out, /The negotiated protocol: h2/);
    assert.match(r.out, /recv \(stream_id=\d+\) :status: \d+/); // answered over HTTP/2
  });

  test('plain clients against TLS ports fail cleanly and the server stays up', async () => {
    // HTTP/1.1 in clear text: a readable 400 instead of a reset
    const r = await new Promise((resolve, reject) => {
      http.get(`http://127.0.0.1:${t.ports.http}/api/v1/status/buildinfo`, (res) => {
        let body = '';
        res.on('data', (c) => { body += c; });
        res.on('end', () => resolve({ status: res.statusCode, body }));
      }).on('error', reject);
    });
    assert.equal(r.status, 400);
    assert.match(r.body, /this port speaks HTTPS/);
    // an h2c (prior knowledge) gRPC client on the TLS gRPC port: the connection is closed
    const closed = await new Promise((resolve) => {
      const s = net.connect(t.ports.grpc, '127.0.0.1', () => s.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0'));
      s.on('data', () => {});
      s.on('error', () => resolve(true));
      s.on('close', () => resolve(true));
      setTimeout(() => resolve(false), 5000);
    });
    assert.ok(closed, 'the gRPC port closes a clear-text client');
    const bad = await run('curl', ['-sS', '--max-time', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${t.ports.otlpHttp}/v1/traces`, '-d', '{}']);
    assert.equal(bad.out.trim(), '400');
    assert.ok(await httpsUp(t));
  });

  test('TLS 1.1 and non-AEAD TLS 1.2 suites are refused; TLS 1.2 with ECDHE+AEAD is served', async () => {
    const old = await run('openssl', ['s_client', '-connect', `127.0.0.1:${t.ports.http}`, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0']);
    assert.notEqual(old.code, 0);
    assert.match(old.out, /alert protocol version|no protocols available|unsupported protocol/i);
    const cbc = await run('openssl', ['s_client', '-connect', `127.0.0.1:${t.ports.grpc}`, '-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA256']);
    assert.notEqual(cbc.code, 0);
    assert.match(cbc.out, /handshake failure|no shared cipher/i);
    const ok = await run('openssl', ['s_client', '-connect', `127.0.0.1:${t.ports.otlpHttp}`, '-tls1_2', '-CAfile', certs.ca.crt, '-brief']);
    assert.match(ok.out, /Protocol version: TLSv1\.2/);
    assert.match(ok.out, /Ciphersuite: ECDHE-ECDSA-AES(128|256)-GCM-SHA(256|384)|Ciphersuite: ECDHE-ECDSA-CHACHA20/);
  });

  test('sessions resume (TLS 1.3 tickets and TLS 1.2)', async () => {
    for (const maxVersion of ['TLSv1.3', 'TLSv1.2']) {
      const connect = (session) => new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: t.ports.otlpHttp, ca, servername: 'localhost', session, maxVersion }, () => {
          s.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
        });
        let saved;
        s.on('session', (sess) => { saved = sess; });
        s.on('data', () => {});
        s.on('end', () => resolve({ reused: s.isSessionReused(), session: saved }));
        s.on('error', reject);
      });
      const first = await connect();
      assert.ok(first.session, `${maxVersion}: a session to resume`);
      const second = await connect(first.session);
      assert.equal(second.reused, true, `${maxVersion}: the session was resumed`);
    }
  });

  test("libevent's own refusals keep their plain-text answers over TLS", async () => {
    const big = await httpsRequest(`${base}/api/v1/labels`, { ca, headers: { 'X-Big': 'b'.repeat(2 << 20) } });
    assert.equal(big.status, 431); // Go's answer, as on the plain path (wire_http.test.mjs)
    assert.equal(big.headers['content-type'], 'text/plain; charset=utf-8');
    assert.equal(big.body, '431 Request Header Fields Too Large');
    const body = await httpsRequest(`${base}/api/v1/write`, {
      ca, method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body: Buffer.alloc(5 << 20),
    });
    assert.equal(body.status, 413);
    assert.match(body.body, /^413 Request Entity Too Large: the request body is over the limit of \d+ bytes\n$/);
  });

  test('reload: SIGHUP and a file change bring a new certificate, open connections keep working, a bad pair is refused', async () => {
    const keep = new https.Agent({ keepAlive: true, maxSockets: 1, ca });
    const r0 = await httpsRequest(`${base}/healthz`, { agent: keep });
    assert.equal(r0.fingerprint, fpA);

    // SIGHUP after the files were replaced
    install(srvB);
    t.child.kill('SIGHUP');
    let seen;
    for (let i = 0; i < 50 && seen !== fpB; i++) {
      await sleep(100);
      seen = (await httpsRequest(`${base}/healthz`, { ca })).fingerprint;
    }
    assert.equal(seen, fpB, 'new connections get the new certificate');
    const r1 = await httpsRequest(`${base}/api/v1/status/buildinfo`, { agent: keep });
    assert.equal(r1.status, 200);
    assert.equal(r1.reused, true, 'the same keep-alive connection');
    assert.equal(r1.fingerprint, fpA, 'which keeps the certificate it started with');
    // gRPC and OTLP/HTTP listeners too
    assert.equal((await httpsRequest(`https://127.0.0.1:${t.ports.otlpHttp}/healthz`, { ca })).fingerprint, fpB);

    // without SIGHUP: the files are watched
    install(srvC);
    const t0 = Date.now();
    for (seen = null; Date.now() - t0 < 8000 && seen !== fpC;) {
      await sleep(200);
      seen = (await httpsRequest(`${base}/healthz`, { ca })).fingerprint;
    }
    assert.equal(seen, fpC, 'reloaded on file change');

    // a key that does not match: refused with one log line, the old pair serves on, the same
    // files are not tried again by the watch, SIGHUP tries them again
    const refusals = () => (t.stderr.match(/tls: new certificate refused/g) || []).length;
    const n0 = refusals();
    install(srvA, srvB.key);
    for (let i = 0; i < 80 && refusals() === n0; i++) await sleep(100);
    assert.equal(refusals(), n0 + 1, t.stderr);
    assert.match(t.stderr, /tls: new certificate refused.*does not match/);
    await sleep(2500); // a watch tick later: no second line
    assert.equal(refusals(), n0 + 1);
    t.child.kill('SIGHUP');
    for (let i = 0; i < 50 && refusals() === n0 + 1; i++) await sleep(100);
    assert.equal(refusals(), n0 + 2);
    assert.equal((await httpsRequest(`${base}/healthz`, { ca })).fingerprint, fpC);
    const r2 = await httpsRequest(`${base}/healthz`, { agent: keep });
    assert.equal(r2.status, 200);
    keep.destroy();
    const m = await serverMetrics(t);
    assert.ok(metricSum(m, 'tricorder_tls_reloads_total', { result: 'success' }) >= 2);
    assert.equal(metricSum(m, 'tricorder_tls_reloads_total', { result: 'refused' }), n0 + 2);
    const expiry = metricSum(m, 'tricorder_tls_certificate_expiry_timestamp_seconds');
    assert.ok(expiry > Date.now() / 1000 + 86400 && expiry < Date.now() / 1000 + 3 * 86400, String(expiry));
  });
});

describe('client certificates (--tls-client-ca-file)', () => {
  let t, base;
  const cert = read(client.crt), key = read(client.key);
  before(async () => {
    // served with its chain this time: the leaf, then the CA
    const chain = join(dir, 'chain.crt');
    writeFileSync(chain, Buffer.concat([readFileSync(srvA.crt), readFileSync(certs.ca.crt)]));
    install({ crt: chain, key: srvA.key });
    t = await start({
      args: ['--tls-cert-file', certFile, '--tls-key-file', keyFile, '--tls-client-ca-file', certs.ca.crt],
      ready: httpsUp,
    });
    base = `https://127.0.0.1:${t.ports.http}`;
  });
  after(async () => {
    const r = await t.stop();
    t.cleanup();
    assert.equal(r.code, 0, `exit code ${r.code} signal ${r.signal}: ${t.stderr}`);
  });

  test('the chain in the certificate file is served whole', async () => {
    const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${t.ports.http}`, '-showcerts', '-servername', 'localhost']);
    assert.equal((r.out.match(/-----BEGIN CERTIFICATE-----/g) || []).length, 2, r.out);
  });

  test('OTLP/HTTP listener: no certificate or a foreign one refused, the CA-signed one accepted', async () => {
    const url = `https://127.0.0.1:${t.ports.otlpHttp}/v1/traces`;
    const post = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' };
    await assert.rejects(httpsRequest(url, { ca, ...post }), /certificate|alert|socket hang up|ECONNRESET/i);
    await assert.rejects(httpsRequest(url, { ca, ...post, cert: read(rogueClient.crt), key: read(rogueClient.key) }),
      /certificate|alert|unknown ca|socket hang up|ECONNRESET/i);
    const ok = await httpsRequest(url, { ca, cert, key, ...post });
    assert.equal(ok.status, 200);
    const te = new TraceJson({ url, httpAgentOptions: { ca, cert, key } });
    const r = await exportOnce(te, someSpans(2));
    assert.equal(r.code, 0, String(r.error));
    await te.shutdown();
  });

  test('gRPC: the SDK exporter needs its client certificate', async () => {
    const url = `https://127.0.0.1:${t.ports.grpc}`;
    const anon = new TraceGrpc({ url, credentials: grpc.credentials.createSsl(ca), timeoutMillis: 3000 });
    const r0 = await exportOnce(anon, someSpans(1));
    assert.notEqual(r0.code, 0, 'refused without a client certificate');
    await anon.shutdown();
    const te = new TraceGrpc({ url, credentials: grpc.credentials.createSsl(ca, key, cert) });
    const r1 = await exportOnce(te, someSpans(3));
    assert.equal(r1.code, 0, String(r1.error));
    await te.shutdown();
  });

  test('HTTP port: the UI and APIs need no certificate, its ingest routes do', async () => {
    const ui = await httpsRequest(`${base}/`, { ca });
    assert.equal(ui.status, 200);
    const api = await httpsRequest(`${base}/api/v1/query?query=1`, { ca });
    assert.equal(api.status, 200);
    const post = { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' };
    const no = await httpsRequest(`${base}/v1/traces`, { ca, ...post });
    assert.equal(no.status, 403);
    assert.match(no.body, /client certificate/);
    const foreign = await httpsRequest(`${base}/v1/traces`, { ca, ...post, cert: read(rogueClient.crt), key: read(rogueClient.key) });
    assert.equal(foreign.status, 403);
    const yes = await httpsRequest(`${base}/v1/traces`, { ca, cert, key, ...post });
    assert.equal(yes.status, 200);
  });
});

describe('per-listener override', () => {
  test('--otlp-grpc-tls=false keeps gRPC in clear text while the others serve TLS', async () => {
    install(srvA);
    const t = await start({ args: ['--tls-cert-file', certFile, '--tls-key-file', keyFile, '--otlp-grpc-tls=false'], ready: httpsUp });
    try {
      const te = new TraceGrpc({ url: `http://127.0.0.1:${t.ports.grpc}` });
      const r = await exportOnce(te, someSpans(1));
      assert.equal(r.code, 0, String(r.error));
      await te.shutdown();
      assert.equal((await httpsRequest(`https://127.0.0.1:${t.ports.otlpHttp}/healthz`, { ca })).fingerprint, fpA);
    } finally {
      const r = await t.stop();
      t.cleanup();
      assert.equal(r.code, 0, t.stderr);
    }
  });
});
