// Segments of the tenant's customers (GET /v1/segments): one row per segment with its customers and the
// metric, a bar scaled to the largest value, and a drill-down: a segment's button lists its customers a
// page at a time (GET /v1/segments/customers), and a customer's button opens the customer card
// (`onCustomer`). Labels and units come from the catalog; raw values sit in data-value for checks.

import { clear, h } from '../dom.js';
import { SEGMENTS, humanize } from '../metrics.js';
import { emptyView, errorView, widgetCard } from '../shell.js';

const PAGE = 20;

/** The dropdown label of a segmentation: "trait:plan" → "Plan", "rfm_segment" → "RFM segment". */
export function segmentationLabel(by) {
  if (by.startsWith('trait:')) return humanize(by.slice(6));
  return { rfm_segment: 'RFM segment', cohort: 'First order month' }[by] || humanize(by);
}

function segmentLabel(ctx, by, row) {
  if (row.segment === null) return 'No value';
  if (by === 'rfm_segment') return SEGMENTS[row.segment] || humanize(row.segment);
  if (by === 'cohort') return ctx.fmt.month(row.segment);
  return String(row.segment);
}

/** A bar of `share` (0-1) of the cell's width: set through the CSSOM, which the page's CSP allows. */
function bar(share) {
  const el = h('span', { class: 'll-segment-bar', 'aria-hidden': 'true' });
  el.style.width = `${Math.round(share * 100)}%`;
  return el;
}

/** `days` back from the start of today (UTC), as an ISO date the API takes as `start`; null: all time. */
export function rangeStart(days, now = Date.now()) {
  if (!days) return null;
  const today = Math.floor(now / 86400000) * 86400000;
  return new Date(today - (days - 1) * 86400000).toISOString().slice(0, 10);
}

export function mountSegmentTable(ctx, { by, metric, days = 0, onCustomer }) {
  const unit = ctx.catalog.unit(metric);
  let drill = null; // the segment whose customers are listed: {key, label}
  const members = h('div', { class: 'll-segment-members', 'aria-live': 'polite' });

  async function showMembers(segment, cursor = null, list = null) {
    drill = segment;
    const target = list || h('ul', { class: 'll-segment-list' });
    if (!list) {
      clear(members).append(
        h('h3', { class: 'll-label', text: `Customers in ${segment.label}` }),
        target,
      );
    }
    let page;
    try {
      // built here: the empty key (customers with no value) must still be sent as value=
      const query = new URLSearchParams({ by, value: segment.key, limit: String(PAGE) });
      if (cursor) query.set('cursor', cursor);
      page = await ctx.api.get(`/v1/segments/customers?${query}`);
    } catch (error) {
      members.append(errorView(error, ctx, { what: 'this segment' }));
      return;
    }
    if (drill !== segment) return; // another segment was picked meanwhile
    members.querySelector('.ll-segment-more')?.remove();
    target.append(
      ...page.customers.map((customer) =>
        h('li', {}, h('button', { type: 'button', class: 'll-link', dataset: { customer }, text: customer, onClick: () => onCustomer?.(customer) })),
      ),
    );
    if (!page.customers.length && !cursor) target.append(h('li', { class: 'll-muted ll-small', text: 'No customers' }));
    if (page.next_cursor) {
      members.append(
        h('button', { type: 'button', class: 'll-button ll-button-quiet ll-segment-more', text: 'More customers', onClick: () => showMembers(segment, page.next_cursor, target) }),
      );
    }
    members.dataset.segment = segment.key;
    members.dataset.ready = 'true';
  }

  const card = widgetCard(ctx, {
    title: `${ctx.catalog.label(metric)} by ${segmentationLabel(by).toLowerCase()}`,
    subtitle: `${days ? `Last ${days} days (UTC)` : 'All time'} · click a segment to list its customers`,
    kind: 'table',
    what: 'segment data',
    className: 'll-segments',
    // the metric over the range; the segments and their customers are always everyone's, all time
    load: () => ctx.api.get('/v1/segments', { by, metric, start: rangeStart(days) }),
    render(data, body) {
      card.el.dataset.start = data.start || '';
      const rows = data.segments || [];
      if (!rows.length) {
        clear(body).append(emptyView('No customers yet', 'Segments appear once customers have events.'));
        return;
      }
      const top = Math.max(...rows.map((r) => Math.abs(r.value ?? 0)), 0);
      const table = h(
        'table',
        { class: 'll-table ll-segment-table' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: segmentationLabel(by) }), h('th', { scope: 'col', text: 'Customers' }), h('th', { scope: 'col', text: ctx.catalog.label(metric) }))),
        h(
          'tbody',
          {},
          ...rows.map((row) => {
            const segment = { key: row.key, label: segmentLabel(ctx, by, row) };
            const share = top > 0 && row.value !== null ? Math.abs(row.value) / top : 0;
            return h(
              'tr',
              { dataset: { key: row.key } },
              h('th', { scope: 'row' }, h('button', { type: 'button', class: 'll-link', text: segment.label, onClick: () => showMembers(segment) })),
              h('td', { dataset: { customers: String(row.customers) }, text: ctx.fmt.integer(row.customers) }),
              h(
                'td',
                { class: 'll-segment-value', dataset: { value: row.value === null ? '' : String(row.value), unit } },
                bar(share),
                h('span', { text: ctx.fmt.metric(row.value, unit) }),
              ),
            );
          }),
        ),
      );
      clear(body).append(table, members);
    },
  });
  return card;
}
