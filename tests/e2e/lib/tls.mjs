// Test certificates made with the openssl command line, and an HTTPS request helper that
// reports what the TLS layer saw (peer certificate, protocol, whether the socket was reused).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';

const ossl = (args, cwd) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });

// A CA, then leaf certificates it signs. Returns { ca, rogueCa, server(name), client(name), ... }
// as file paths under dir; every certificate is EC P-256 and valid for two days.
export function makeCerts(dir) {
  const ca = (name, cn) => {
    ossl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
      '-out', `${name}.crt`, '-days', '2', '-subj', `/CN=${cn}`], dir);
    return { crt: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  const leaf = (name, cn, signer, ext) => {
    ossl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${name}.key`,
      '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ossl(['x509', '-req', '-in', `${name}.csr`, '-CA', signer.crt, '-CAkey', signer.key, '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`], dir);
    return { crt: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  };
  const root = ca('ca', 'tricorder test CA');
  const rogue = ca('rogue', 'someone else');
  const srvExt = 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n';
  const cliExt = 'extendedKeyUsage=clientAuth\n';
  return {
    ca: root,
    rogueCa: rogue,
    server: (name) => leaf(name, 'localhost', root, srvExt),
    client: (name, signer = root) => leaf(name, `exporter ${name}`, signer, cliExt),
  };
}

export const read = (p) => readFileSync(p);

// One HTTPS request. opts: { ca, cert, key (buffers), method, headers, body, agent,
// servername, ALPNProtocols }. Resolves { status, headers, body, fingerprint, protocol, alpn,
// reused }; rejects on a TLS or socket error.
export function httpsRequest(url, opts = {}) {
  return new Promise((resolve, reject) => {
    const req = https.request(url, {
      method: opts.method || 'GET',
      headers: opts.headers || {},
      ca: opts.ca, cert: opts.cert, key: opts.key,
      agent: opts.agent ?? false,
      ALPNProtocols: opts.ALPNProtocols,
      servername: 'localhost', // the certificate's name (an IP as SNI is not allowed)
      timeout: 10000,
    }, (res) => {
      const chunks = [];
      const sock = res.socket;
      const fingerprint = sock.getPeerCertificate().fingerprint256;
      const protocol = sock.getProtocol();
      const alpn = sock.alpnProtocol;
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({
        status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString(),
        fingerprint, protocol, alpn, reused: req.reusedSocket,
      }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

// The SHA-256 fingerprint of a PEM certificate file as node prints it (AA:BB:...).
export function fileFingerprint(path) {
  const out = ossl(['x509', '-in', path, '-noout', '-fingerprint', '-sha256']).toString();
  return out.trim().split('=')[1];
}
