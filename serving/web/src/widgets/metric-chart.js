// A customer metric over time (hour or day buckets): a total (or the latest value for averages), the
// chart, and the API's points as a data table.

import { enc } from '../api.js';
import { BUCKET_MS, buckets, createChart } from '../chart.js';
import { clear, h } from '../dom.js';
import { emptyView, widgetCard } from '../shell.js';
import { staticCard } from './customer-card.js';

export function dataTable(ctx, caption, rows, columns, granularity) {
  const when = new Intl.DateTimeFormat(ctx.fmt.locale, granularity === 'day' ? { dateStyle: 'medium', timeZone: 'UTC' } : { dateStyle: 'medium', timeStyle: 'short' });
  const table = h(
    'table',
    { class: 'll-table' },
    h('caption', { class: 'll-sr', text: caption }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: granularity === 'day' ? 'Day' : 'Hour' }), ...columns.map((c) => h('th', { scope: 'col', text: ctx.catalog.label(c) })))),
    h(
      'tbody',
      {},
      ...rows.map((p) =>
        h(
          'tr',
          { dataset: { ts: p.ts } },
          h('th', { scope: 'row', text: when.format(new Date(Date.parse(p.ts))) }),
          ...columns.map((c) =>
            h('td', { text: ctx.fmt.metric(p[c], ctx.catalog.unit(c)), dataset: { metric: c, value: p[c] === null || p[c] === undefined ? '' : String(p[c]) } }),
          ),
        ),
      ),
    ),
  );
  const details = h('details', { class: 'll-details' }, h('summary', { text: `Data table (${rows.length} ${rows.length === 1 ? 'row' : 'rows'})` }), h('div', { class: 'll-scroll' }, table));
  details.addEventListener('toggle', () => ctx.resized?.());
  return details;
}

export function rangeOf(granularity, days) {
  const bucket = BUCKET_MS[granularity];
  const end = Date.now();
  const start = Math.floor((end - days * 86_400_000) / bucket) * bucket + bucket;
  return { start, end, bucket };
}

export function chartSeries(points, key, range, additive) {
  const byTs = new Map(points.map((p) => [Date.parse(p.ts), p[key]]));
  const xs = buckets(range.start, range.end, range.bucket);
  const ys = xs.map((t) => (byTs.has(t) ? byTs.get(t) : additive ? 0 : null));
  return [xs.map((t) => t / 1000), ys];
}

/** The x range in seconds: every bucket whole, bars centred on their bucket's start. */
export function xRange(range) {
  const half = range.bucket / 2000;
  const last = Math.floor((range.end - 1) / range.bucket) * range.bucket;
  return [range.start / 1000 - half, last / 1000 + half];
}

/** Replace a disclosure, keeping it open if the reader had opened it. */
export function swapDetails(slot, details) {
  const open = Boolean(slot.querySelector('details')?.open);
  if (details && open) details.open = true;
  slot.replaceChildren(details || '');
}

export function mountMetricChart(ctx, { customer, metric, granularity, days }) {
  const unit = ctx.catalog.unit(metric);
  const additive = ctx.catalog.additive(metric);
  if (!customer) return staticCard(ctx, ctx.catalog.label(metric), emptyView('No customer chosen', 'This link does not name a customer.'));
  const span = granularity === 'day' ? `${days} days` : `${days * 24} hours`;
  let chart = null;
  let range = null;
  const card = widgetCard(ctx, {
    title: ctx.catalog.label(metric),
    subtitle: `${customer} · per ${granularity} · last ${span}`,
    kind: 'chart',
    what: 'this customer',
    className: 'll-metric-chart',
    load() {
      range = rangeOf(granularity, days);
      return ctx.api.get(`/v1/customers/${enc(customer)}/timeseries`, {
        metric,
        granularity,
        start: new Date(range.start).toISOString(),
        end: new Date(range.end).toISOString(),
      });
    },
    render(data, body) {
      const points = data.points || [];
      card.el.dataset.start = new Date(range.start).toISOString();
      card.el.dataset.end = new Date(range.end).toISOString();
      card.el.dataset.metric = metric;
      card.el.dataset.granularity = granularity;
      const values = points.map((p) => p.value).filter((v) => v !== null && v !== undefined);
      const headline = additive ? values.reduce((a, b) => a + b, 0) : values.length ? values[values.length - 1] : null;
      if (!body.querySelector('.ll-chart')) {
        chart?.destroy();
        clear(body);
        body.append(
          h('div', { class: 'll-headline' }),
          h('div', { class: 'll-chart', role: 'img' }),
          h('div', { class: 'll-empty-slot' }),
          h('div', { class: 'll-table-slot' }),
        );
        chart = createChart(body.querySelector('.ll-chart'), {
          kind: additive ? 'bars' : 'line',
          label: ctx.catalog.label(metric),
          granularity,
          utc: granularity === 'day',
          fmt: ctx.fmt,
          unit,
          range: xRange(range),
        });
      }
      const headlineValue = h('span', {
        class: 'll-big',
        text: ctx.fmt.metric(headline, unit),
        dataset: { role: additive ? 'total' : 'latest', value: headline === null ? '' : String(headline) },
      });
      body.querySelector('.ll-headline').replaceChildren(
        headlineValue,
        h('span', { class: 'll-muted', text: additive ? ` total, last ${span}` : ' latest' }),
      );
      const [xs, ys] = chartSeries(points, 'value', range, additive);
      chart.set(xs, ys, xRange(range));
      body.querySelector('.ll-chart').setAttribute(
        'aria-label',
        `${ctx.catalog.label(metric)} per ${granularity} for ${customer}, last ${span}: ${points.length} ${granularity}s with data` +
          (headline === null ? '' : `, ${additive ? 'total' : 'latest'} ${ctx.fmt.metric(headline, unit)}`),
      );
      body.querySelector('.ll-empty-slot').replaceChildren(points.length ? '' : emptyView('No data yet', `Nothing in the last ${span}.`));
      body.querySelector('.ll-chart').hidden = !points.length;
      swapDetails(
        body.querySelector('.ll-table-slot'),
        points.length ? dataTable(ctx, `${ctx.catalog.label(metric)} per ${granularity}`, points.map((p) => ({ ts: p.ts, [metric]: p.value })), [metric], granularity) : null,
      );
    },
  });
  const stop = card.stop;
  card.stop = () => {
    stop();
    chart?.destroy();
  };
  return card;
}
