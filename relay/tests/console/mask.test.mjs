// The console's pure helpers, without a browser: masking personal data, and the times and
// filters the views read and write.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { maskBody, maskPhone, maskText, pretty } from '../../console/mask.js';
import { ago, filtersOf, fromLocalInput, plural } from '../../console/views.js';
import { query } from '../../console/api.js';
import { summary } from '../../console/chart.js';

const here = dirname(fileURLToPath(import.meta.url));

test('a phone number keeps its first 3 characters and last 2 digits', () => {
  assert.equal(maskPhone('+8612345678'), '+86•••••78');
  assert.equal(maskPhone('0812-3456-789'), '081•••••89');
  assert.equal(maskPhone('+62 812 3456 7890'), '+62•••••90');
  assert.equal(maskPhone('12345'), '•••', 'too short to show any of it');
});

test('phone-like runs are masked anywhere in a text, dates and ids are not', () => {
  assert.equal(maskText('HTTP 500 for +8612345678'), 'HTTP 500 for +86•••••78');
  assert.equal(maskText('call 0812 3456 789 now'), 'call 081•••••89 now');
  for (const kept of [
    'created 2022-12-19 15:14:52',
    '2026-12-03T15:01:00Z',
    'ic1a7a8f2bxxx9f5e343a2ec25a9b2',
    'connect to 127.0.0.1:43129 refused',
    'timed out after 10000 ms',
    'the service answered 500',
    'v1.2.3456789',
  ]) {
    assert.equal(maskText(kept), kept);
  }
  assert.equal(maskText(null), null);
});

test("the sender's example body shows no phone number nor customer variable", async () => {
  const text = await readFile(resolve(here, '../../../tests/data/task_notification.example.json'), 'utf8');
  const body = JSON.parse(text);
  const masked = pretty(maskBody(body));
  for (const secret of ['8612345678', '62777888888', '6212345678', '"1224"', '"1234"']) {
    assert.ok(!masked.includes(secret), secret);
  }
  assert.match(masked, /"callee": "\+86•••••78"/);
  assert.match(masked, /"caller_number": "\+62•••••88"/);
  assert.match(masked, /"birthday": "•••"/);
  // The rest is kept, and the original is untouched.
  assert.match(masked, /"task_id": "ic1a7a8f2bxxx9f5e343a2ec25a9b2"/);
  assert.match(masked, /"created_at": "2022-12-19 15:14:52"/);
  assert.match(masked, /"id": 931888898/);
  assert.deepEqual(body, JSON.parse(text));
});

test('keys name what is personal, whatever the value looks like', () => {
  const masked = maskBody({
    Phone: 'ask reception',
    to: '+8612345678',
    From: 'ab',
    contact: { mobile: '0812345678', name: 'Ann' },
    customer_variables: { amount: 1200, tags: ['vip', true], none: null },
    params: 'x=1',
    Extra: [{ due: '2026-12-01' }],
    note: 'call me at +62 812 3456 7890',
    count: 3,
  });
  assert.deepEqual(masked, {
    Phone: '•••',
    to: '+86•••••78',
    From: '•••',
    contact: { mobile: '081•••••78', name: '•••' },
    customer_variables: { amount: '•••', tags: ['•••', '•••'], none: null },
    params: '•••',
    Extra: [{ due: '•••' }],
    note: 'call me at +62•••••90',
    count: 3,
  });
  assert.equal(pretty(maskBody('not json: +8612345678')), 'not json: +86•••••78');
});

test('times, filters and queries as the views read and write them', () => {
  assert.equal(fromLocalInput(''), '');
  assert.match(fromLocalInput('2026-12-03T15:01'), /^2026-12-0[34]T\d\d:\d\d:00Z$/);
  assert.equal(ago(new Date(Date.now() - 180000).toISOString()), '3 min ago');
  assert.equal(ago(new Date().toISOString()), 'just now');
  const filters = filtersOf(new URLSearchParams('state=dead&task_id=%20t1%20&kind=&error=&limit=5'));
  assert.deepEqual(filters, { state: 'dead', task_id: 't1' });
  assert.equal(query({ state: 'dead', kind: '', task_id: 'a b', after: 0, until: null }), '?state=dead&task_id=a+b&after=0');
  assert.equal(query({}), '');
  assert.equal(plural(1, 'dead letter'), '1 dead letter');
  assert.equal(plural(20, 'dead letter'), '20 dead letters');
  assert.equal(
    summary('task_notification', { received: [5, 7], forwarded: [4, 6], failed: [0, 3] }),
    'task_notification, last hour: 12 received, 10 forwarded, 3 failed',
  );
});
