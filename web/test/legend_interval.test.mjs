import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seriesName } from '../js/lib/legend.js';
import { computeInterval, rateInterval, interpolate, roundInterval, formatDuration, parseDuration, alignRange } from '../js/lib/interval.js';
import { reduce } from '../js/lib/reduce.js';
import { parseTime } from '../js/lib/time.js';

test('legendFormat replaces {{label}} with the value, missing labels with nothing', () => {
  const m = { __name__: 'scotty_http_requests_total', method: 'GET', route: '/api', status: '200' };
  assert.equal(seriesName(m, '{{method}} {{route}} ({{status}})'), 'GET /api (200)');
  assert.equal(seriesName(m, '{{ method }}'), 'GET');
  assert.equal(seriesName(m, 'p99 {{nope}}'), 'p99 ');
  assert.equal(seriesName(m, 'Request Rate'), 'Request Rate');
  assert.equal(seriesName({ x: '<img src=x onerror=alert(1)>' }, '{{x}}'), '<img src=x onerror=alert(1)>', 'values are text (escaped by the DOM layer)');
});

test('without legendFormat the Prometheus notation is used', () => {
  assert.equal(seriesName({ __name__: 'up', job: 'a', instance: 'b' }, ''), 'up{instance="b", job="a"}');
  assert.equal(seriesName({ __name__: 'up' }, undefined), 'up');
  assert.equal(seriesName({}, '', 'sum(rate(x[5m]))'), 'sum(rate(x[5m]))');
  assert.equal(seriesName({ le: '5' }, '__auto'), '{le="5"}');
});

test('$__interval: range / width, rounded, at least 30 s', () => {
  const h = 3600000;
  assert.equal(computeInterval(0, h, 1000), 30000, '3.6 s per pixel rounds to 2 s, raised to the 30 s minimum');
  assert.equal(computeInterval(0, 24 * h, 1000), 60000, '86.4 s rounds to 1m');
  assert.equal(computeInterval(0, 7 * 24 * h, 1000), 600000);
  assert.equal(computeInterval(0, h, 1000, { minInterval: '10s' }), 10000, "a panel's own minimum wins over the data source's");
  assert.equal(computeInterval(0, 400 * 24 * h, 100000), 3600000, 'never more than 11000 points');
  assert.equal(roundInterval(14), 10);
  assert.equal(roundInterval(44000), 30000);
});

test('$__rate_interval is max(interval + scrape, 4 × scrape); $__range is seconds', () => {
  assert.equal(rateInterval(30000), 120000);
  assert.equal(rateInterval(600000), 630000);
  const q = interpolate('rate(x[$__rate_interval]) + rate(y[$__interval]) + z[${__range}] + $other', { fromMs: 0, toMs: 3600000, intervalMs: 30000 });
  assert.equal(q, 'rate(x[2m]) + rate(y[30s]) + z[3600s] + $other');
  assert.equal(formatDuration(630000), '10m30s');
  assert.equal(parseDuration('1h30m'), 5400000);
  assert.ok(Number.isNaN(parseDuration('1x')));
  assert.deepEqual(alignRange(1000500, 1061000, 30000), { start: 990, end: 1080, step: 30 });
  assert.deepEqual(alignRange(990000, 1050000, 30000), { start: 990, end: 1050, step: 30 });
});

test('reduce calculations', () => {
  const v = [1, null, 3, 2, NaN];
  assert.equal(reduce(v, 'lastNotNull'), 2);
  assert.equal(reduce(v, 'last'), NaN);
  assert.equal(reduce(v, 'mean'), 2);
  assert.equal(reduce(v, 'max'), 3);
  assert.equal(reduce(v, 'min'), 1);
  assert.equal(reduce(v, 'sum'), 6);
  assert.equal(reduce(v, 'count'), 3);
  assert.equal(reduce([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'p99'), 10);
  assert.equal(reduce([], 'lastNotNull'), null);
  assert.equal(reduce([5, 7, 2, 4], 'delta'), 6, 'a reset counts from zero');
});

test('relative and absolute times', () => {
  const now = Date.UTC(2026, 0, 15, 12, 30, 0);
  assert.equal(parseTime('now', now), now);
  assert.equal(parseTime('now-1h', now), now - 3600000);
  assert.equal(parseTime('now-7d', now), now - 7 * 86400000);
  assert.equal(parseTime('1700000000000', now), 1700000000000);
  assert.ok(Number.isNaN(parseTime('now-1x', now)));
  assert.ok(Number.isNaN(parseTime('yesterday', now)));
});
