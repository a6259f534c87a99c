import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rfc5322Date } from '../../src/message/date.ts';

const DATE_TIME = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}$/;

test('an RFC 5322 date-time in local time with its offset', () => {
  const text = rfc5322Date(new Date(2026, 10, 25, 9, 5, 7));
  assert.match(text, DATE_TIME);
  assert.match(text, /^Wed, 25 Nov 2026 09:05:07 [+-]\d{4}$/);
});

test('the current date is the current second, made once per second', () => {
  for (let attempt = 0; attempt < 5; attempt++) {
    const second = Math.floor(Date.now() / 1000);
    const first = rfc5322Date();
    const again = rfc5322Date();
    // A second boundary in between: the texts may rightly differ; try again.
    if (Math.floor(Date.now() / 1000) !== second) continue;
    assert.match(first, DATE_TIME);
    assert.equal(first, rfc5322Date(new Date(second * 1000)));
    assert.equal(again, first);
    return;
  }
  assert.fail('five attempts all straddled a second boundary');
});
