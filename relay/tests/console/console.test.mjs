// The operator console in a real browser (Debian's Chromium, headless, driven by
// playwright-core) against a real relay process forwarding to a real HTTP service.
//
//   node --test --test-concurrency=1 relay/tests/console/
//
// RELAY_BIN (the relay binary), CHROMIUM (the browser) and SCREENSHOTS (where the PNGs go)
// may be set; see harness.mjs for their defaults.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';

import {
  TOKEN,
  adminApi,
  alertSays,
  launchBrowser,
  notification,
  openConsole,
  post,
  postAll,
  screenshot,
  signedIn,
  sleep,
  startRelay,
  startService,
  statusSays,
  waitFor,
  waitForKind,
} from './harness.mjs';

let browser;

before(async () => {
  browser = await launchBrowser();
}, { timeout: 30000 });

after(async () => {
  await browser?.close();
});

/**
 * A service, a relay forwarding to it and a console page, all stopped after the test.
 * `done()` asserts that the page asked nothing of another origin and logged no error.
 */
async function setup(t, { env = {}, token = TOKEN, viewport, serviceStatus = 200 } = {}) {
  const service = await startService();
  t.after(() => service.stop());
  service.status = serviceStatus;
  const relay = await startRelay({
    service,
    env: { ...(token ? { AIRUDDER_ADMIN_TOKEN: token } : {}), ...env },
  });
  t.after(() => relay.stop());
  const view = await openConsole(browser, relay, { viewport });
  t.after(() => view.close());
  return { service, relay, admin: adminApi(relay), ...view, done: (options) => view.check(options) };
}

const unique = (what) => `${what}-${randomUUID().slice(0, 8)}`;

/** The text of the cell `field` of the overview's row for `kind`. */
async function cell(page, field, kind = 'task_notification') {
  const node = page.locator(`tr[data-kind="${kind}"] [data-field="${field}"]`);
  const value = await node.getAttribute('data-value');
  return value ?? ((await node.textContent()) || '').trim();
}

/** Searches the notification list with the given filters, through the form. */
async function search(page, { taskId, state }) {
  await settled(page);
  if (taskId !== undefined) await page.getByLabel('Task id').fill(taskId);
  if (state !== undefined) await page.getByLabel('State').selectOption(state);
  await page.getByRole('button', { name: 'Search', exact: true }).click();
}

/** Waits until the view on screen has shown what it loaded (the form is the current one). */
async function settled(page) {
  await page.locator('#main:not([aria-busy])').waitFor();
}

/** How many requests with a 2xx answer each task id got. */
function delivered(service) {
  const counts = new Map();
  for (const request of service.requests) {
    if (request.status >= 200 && request.status < 300) counts.set(request.taskId, (counts.get(request.taskId) || 0) + 1);
  }
  return counts;
}

test('sign in: the page loads without the token, a wrong one is refused, the right one kept for the tab only', { timeout: 30000 }, async (t) => {
  const { relay, page, context, done } = await setup(t);
  // The page and its files answer without Authorization.
  for (const path of ['/admin/', '/admin/console/style.css', '/admin/console/app.js', '/admin/console/api.js', '/admin/console/views.js', '/admin/console/mask.js', '/admin/console/chart.js']) {
    const response = await fetch(`http://${relay.admin}${path}`);
    assert.equal(response.status, 200, path);
    assert.ok((await response.text()).length > 100, `${path} is not empty`);
  }
  // The API does not.
  assert.equal((await fetch(`http://${relay.admin}/admin/stats`)).status, 401);

  await page.goto(relay.url);
  const tokenInput = page.getByLabel('Admin token');
  await tokenInput.waitFor();
  assert.equal(await tokenInput.getAttribute('type'), 'password');
  assert.equal(await page.getByRole('navigation', { name: 'Console' }).count(), 0, 'no navigation before signing in');

  await tokenInput.fill('not-the-token-0123456789');
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  const refused = await alertSays(page, 'That token was refused');
  assert.match(refused, /not this relay's/, 'the API\'s own message is shown');
  assert.ok(await tokenInput.isVisible(), 'still on the sign-in form');

  await tokenInput.fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();
  await page.locator('tr[data-kind="task_notification"]').waitFor();
  assert.equal(await page.getByRole('alert').textContent(), '', 'the refusal is gone once signed in');
  assert.equal(await page.evaluate(() => Object.values(sessionStorage).join()), TOKEN);
  assert.equal(await page.evaluate(() => localStorage.length), 0, 'nothing in localStorage');
  assert.deepEqual(await context.cookies(), [], 'no cookie');

  // A reload keeps the tab signed in.
  await page.reload();
  await page.locator('tr[data-kind="task_notification"]').waitFor();
  assert.equal(await page.getByLabel('Admin token').count(), 0);

  // A new tab session asks again.
  const other = await openConsole(browser, relay);
  t.after(() => other.close());
  await other.page.goto(relay.url);
  await other.page.getByLabel('Admin token').waitFor();

  // A token the relay no longer takes sends the tab back to the sign-in, saying so.
  await page.evaluate(() => {
    for (const key of Object.keys(sessionStorage)) sessionStorage.setItem(key, 'changed-token-0123456789');
  });
  await page.getByRole('link', { name: 'Notifications', exact: true }).click();
  await page.getByLabel('Admin token').waitFor();
  await alertSays(page, "refused this tab's token");

  // Sign out forgets it.
  await page.getByLabel('Admin token').fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { name: 'Notifications', level: 1 }).waitFor();
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByLabel('Admin token').waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.length), 0);
  await page.reload();
  await page.getByLabel('Admin token').waitFor();

  done();
  other.check();
});

test('a dead letter is found by its task id, shown masked, and replayed once', { timeout: 40000 }, async (t) => {
  const { service, relay, admin, page, done } = await setup(t, { serviceStatus: 500, env: { AIRUDDER_RETRY_FOR: '2s' } });
  const tasks = [unique('dead-a'), unique('dead-b'), unique('dead-c')];
  await postAll(relay, tasks);
  await waitForKind(relay, { dead: 3, pending: 0 }, 20000);
  const wanted = tasks[1];

  await signedIn(page, relay);
  await page.getByRole('link', { name: 'Notifications', exact: true }).click();
  await page.getByLabel('Task id').waitFor();
  await settled(page);
  // Received since an hour ago (the browser's time zone is UTC here), of the kind served.
  const since = new Date(Date.now() - 3600000);
  const local = since.toISOString().slice(0, 16);
  await page.getByLabel('Received since').fill(local);
  await page.getByLabel('Kind').selectOption('task_notification');
  await search(page, { taskId: wanted, state: 'dead' });
  await waitFor(() => page.url().includes(`task_id=${wanted}`), 5000, 'the hash to carry the filter');
  const hash = new URLSearchParams(new URL(page.url()).hash.split('?')[1]);
  assert.equal(hash.get('since'), `${local}:00Z`, 'since in RFC 3339 UTC');
  assert.equal(hash.get('kind'), 'task_notification');
  assert.equal(hash.get('state'), 'dead');
  const rows = page.locator('tbody tr[data-id]');
  await waitFor(async () => (await rows.count()) === 1, 5000, 'one row');
  const { items } = await admin.get(`/admin/notifications?state=dead&task_id=${wanted}`);
  assert.equal(items.length, 1);
  const id = items[0].id;
  assert.equal(await rows.first().getAttribute('data-id'), String(id));

  await page.getByRole('link', { name: `Notification ${id}`, exact: true }).click();
  await page.getByRole('heading', { name: `Notification ${id}`, level: 1 }).waitFor();
  // The attempts, each answered 500.
  const attempts = page.locator('section[aria-labelledby="attempts-title"]');
  const headers = await attempts.locator('thead th').allTextContents();
  for (const header of ['When', 'Duration ms', 'Outcome', 'Status', 'Error']) assert.ok(headers.includes(header), `${header} in ${headers}`);
  const statuses = await attempts.locator('td[data-field="status"]').allTextContents();
  assert.ok(statuses.length >= 1, 'at least one attempt');
  assert.ok(statuses.every((s) => s === '500'), `statuses: ${statuses}`);
  // The webhook-id the service saw.
  const webhookId = (await page.locator('[data-field="webhook-id"]').textContent()).trim();
  assert.match(webhookId, /^msg_[0-9a-f]{32}$/);
  assert.equal(service.of(wanted)[0].headers['webhook-id'], webhookId);
  assert.ok(await page.getByText('webhook-id', { exact: true }).isVisible());
  // The body, masked until asked.
  const html = await page.content();
  assert.ok(!html.includes('8612345678'), 'the callee is not on the page');
  assert.ok(!html.includes('62777888888'), 'the caller is not on the page');
  const body = page.locator('pre.body');
  assert.ok((await body.textContent()).includes('+86•••••78'));
  const toggle = page.getByRole('button', { name: 'Show personal data', exact: true });
  assert.equal(await toggle.getAttribute('aria-pressed'), 'false');
  await toggle.click();
  assert.equal(await toggle.getAttribute('aria-pressed'), 'true');
  assert.ok((await body.textContent()).includes('"callee": "+8612345678"'));
  assert.ok((await body.textContent()).includes(wanted));

  // Replay it, the service now well.
  service.status = 200;
  const before = service.requests.length;
  await page.getByRole('button', { name: 'Replay', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), new RegExp(`Replay notification ${id}\\? It will be forwarded again, once\\.`));
  await dialog.getByRole('button', { name: 'Replay', exact: true }).click();
  await statusSays(page, `Notification ${id} is pending again, due now.`);
  await waitFor(() => delivered(service).get(wanted) === 1, 10000, 'the replayed delivery');
  await sleep(2500);
  assert.equal(delivered(service).get(wanted), 1, 'delivered exactly once');
  assert.deepEqual(
    service.requests.slice(before).map((r) => r.taskId),
    [wanted],
    'nothing else was sent',
  );
  await waitFor(async () => (await admin.get(`/admin/notifications/${id}`)).state === 'handled', 5000, 'handled');

  // The two others are purged as dead before a date to come.
  await page.goto(`${relay.url}#/notifications?state=dead`);
  await waitFor(async () => (await page.locator('tbody tr[data-id]').count()) === 2, 5000, 'two dead letters left');
  await page.getByRole('button', { name: 'Purge', exact: true }).click();
  const purge = page.getByRole('dialog');
  const when = purge.getByLabel('Purge dead letters that died before');
  const suggested = await when.inputValue();
  assert.ok(Math.abs(Date.parse(`${suggested}Z`) - (Date.now() - 30 * 86400000)) < 120000, `30 days ago by default: ${suggested}`);
  await when.fill('2099-01-01T00:00');
  assert.match(await purge.textContent(), /died before 2099-01-01 00:00:00 UTC/);
  await purge.getByRole('button', { name: 'Purge', exact: true }).click();
  await statusSays(page, 'Purged 2 dead letters.');
  await page.getByText('No notification matches these filters.').waitFor();
  assert.equal((await admin.kind()).dead, 0);
  done();
});

test('pausing a kind holds its notifications; resuming forwards each once', { timeout: 30000 }, async (t) => {
  const { service, relay, admin, page, done } = await setup(t);
  await signedIn(page, relay);
  const row = page.locator('tr[data-kind="task_notification"]');
  await row.getByRole('button', { name: 'Pause', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByRole('button', { name: 'Pause', exact: true }).click();
  await statusSays(page, 'task_notification is paused');
  assert.equal((await admin.kind()).paused, true);
  await waitFor(async () => (await cell(page, 'paused')) === 'true', 5000, 'the row to say paused');

  const tasks = Array.from({ length: 5 }, (_, i) => unique(`paused-${i}`));
  await postAll(relay, tasks);
  await waitForKind(relay, { pending: 5 });
  await sleep(2000);
  assert.equal(service.requests.length, 0, 'nothing forwarded while paused');

  await page.reload();
  await row.waitFor();
  assert.equal(await cell(page, 'pending'), '5');
  assert.equal(await cell(page, 'paused'), 'true');
  assert.match(await row.textContent(), /Paused/);
  assert.equal(await cell(page, 'received'), '5');

  await row.getByRole('button', { name: 'Resume', exact: true }).click();
  await dialog.getByRole('button', { name: 'Resume', exact: true }).click();
  await statusSays(page, 'task_notification is forwarding again.');
  await waitFor(() => tasks.every((task) => delivered(service).get(task) === 1), 10000, 'all five delivered');
  await waitForKind(relay, { pending: 0 });
  await sleep(1000);
  const counts = delivered(service);
  for (const task of tasks) assert.equal(counts.get(task), 1, task);
  assert.equal(service.requests.length, 5);
  await waitFor(async () => (await cell(page, 'paused')) === 'false' && (await cell(page, 'pending')) === '0', 8000, 'the overview to refresh by itself');
  done();
});

test('"Replay all matching" replays 20 dead letters, each delivered once', { timeout: 45000 }, async (t) => {
  const { service, relay, admin, page, done } = await setup(t, { serviceStatus: 500, env: { AIRUDDER_RETRY_FOR: '2s' } });
  const tasks = Array.from({ length: 20 }, (_, i) => unique(`bulk-${i}`));
  await postAll(relay, tasks);
  await signedIn(page, relay, '#/notifications');
  await waitForKind(relay, { dead: 20, pending: 0 }, 25000);

  // Paged 8 at a time: 8, 8, 4, and back.
  await page.goto(`${relay.url}#/notifications?state=dead&limit=8`);
  const ids = () => page.locator('tbody tr[data-id]').evaluateAll((rows) => rows.map((row) => Number(row.dataset.id)));
  await waitFor(async () => (await ids()).length === 8, 5000, 'a page of 8');
  const first = await ids();
  const next = page.getByRole('button', { name: 'Next page', exact: true });
  const previous = page.getByRole('button', { name: 'Previous page', exact: true });
  assert.ok(await previous.isDisabled());
  await next.click();
  await waitFor(async () => (await ids())[0] > first[7], 5000, 'the second page');
  await next.click();
  await waitFor(async () => (await ids()).length === 4, 5000, 'the last page of 4');
  assert.ok(await next.isDisabled());
  await previous.click();
  await previous.click();
  await waitFor(async () => (await ids()).join() === first.join(), 5000, 'back on the first page');

  await page.getByRole('link', { name: 'Clear', exact: true }).click();
  await waitFor(async () => (await page.getByLabel('State').inputValue()) === '', 5000, 'the filters cleared');
  await search(page, { state: 'dead' });
  await waitFor(() => page.url().includes('state=dead') && !page.url().includes('limit'), 5000, 'the hash to carry the state');
  await waitFor(async () => (await page.locator('tbody tr[data-id]').count()) === 20, 5000, '20 rows');
  await page.getByRole('button', { name: 'Replay all matching', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Replay 20 dead letters matching these filters\?/);
  service.status = 200;
  await dialog.getByRole('button', { name: 'Replay', exact: true }).click();
  await statusSays(page, 'Replayed 20 dead letters.');
  await waitFor(() => tasks.every((task) => delivered(service).get(task) === 1), 15000, 'all twenty delivered');
  await waitForKind(relay, { dead: 0, pending: 0 });
  await sleep(1000);
  const counts = delivered(service);
  for (const task of tasks) assert.equal(counts.get(task), 1, task);
  assert.equal([...counts.values()].reduce((a, b) => a + b, 0), 20);
  // The list was refreshed: no dead letter is left.
  await waitFor(async () => (await page.locator('tbody tr[data-id]').count()) === 0, 5000, 'the list to empty');
  assert.equal((await admin.get('/admin/notifications/count?state=dead')).count, 0);
  done();
});

test('the overview shows the counts the admin API gives', { timeout: 40000 }, async (t) => {
  const { service, relay, admin, page, done } = await setup(t, { env: { AIRUDDER_RETRY_FOR: '2s' } });
  await postAll(relay, [unique('ok-1'), unique('ok-2'), unique('ok-3')]);
  await waitForKind(relay, { pending: 0, handled: 3 });
  service.status = 500;
  await postAll(relay, [unique('dead-1'), unique('dead-2')]);
  await waitForKind(relay, { dead: 2, pending: 0 }, 20000);
  await admin.post('/admin/kinds/task_notification/pause');
  await postAll(relay, [unique('wait-1'), unique('wait-2'), unique('wait-3'), unique('wait-4')]);
  await waitForKind(relay, { pending: 4 });

  await signedIn(page, relay);
  await page.locator('tr[data-kind="task_notification"]').waitFor();
  const kind = await admin.kind();
  const overview = await admin.get('/admin/overview');
  const stats = await admin.get('/admin/stats');
  const sum = (name) => (overview.activity.kinds.task_notification?.[name] || []).reduce((a, b) => a + b, 0);
  const accepted = stats.kinds.task_notification.answers.find((a) => a.reason === 'accepted').count;
  assert.equal(accepted, 9);
  assert.equal(sum('received'), accepted);

  assert.equal(await cell(page, 'pending'), String(kind.pending));
  assert.equal(await cell(page, 'dead'), String(kind.dead));
  assert.equal(await cell(page, 'paused'), String(kind.paused));
  assert.equal(await cell(page, 'received'), String(accepted));
  assert.equal(await cell(page, 'forwarded'), String(sum('forwarded')));
  assert.equal(await cell(page, 'failed'), String(sum('failed')));
  assert.deepEqual([kind.pending, kind.dead, kind.paused], [4, 2, true]);
  assert.equal(sum('forwarded'), 3);
  // Every kind served has its row, the quiet ones with zeros.
  for (const item of overview.kinds) {
    assert.equal(await cell(page, 'pending', item.kind), String(item.pending), item.kind);
  }
  assert.equal(await cell(page, 'received', 'pds_event'), '0');
  // The chart says the totals.
  const chart = page.locator('figure[data-chart="task_notification"] svg');
  assert.equal(
    await chart.getAttribute('aria-label'),
    `task_notification, last hour: 9 received, 3 forwarded, ${sum('failed')} failed`,
  );
  assert.match(await page.locator('.tiles').textContent(), /Ready/);
  done();
});

test('a refused body is listed, shown, and its replay answers the API\'s 422 plainly', { timeout: 30000 }, async (t) => {
  const { relay, admin, page, done } = await setup(t);
  assert.equal(await post(relay, { task_id: 5 }), 422);
  const { items } = await waitFor(async () => {
    const answer = await admin.get('/admin/rejected');
    return answer.items.length === 1 && answer;
  }, 5000, 'the refused body to be kept');
  const kept = items[0];

  await signedIn(page, relay);
  await page.getByRole('link', { name: 'Refused bodies', exact: true }).click();
  const row = page.locator(`tr[data-id="${kept.id}"]`);
  await row.waitFor();
  assert.ok((await row.textContent()).includes(kept.reason.slice(0, 30)), 'the reason is listed');
  assert.ok((await row.textContent()).includes('422'));
  await page.getByRole('link', { name: `Refused body ${kept.id}`, exact: true }).click();
  await page.getByRole('heading', { name: `Refused body ${kept.id}`, level: 1 }).waitFor();
  assert.ok((await page.locator('.facts').textContent()).includes(kept.reason));
  assert.match(await page.locator('pre.body').textContent(), /"task_id": 5/);

  await page.getByRole('button', { name: 'Replay', exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Replay', exact: true }).click();
  const said = await alertSays(page, `refused body ${kept.id} is still not a valid notification`);
  assert.ok(!said.includes('{'), `said plainly: ${said}`);
  assert.equal(await page.getByRole('dialog').count(), 0);

  // Purged when older than a date after it.
  await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'Refused bodies', exact: true }).click();
  await row.waitFor();
  await page.getByRole('button', { name: 'Purge', exact: true }).click();
  const dialog = page.getByRole('dialog');
  await dialog.getByLabel('Purge refused bodies received before').fill('2099-01-01T00:00');
  assert.match(await dialog.textContent(), /received before 2099-01-01 00:00/);
  await dialog.getByRole('button', { name: 'Purge', exact: true }).click();
  await statusSays(page, 'Purged 1 refused body.');
  await page.getByText('No refused body is kept.').waitFor();
  assert.equal((await admin.get('/admin/rejected')).items.length, 0);
  done();
});

test('the page asks nothing of another origin, under its strict headers', { timeout: 20000 }, async (t) => {
  const { relay, page, requests, origin, done } = await setup(t);
  const response = await fetch(relay.url);
  assert.equal(
    response.headers.get('content-security-policy'),
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  );
  assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
  assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
  assert.match(response.headers.get('content-type'), /^text\/html/);
  const script = await fetch(`http://${relay.admin}/admin/console/app.js`);
  assert.match(script.headers.get('content-type'), /javascript/);
  // No inline script, style or handler in the page as served.
  const html = await response.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)/);
  assert.doesNotMatch(html, /<style|style=|\son[a-z]+=/i);

  // Every view, visited: each request goes to the relay itself.
  await signedIn(page, relay);
  for (const [link, heading] of [['Notifications', 'Notifications'], ['Refused bodies', 'Refused bodies'], ['Overview', 'Overview']]) {
    await page.getByRole('link', { name: link, exact: true }).click();
    await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
  }
  assert.ok(requests.length >= 8, `requests seen: ${requests.length}`);
  assert.ok(requests.every((url) => url.startsWith(`${origin}/`)));
  // Back and forward follow the hash.
  await page.goBack();
  await page.getByRole('heading', { name: 'Refused bodies', level: 1 }).waitFor();
  await page.goForward();
  await page.getByRole('heading', { name: 'Overview', level: 1 }).waitFor();

  // The relay gone: the page says so, and offers to try again.
  await relay.stop();
  await page.getByRole('link', { name: 'Notifications', exact: true }).click();
  await alertSays(page, 'the relay did not answer: ');
  await page.getByRole('button', { name: 'Try again', exact: true }).waitFor();
  done({ refused: true });
});

test('screenshots at 1280x800 and 390x844, with no overflow of the page on a phone', { timeout: 50000 }, async (t) => {
  // No token: the API answers loopback without asking, and no sign-in is shown.
  const { service, relay, admin, page, context, done } = await setup(t, { token: null, env: { AIRUDDER_RETRY_FOR: '2s' } });
  const handled = Array.from({ length: 6 }, (_, i) => `ic${randomUUID().replace(/-/g, '').slice(0, 24)}${i}`);
  await postAll(relay, handled);
  await waitForKind(relay, { pending: 0, handled: 6 });
  service.status = 500;
  const dead = Array.from({ length: 3 }, () => `ic${randomUUID().replace(/-/g, '').slice(0, 26)}`);
  await postAll(relay, dead);
  await waitForKind(relay, { dead: 3, pending: 0 }, 20000);
  await admin.post('/admin/kinds/task_notification/pause');
  await postAll(relay, Array.from({ length: 3 }, () => `ic${randomUUID().replace(/-/g, '').slice(0, 26)}`));
  await waitForKind(relay, { pending: 3 });
  const { items } = await admin.get('/admin/notifications?state=dead&limit=1');
  const deadId = items[0].id;

  await page.goto(relay.url);
  await page.locator('tr[data-kind="task_notification"]').waitFor();
  assert.equal(await page.getByLabel('Admin token').count(), 0, 'no sign-in without a token');
  assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0);

  const shots = [];
  for (const viewport of [{ width: 1280, height: 800 }, { width: 390, height: 844 }]) {
    const size = `${viewport.width}x${viewport.height}`;
    await page.setViewportSize(viewport);
    await page.goto(`${relay.url}#/overview`);
    await page.locator('figure[data-chart="task_notification"]').waitFor();
    await noOverflow(page, viewport, 'overview');
    shots.push(await screenshot(page, `overview-${size}.png`));

    await page.goto(`${relay.url}#/notifications`);
    await waitFor(async () => (await page.locator('tbody tr[data-id]').count()) === 12, 5000, '12 rows');
    await noOverflow(page, viewport, 'notifications');
    shots.push(await screenshot(page, `notifications-${size}.png`));

    await page.goto(`${relay.url}#/notifications/${deadId}`);
    await page.getByRole('heading', { name: `Notification ${deadId}`, level: 1 }).waitFor();
    await noOverflow(page, viewport, 'notification');
    shots.push(await screenshot(page, `notification-${size}.png`));
  }
  t.diagnostic(`screenshots: ${shots.join(', ')}`);
  assert.equal(shots.length, 6);
  assert.ok(context);
  done();
});

/** The document itself is no wider than the viewport (tables scroll inside their wrapper). */
async function noOverflow(page, viewport, what) {
  const { scroll, inner } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    inner: window.innerWidth,
  }));
  assert.ok(scroll <= inner, `${what} at ${viewport.width}: the page is ${scroll} px wide in ${inner}`);
}

test('by keyboard: Tab to a notification, Enter opens it; a dialog takes focus and Escape closes it', { timeout: 30000 }, async (t) => {
  const { service, relay, page, done } = await setup(t);
  const tasks = [unique('key-1'), unique('key-2')];
  await postAll(relay, tasks);
  await waitForKind(relay, { pending: 0, handled: 2 });
  await signedIn(page, relay, '#/notifications');
  await page.locator('tbody tr[data-id]').nth(1).waitFor();

  await page.getByRole('button', { name: 'Search', exact: true }).focus();
  let href = null;
  for (let i = 0; i < 40 && !href; i += 1) {
    await page.keyboard.press('Tab');
    href = await page.evaluate(() => {
      const a = document.activeElement;
      return a && a.matches('a[href^="#/notifications/"]') ? a.getAttribute('href') : null;
    });
  }
  assert.ok(href, 'a notification link is reached by Tab');
  // The focus is visible.
  const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, 'none');
  await page.keyboard.press('Enter');
  const id = href.split('/').pop();
  await page.getByRole('heading', { name: `Notification ${id}`, level: 1 }).waitFor();
  assert.ok(page.url().endsWith(href));

  const replay = page.getByRole('button', { name: 'Replay', exact: true });
  await replay.focus();
  await page.keyboard.press('Enter');
  await page.getByRole('dialog').waitFor();
  assert.ok(await page.evaluate(() => Boolean(document.activeElement?.closest('dialog[open]'))), 'focus is in the dialog');
  await page.keyboard.press('Escape');
  await waitFor(async () => (await page.getByRole('dialog').count()) === 0, 3000, 'the dialog to close');
  assert.ok(await page.evaluate(() => document.activeElement?.textContent === 'Replay'), 'focus back on Replay');
  assert.equal(await page.getByRole('status').textContent(), '', 'nothing was done');
  await sleep(300);
  assert.equal(service.requests.length, 2, 'nothing replayed');
  done();
});
