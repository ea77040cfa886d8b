import { test } from 'node:test';
import assert from 'node:assert/strict';
import { stateRank, labelPairs, sortAlerts, sortRules, ruleCounts, firingCount, shortDuration, ago } from '../js/lib/alerts.js';

test('states rank firing, pending, inactive, then anything unknown', () => {
  assert.deepEqual(['inactive', 'bogus', 'firing', 'pending'].sort((a, b) => stateRank(a) - stateRank(b)), ['firing', 'pending', 'inactive', 'bogus']);
});

test('labels: alertname first, then by name', () => {
  assert.deepEqual(labelPairs({ severity: 'x', alertname: 'A', instance: 'i' }), [['alertname', 'A'], ['instance', 'i'], ['severity', 'x']]);
  assert.deepEqual(labelPairs(undefined), []);
});

test('alerts sort by state, then activeAt, then labels; the input is not changed', () => {
  const input = [
    { state: 'pending', activeAt: '2026-01-01T00:00:00Z', labels: { alertname: 'P' } },
    { state: 'firing', activeAt: '2026-01-01T00:00:05Z', labels: { alertname: 'F', i: 'b' } },
    { state: 'firing', activeAt: '2026-01-01T00:00:05Z', labels: { alertname: 'F', i: 'a' } },
    { state: 'firing', activeAt: '2026-01-01T00:00:01Z', labels: { alertname: 'G' } },
  ];
  const out = sortAlerts(input);
  assert.deepEqual(out.map((a) => a.labels.alertname + (a.labels.i || '')), ['G', 'Fa', 'Fb', 'P']);
  assert.equal(input[0].labels.alertname, 'P');
});

test('rules: alerting by state keeping file order within a state, recording rules last', () => {
  const rules = [
    { name: 'r1', type: 'recording' },
    { name: 'a1', type: 'alerting', state: 'inactive' },
    { name: 'a2', type: 'alerting', state: 'firing' },
    { name: 'a3', type: 'alerting', state: 'pending' },
    { name: 'a4', type: 'alerting', state: 'firing' },
  ];
  assert.deepEqual(sortRules(rules).map((r) => r.name), ['a2', 'a4', 'a3', 'a1', 'r1']);
});

test('counts per state over groups and the firing count of /api/v1/alerts', () => {
  const groups = [{ rules: [{ type: 'alerting', state: 'firing' }, { type: 'recording' }] }, { rules: [{ type: 'alerting', state: 'pending' }, { type: 'alerting', state: 'inactive' }, { type: 'alerting', state: 'firing' }] }];
  assert.deepEqual(ruleCounts(groups), { firing: 2, pending: 1, inactive: 1 });
  assert.deepEqual(ruleCounts(undefined), { firing: 0, pending: 0, inactive: 0 });
  assert.equal(firingCount([{ state: 'firing' }, { state: 'pending' }, { state: 'firing' }]), 2);
  assert.equal(firingCount(null), 0);
});

test('short durations and ages', () => {
  assert.equal(shortDuration(0.0000123), '12µs');
  assert.equal(shortDuration(0.0123), '12.3ms');
  assert.equal(shortDuration(2.5), '2.5s');
  assert.equal(shortDuration(75), '1m15s');
  assert.equal(shortDuration(7200), '2h');
  assert.equal(shortDuration(90061), '1d1h');
  assert.equal(shortDuration(NaN), '–');
  assert.equal(shortDuration(undefined), '–');
  const now = Date.parse('2026-01-01T00:01:00Z');
  assert.equal(ago('2026-01-01T00:00:48Z', now), '12s ago');
  assert.equal(ago('2026-01-01T00:00:59.8Z', now), 'just now');
  assert.equal(ago('0001-01-01T00:00:00Z', now), 'never');
  assert.equal(ago('', now), 'never');
});
