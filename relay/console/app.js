// The console's shell: the sign-in, the routes (by hash), the messages, and each view's life
// (a view left stops its timers and its answers arriving late are dropped).

import { api, clearToken, setToken, token, Unauthorized } from './api.js';
import * as views from './views.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const signOut = document.getElementById('sign-out');
const statusBox = document.getElementById('status');
const alertBox = document.getElementById('alert');

/** Whether the page may show the views (the token is accepted, or none is needed). */
let signedIn = false;
/** The view on screen: `{ alive, leave: [] }`. */
let current = null;
/** The path shown (`notifications/12`), to tell a new page from new parameters. */
let shownPath = null;
/** The last list of notifications seen, for the way back from one. */
let lastList = null;

function say(message) {
  statusBox.replaceChildren(message instanceof Node ? message : document.createTextNode(String(message)));
  alertBox.replaceChildren();
}

function alert(message) {
  // One message at a time: what an earlier action said is no longer the news.
  statusBox.replaceChildren();
  alertBox.replaceChildren(document.createTextNode(String(message)));
}

function clearMessages() {
  statusBox.replaceChildren();
  alertBox.replaceChildren();
}

/** The route in the hash: its path's segments and its parameters. */
function route() {
  const raw = location.hash.replace(/^#/, '');
  const cut = raw.indexOf('?');
  const path = (cut < 0 ? raw : raw.slice(0, cut)).replace(/^\/+|\/+$/g, '');
  const params = new URLSearchParams(cut < 0 ? '' : raw.slice(cut + 1));
  return { path, segments: path ? path.split('/').map(decodeURIComponent) : [], params };
}

function leave() {
  if (!current) return;
  current.alive = false;
  for (const fn of current.leave) {
    try {
      fn();
    } catch {
      // A view's clean-up failing must not keep the next one from showing.
    }
  }
  current = null;
}

function markNav(section) {
  for (const link of nav.querySelectorAll('a[data-nav]')) {
    if (link.dataset.nav === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** What every view is given. */
function context(view) {
  return {
    main,
    alive: () => view.alive && current === view,
    onLeave: (fn) => view.leave.push(fn),
    show: (...nodes) => {
      if (view.alive && current === view) main.replaceChildren(...nodes.flat());
    },
    say: (message) => {
      if (view.alive) say(message);
    },
    alert: (message) => alert(message),
    clearAlert: () => alertBox.replaceChildren(),
    fail: (err) => fail(err),
    go: (hash) => {
      if (location.hash === hash) render({ keepMessages: true });
      else location.hash = hash;
    },
    reload: () => render({ keepMessages: true }),
    remember: (hash) => {
      lastList = hash;
    },
    remembered: () => lastList,
  };
}

/** A failure shown: the API's message as it is; a refused token goes back to the sign-in. */
function fail(err) {
  if (err instanceof Unauthorized) {
    const held = Boolean(token());
    showSignIn(
      held
        ? `The relay refused this tab's token (it may have changed): ${err.message}. Sign in again.`
        : `The relay asks for its admin token: ${err.message}`,
    );
    return;
  }
  alert(err && err.message ? err.message : String(err));
}

/** Renders the route; `keepMessages` keeps what an action just said. */
async function render({ keepMessages = false } = {}) {
  if (!signedIn) return;
  const { path, segments, params } = route();
  const newPage = path !== shownPath;
  leave();
  const view = { alive: true, leave: [] };
  current = view;
  const ctx = context(view);
  if (!keepMessages) clearMessages();
  // Until the view has shown what it loaded, the page says it is busy (and tests wait on it).
  main.setAttribute('aria-busy', 'true');
  view.leave.push(() => main.removeAttribute('aria-busy'));
  if (newPage) {
    main.replaceChildren(views.h('p', { class: 'loading' }, 'Loading…'));
    window.scrollTo(0, 0);
  }
  shownPath = path;
  const [section, id, extra] = segments;
  let show;
  if (!section || section === 'overview') {
    markNav('overview');
    show = () => views.overview(ctx);
  } else if (section === 'notifications' && id === undefined) {
    markNav('notifications');
    show = () => views.notifications(ctx, params);
  } else if (section === 'notifications' && /^\d+$/.test(id) && extra === undefined) {
    markNav('notifications');
    show = () => views.notification(ctx, id);
  } else if (section === 'rejected' && id === undefined) {
    markNav('rejected');
    show = () => views.rejectedList(ctx);
  } else if (section === 'rejected' && /^\d+$/.test(id) && extra === undefined) {
    markNav('rejected');
    show = () => views.rejectedOne(ctx, id);
  } else {
    markNav(null);
    show = () => views.notFound(ctx);
  }
  document.title = `${titleOf(section, id)} · Relay console`;
  try {
    await show();
    if (ctx.alive()) main.removeAttribute('aria-busy');
  } catch (err) {
    if (!ctx.alive()) return;
    main.removeAttribute('aria-busy');
    fail(err);
    if (!signedIn || !ctx.alive()) return;
    const retry = views.h('button', { type: 'button', class: 'btn btn-secondary' }, 'Try again');
    retry.addEventListener('click', () => render({ keepMessages: false }));
    main.replaceChildren(
      views.h(
        'div',
        { class: 'card failed' },
        views.h('h1', { tabindex: '-1' }, 'This page could not be loaded'),
        views.h('p', { class: 'muted' }, 'The reason is in the message above.'),
        retry,
      ),
    );
  }
  if (newPage && ctx.alive()) {
    const title = main.querySelector('h1');
    if (title && document.activeElement === document.body) title.focus({ preventScroll: true });
  }
}

function titleOf(section, id) {
  if (section === 'notifications') return id ? `Notification ${id}` : 'Notifications';
  if (section === 'rejected') return id ? `Refused body ${id}` : 'Refused bodies';
  return 'Overview';
}

function enter() {
  signedIn = true;
  nav.hidden = false;
  signOut.hidden = !token();
  shownPath = null;
  render({ keepMessages: true });
}

/** The sign-in form, with `reason` said in the alert when there is one. */
function showSignIn(reason) {
  leave();
  signedIn = false;
  shownPath = null;
  clearToken();
  nav.hidden = true;
  signOut.hidden = true;
  statusBox.replaceChildren();
  if (reason) alert(reason);
  else alertBox.replaceChildren();
  document.title = 'Sign in · Relay console';
  const view = { alive: true, leave: [] };
  current = view;
  views.signIn(context(view), {
    onToken: async (candidate) => {
      try {
        await api.stats(candidate);
      } catch (err) {
        if (err instanceof Unauthorized) alert(`That token was refused: ${err.message}`);
        else alert(err.message);
        return;
      }
      setToken(candidate);
      clearMessages();
      enter();
    },
  });
}

async function start() {
  document.getElementById('relay-host').textContent = location.host;
  signOut.addEventListener('click', () => {
    showSignIn(null);
    say('Signed out: the token is no longer kept in this tab.');
  });
  window.addEventListener('hashchange', () => render());
  try {
    await api.stats();
  } catch (err) {
    if (err instanceof Unauthorized) {
      showSignIn(token() ? `The relay refused this tab's token (it may have changed): ${err.message}. Sign in again.` : null);
      return;
    }
    // The relay did not answer, or failed: the views say so, each with a way to try again.
  }
  enter();
}

start();
