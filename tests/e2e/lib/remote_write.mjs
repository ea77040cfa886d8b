// A minimal Prometheus remote-write 1.0 encoder (protobuf by hand, snappy as literals only),
// for tests that send the very same samples to tricorder and to a real Prometheus.
// A sample value of STALE is written with the staleness marker's exact bits (0x7ff0000000000002),
// which JavaScript's NaN cannot be trusted to keep.

export const STALE = Symbol('stale');

export function varint(n) {
  n = BigInt(n);
  const out = [];
  while (n >= 0x80n) { out.push(Number((n & 0x7fn) | 0x80n)); n >>= 7n; }
  out.push(Number(n));
  return Buffer.from(out);
}
const field = (num, wire, payload) => Buffer.concat([varint((num << 3) | wire), payload]);
const bytesField = (num, buf) => field(num, 2, Buffer.concat([varint(buf.length), buf]));

function double(v) {
  const d = Buffer.alloc(8);
  if (v === STALE) { d.writeUInt32LE(2, 0); d.writeUInt32LE(0x7ff00000, 4); } else d.writeDoubleLE(v);
  return d;
}

// writeRequest([labels, samples], ...): labels as [[name, value], ...] (sorted by the caller
// when order matters), samples as [[value, timestampMs], ...].
export function writeRequest(...series) {
  const ts = series.map(([labels, samples]) => {
    const parts = labels.map(([n, v]) => bytesField(1, Buffer.concat([bytesField(1, Buffer.from(n)), bytesField(2, Buffer.from(v))])));
    for (const [v, t] of samples) parts.push(bytesField(2, Buffer.concat([field(1, 1, double(v)), field(2, 0, varint(t))])));
    return bytesField(1, Buffer.concat(parts));
  });
  return Buffer.concat(ts);
}

// Snappy block format made only of literals: valid for any decoder.
export function snappyLiteral(buf) {
  const parts = [varint(buf.length)];
  for (let i = 0; i < buf.length; i += 60) {
    const chunk = buf.subarray(i, i + 60);
    parts.push(Buffer.from([(chunk.length - 1) << 2]), chunk);
  }
  return Buffer.concat(parts);
}

// POSTs one remote-write request to baseUrl + /api/v1/write; throws unless 2xx.
export async function remoteWrite(baseUrl, series) {
  const r = await fetch(`${baseUrl}/api/v1/write`, {
    method: 'POST',
    body: snappyLiteral(writeRequest(...series)),
    headers: { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'snappy', 'X-Prometheus-Remote-Write-Version': '0.1.0' },
  });
  if (!r.ok) throw new Error(`remote write to ${baseUrl}: ${r.status} ${await r.text()}`);
}
