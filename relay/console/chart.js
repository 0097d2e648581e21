// A kind's last hour, minute by minute, as an SVG line chart drawn with the DOM (no library,
// no inline style: colours come from classes in style.css).

const SVG = 'http://www.w3.org/2000/svg';

/** The series drawn, in order, with their legend's words. */
export const SERIES = [
  ['received', 'received'],
  ['forwarded', 'forwarded'],
  ['failed', 'failed'],
];

/** How many minutes a chart spans. */
export const SLOTS = 60;

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      node.append(typeof child === 'string' ? document.createTextNode(child) : child);
    }
  }
  return node;
}

const sum = (values) => values.reduce((total, n) => total + (Number(n) || 0), 0);

/** The totals of a kind's series: `{received, forwarded, failed}`. */
export function totals(series) {
  const out = {};
  for (const [name] of SERIES) out[name] = sum(series[name] || []);
  return out;
}

/** "task_notification, last hour: 12 received, 10 forwarded, 3 failed". */
export function summary(kind, series) {
  const t = totals(series);
  return `${kind}, last hour: ${SERIES.map(([name, word]) => `${t[name]} ${word}`).join(', ')}`;
}

function hhmm(date) {
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

/**
 * The chart of one kind. `minutes` are the starts of the minutes (oldest first, the last the
 * current one); `series` has `received`, `forwarded`, `failed` of the same length (missing
 * ones are zeros). The last minute is drawn at the right edge; a relay up for less than an
 * hour has nothing to the left of its start.
 */
export function activityChart(kind, minutes, series, { width = 320, height = 96 } = {}) {
  const count = Math.min(minutes.length, SLOTS);
  const values = {};
  for (const [name] of SERIES) {
    const all = (series && series[name]) || [];
    values[name] = minutes.slice(-count).map((_, i) => Number(all[all.length - count + i]) || 0);
  }
  const label = summary(kind, values);
  const pad = { top: 8, right: 6, bottom: 18, left: 30 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const step = plotW / (SLOTS - 1);
  const max = Math.max(1, ...SERIES.flatMap(([name]) => values[name]));
  const x = (i) => pad.left + (SLOTS - count + i) * step;
  const y = (v) => pad.top + plotH - (v / max) * plotH;
  const round = (n) => Math.round(n * 10) / 10;

  const chart = svg(
    'svg',
    {
      class: 'chart',
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: 'img',
      'aria-label': label,
      focusable: 'false',
    },
    svg('title', {}, label),
  );
  // The grid: the baseline, the top and a middle line, with the scale at the left.
  for (const [value, cls] of [
    [0, 'axis'],
    [max / 2, 'grid'],
    [max, 'grid'],
  ]) {
    chart.append(
      svg('line', { class: cls, x1: pad.left, x2: width - pad.right, y1: round(y(value)), y2: round(y(value)) }),
    );
  }
  const scale = max === 1 ? ['1', '0'] : [String(max), '0'];
  chart.append(
    svg('text', { class: 'tick', x: pad.left - 4, y: pad.top + 4, 'text-anchor': 'end' }, scale[0]),
    svg('text', { class: 'tick', x: pad.left - 4, y: pad.top + plotH + 3, 'text-anchor': 'end' }, scale[1]),
  );
  const last = count ? new Date(minutes[minutes.length - 1]) : new Date();
  const first = new Date(last.getTime() - (SLOTS - 1) * 60000);
  chart.append(
    svg('text', { class: 'tick', x: pad.left, y: height - 4, 'text-anchor': 'start' }, Number.isNaN(first.getTime()) ? '−60 min' : hhmm(first)),
    svg('text', { class: 'tick', x: width - pad.right, y: height - 4, 'text-anchor': 'end' }, 'now'),
  );
  if (count > 0) {
    // Received as a filled area, then each series as a line over it.
    const base = round(y(0));
    const points = (name) => values[name].map((v, i) => `${round(x(i))},${round(y(v))}`).join(' ');
    chart.append(
      svg('polygon', {
        class: 'area c-received',
        points: `${round(x(0))},${base} ${points('received')} ${round(x(count - 1))},${base}`,
      }),
    );
    for (const [name] of SERIES) {
      if (count > 1) chart.append(svg('polyline', { class: `line c-${name}`, points: points(name) }));
      // A dot on a lone minute (its neighbours saw none), which a line would hardly show.
      const series = values[name];
      series.forEach((v, i) => {
        const lone = v > 0 && !(series[i - 1] > 0) && !(series[i + 1] > 0);
        if (lone || count === 1) {
          chart.append(svg('circle', { class: `dot c-${name}`, cx: round(x(i)), cy: round(y(v)), r: 2.2 }));
        }
      });
    }
    // One transparent column per minute, telling its numbers on hover.
    for (let i = 0; i < count; i += 1) {
      const at = new Date(minutes[minutes.length - count + i]);
      const words = SERIES.map(([name, word]) => `${values[name][i]} ${word}`).join(', ');
      chart.append(
        svg(
          'rect',
          { class: 'hover', x: round(x(i) - step / 2), y: pad.top, width: round(step), height: plotH },
          svg('title', {}, `${Number.isNaN(at.getTime()) ? '' : hhmm(at) + ': '}${words}`),
        ),
      );
    }
  }
  return chart;
}

/** The legend under a chart, with each series' total: "12 received · 10 forwarded · 3 failed". */
export function legend(series) {
  const t = totals(series);
  const list = document.createElement('ul');
  list.className = 'legend';
  for (const [name, word] of SERIES) {
    const item = document.createElement('li');
    const swatch = document.createElement('span');
    swatch.className = `swatch c-${name}`;
    swatch.setAttribute('aria-hidden', 'true');
    const number = document.createElement('strong');
    number.textContent = String(t[name]);
    item.append(swatch, number, ` ${word}`);
    list.append(item);
  }
  return list;
}
