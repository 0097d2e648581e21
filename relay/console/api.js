// The admin API, as the console asks it: JSON, the operator's token as a bearer token, every
// failure turned into an error whose message can be shown as it is.

/** Where the token is kept: this tab's session only (never localStorage, never a cookie). */
const TOKEN_KEY = 'airudder-relay.admin-token';

/** How long a call may take before the page says the relay did not answer. */
const TIMEOUT_MS = 20000;

export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused: nothing was kept.
  }
}

/** A call that failed: `status` 0 when the relay did not answer at all. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
  }
}

/** A 401: the token is missing, wrong, or no longer the relay's. */
export class Unauthorized extends ApiError {
  constructor(message) {
    super(401, message);
    this.name = 'Unauthorized';
  }
}

/** `?a=1&b=2` of the parameters that have a value (empty ones are left out). */
export function query(params = {}) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === '') continue;
    search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * One call. `tokenOverride` tries a token not kept yet (the sign-in). Resolves to the JSON
 * answer; rejects with an ApiError carrying the API's own message.
 */
export async function call(method, path, params, tokenOverride) {
  const headers = { Accept: 'application/json' };
  const bearer = tokenOverride ?? token();
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
  if (method !== 'GET') {
    headers['Content-Type'] = 'application/json';
    init.body = '{}';
  }
  let response;
  try {
    init.signal = AbortSignal.timeout(TIMEOUT_MS);
    response = await fetch(path + query(params), init);
  } catch (err) {
    const why =
      err && err.name === 'TimeoutError'
        ? `no answer within ${TIMEOUT_MS / 1000} s`
        : (err && err.message) || String(err);
    throw new ApiError(0, `the relay did not answer: ${why}`);
  }
  let text = '';
  try {
    text = await response.text();
  } catch (err) {
    throw new ApiError(0, `the relay did not answer: ${(err && err.message) || err}`);
  }
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const message =
      data && typeof data.error === 'string'
        ? data.error
        : `${response.status} ${response.statusText || 'error'}${text && !data ? `: ${text.slice(0, 200)}` : ''}`;
    if (response.status === 401) throw new Unauthorized(message);
    throw new ApiError(response.status, message);
  }
  if (data === null) {
    throw new ApiError(response.status, `the relay's answer to ${path} is not JSON`);
  }
  return data;
}

export const get = (path, params) => call('GET', path, params);
export const post = (path, params) => call('POST', path, params);

const id = (value) => encodeURIComponent(String(value));

// The endpoints the console uses, by name.
export const api = {
  stats: (tokenOverride) => call('GET', '/admin/stats', undefined, tokenOverride),
  overview: () => get('/admin/overview'),
  kinds: () => get('/admin/kinds'),
  pause: (kind) => post(`/admin/kinds/${id(kind)}/pause`),
  resume: (kind) => post(`/admin/kinds/${id(kind)}/resume`),
  notifications: (filters) => get('/admin/notifications', filters),
  count: (filters) => get('/admin/notifications/count', filters),
  notification: (n) => get(`/admin/notifications/${id(n)}`),
  replay: (n) => post(`/admin/notifications/${id(n)}/replay`),
  replayDead: (filters) => post('/admin/dead-letters/replay', filters),
  purgeDead: (before) => post('/admin/dead-letters/purge', { before }),
  rejected: (page) => get('/admin/rejected', page),
  rejectedOne: (n) => get(`/admin/rejected/${id(n)}`),
  replayRejected: (n) => post(`/admin/rejected/${id(n)}/replay`),
  purgeRejected: (before) => post('/admin/rejected/purge', { before }),
};
