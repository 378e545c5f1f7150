// Cohort retention heat map: a real table (row and column headers, readable percentages in every cell)
// whose cells are also tinted by value in the tenant's colour, with text that keeps AA contrast.

import { clear, h } from '../dom.js';
import { emptyView, widgetCard } from '../shell.js';

function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [n >> 16, (n >> 8) & 255, n & 255];
}

function lum([r, g, b]) {
  const c = (v) => {
    const s = v / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * c(r) + 0.7152 * c(g) + 0.0722 * c(b);
}

function contrast(a, b) {
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** Background for a share in [0, 1]: white blended toward the brand colour; the ink (white or near-black)
 * that reads better on it, and if neither reaches WCAG AA 4.5:1 the background is darkened until white does. */
export function shade(brand, share) {
  const t = Math.min(1, Math.max(0, share)) ** 0.7 * 0.92;
  const base = rgb(/^#[0-9a-f]{6}$/i.test(brand) ? brand : '#3b5bdb');
  let bg = base.map((c) => Math.round(255 + (c - 255) * t));
  const white = [255, 255, 255];
  const dark = [17, 24, 39];
  let ink = contrast(bg, white) >= contrast(bg, dark) ? white : dark;
  for (let k = 1; contrast(bg, ink) < 4.5 && k <= 20; k += 1) {
    ink = white;
    bg = bg.map((c) => Math.round(c * 0.95));
  }
  return { bg: `rgb(${bg.join(', ')})`, ink: ink === white ? '#ffffff' : '#111827' };
}

export function mountCohortHeatmap(ctx, { start, end, months }) {
  const card = widgetCard(ctx, {
    title: 'Cohort retention',
    subtitle: 'Share of each month’s new customers who ordered again',
    kind: 'table',
    what: 'cohort data',
    className: 'll-cohorts',
    load: () => ctx.api.get('/v1/cohorts/retention', { start, end }),
    render(data, body) {
      const rows = data.cohorts || [];
      if (!rows.length) {
        clear(body).append(emptyView('No data yet', 'Cohorts appear once customers have placed orders.'));
        return;
      }
      const width = Math.min(months, Math.max(...rows.map((r) => r.retention.length)));
      const brand = ctx.brand;
      const head = h(
        'tr',
        {},
        h('th', { scope: 'col', class: 'll-heat-cohort', text: 'Cohort' }),
        h('th', { scope: 'col', class: 'll-num', text: 'Customers' }),
        ...Array.from({ length: width }, (_, k) => h('th', { scope: 'col', class: 'll-num', text: `Month ${k}`, title: k === 0 ? 'the month of the first order' : `${k} month${k > 1 ? 's' : ''} later` })),
      );
      const bodyRows = rows.map((row) =>
        h(
          'tr',
          { dataset: { cohort: row.cohort, size: String(row.size) } },
          h('th', { scope: 'row', class: 'll-heat-cohort', text: ctx.fmt.month(row.cohort) }),
          h('td', { class: 'll-num ll-heat-size', text: ctx.fmt.integer(row.size) }),
          ...Array.from({ length: width }, (_, k) => {
            if (k >= row.retention.length) return h('td', { class: 'll-heat-none', 'aria-label': 'no data yet' });
            const share = row.retention[k];
            const { bg, ink } = shade(brand, share);
            const cell = h('td', { class: 'll-num ll-heat-cell', text: ctx.fmt.percent(share, 1), dataset: { month: String(k), value: String(share) } });
            cell.style.backgroundColor = bg;
            cell.style.color = ink;
            return cell;
          }),
        ),
      );
      const legend = h(
        'div',
        { class: 'll-legend', 'aria-hidden': 'true' },
        h('span', { text: ctx.fmt.percent(0, 0) }),
        h('span', { class: 'll-legend-bar' }, ...[0, 0.25, 0.5, 0.75, 1].map((s) => {
          const sw = h('span', { class: 'll-legend-step' });
          sw.style.backgroundColor = shade(brand, s).bg;
          return sw;
        })),
        h('span', { text: ctx.fmt.percent(1, 0) }),
      );
      clear(body).append(
        h(
          'div',
          { class: 'll-scroll', tabindex: '0', role: 'region', 'aria-label': 'Cohort retention table, scrolls sideways' },
          h(
            'table',
            { class: 'll-heat' },
            h('caption', { class: 'll-sr', text: 'Retention by monthly cohort: the share of customers of each first-order month who ordered again in each later month.' }),
            h('thead', {}, head),
            h('tbody', {}, ...bodyRows),
          ),
        ),
        legend,
      );
    },
  });
  return card;
}
