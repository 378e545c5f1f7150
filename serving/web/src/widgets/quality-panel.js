// Data quality of the tenant's feed (GET /v1/quality): duplicate and late rates, orders attributed to a
// campaign, events on identified customers, dead letters per reason and the time since each topic's last event. Labels, descriptions and
// windows come from the answer's own dictionary (`definitions`), so the page restates no definition.

import { clear, h } from '../dom.js';
import { widgetCard } from '../shell.js';
import { windowText } from './live-badge.js';

const RATES = ['duplicate_rate', 'late_event_rate', 'attributed_order_share', 'identified_event_share'];

export function mountQualityPanel(ctx, { window = '24h' } = {}) {
  const span = windowText(ctx.fmt, window);
  return widgetCard(ctx, {
    title: 'Data quality',
    subtitle: `Records that arrived in the last ${span}`,
    kind: 'tiles',
    what: 'data quality',
    className: 'll-quality',
    load: async () => {
      const data = await ctx.api.get('/v1/quality', { window });
      return { ...data, freshness: { as_of: data.as_of } };
    },
    render(data, body) {
      const defs = Object.fromEntries(data.definitions.map((d) => [d.name, d]));
      const m = data.metrics;
      const tiles = RATES.map((name) => {
        const { numerator, denominator, label, description } = defs[name];
        const { value, [numerator]: top, [denominator]: bottom } = m[name];
        return h(
          'div',
          { class: 'll-live-tile', dataset: { metric: name }, title: `${label}: ${description}` },
          h('p', { class: 'll-stat-label', text: label }),
          h('p', { class: 'll-live-value', text: value === null ? '—' : ctx.fmt.percent(value) }),
          h('p', { class: 'll-stat-sub', text: `${ctx.fmt.integer(top)} of ${ctx.fmt.integer(bottom)}` }),
        );
      });
      const dead = m.dead_letters;
      const reasons = Object.entries(dead.by_reason);
      const sources = Object.entries(m.seconds_since_last_event);
      clear(body).append(
        h('div', { class: 'll-live-grid' }, ...tiles),
        h(
          'div',
          { class: 'll-pair' },
          h(
            'div',
            { dataset: { metric: 'dead_letters' }, title: defs.dead_letters.description },
            h('h3', { class: 'll-label', text: `${defs.dead_letters.label}: ${ctx.fmt.integer(dead.total)}` }),
            reasons.length
              ? h('ul', { class: 'll-quality-list' }, ...reasons.map(([reason, n]) => h('li', { dataset: { reason }, text: `${reason}: ${ctx.fmt.integer(n)}` })))
              : h('p', { class: 'll-muted ll-small', text: 'None' }),
          ),
          h(
            'div',
            { dataset: { metric: 'seconds_since_last_event' }, title: defs.seconds_since_last_event.description },
            h('h3', { class: 'll-label', text: defs.seconds_since_last_event.label }),
            sources.length
              ? h('ul', { class: 'll-quality-list' }, ...sources.map(([topic, s]) => h('li', { dataset: { topic }, text: `${topic}: ${ctx.fmt.duration(s)} ago` })))
              : h('p', { class: 'll-muted ll-small', text: 'No events yet' }),
          ),
        ),
      );
    },
  });
}
