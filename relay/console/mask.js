// Personal data in what the console shows: phone numbers and the customer's own variables.
// Pure functions, no DOM: the page shows bodies, errors and task ids through them until the
// operator asks to see the original.

/** What a masked digit run or a masked value becomes. */
export const BULLETS = '•••••';
export const HIDDEN = '•••';

/** Keys whose string value is a phone number or a contact, whatever it looks like. */
const PHONE_KEY = /^(to|from|number|msisdn)$|callee|caller|phone|mobile|contact/i;

/** Keys whose whole value is the customer's own data: every leaf under them is hidden. */
const CUSTOMER_KEY =
  /^(variables|customer_variables|customer_info|customer_data|params|custom_params|custom_variables|extra|extras|extra_data)$/i;

/**
 * A phone number's shape, anywhere in a string: an optional `+`, then 7 digits or more, single
 * spaces or dashes allowed between them; not inside a word, a decimal or a time.
 */
const PHONE_RUN = /(?<![\w.:+\/-])\+?\d(?:[ -]?\d){6,}(?![\w.:\/]|-\d)/g;

/** A date at the start of a digit run (`2022-12-19`, `2022-12-19 15`): not a phone number. */
const DATE_START = /^\d{4}-\d{1,2}-\d{1,2}(\D|$)/;

/**
 * One phone number masked: its first 3 characters (`+86`, `081`) and last 2 digits kept, the
 * rest replaced by a fixed run of `•` (its length is not told either). A value with fewer than
 * 6 digits is hidden whole.
 *
 *   maskPhone('+8612345678') === '+86•••••78'
 */
export function maskPhone(value) {
  const text = String(value);
  const compact = text.replace(/[\s-]/g, '');
  const digits = compact.replace(/\D/g, '');
  if (digits.length < 6) return HIDDEN;
  const head = compact.startsWith('+') ? '+' + digits.slice(0, 2) : digits.slice(0, 3);
  return head + BULLETS + digits.slice(-2);
}

/** Every run that looks like a phone number in `text` masked; the rest kept as it is. */
export function maskText(text) {
  if (text === null || text === undefined) return text;
  return String(text).replace(PHONE_RUN, (run) => {
    if (DATE_START.test(run)) return run;
    const digits = run.replace(/\D/g, '');
    return digits.length >= 7 ? maskPhone(run) : run;
  });
}

/** Every leaf of `value` replaced by `•••` (null kept: it tells nothing). */
export function hideLeaves(value) {
  if (Array.isArray(value)) return value.map(hideLeaves);
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const [key, inner] of Object.entries(value)) out[key] = hideLeaves(inner);
    return out;
  }
  return value === null ? null : HIDDEN;
}

/** Whether a key names a phone number or contact. */
export function isPhoneKey(key) {
  return PHONE_KEY.test(String(key));
}

/** Whether a key holds the customer's own variables. */
export function isCustomerKey(key) {
  return CUSTOMER_KEY.test(String(key));
}

/**
 * A body (any JSON value, or the text of a body that is not JSON) with its personal data
 * masked; the original is left untouched.
 */
export function maskBody(value) {
  return walk(value, null, false);
}

/** `personal`: under a key that names a phone number or contact (`contact: {…}`). */
function walk(value, key, personal) {
  if (key !== null && isCustomerKey(key) && value !== null) return hideLeaves(value);
  const phone = personal || (key !== null && isPhoneKey(key));
  if (Array.isArray(value)) return value.map((item) => walk(item, key, phone));
  if (value !== null && typeof value === 'object') {
    const out = {};
    for (const [name, inner] of Object.entries(value)) out[name] = walk(inner, name, phone);
    return out;
  }
  if (typeof value === 'string') return phone && value !== '' ? maskPhone(value) : maskText(value);
  if (typeof value === 'number' && phone) return maskPhone(String(value));
  return value;
}

/** A body as the page prints it: JSON indented by two, or the text as it came. */
export function pretty(value) {
  if (typeof value === 'string') return value;
  return JSON.stringify(value, null, 2);
}
