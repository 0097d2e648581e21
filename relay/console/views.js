// The console's views: each renders into `ctx.main` from the admin API's answers. The DOM is
// built node by node (never from HTML text): what the relay holds is shown as text only.

import { api } from './api.js';
import { maskBody, maskText, pretty } from './mask.js';
import { activityChart, legend, totals } from './chart.js';

// ---------------------------------------------------------------------------------------------
// DOM helpers

/**
 * An element: `h('a', { href, class: 'x', onclick: fn, dataset: {...} }, 'text', child)`.
 * Handlers are listeners, attributes are attributes; `null`/`false` ones are left out.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      node.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      node.className = value;
    } else if (name === 'dataset') {
      for (const [key, data] of Object.entries(value)) node.dataset[key] = String(data);
    } else if (name === 'text') {
      node.textContent = String(value);
    } else if (value === true) {
      node.setAttribute(name, '');
    } else {
      node.setAttribute(name, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces a node's children only if its text changed (no reflow, no flicker, focus kept). */
function setText(node, text) {
  const value = String(text);
  if (node.textContent !== value) node.textContent = value;
}

// ---------------------------------------------------------------------------------------------
// Words and times

export function plural(count, one, many = `${one}s`) {
  return `${count} ${count === 1 ? one : many}`;
}

const pad2 = (n) => String(n).padStart(2, '0');

/** `2026-12-03 15:01:05`, in the browser's time zone. */
export function formatTime(iso) {
  if (!iso) return '—';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return String(iso);
  return (
    `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())} ` +
    `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`
  );
}

/** "just now", "42 s ago", "3 min ago", "2 h ago", "5 d ago" (or "in 30 s" for the future). */
export function ago(iso, now = Date.now()) {
  if (!iso) return '—';
  const at = new Date(iso).getTime();
  if (Number.isNaN(at)) return String(iso);
  const seconds = Math.round((now - at) / 1000);
  const span = Math.abs(seconds);
  let words;
  if (span < 5) return seconds >= 0 ? 'just now' : 'now';
  if (span < 60) words = `${span} s`;
  else if (span < 3600) words = `${Math.floor(span / 60)} min`;
  else if (span < 86400 * 2) words = `${Math.floor(span / 3600)} h`;
  else words = `${Math.floor(span / 86400)} d`;
  return seconds >= 0 ? `${words} ago` : `in ${words}`;
}

/** A time cell: the local time, the exact UTC time in its title. */
function time(iso, { relative = false } = {}) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  return h('time', { datetime: iso, title: iso }, relative ? ago(iso) : formatTime(iso));
}

/** The value of a `datetime-local` input for an RFC 3339 time (local time, to the minute). */
export function toLocalInput(iso) {
  if (!iso) return '';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return '';
  const base =
    `${date.getFullYear()}-${pad2(date.getMonth() + 1)}-${pad2(date.getDate())}` +
    `T${pad2(date.getHours())}:${pad2(date.getMinutes())}`;
  return date.getSeconds() ? `${base}:${pad2(date.getSeconds())}` : base;
}

/** An RFC 3339 UTC time (`2026-12-03T15:01:00Z`) for a `datetime-local` value, or ''. */
export function fromLocalInput(value) {
  if (!value) return '';
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return '';
  return date.toISOString().replace(/\.000Z$/, 'Z');
}

/** A time as the dialogs name it: local time and its UTC form. */
function spelledTime(iso) {
  const local = formatTime(iso);
  const utc = new Date(iso).toISOString().replace(/\.000Z$/, 'Z');
  return local === utc.replace('T', ' ').replace('Z', '') ? `${utc.replace('T', ' ').replace('Z', '')} UTC` : `${local} (${utc})`;
}

// ---------------------------------------------------------------------------------------------
// Pieces

function pill(text, tone) {
  return h('span', { class: `pill pill-${tone}` }, text);
}

const STATE_TONE = { pending: 'warn', handled: 'ok', dead: 'bad' };
const OUTCOME_TONE = { ok: 'ok', error: 'bad', timeout: 'bad', panic: 'bad' };

function statePill(state) {
  return pill(state, STATE_TONE[state] || 'neutral');
}

function tableWrap(table, label) {
  return h('div', { class: 'table-wrap', role: 'region', 'aria-label': label, tabindex: '0' }, table);
}

function heading(title, ...extra) {
  return h('div', { class: 'page-head' }, h('h1', { tabindex: '-1' }, title), ...extra);
}

function button(label, onclick, { tone = 'secondary', small = false, ...props } = {}) {
  return h(
    'button',
    { type: 'button', class: `btn btn-${tone}${small ? ' btn-small' : ''}`, onclick, ...props },
    label,
  );
}

/** Runs `work` with `btn` disabled and marked busy, so that one click is one action. */
async function busy(btn, work) {
  if (btn) {
    btn.disabled = true;
    btn.setAttribute('aria-busy', 'true');
  }
  try {
    return await work();
  } finally {
    if (btn) {
      btn.disabled = false;
      btn.removeAttribute('aria-busy');
    }
  }
}

let dialogs = 0;

/**
 * A modal confirmation: resolves true when confirmed, false when cancelled (the Cancel button
 * or Escape). `content` are nodes shown under the question; `focus` is 'confirm', 'cancel' or
 * an element inside `content`.
 */
export function confirmDialog({ title, text, content = [], confirm, tone = 'primary', focus = 'confirm' }) {
  dialogs += 1;
  const titleId = `dialog-title-${dialogs}`;
  const textId = `dialog-text-${dialogs}`;
  const opener = document.activeElement;
  const cancelBtn = h('button', { type: 'button', class: 'btn btn-secondary' }, 'Cancel');
  const confirmBtn = h('button', { type: 'button', class: `btn btn-${tone}` }, confirm);
  const dialog = h(
    'dialog',
    { class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': textId },
    h('h2', { id: titleId, class: 'dialog-title' }, title),
    h('p', { id: textId, class: 'dialog-text' }, text),
    ...content,
    h('div', { class: 'dialog-actions' }, cancelBtn, confirmBtn),
  );
  const target = focus === 'cancel' ? cancelBtn : focus === 'confirm' ? confirmBtn : focus;
  if (target) target.setAttribute('autofocus', '');
  document.body.append(dialog);
  return new Promise((resolve) => {
    cancelBtn.addEventListener('click', () => dialog.close('cancel'));
    confirmBtn.addEventListener('click', () => dialog.close('confirm'));
    dialog.addEventListener('close', () => {
      const confirmed = dialog.returnValue === 'confirm';
      dialog.remove();
      if (opener && opener instanceof HTMLElement && opener.isConnected) opener.focus();
      resolve(confirmed);
    });
    dialog.showModal();
  });
}

/** A "Show personal data" toggle: calls `onChange(shown)` on each press. */
function revealToggle(onChange) {
  const toggle = h(
    'button',
    { type: 'button', class: 'btn btn-secondary btn-small', 'aria-pressed': 'false' },
    'Show personal data',
  );
  toggle.addEventListener('click', () => {
    const shown = toggle.getAttribute('aria-pressed') !== 'true';
    toggle.setAttribute('aria-pressed', String(shown));
    onChange(shown);
  });
  return toggle;
}

/** A body in a `<pre>`, masked until the toggle is pressed. */
function bodyCard(body, title = 'Body') {
  const code = h('code', {}, pretty(maskBody(body)));
  const note = h('p', { class: 'hint' }, 'Phone numbers and customer variables are masked.');
  const toggle = revealToggle((shown) => {
    code.textContent = pretty(shown ? body : maskBody(body));
    note.textContent = shown
      ? 'Showing the body as received, personal data included.'
      : 'Phone numbers and customer variables are masked.';
  });
  return h(
    'section',
    { class: 'card', 'aria-labelledby': 'body-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'body-title' }, title), toggle),
    note,
    h('pre', { class: 'body', tabindex: '0', 'aria-label': title }, code),
  );
}

/** A definition list of facts: `[label, value]` pairs, values nodes or text. */
function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs
      .filter((pair) => pair)
      .map(([label, value, cls]) => h('div', { class: `fact${cls ? ` ${cls}` : ''}` }, h('dt', {}, label), h('dd', {}, value))),
  );
}

/** The dialog asking for a date-time before which old records are purged, then confirming. */
async function askPurge({ what, input: label, confirmText }) {
  const inputId = `purge-before-${dialogs + 1}`;
  const input = h('input', {
    id: inputId,
    type: 'datetime-local',
    required: true,
    value: toLocalInput(new Date(Date.now() - 30 * 86400000).toISOString()).slice(0, 16),
  });
  const said = h('p', { class: 'dialog-note' });
  const update = () => {
    const before = fromLocalInput(input.value);
    said.textContent = before ? confirmText(spelledTime(before)) : 'Choose a date and time.';
  };
  input.addEventListener('input', update);
  update();
  const ok = await confirmDialog({
    title: `Purge ${what}`,
    text: `${what[0].toUpperCase()}${what.slice(1)} are deleted for good: they cannot be replayed afterwards.`,
    content: [h('div', { class: 'field' }, h('label', { for: inputId }, label), input), said],
    confirm: 'Purge',
    tone: 'danger',
    focus: input,
  });
  if (!ok) return null;
  const before = fromLocalInput(input.value);
  return before || null;
}

// ---------------------------------------------------------------------------------------------
// Sign-in

export function signIn(ctx, { onToken }) {
  const input = h('input', {
    id: 'admin-token',
    name: 'token',
    type: 'password',
    autocomplete: 'current-password',
    spellcheck: 'false',
    required: true,
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'signin-form', novalidate: true },
    h('div', { class: 'field' }, h('label', { for: 'admin-token' }, 'Admin token'), input),
    submit,
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      ctx.alert('Type the admin token (AIRUDDER_ADMIN_TOKEN) first.');
      input.focus();
      return;
    }
    await busy(submit, () => onToken(value));
    if (input.isConnected) {
      input.select();
      input.focus();
    }
  });
  ctx.show(
    h(
      'div',
      { class: 'signin' },
      h(
        'section',
        { class: 'card signin-card', 'aria-labelledby': 'signin-title' },
        h('h1', { id: 'signin-title', tabindex: '-1' }, 'Sign in'),
        h(
          'p',
          { class: 'muted' },
          "This relay's admin API asks for its token (AIRUDDER_ADMIN_TOKEN). It is kept in this tab only, until you sign out or close the tab.",
        ),
        form,
      ),
    ),
  );
  input.focus();
}

// ---------------------------------------------------------------------------------------------
// Overview

const KIND_FIELDS = ['received', 'forwarded', 'failed'];

export async function overview(ctx) {
  const updated = h('span', { class: 'muted' }, '');
  const tiles = h('div', { class: 'tiles' });
  const tbody = h('tbody');
  const charts = h('div', { class: 'charts' });
  const quiet = h('p', { class: 'muted quiet' });
  const rows = new Map();
  let failing = false;

  const table = h(
    'table',
    { class: 'table' },
    h('caption', { class: 'sr-only' }, 'Each kind: forwarding or paused, what waits, and the last hour'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col' }, 'Kind'),
        h('th', { scope: 'col' }, 'Forwarding'),
        h('th', { scope: 'col', class: 'num' }, 'Pending'),
        h('th', { scope: 'col' }, 'Oldest pending'),
        h('th', { scope: 'col', class: 'num' }, 'Dead letters'),
        h('th', { scope: 'col', class: 'num' }, 'Received 1 h'),
        h('th', { scope: 'col', class: 'num' }, 'Forwarded 1 h'),
        h('th', { scope: 'col', class: 'num' }, 'Failed 1 h'),
        h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Action')),
      ),
    ),
    tbody,
  );

  async function toggle(kind) {
    const row = rows.get(kind);
    const paused = row.tr.dataset.paused === 'true';
    const ok = await confirmDialog(
      paused
        ? {
            title: `Resume ${kind}`,
            text: `Resume forwarding ${kind}? Its ${plural(Number(row.tr.dataset.pending) || 0, 'pending notification')} are forwarded as they fall due.`,
            confirm: 'Resume',
          }
        : {
            title: `Pause ${kind}`,
            text: `Pause forwarding ${kind}? Notifications are still taken in, stored and answered 200; none is forwarded until you resume.`,
            confirm: 'Pause',
            tone: 'warn',
          },
    );
    if (!ok) return;
    try {
      await busy(row.action, () => (paused ? api.resume(kind) : api.pause(kind)));
      ctx.say(
        paused
          ? `${kind} is forwarding again.`
          : `${kind} is paused: its notifications are stored until you resume it.`,
      );
    } catch (err) {
      ctx.fail(err);
    }
    await load();
  }

  function row(kind) {
    let found = rows.get(kind);
    if (found) return found;
    const cell = (field, cls = 'num') => h('td', { class: cls, dataset: { field } });
    const state = cell('paused', '');
    const pending = cell('pending');
    const oldest = h('td', { class: 'nowrap' });
    const dead = cell('dead');
    const counts = Object.fromEntries(KIND_FIELDS.map((f) => [f, cell(f)]));
    const action = button('Pause', () => toggle(kind), { small: true });
    const tr = h(
      'tr',
      { dataset: { kind } },
      h('th', { scope: 'row' }, h('a', { href: `#/notifications?kind=${encodeURIComponent(kind)}`, class: 'mono' }, kind)),
      state,
      pending,
      oldest,
      dead,
      counts.received,
      counts.forwarded,
      counts.failed,
      h('td', { class: 'actions' }, action),
    );
    found = { tr, state, pending, oldest, dead, counts, action };
    rows.set(kind, found);
    return found;
  }

  function tile(label, value, detail, tone) {
    return h(
      'div',
      { class: `tile${tone ? ` tile-${tone}` : ''}` },
      h('div', { class: 'tile-label' }, label),
      h('div', { class: 'tile-value' }, value),
      detail ? h('div', { class: 'tile-detail' }, detail) : null,
    );
  }

  function draw(data) {
    const store = data.store || {};
    const activity = data.activity || { minutes: [], kinds: {} };
    const minutes = activity.minutes || [];
    const series = (kind) => (activity.kinds && activity.kinds[kind]) || {};
    const hasStore = store.backend && store.backend !== 'none';
    tiles.replaceChildren(
      tile(
        'Readiness',
        data.ready ? pill('Ready', 'ok') : pill('Not ready', 'bad'),
        data.ready ? 'taking in and forwarding' : 'the main listener answers /ready with 503',
      ),
      tile(
        'Store',
        h('span', {}, store.backend || '—', ' ', store.answers ? pill('answering', 'ok') : pill('not answering', 'bad')),
        store.error
          ? maskText(store.error)
          : store.recovering
            ? `recovering now · ${plural(store.recoveries || 0, 'recovery', 'recoveries')}`
            : hasStore
              ? `${plural(store.recoveries || 0, 'recovery', 'recoveries')} since start`
              : 'keeps nothing (AIRUDDER_ACK)',
        store.answers ? null : 'bad',
      ),
      tile(
        'Pending',
        h('span', { class: 'big-number' }, String(store.pending ?? 0)),
        store.oldest_pending_at
          ? h('span', {}, 'oldest received ', time(store.oldest_pending_at, { relative: true }))
          : 'none waiting',
        null,
      ),
      tile(
        'Dead letters',
        h('a', { href: '#/notifications?state=dead', class: 'big-number' }, String(store.dead_letters ?? 0)),
        'given up: replay them from Notifications',
        store.dead_letters ? 'bad' : null,
      ),
      // Each broker forwarded to: its connection, and why it is down (what waits stays stored).
      ...(data.brokers || []).map((broker) =>
        h(
          'div',
          { class: `tile${broker.connected ? '' : ' tile-bad'}`, dataset: { broker: broker.destination } },
          h('div', { class: 'tile-label' }, 'Broker'),
          h('div', { class: 'tile-value' }, broker.connected ? pill('connected', 'ok') : pill('not connected', 'bad')),
          h('div', { class: 'tile-detail mono' }, broker.destination),
          broker.connected || !broker.last_error
            ? null
            : h('div', { class: 'tile-detail' }, maskText(broker.last_error)),
        ),
      ),
    );

    const seen = new Set();
    const ordered = [];
    for (const kind of data.kinds || []) {
      seen.add(kind.kind);
      const r = row(kind.kind);
      ordered.push(r.tr);
      r.tr.dataset.paused = String(Boolean(kind.paused));
      r.tr.dataset.pending = String(kind.pending ?? 0);
      r.state.dataset.value = String(Boolean(kind.paused));
      const wanted = kind.paused ? 'Paused' : 'Forwarding';
      if (r.state.textContent !== wanted) r.state.replaceChildren(pill(wanted, kind.paused ? 'warn' : 'ok'));
      setText(r.pending, kind.pending ?? 0);
      setText(r.dead, kind.dead ?? 0);
      r.oldest.replaceChildren(kind.oldest_pending_at ? time(kind.oldest_pending_at, { relative: true }) : h('span', { class: 'muted' }, '—'));
      const t = totals(series(kind.kind));
      for (const field of KIND_FIELDS) setText(r.counts[field], t[field]);
      setText(r.action, kind.paused ? 'Resume' : 'Pause');
      r.action.className = `btn btn-small ${kind.paused ? 'btn-primary' : 'btn-secondary'}`;
    }
    for (const [kind, r] of rows) {
      if (!seen.has(kind)) {
        r.tr.remove();
        rows.delete(kind);
      }
    }
    // Keep the rows in the API's order, moving none that is already in place (focus stays).
    ordered.forEach((tr, index) => {
      if (tbody.children[index] !== tr) tbody.insertBefore(tr, tbody.children[index] || null);
    });

    const busyKinds = (data.kinds || []).filter((k) => {
      const t = totals(series(k.kind));
      return t.received + t.forwarded + t.failed > 0;
    });
    const idle = (data.kinds || []).filter((k) => !busyKinds.includes(k));
    charts.replaceChildren(
      ...busyKinds.map((k) =>
        h(
          'figure',
          { class: 'chart-card', dataset: { chart: k.kind } },
          h('figcaption', {}, h('span', { class: 'mono' }, k.kind), k.paused ? pill('Paused', 'warn') : null),
          activityChart(k.kind, minutes, series(k.kind)),
          legend(series(k.kind)),
        ),
      ),
    );
    quiet.textContent = busyKinds.length
      ? idle.length
        ? `No traffic in the last hour: ${idle.map((k) => k.kind).join(', ')}.`
        : ''
      : 'No traffic in the last hour.';
    updated.textContent = `Refreshes every 5 s · updated ${formatTime(new Date().toISOString()).slice(11)}`;
  }

  async function load() {
    try {
      const data = await api.overview();
      if (!ctx.alive()) return;
      draw(data);
      if (failing) ctx.clearAlert();
      failing = false;
    } catch (err) {
      if (!ctx.alive()) return;
      failing = true;
      updated.textContent = 'Not refreshed: see the message above';
      ctx.fail(err);
    }
  }

  const data = await api.overview();
  if (!ctx.alive()) return;
  draw(data);
  ctx.show(
    heading('Overview', updated),
    tiles,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'kinds-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'kinds-title' }, 'Kinds')),
      tableWrap(table, 'Kinds'),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'traffic-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'traffic-title' }, 'Traffic, last hour'), h('span', { class: 'muted' }, 'per minute')),
      charts,
      quiet,
    ),
  );
  // Every 5 s, one call at a time, until the view is left.
  let timer = null;
  const next = () => {
    timer = setTimeout(async () => {
      await load();
      if (ctx.alive()) next();
    }, 5000);
  };
  next();
  ctx.onLeave(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------------
// Notifications

const FILTER_NAMES = ['task_id', 'state', 'kind', 'error', 'since', 'until'];
const PAGE_SIZE = 50;

/** The filters in a hash's parameters, empty ones left out. */
export function filtersOf(params) {
  const filters = {};
  for (const name of FILTER_NAMES) {
    const value = (params.get(name) || '').trim();
    if (value) filters[name] = value;
  }
  return filters;
}

function describeFilters(filters) {
  const words = [];
  if (filters.kind) words.push(`kind ${filters.kind}`);
  if (filters.task_id) words.push(`task id ${maskText(filters.task_id)}`);
  if (filters.error) words.push(`error containing "${maskText(filters.error)}"`);
  if (filters.since) words.push(`received since ${spelledTime(filters.since)}`);
  if (filters.until) words.push(`received until ${spelledTime(filters.until)}`);
  return words.length ? words.join('; ') : 'no filter: every dead letter';
}

export async function notifications(ctx, params) {
  const filters = filtersOf(params);
  const limit = Math.min(1000, Math.max(1, Number.parseInt(params.get('limit'), 10) || PAGE_SIZE));
  const field = (id, label, control) => h('div', { class: 'field' }, h('label', { for: id }, label), control);
  const taskId = h('input', { id: 'f-task', name: 'task_id', type: 'search', autocomplete: 'off', spellcheck: 'false', value: filters.task_id || '' });
  const state = h(
    'select',
    { id: 'f-state', name: 'state' },
    h('option', { value: '' }, 'any'),
    ['pending', 'handled', 'dead'].map((s) => h('option', { value: s }, s)),
  );
  state.value = filters.state || '';
  const kind = h('select', { id: 'f-kind', name: 'kind' }, h('option', { value: '' }, 'any'));
  const error = h('input', { id: 'f-error', name: 'error', type: 'search', autocomplete: 'off', value: filters.error || '' });
  const since = h('input', { id: 'f-since', name: 'since', type: 'datetime-local', value: toLocalInput(filters.since) });
  const until = h('input', { id: 'f-until', name: 'until', type: 'datetime-local', value: toLocalInput(filters.until) });
  const form = h(
    'form',
    { class: 'filters card', role: 'search', 'aria-label': 'Filter notifications' },
    field('f-task', 'Task id', taskId),
    field('f-state', 'State', state),
    field('f-kind', 'Kind', kind),
    field('f-error', 'Error text', error),
    field('f-since', 'Received since', since),
    field('f-until', 'Received until', until),
    h(
      'div',
      { class: 'field field-actions' },
      h('button', { type: 'submit', class: 'btn btn-primary' }, 'Search'),
      h('a', { href: '#/notifications', class: 'btn btn-ghost' }, 'Clear'),
    ),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const wanted = {
      state: state.value,
      task_id: taskId.value.trim(),
      kind: kind.value,
      error: error.value.trim(),
      since: fromLocalInput(since.value),
      until: fromLocalInput(until.value),
    };
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(wanted)) if (value) search.set(name, value);
    if (limit !== PAGE_SIZE) search.set('limit', String(limit));
    const text = search.toString();
    ctx.go(`#/notifications${text ? `?${text}` : ''}`);
  });

  const countLine = h('p', { class: 'count', 'aria-live': 'polite' });
  const tools = h('div', { class: 'toolbar-actions' });
  const tbody = h('tbody');
  const prev = button('Previous page', () => page(stack.pop(), false), { small: true });
  const nextBtn = button('Next page', () => page(nextAfter, true), { small: true });
  const pageNo = h('span', { class: 'muted' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, pageNo, nextBtn);
  let after = 0;
  let nextAfter = null;
  const stack = [];

  const table = h(
    'table',
    { class: 'table' },
    h('caption', { class: 'sr-only' }, 'Notifications matching the filters'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col', class: 'num' }, 'Id'),
        h('th', { scope: 'col' }, 'State'),
        h('th', { scope: 'col' }, 'Task id'),
        h('th', { scope: 'col' }, 'Kind'),
        h('th', { scope: 'col' }, 'Received'),
        h('th', { scope: 'col', class: 'num' }, 'Attempts'),
        h('th', { scope: 'col' }, 'Last error'),
      ),
    ),
    tbody,
  );

  function itemRow(item) {
    const task = item.task_id ? maskText(item.task_id) : null;
    const err = item.last_error ? maskText(item.last_error) : null;
    return h(
      'tr',
      { dataset: { id: item.id, state: item.state } },
      h('td', { class: 'num' }, h('a', { href: `#/notifications/${item.id}`, class: 'mono', 'aria-label': `Notification ${item.id}` }, String(item.id))),
      h(
        'td',
        { class: 'nowrap' },
        statePill(item.state),
        item.held_back_by ? h('span', { class: 'muted small' }, ' behind ', h('a', { href: `#/notifications/${item.held_back_by}` }, `#${item.held_back_by}`)) : null,
      ),
      h('td', { class: 'mono truncate', title: task || '', dataset: { field: 'task_id' } }, task || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'mono nowrap' }, item.kind),
      h('td', { class: 'nowrap' }, time(item.received_at)),
      h('td', { class: 'num' }, String(item.attempts ?? 0)),
      h('td', { class: 'truncate error-text', title: err || '' }, err || h('span', { class: 'muted' }, '—')),
    );
  }

  async function page(at, forward) {
    const asked = at || 0;
    try {
      const answer = await busy(forward ? nextBtn : prev, () => api.notifications({ ...filters, after: asked, limit }));
      if (!ctx.alive()) return;
      if (forward) stack.push(after);
      after = asked;
      fill(answer);
    } catch (err) {
      if (forward === false) stack.push(asked);
      ctx.fail(err);
    }
  }

  function fill(answer) {
    const items = answer.items || [];
    nextAfter = answer.next_after ?? null;
    tbody.replaceChildren(
      ...(items.length
        ? items.map(itemRow)
        : [h('tr', {}, h('td', { colspan: '7', class: 'empty' }, stack.length ? 'No more notifications.' : 'No notification matches these filters.'))]),
    );
    prev.disabled = stack.length === 0;
    nextBtn.disabled = nextAfter === null;
    pageNo.textContent = `Page ${stack.length + 1}`;
    pager.hidden = stack.length === 0 && nextAfter === null;
  }

  async function count() {
    try {
      const answer = await api.count(filters);
      if (!ctx.alive()) return null;
      const n = answer.count;
      const what = filters.state ? `${filters.state} notification` : 'notification';
      countLine.textContent = `${plural(n, what)} match${n === 1 ? 'es' : ''}${Object.keys(filters).length ? ' these filters' : ''}.`;
      return n;
    } catch (err) {
      if (ctx.alive()) ctx.fail(err);
      return null;
    }
  }

  async function reload() {
    stack.length = 0;
    after = 0;
    const [answer] = await Promise.all([api.notifications({ ...filters, limit }), count()]);
    if (!ctx.alive()) return;
    fill(answer);
  }

  async function replayAll(btn) {
    const bulk = { ...filters };
    delete bulk.state;
    let n;
    try {
      n = (await busy(btn, () => api.count({ ...bulk, state: 'dead' }))).count;
    } catch (err) {
      ctx.fail(err);
      return;
    }
    if (!ctx.alive()) return;
    if (!n) {
      ctx.say('No dead letter matches these filters: nothing to replay.');
      return;
    }
    const ok = await confirmDialog({
      title: 'Replay dead letters',
      text: `Replay ${plural(n, 'dead letter')} matching these filters? Each is forwarded again, once.`,
      content: [h('p', { class: 'dialog-note' }, `Filters: ${describeFilters(bulk)}.`)],
      confirm: 'Replay',
      focus: 'cancel',
    });
    if (!ok) return;
    try {
      const answer = await busy(btn, () => api.replayDead(bulk));
      ctx.say(`Replayed ${plural(answer.replayed, 'dead letter')}.`);
    } catch (err) {
      ctx.fail(err);
    }
    if (ctx.alive()) await reload().catch((err) => ctx.fail(err));
  }

  async function purge(btn) {
    const before = await askPurge({
      what: 'dead letters',
      input: 'Purge dead letters that died before',
      confirmText: (when) => `Dead letters that died before ${when} will be deleted.`,
    });
    if (!before) return;
    try {
      const answer = await busy(btn, () => api.purgeDead(before));
      ctx.say(`Purged ${plural(answer.purged, 'dead letter')}.`);
    } catch (err) {
      ctx.fail(err);
    }
    if (ctx.alive()) await reload().catch((err) => ctx.fail(err));
  }

  if (filters.state === 'dead') {
    const replayBtn = button('Replay all matching', () => replayAll(replayBtn), { tone: 'primary' });
    const purgeBtn = button('Purge', () => purge(purgeBtn), { tone: 'secondary', title: 'Purge old dead letters' });
    tools.append(replayBtn, purgeBtn);
  } else {
    tools.append(h('a', { href: '#/notifications?state=dead', class: 'btn btn-ghost btn-small' }, 'Show dead letters'));
  }

  const [kinds] = await Promise.all([api.kinds(), reload()]);
  if (!ctx.alive()) return;
  const names = (kinds.items || []).map((k) => k.kind);
  if (filters.kind && !names.includes(filters.kind)) names.push(filters.kind);
  kind.append(...names.map((name) => h('option', { value: name }, name)));
  kind.value = filters.kind || '';
  ctx.remember(`#/notifications${params.toString() ? `?${params}` : ''}`);
  ctx.show(
    heading('Notifications'),
    form,
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'list-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'list-title', class: 'sr-only' }, 'Results'), countLine, tools),
      tableWrap(table, 'Notifications'),
      pager,
    ),
  );
}

export async function notification(ctx, id) {
  const item = await api.notification(id);
  if (!ctx.alive()) return;
  let shown = false;
  const personal = [];
  /** Text that may hold personal data: masked until the body's toggle shows it. */
  const sensitive = (text, cls = '') => {
    const node = h('span', { class: cls }, maskText(text));
    personal.push([node, text]);
    return node;
  };
  const pending = item.state === 'pending';
  const actions = [];
  if (item.state === 'dead' || item.state === 'handled') {
    const replayBtn = button('Replay', () => replay(replayBtn), { tone: 'primary' });
    actions.push(replayBtn);
  }

  async function replay(btn) {
    const ok = await confirmDialog({
      title: `Replay notification ${item.id}`,
      text: `Replay notification ${item.id}? It will be forwarded again, once.`,
      confirm: 'Replay',
    });
    if (!ok) return;
    try {
      await busy(btn, () => api.replay(item.id));
      ctx.say(`Notification ${item.id} is pending again, due now.`);
      ctx.reload();
    } catch (err) {
      ctx.fail(err);
    }
  }

  const history = item.attempts || [];
  const started = item.attempts_started ?? history.length;
  const attemptsTable = h(
    'table',
    { class: 'table' },
    h('caption', { class: 'sr-only' }, `Attempts of notification ${item.id}, oldest first`),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col', class: 'num' }, '#'),
        h('th', { scope: 'col' }, 'When'),
        h('th', { scope: 'col', class: 'num' }, 'Duration ms'),
        h('th', { scope: 'col' }, 'Outcome'),
        h('th', { scope: 'col', class: 'num' }, 'Status'),
        h('th', { scope: 'col' }, 'Error'),
      ),
    ),
    h(
      'tbody',
      {},
      history.length
        ? history.map((attempt, index) =>
            h(
              'tr',
              {},
              h('td', { class: 'num muted' }, String(started - history.length + index + 1)),
              h('td', { class: 'nowrap' }, time(attempt.at)),
              h('td', { class: 'num' }, attempt.duration_ms ?? '—'),
              h('td', {}, pill(attempt.outcome, OUTCOME_TONE[attempt.outcome] || 'neutral')),
              h('td', { class: 'num', dataset: { field: 'status' } }, attempt.status ?? '—'),
              h('td', { class: 'error-text wrap' }, attempt.error ? sensitive(attempt.error) : h('span', { class: 'muted' }, '—')),
            ),
          )
        : h('tr', {}, h('td', { colspan: '6', class: 'empty' }, 'No attempt yet.')),
    ),
  );
  const back = ctx.remembered() || '#/notifications';
  const body = bodyCard(item.body);
  body.querySelector('[aria-pressed]').addEventListener('click', (event) => {
    shown = event.currentTarget.getAttribute('aria-pressed') === 'true';
    for (const [node, text] of personal) node.textContent = shown ? text : maskText(text);
  });
  ctx.show(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: back }, 'Notifications'), h('span', { 'aria-hidden': 'true' }, ' / '), h('span', {}, String(item.id))),
    heading(`Notification ${item.id}`, statePill(item.state), h('div', { class: 'head-actions' }, actions)),
    h(
      'section',
      { class: 'card', 'aria-label': 'Details' },
      facts([
        ['Kind', h('span', { class: 'mono' }, item.kind)],
        ['State', statePill(item.state)],
        ['Task id', item.task_id ? sensitive(item.task_id, 'mono') : h('span', { class: 'muted' }, '—')],
        ['Received', time(item.received_at)],
        ['Attempts started', String(started)],
        pending ? ['Due at', h('span', {}, time(item.due_at), item.due_at ? h('span', { class: 'muted' }, ` (${ago(item.due_at)})`) : null)] : null,
        ['webhook-id', item.webhook_id ? h('code', { class: 'mono', dataset: { field: 'webhook-id' } }, item.webhook_id) : h('span', { class: 'muted' }, 'not known (the kind is no longer served)'), 'fact-wide'],
        item.order_key ? ['Order key', h('code', { class: 'mono' }, item.order_key)] : null,
        item.held_back_by ? ['Held back by', h('a', { href: `#/notifications/${item.held_back_by}` }, `Notification ${item.held_back_by}`)] : null,
        item.last_error ? ['Last error', sensitive(item.last_error, 'error-text'), 'fact-wide'] : null,
      ]),
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'attempts-title' },
      h(
        'div',
        { class: 'card-head' },
        h('h2', { id: 'attempts-title' }, 'Attempts'),
        h('span', { class: 'muted' }, history.length < started ? `the last ${history.length} of ${started}` : plural(started, 'attempt')),
      ),
      tableWrap(attemptsTable, 'Attempts'),
    ),
    body,
  );
}

// ---------------------------------------------------------------------------------------------
// Refused bodies

export async function rejectedList(ctx) {
  const tbody = h('tbody');
  const prev = button('Previous page', () => page(stack.pop(), false), { small: true });
  const nextBtn = button('Next page', () => page(nextAfter, true), { small: true });
  const pageNo = h('span', { class: 'muted' });
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, pageNo, nextBtn);
  const stack = [];
  let after = 0;
  let nextAfter = null;
  const table = h(
    'table',
    { class: 'table' },
    h('caption', { class: 'sr-only' }, 'Refused bodies kept for replay'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        h('th', { scope: 'col', class: 'num' }, 'Id'),
        h('th', { scope: 'col' }, 'Kind'),
        h('th', { scope: 'col', class: 'num' }, 'Status'),
        h('th', { scope: 'col' }, 'Reason'),
        h('th', { scope: 'col' }, 'Received'),
        h('th', { scope: 'col', class: 'num' }, 'Bytes'),
      ),
    ),
    tbody,
  );
  const received = (item) => item.received_at || (item.received_at_ms != null ? new Date(item.received_at_ms).toISOString() : null);
  function fill(answer) {
    const items = answer.items || [];
    nextAfter = answer.next_after ?? null;
    tbody.replaceChildren(
      ...(items.length
        ? items.map((item) =>
            h(
              'tr',
              { dataset: { id: item.id } },
              h('td', { class: 'num' }, h('a', { href: `#/rejected/${item.id}`, class: 'mono', 'aria-label': `Refused body ${item.id}` }, String(item.id))),
              h('td', { class: 'mono nowrap' }, item.kind),
              h('td', { class: 'num' }, pill(String(item.status), 'bad')),
              h('td', { class: 'truncate error-text', title: maskText(item.reason || '') }, maskText(item.reason || '')),
              h('td', { class: 'nowrap' }, time(received(item))),
              h('td', { class: 'num' }, String(item.bytes ?? '—')),
            ),
          )
        : [h('tr', {}, h('td', { colspan: '6', class: 'empty' }, 'No refused body is kept.'))]),
    );
    prev.disabled = stack.length === 0;
    nextBtn.disabled = nextAfter === null;
    pageNo.textContent = `Page ${stack.length + 1}`;
    pager.hidden = stack.length === 0 && nextAfter === null;
  }
  async function page(at, forward) {
    const asked = at || 0;
    try {
      const answer = await busy(forward ? nextBtn : prev, () => api.rejected({ after: asked, limit: PAGE_SIZE }));
      if (!ctx.alive()) return;
      if (forward) stack.push(after);
      after = asked;
      fill(answer);
    } catch (err) {
      if (forward === false) stack.push(asked);
      ctx.fail(err);
    }
  }
  async function purge(btn) {
    const before = await askPurge({
      what: 'refused bodies',
      input: 'Purge refused bodies received before',
      confirmText: (when) => `Refused bodies received before ${when} will be deleted.`,
    });
    if (!before) return;
    try {
      const answer = await busy(btn, () => api.purgeRejected(before));
      ctx.say(`Purged ${plural(answer.purged, 'refused body', 'refused bodies')}.`);
    } catch (err) {
      ctx.fail(err);
    }
    if (!ctx.alive()) return;
    try {
      stack.length = 0;
      after = 0;
      fill(await api.rejected({ limit: PAGE_SIZE }));
    } catch (err) {
      ctx.fail(err);
    }
  }
  const purgeBtn = button('Purge', () => purge(purgeBtn), { title: 'Purge old refused bodies' });
  fill(await api.rejected({ limit: PAGE_SIZE }));
  if (!ctx.alive()) return;
  ctx.show(
    heading('Refused bodies'),
    h(
      'p',
      { class: 'lead muted' },
      'Bodies the relay answered with an error (invalid JSON, a wrong shape) are kept here so that they can be replayed once the cause is fixed.',
    ),
    h(
      'section',
      { class: 'card', 'aria-labelledby': 'rejected-title' },
      h('div', { class: 'card-head' }, h('h2', { id: 'rejected-title' }, 'Kept for replay'), h('div', { class: 'toolbar-actions' }, purgeBtn)),
      tableWrap(table, 'Refused bodies'),
      pager,
    ),
  );
}

export async function rejectedOne(ctx, id) {
  const item = await api.rejectedOne(id);
  if (!ctx.alive()) return;
  const received = item.received_at || (item.received_at_ms != null ? new Date(item.received_at_ms).toISOString() : null);
  const replayBtn = button('Replay', () => replay(), { tone: 'primary' });
  async function replay() {
    const ok = await confirmDialog({
      title: `Replay refused body ${item.id}`,
      text: `Replay refused body ${item.id}? It is decoded again and, if it is valid now, stored and forwarded once.`,
      confirm: 'Replay',
    });
    if (!ok) return;
    try {
      const answer = await busy(replayBtn, () => api.replayRejected(item.id));
      ctx.say(
        h('span', {}, `Stored as notification ${answer.stored}. `, h('a', { href: `#/notifications/${answer.stored}` }, `Open notification ${answer.stored}`)),
      );
    } catch (err) {
      ctx.fail(err);
    }
  }
  const reason = h('span', { class: 'error-text' }, maskText(item.reason || ''));
  const body = bodyCard(item.body);
  body.querySelector('[aria-pressed]').addEventListener('click', (event) => {
    const shown = event.currentTarget.getAttribute('aria-pressed') === 'true';
    reason.textContent = shown ? item.reason || '' : maskText(item.reason || '');
  });
  ctx.show(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/rejected' }, 'Refused bodies'), h('span', { 'aria-hidden': 'true' }, ' / '), h('span', {}, String(item.id))),
    heading(`Refused body ${item.id}`, pill(String(item.status), 'bad'), h('div', { class: 'head-actions' }, replayBtn)),
    h(
      'section',
      { class: 'card', 'aria-label': 'Details' },
      facts([
        ['Kind', h('span', { class: 'mono' }, item.kind)],
        ['Answered', `${item.status}`],
        ['Received', time(received)],
        ['Bytes', String(item.bytes ?? '—')],
        ['Reason', reason, 'fact-wide'],
      ]),
    ),
    body,
  );
}

export function notFound(ctx) {
  ctx.show(
    heading('No such page'),
    h('p', {}, 'This address is not a page of the console. ', h('a', { href: '#/overview' }, 'Go to the overview'), '.'),
  );
}
