// Live wait-time badge: average and p90 wait of orders delivered in the window, and orders in progress,
// pushed by the server when they change (polled every few seconds where a stream cannot be had).

import { clear, h } from '../dom.js';
import { widgetCard } from '../shell.js';
import { valueEl } from './customer-card.js';

const WINDOW = /^(\d{1,6})([smhd])$/;
const SECONDS = { s: 1, m: 60, h: 3600, d: 86400 };

export function windowText(fmt, window) {
  const m = WINDOW.exec(window);
  return m ? fmt.duration(Number(m[1]) * SECONDS[m[2]]) : window;
}

export function mountLiveBadge(ctx, { window }) {
  const span = windowText(ctx.fmt, window);
  const pulse = h('span', { class: 'll-pulse', 'aria-hidden': 'true' });
  const card = widgetCard(ctx, {
    title: 'Live wait time',
    subtitle: `Orders delivered in the last ${span}`,
    kind: 'badge',
    what: 'live data',
    className: 'll-live',
    headExtra: h('span', { class: 'll-live-tag' }, pulse, 'Live'),
    load: () => ctx.api.get('/v1/live/orders', { window }),
    push: { path: '/v1/live/stream', params: { window, topics: 'live_orders' }, event: 'live_orders' },
    render(data, body) {
      card.el.dataset.window = window;
      const main = ctx.catalog.primary('tenant');
      const names = [main, ...ctx.catalog.at('tenant').map((m) => m.name).filter((n) => n !== main)];
      const none = data[main] === null || data[main] === undefined;
      clear(body).append(
        h(
          'div',
          { class: 'll-live-grid' },
          ...names.map((name) =>
            tile(ctx, name, data[name], name === main && none ? `nothing in the last ${span}` : ctx.catalog.caption(name), name === main),
          ),
        ),
      );
    },
  });
  return card;
}

function tile(ctx, name, value, sub, main = false) {
  return h(
    'div',
    { class: `ll-live-tile${main ? ' ll-live-main' : ''}`, title: `${ctx.catalog.label(name)}: ${ctx.catalog.description(name)}` },
    h('p', { class: 'll-stat-label', text: ctx.catalog.shortLabel(name) }),
    valueEl(ctx, name, value ?? null, 'p', 'll-live-value'),
    h('p', { class: 'll-stat-sub', text: sub }),
  );
}
