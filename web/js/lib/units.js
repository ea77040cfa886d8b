// Value formatting as Grafana formats its units (fieldConfig.defaults.unit): the same
// automatic decimals, scaling steps and suffixes, so a panel reads the same here and there.

// Decimals Grafana picks when the panel sets none: about two significant digits.
export function autoDecimals(value) {
  const abs = Math.abs(value);
  if (!isFinite(abs) || abs === 0) return 0;
  const log10 = Math.floor(Math.log(abs) / Math.LN10);
  let dec = -log10 + 1;
  const magn = Math.pow(10, -dec);
  const norm = abs / magn; // between 1 and 10
  if (norm > 2.25) ++dec; // 2.5 needs one more digit
  if (value % 1 === 0) dec = 0;
  return Math.max(0, dec);
}

export function toFixed(value, decimals) {
  if (value === null || value === undefined || Number.isNaN(value)) return '';
  if (value === Infinity || value === -Infinity) return value > 0 ? '+Inf' : '-Inf';
  if (decimals === null || decimals === undefined) decimals = autoDecimals(value);
  if (value === 0) return value.toFixed(decimals);
  const factor = decimals ? Math.pow(10, Math.max(0, decimals)) : 1;
  const formatted = String(Math.round(value * factor) / factor);
  if (formatted.indexOf('e') !== -1) return formatted;
  const dot = formatted.indexOf('.');
  const precision = dot === -1 ? 0 : formatted.length - dot - 1;
  if (precision < decimals) {
    return (precision ? formatted : formatted + '.') + String(factor).slice(1, decimals - precision + 1);
  }
  return formatted;
}

function scaled(factor, suffixes) {
  return (v, d) => {
    let steps = 0;
    while (Math.abs(v) >= factor) {
      steps++;
      v /= factor;
      if (steps >= suffixes.length) return { text: 'NA', suffix: '' };
    }
    return { text: toFixed(v, d), suffix: suffixes[steps] };
  };
}

const fixedUnit = (unit) => (v, d) => ({ text: toFixed(v, d), suffix: ' ' + unit });
const fixedScaled = (v, d, ext) => ({ text: toFixed(v, d), suffix: ext });

function toNanoSeconds(v, d) {
  const a = Math.abs(v);
  if (a < 1000) return fixedScaled(v, d, ' ns');
  if (a < 1e6) return fixedScaled(v / 1e3, d, ' µs');
  if (a < 1e9) return fixedScaled(v / 1e6, d, ' ms');
  if (a < 60e9) return fixedScaled(v / 1e9, d, ' s');
  return toSeconds(v / 1e9, d);
}

function toMilliSeconds(v, d) {
  const a = Math.abs(v);
  if (a < 1000) return fixedScaled(v, d, ' ms');
  if (a < 60000) return fixedScaled(v / 1000, d, ' s');
  if (a < 3600000) return fixedScaled(v / 60000, d, ' min');
  if (a < 86400000) return fixedScaled(v / 3600000, d, ' hour');
  if (a < 31536000000) return fixedScaled(v / 86400000, d, ' day');
  return fixedScaled(v / 31536000000, d, ' year');
}

function toSeconds(v, d) {
  const a = Math.abs(v);
  if (a === 0) return fixedScaled(0, d, ' s');
  if (a < 0.000001) return fixedScaled(v * 1e9, d, ' ns');
  if (a < 0.001) return fixedScaled(v * 1e6, d, ' µs');
  if (a < 1) return toMilliSeconds(v * 1000, d);
  if (a < 60) return fixedScaled(v, d, ' s');
  if (a < 3600) return fixedScaled(v / 60, d, ' min');
  if (a < 86400) return fixedScaled(v / 3600, d, ' hour');
  if (a < 604800) return fixedScaled(v / 86400, d, ' day');
  if (a < 31536000) return fixedScaled(v / 604800, d, ' week');
  return fixedScaled(v / 31536000, d, ' year');
}

const SI = (base) => scaled(1000, ['', ' k', ' M', ' G', ' T', ' P', ' E', ' Z', ' Y'].map((p) => p + base));

const formats = {
  none: (v, d) => ({ text: toFixed(v, d), suffix: '' }),
  short: scaled(1000, ['', ' K', ' Mil', ' Bil', ' Tri', ' Quadr', ' Quint', ' Sext', ' Sept']),
  percent: (v, d) => ({ text: toFixed(v, d), suffix: '%' }),
  percentunit: (v, d) => ({ text: toFixed(100 * v, d), suffix: '%' }),
  bytes: scaled(1024, [' B', ' KiB', ' MiB', ' GiB', ' TiB', ' PiB', ' EiB', ' ZiB', ' YiB']),
  decbytes: scaled(1000, [' B', ' kB', ' MB', ' GB', ' TB', ' PB', ' EB', ' ZB', ' YB']),
  bits: scaled(1024, [' b', ' Kib', ' Mib', ' Gib', ' Tib', ' Pib', ' Eib', ' Zib', ' Yib']),
  decbits: scaled(1000, [' b', ' kb', ' Mb', ' Gb', ' Tb', ' Pb', ' Eb', ' Zb', ' Yb']),
  Bps: scaled(1024, [' B/s', ' KiB/s', ' MiB/s', ' GiB/s', ' TiB/s', ' PiB/s']),
  binBps: scaled(1024, [' B/s', ' KiB/s', ' MiB/s', ' GiB/s', ' TiB/s', ' PiB/s']),
  decBps: scaled(1000, [' B/s', ' kB/s', ' MB/s', ' GB/s', ' TB/s', ' PB/s']),
  ns: toNanoSeconds,
  µs: (v, d) => toNanoSeconds(v * 1000, d),
  ms: toMilliSeconds,
  s: toSeconds,
  m: (v, d) => toSeconds(v * 60, d),
  h: (v, d) => toSeconds(v * 3600, d),
  d: (v, d) => toSeconds(v * 86400, d),
  reqps: fixedUnit('req/s'),
  rps: fixedUnit('rd/s'),
  wps: fixedUnit('wr/s'),
  iops: fixedUnit('io/s'),
  ops: fixedUnit('ops/s'),
  opm: fixedUnit('ops/min'),
  reqpm: fixedUnit('req/min'),
  cps: fixedUnit('c/s'),
  hertz: SI('Hz'),
};
formats.us = formats.µs;
formats.dtdurations = formats.s;

// Formats `value` in `unit` (Grafana unit id; an unknown id is a custom suffix, as Grafana
// treats it). Returns { text, suffix }.
export function formatParts(value, unit, decimals) {
  if (value === null || value === undefined || Number.isNaN(value)) return { text: 'No data', suffix: '' };
  if (value === Infinity || value === -Infinity) return { text: value > 0 ? '+Inf' : '-Inf', suffix: '' };
  const u = unit || 'short';
  let f = formats[u];
  if (!f) {
    if (u.startsWith('suffix:')) f = (v, d) => ({ text: toFixed(v, d), suffix: u.slice(7) });
    else if (u.startsWith('prefix:')) f = (v, d) => ({ text: u.slice(7) + toFixed(v, d), suffix: '' });
    else f = fixedUnit(u);
  }
  return f(value, decimals === '' ? undefined : decimals);
}

export function formatValue(value, unit, decimals) {
  const p = formatParts(value, unit, decimals);
  return p.text + p.suffix;
}
