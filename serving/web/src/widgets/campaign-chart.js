// Campaign stats: the additive totals (counts and sums) and the ratios of them, a chart of one additive
// series chosen with tabs, and the points as a data table — which metric goes where comes from the catalog.

import { enc } from '../api.js';
import { createChart } from '../chart.js';
import { clear, h } from '../dom.js';
import { emptyView, widgetCard } from '../shell.js';
import { staticCard, stat } from './customer-card.js';
import { chartSeries, dataTable, rangeOf, swapDetails, xRange } from './metric-chart.js';

export function mountCampaignChart(ctx, { campaign, granularity, days, series }) {
  if (!campaign) return staticCard(ctx, 'Campaign performance', emptyView('No campaign chosen', 'This link does not name a campaign.'));
  const metrics = ctx.catalog.at('campaign').map((m) => m.name);
  const totalNames = metrics.filter((n) => ctx.catalog.additive(n));
  const ratioNames = metrics.filter((n) => !ctx.catalog.additive(n));
  const seriesNames = ctx.catalog.series('campaign').map((m) => m.name).filter((n) => ctx.catalog.additive(n));
  let current = seriesNames.includes(series) ? series : ctx.catalog.primary('campaign');
  const span = granularity === 'day' ? `${days} days` : `${days * 24} hours`;
  let chart = null;
  let range = null;
  let last = null;

  function draw(body) {
    const [xs, ys] = chartSeries(last.points || [], current, range, true);
    if (chart) chart.destroy();
    const holder = body.querySelector('.ll-chart');
    clear(holder);
    chart = createChart(holder, {
      kind: 'bars',
      label: ctx.catalog.label(current),
      granularity,
      utc: granularity === 'day',
      fmt: ctx.fmt,
      unit: ctx.catalog.unit(current),
      range: xRange(range),
    });
    chart.set(xs, ys);
    holder.setAttribute('aria-label', `${ctx.catalog.label(current)} per ${granularity}, last ${span}`);
    for (const tab of body.querySelectorAll('[role=tab]')) {
      const on = tab.dataset.series === current;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
    }
  }

  function tabs(body) {
    const list = h('div', { class: 'll-tabs', role: 'tablist', 'aria-label': 'Series shown in the chart' });
    for (const name of seriesNames) {
      list.append(
        h('button', {
          type: 'button',
          role: 'tab',
          class: 'll-tab',
          text: ctx.catalog.label(name),
          dataset: { series: name },
          onClick: () => {
            current = name;
            draw(body);
          },
          onKeydown: (event) => {
            const i = seriesNames.indexOf(current);
            const next = event.key === 'ArrowRight' ? seriesNames[(i + 1) % seriesNames.length] : event.key === 'ArrowLeft' ? seriesNames[(i + seriesNames.length - 1) % seriesNames.length] : null;
            if (!next) return;
            event.preventDefault();
            current = next;
            draw(body);
            list.querySelector(`[data-series=${next}]`).focus();
          },
        }),
      );
    }
    return list;
  }

  const card = widgetCard(ctx, {
    title: 'Campaign performance',
    subtitle: `${campaign} · last ${span}`,
    kind: 'chart',
    what: 'this campaign',
    className: 'll-campaign',
    load() {
      range = rangeOf(granularity, days);
      return ctx.api.get(`/v1/campaigns/${enc(campaign)}/stats`, {
        granularity,
        start: new Date(range.start).toISOString(),
        end: new Date(range.end).toISOString(),
      });
    },
    render(data, body) {
      last = data;
      card.el.dataset.start = new Date(range.start).toISOString();
      card.el.dataset.end = new Date(range.end).toISOString();
      card.el.dataset.campaign = campaign;
      card.el.dataset.granularity = granularity;
      const totals = data.totals || {};
      if (!body.querySelector('.ll-chart')) {
        clear(body).append(
          h('div', { class: 'll-stats ll-totals' }),
          h('div', { class: 'll-stats ll-ratios' }),
          tabs(body),
          h('div', { class: 'll-chart', role: 'img' }),
          h('div', { class: 'll-empty-slot' }),
          h('div', { class: 'll-table-slot' }),
        );
      }
      body.querySelector('.ll-totals').replaceChildren(...totalNames.map((name) => stat(ctx, name, totals[name] ?? null)));
      body.querySelector('.ll-ratios').replaceChildren(...ratioNames.map((name) => stat(ctx, name, totals[name] ?? null, { small: true })));
      const points = data.points || [];
      body.querySelector('.ll-empty-slot').replaceChildren(points.length ? '' : emptyView('No data yet', `No activity in the last ${span}.`));
      body.querySelector('.ll-chart').hidden = !points.length;
      body.querySelector('.ll-tabs').hidden = !points.length;
      if (points.length) draw(body);
      swapDetails(body.querySelector('.ll-table-slot'), points.length ? dataTable(ctx, `Campaign ${campaign} per ${granularity}`, points, seriesNames, granularity) : null);
    },
  });
  const stop = card.stop;
  card.stop = () => {
    stop();
    chart?.destroy();
  };
  return card;
}
