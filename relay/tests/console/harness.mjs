// What the console's browser tests stand on: a real target service, a real relay process, a
// headless Chromium, and small polling helpers (playwright-core has no `expect`).

import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtemp, readFile, rm, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));

export const RELAY_BIN = process.env.RELAY_BIN || resolve(here, '../../../target/debug/airudder-relay');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SCREENSHOTS = resolve(process.env.SCREENSHOTS || resolve(here, '../../../target/console-screenshots'));
export const TOKEN = 'console-test-token-0123456789';

const EXAMPLE = resolve(here, '../../../tests/data/task_notification.example.json');
const EXAMPLE_TASK_ID = 'ic1a7a8f2bxxx9f5e343a2ec25a9b2';

export const sleep = (ms) => new Promise((done) => setTimeout(done, ms));

/**
 * Polls `fn` until it returns something truthy (returned) or `timeoutMs` passes (throws,
 * saying `what` and the last value or error seen).
 */
export async function waitFor(fn, timeoutMs = 5000, what = 'the condition', everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${seen})`);
    }
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The target service

/**
 * An HTTP service on 127.0.0.1 that records every request and answers `status` (settable,
 * 200 by default) with `{}`.
 */
export async function startService() {
  const requests = [];
  const service = {
    status: 200,
    requests,
    /** The requests whose body's task_id is `taskId`. */
    of: (taskId) => requests.filter((r) => r.taskId === taskId),
    /** How many requests each task id got. */
    counts() {
      const counts = new Map();
      for (const r of requests) counts.set(r.taskId, (counts.get(r.taskId) || 0) + 1);
      return counts;
    },
  };
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      let taskId = null;
      try {
        taskId = JSON.parse(body).task_id ?? null;
      } catch {
        taskId = null;
      }
      const status = service.status;
      requests.push({ method: req.method, url: req.url, headers: req.headers, body, taskId, status, at: Date.now() });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((done, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', done);
  });
  service.port = server.address().port;
  service.url = `http://127.0.0.1:${service.port}/hooks`;
  service.stop = () =>
    new Promise((done) => {
      server.closeAllConnections?.();
      server.close(() => done());
    });
  return service;
}

// ---------------------------------------------------------------------------------------------
// The relay

/**
 * Starts the relay binary forwarding to `service`, on ephemeral ports, with a fresh data dir.
 * Resolves once it has said both of its addresses; `stop()` kills it and removes its dir.
 */
export async function startRelay({ service, env = {}, timeoutMs = 20000 } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'relay-console-'));
  const child = spawn(RELAY_BIN, [], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME || dir,
      AIRUDDER_LISTEN: '127.0.0.1:0',
      AIRUDDER_ADMIN_LISTEN: '127.0.0.1:0',
      AIRUDDER_DATA_DIR: join(dir, 'data'),
      RUST_LOG: 'info',
      ...(service ? { AIRUDDER_FORWARD_URL: `http://127.0.0.1:${service.port}/hooks` } : {}),
      ...env,
    },
    cwd: dir,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const log = [];
  let addr = null;
  let admin = null;
  let exited = null;
  const ready = new Promise((done, fail) => {
    let rest = '';
    const address = (line, marker) => {
      const at = line.indexOf(marker);
      if (at < 0) return null;
      const match = /^[^/"\s]+/.exec(line.slice(at + marker.length));
      return match ? match[0] : null;
    };
    child.stderr.setEncoding('utf8');
    // Read to the end, always: a full pipe would block the relay.
    child.stderr.on('data', (chunk) => {
      rest += chunk;
      const lines = rest.split('\n');
      rest = lines.pop();
      for (const line of lines) {
        if (log.length < 5000) log.push(line);
        addr ??= address(line, 'listening on http://');
        admin ??= address(line, 'admin API on http://');
        if (addr && admin) done();
      }
    });
    child.once('error', fail);
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      fail(new Error(`the relay exited (${code ?? signal}) before it listened:\n${log.slice(-20).join('\n')}`));
    });
  });
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`the relay did not listen within ${timeoutMs} ms:\n${log.slice(-20).join('\n')}`)), timeoutMs);
  });
  const stop = async () => {
    if (!exited) {
      const gone = new Promise((done) => child.once('exit', done));
      child.kill('SIGKILL');
      await Promise.race([gone, sleep(3000)]);
    }
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([ready, timeout]);
    // A binary without the console (another tree's build in a shared target dir) fails here,
    // saying so, rather than in a wait for a page that never comes.
    const page = await fetch(`http://${admin}/admin/`);
    const type = page.headers.get('content-type') || '';
    await page.arrayBuffer();
    if (page.status !== 200 || !type.startsWith('text/html')) {
      throw new Error(`${RELAY_BIN} does not serve the console: GET /admin/ answered ${page.status} ${type}; is it this tree's build?`);
    }
  } catch (err) {
    await stop();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { addr, admin, url: `http://${admin}/admin/`, log, stop, token: env.AIRUDDER_ADMIN_TOKEN || null };
}

// ---------------------------------------------------------------------------------------------
// Talking to the relay

let example = null;

/** The sender's example body, with its task id replaced by `taskId`. */
export async function notification(taskId) {
  example ??= await readFile(EXAMPLE, 'utf8');
  return example.split(EXAMPLE_TASK_ID).join(taskId);
}

/** Posts `body` (a string, or a value sent as JSON) to the relay's task path: its status. */
export async function post(relay, body) {
  const response = await fetch(`http://${relay.addr}/airudder/task`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  await response.arrayBuffer();
  return response.status;
}

/** Posts the example notification for each task id; asserts each was answered 200. */
export async function postAll(relay, taskIds) {
  for (const taskId of taskIds) {
    const status = await post(relay, await notification(taskId));
    if (status !== 200) throw new Error(`posting ${taskId} was answered ${status}`);
  }
}

/** The admin API, for cross-checks: `get(path)` and `post(path)` resolve to the JSON. */
export function adminApi(relay, token = relay.token) {
  const call = async (method, path) => {
    const headers = { accept: 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (method === 'POST') headers['content-type'] = 'application/json';
    const response = await fetch(`http://${relay.admin}${path}`, {
      method,
      headers,
      body: method === 'POST' ? '{}' : undefined,
    });
    const text = await response.text();
    let json = null;
    try {
      json = JSON.parse(text);
    } catch {
      json = null;
    }
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return json;
  };
  return {
    get: (path) => call('GET', path),
    post: (path) => call('POST', path),
    /** The task_notification row of /admin/kinds. */
    async kind(kind = 'task_notification') {
      const { items } = await call('GET', '/admin/kinds');
      return items.find((item) => item.kind === kind);
    },
  };
}

/** Waits until the relay holds `dead` dead letters (and `pending` pending, when given). */
export async function waitForKind(relay, { dead, pending, handled }, timeoutMs = 15000) {
  const admin = adminApi(relay);
  return waitFor(
    async () => {
      const row = await admin.kind();
      if (dead !== undefined && row.dead !== dead) return false;
      if (pending !== undefined && row.pending !== pending) return false;
      if (handled !== undefined) {
        const { count } = await admin.get('/admin/notifications/count?state=handled');
        if (count !== handled) return false;
      }
      return row;
    },
    timeoutMs,
    `dead=${dead} pending=${pending} handled=${handled}`,
    100,
  );
}

// ---------------------------------------------------------------------------------------------
// The browser

export const LAUNCH_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: LAUNCH_ARGS });
}

/**
 * A new context and page on `relay`'s console origin, watching every request the page makes
 * and every console error. `check()` asserts none went elsewhere and none was an error.
 */
export async function openConsole(browser, relay, { viewport = { width: 1280, height: 800 }, context: given } = {}) {
  const context = given || (await browser.newContext({ viewport, timezoneId: 'UTC', locale: 'en-US' }));
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  const origin = `http://${relay.admin}`;
  const requests = [];
  const errors = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  // Chromium logs each answer of 400 or more as a console error: the API's refusals that a
  // test causes on purpose (401 to the sign-in's probe, 409 and 422 to a replay) are expected;
  // any other (a missing file, a 500) and every other error (a CSP violation, an exception)
  // fails the test.
  const check = ({ allow = [401, 409, 422], refused = false } = {}) => {
    const foreign = requests.filter((url) => !url.startsWith(`${origin}/`) && !url.startsWith('data:'));
    if (foreign.length) throw new Error(`requests to another origin: ${foreign.join(', ')}`);
    const expected = new RegExp(`^console: Failed to load resource: the server responded with a status of (${allow.join('|')}) `);
    const gone = /^console: Failed to load resource: net::ERR_CONNECTION_REFUSED/;
    const unexpected = errors.filter((error) => !expected.test(error) && !(refused && gone.test(error)));
    if (unexpected.length) throw new Error(`errors in the page:\n${unexpected.join('\n')}`);
  };
  return { context, page, requests, errors, check, origin, close: () => (given ? page.close() : context.close()) };
}

/** Opens the console and signs in with `token` when the relay asks for one. */
export async function signedIn(page, relay, hash = '#/overview') {
  await page.goto(`http://${relay.admin}/admin/${hash}`);
  if (relay.token) {
    await page.getByLabel('Admin token').fill(relay.token);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  }
  await page.getByRole('navigation', { name: 'Console' }).waitFor();
}

/** The text of the page's `role=status` region, once it contains `text`. */
export async function statusSays(page, text, timeoutMs = 10000) {
  const status = page.getByRole('status');
  await waitFor(async () => ((await status.textContent()) || '').includes(text), timeoutMs, `the status to say "${text}"`);
  return status.textContent();
}

/** The alert's text, once it contains `text`. */
export async function alertSays(page, text, timeoutMs = 10000) {
  const alert = page.getByRole('alert');
  await waitFor(async () => ((await alert.textContent()) || '').includes(text), timeoutMs, `the alert to say "${text}"`);
  return alert.textContent();
}

export async function screenshot(page, name) {
  await mkdir(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}
