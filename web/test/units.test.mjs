import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatValue, toFixed, autoDecimals } from '../js/lib/units.js';

test('automatic decimals follow Grafana (about two significant digits)', () => {
  assert.equal(autoDecimals(1234), 0);
  assert.equal(autoDecimals(12.34), 1);
  assert.equal(autoDecimals(1.234), 2);
  assert.equal(autoDecimals(0.0123), 4);
  assert.equal(toFixed(1.234), '1.23');
  assert.equal(toFixed(0.5), '0.500');
  assert.equal(toFixed(3, 2), '3.00');
});

test('short scales by thousands with K, Mil, Bil', () => {
  assert.equal(formatValue(0, 'short'), '0');
  assert.equal(formatValue(999, 'short'), '999');
  assert.equal(formatValue(1500, 'short'), '1.50 K');
  assert.equal(formatValue(2500000, 'short'), '2.50 Mil');
  assert.equal(formatValue(3e9, 'short'), '3 Bil');
  assert.equal(formatValue(-1500, 'short'), '-1.50 K');
});

test('time units step through ns, µs, ms, s, min, hour, day', () => {
  assert.equal(formatValue(0.0000005, 's'), '500 ns');
  assert.equal(formatValue(0.00025, 's'), '250 µs');
  assert.equal(formatValue(0.25, 's'), '250 ms');
  assert.equal(formatValue(4.95, 's'), '4.95 s');
  assert.equal(formatValue(90, 's'), '1.50 min');
  assert.equal(formatValue(7200, 's'), '2 hour');
  assert.equal(formatValue(172800, 's'), '2 day');
  assert.equal(formatValue(5, 'ms'), '5 ms');
  assert.equal(formatValue(1500, 'ms'), '1.50 s');
  assert.equal(formatValue(120000, 'ms'), '2 min');
});

test('bytes are IEC (1024), decbytes SI (1000)', () => {
  assert.equal(formatValue(512, 'bytes'), '512 B');
  assert.equal(formatValue(1536, 'bytes'), '1.50 KiB');
  assert.equal(formatValue(48 * 1024 * 1024, 'bytes'), '48 MiB');
  assert.equal(formatValue(1500, 'decbytes'), '1.50 kB');
  assert.equal(formatValue(48e6, 'decbytes'), '48 MB');
  assert.equal(formatValue(1.2e9, 'decbytes'), '1.20 GB');
});

test('rates, percents and custom units', () => {
  assert.equal(formatValue(12.5, 'reqps'), '12.5 req/s');
  assert.equal(formatValue(3, 'ops'), '3 ops/s');
  assert.equal(formatValue(42, 'percent'), '42%');
  assert.equal(formatValue(0.25, 'percentunit'), '25%');
  assert.equal(formatValue(0.005, 'percentunit'), '0.500%');
  assert.equal(formatValue(3.2, 'lines/s'), '3.20 lines/s', 'an unknown unit is a suffix, as in Grafana');
  assert.equal(formatValue(1, 'streams/s'), '1 streams/s');
  assert.equal(formatValue(2, 'suffix: apps'), '2 apps');
});

test('explicit decimals, missing values and infinities', () => {
  assert.equal(formatValue(1.23456, 's', 3), '1.235 s');
  assert.equal(formatValue(null, 'short'), 'No data');
  assert.equal(formatValue(NaN, 'short'), 'No data');
  assert.equal(formatValue(Infinity, 'short'), '+Inf');
});
