// Customer 360 card: who the customer is (RFM segment, first and last seen), a few headline metrics and
// every metric of the profile in a disclosure table. Raw values sit in data-value for checks.

import { enc } from '../api.js';
import { clear, h, icon } from '../dom.js';
import { SEGMENTS, humanize } from '../metrics.js';
import { emptyView, widgetCard } from '../shell.js';

const PERSON = ['M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8Z', 'M4.5 20a7.5 7.5 0 0 1 15 0'];

export function valueEl(ctx, name, value, tag = 'span', cls = 'll-value') {
  const unit = ctx.catalog.unit(name);
  const el = h(tag, {
    class: cls,
    text: ctx.fmt.metric(value, unit),
    dataset: { metric: name, value: value === null || value === undefined ? '' : String(value), unit },
  });
  if (unit === 'timestamp' && value) el.title = ctx.fmt.dateTime(value);
  return el;
}

export function stat(ctx, name, value, { sub, small = false } = {}) {
  const label = ctx.catalog.label(name);
  const short = ctx.catalog.shortLabel(name);
  return h(
    'div',
    { class: `ll-stat${small ? ' ll-stat-small' : ''}`, title: `${label}: ${ctx.catalog.description(name)}` },
    h('p', { class: 'll-stat-label' }, short === label ? short : h('abbr', { title: label, text: short })),
    valueEl(ctx, name, value, 'p', 'll-stat-value'),
    sub ? h('p', { class: 'll-stat-sub', text: sub }) : null,
  );
}

function pickHeadlines(ctx, metrics, wanted) {
  if (wanted.length) return wanted.filter((m) => m in metrics).slice(0, 6);
  const headlines = ctx.catalog.headlines('customer');
  const present = headlines.filter((m) => metrics[m] !== null && metrics[m] !== undefined && metrics[m] !== 0);
  return (present.length >= 2 ? present : headlines).slice(0, 4);
}

function meter(name, score) {
  const pips = [1, 2, 3, 4, 5].map((i) => h('span', { class: `ll-pip${score !== null && i <= score ? ' on' : ''}` }));
  return h(
    'div',
    { class: 'll-meter', role: 'img', 'aria-label': score === null ? `${name}: not scored yet` : `${name} score ${score} of 5` },
    h('span', { class: 'll-meter-label', text: name }),
    h('span', { class: 'll-pips', 'aria-hidden': 'true' }, ...pips),
  );
}

function segmentChip(rfm) {
  if (!rfm || !rfm.segment) {
    return h('span', {
      class: 'll-chip ll-chip-muted',
      text: 'Not scored yet',
      title: 'Segments are computed from all customers at each batch run',
      dataset: { segment: '' },
    });
  }
  return h('span', { class: `ll-chip ll-seg-${rfm.segment}`, text: SEGMENTS[rfm.segment] || humanize(rfm.segment), dataset: { segment: rfm.segment } });
}

export function mountCustomerCard(ctx, { customer, metrics: wanted = [] }) {
  if (!customer) {
    return staticCard(ctx, 'Customer overview', emptyView('No customer chosen', 'This link does not name a customer.'));
  }
  return widgetCard(ctx, {
    title: 'Customer overview',
    subtitle: null,
    what: 'this customer',
    className: 'll-customer',
    load: () => ctx.api.get(`/v1/customers/${enc(customer)}/profile`),
    push: { path: '/v1/live/stream', params: { customer, topics: 'profile' }, event: 'profile' },
    render(data, body) {
      const wasOpen = Boolean(body.querySelector('.ll-all-slot details')?.open);
      const m = data.metrics || {};
      const rfm = data.rfm || {};
      const since = m.first_seen ? `Customer since ${ctx.fmt.date(m.first_seen)}` : null;
      const seen = m.last_seen ? `last seen ${ctx.fmt.relative(m.last_seen)}` : null;
      clear(body).append(
        h(
          'div',
          { class: 'll-who' },
          h('div', { class: 'll-avatar', 'aria-hidden': 'true' }, icon(PERSON, 22)),
          h(
            'div',
            { class: 'll-who-text' },
            h('p', { class: 'll-who-id', text: data.customer_id, dataset: { customerId: data.customer_id } }),
            h('p', { class: 'll-muted ll-small', text: [since, seen].filter(Boolean).join(' · ') || '—' }),
            mergedIds(data),
          ),
          segmentChip(rfm),
        ),
        h('div', { class: 'll-stats' }, ...pickHeadlines(ctx, m, wanted).map((name) => stat(ctx, name, m[name] ?? null))),
        h(
          'div',
          { class: 'll-rfm', hidden: !rfm.segment, dataset: { r: String(rfm.r ?? ''), f: String(rfm.f ?? ''), m: String(rfm.m ?? '') } },
          meter('Recency', rfm.r ?? null),
          meter('Frequency', rfm.f ?? null),
          meter('Monetary', rfm.m ?? null),
        ),
        h('div', { class: 'll-all-slot' }),
      );
      const all = allMetrics(ctx, m);
      all.open = wasOpen;
      body.querySelector('.ll-all-slot').append(all);
    },
  });
}

// The ids an alias merged into this customer (the profile covers all of them), or why they were not.
function mergedIds(data) {
  const others = (data.merged_ids || []).filter((id) => id !== data.customer_id);
  if (data.identity_refused) {
    return h('p', { class: 'll-muted ll-small ll-merged', text: 'Ids not merged', title: data.identity_refused, dataset: { mergedIds: '' } });
  }
  if (!others.length) return null;
  return h('p', {
    class: 'll-muted ll-small ll-merged',
    text: `Also known as ${others.join(', ')}`,
    title: data.merged_into ? `Opened by a previous id, merged into ${data.merged_into}` : 'Ids merged by alias events',
    dataset: { mergedIds: others.join(' ') },
  });
}

function allMetrics(ctx, metrics) {
  const rows = Object.keys(metrics).map((name) =>
    h('tr', {}, h('th', { scope: 'row', text: ctx.catalog.label(name), title: ctx.catalog.description(name) }), h('td', {}, valueEl(ctx, name, metrics[name]))),
  );
  const details = h(
    'details',
    { class: 'll-details' },
    h('summary', { text: `All metrics (${rows.length})` }),
    h('table', { class: 'll-kv' }, h('tbody', {}, ...rows)),
  );
  details.addEventListener('toggle', () => ctx.resized?.());
  return details;
}

export function staticCard(ctx, title, content) {
  const el = h('section', { class: 'll-card ll-widget', 'aria-label': title, dataset: { ready: 'error' } }, h('header', { class: 'll-card-head' }, h('h2', { class: 'll-title', text: title })), h('div', { class: 'll-body' }, content));
  return { el, stop() {} };
}
