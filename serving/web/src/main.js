// Entry point of every page: reads the server's page config (a JSON data block, never executed), then
// mounts one widget (/embed/...) or the dashboard (/dashboard).

import { Api } from './api.js';
import { mountDashboard } from './dashboard.js';
import { clear } from './dom.js';
import { Formatter, pickCurrency, pickLocale } from './format.js';
import { Catalog } from './metrics.js';
import { errorView } from './shell.js';
import { mountCampaignChart } from './widgets/campaign-chart.js';
import { mountCohortHeatmap } from './widgets/cohort-heatmap.js';
import { mountCustomerCard } from './widgets/customer-card.js';
import { mountMetricChart } from './widgets/metric-chart.js';
import { mountLiveBadge } from './widgets/live-badge.js';

function readConfig() {
  try {
    return JSON.parse(document.getElementById('ll-config').textContent);
  } catch {
    return { page: 'embed', token_state: 'invalid' };
  }
}

function int(value, fallback, min, max) {
  const n = Number.parseInt(value ?? '', 10);
  return Number.isFinite(n) ? Math.min(max, Math.max(min, n)) : fallback;
}

/** Seconds between refreshes: ?refresh=N (0 turns it off), default 5. */
export function refreshSeconds(params) {
  const n = int(params.get('refresh'), 5, 0, 3600);
  return n === 0 ? 0 : Math.max(2, n);
}

export function widgetOptions(widget, params, config, catalog) {
  const scope = config.scope || {};
  const granularity = params.get('granularity') === 'hour' ? 'hour' : 'day';
  const days = int(params.get('days'), granularity === 'hour' ? 2 : 30, 1, granularity === 'hour' ? 14 : 400);
  const seriesNames = catalog.series('customer').map((m) => m.name);
  const metric = seriesNames.includes(params.get('metric')) ? params.get('metric') : catalog.primary('customer');
  const window = /^\d{1,6}[smhd]$/.test(params.get('window') || '') ? params.get('window') : '30m';
  const month = (v) => (/^\d{4}-\d{2}$/.test(v || '') ? v : null);
  return {
    customer: params.get('customer') || scope.customer_id || null,
    campaign: params.get('campaign') || (scope.campaigns || [])[0] || null,
    metrics: (params.get('metrics') || '').split(',').map((s) => s.trim()).filter(Boolean),
    metric,
    granularity,
    days,
    series: params.get('series'),
    window,
    start: month(params.get('start')),
    end: month(params.get('end')),
    months: int(params.get('months'), 12, 1, 36),
  };
}

const MOUNT = {
  'customer-card': mountCustomerCard,
  'metric-chart': mountMetricChart,
  'campaign-chart': mountCampaignChart,
  'live-badge': mountLiveBadge,
  'cohort-heatmap': mountCohortHeatmap,
};

/** Inside an iframe: tell the host page (widget.js) how tall the widget is. */
function reportHeight(frameId) {
  if (window.parent === window) return () => {};
  let last = 0;
  const send = () => {
    const height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height !== last) {
      last = height;
      window.parent.postMessage({ type: 'lambdalytics:resize', id: frameId, height }, '*');
    }
  };
  new ResizeObserver(send).observe(document.documentElement);
  return send;
}

function mountEmbed(config, root) {
  const params = new URLSearchParams(location.search);
  const catalog = new Catalog(config.catalog);
  const tenant = config.tenant || null;
  const fmt = new Formatter(pickLocale(params.get('locale'), tenant?.locale), pickCurrency(params.get('currency'), tenant?.currency));
  const frameId = (params.get('frame') || '').slice(0, 64);
  const resized = reportHeight(frameId);
  const ctx = {
    page: 'embed',
    api: new Api(params.get('token') || ''),
    fmt,
    catalog,
    tenant,
    scope: config.scope,
    refresh: refreshSeconds(params),
    brand: tenant?.primary_color || '#3b5bdb',
    resized,
  };
  root.dataset.widget = config.widget;
  root.dataset.locale = fmt.locale;
  root.dataset.currency = fmt.currencyCode || '';
  if (config.token_state !== 'ok') {
    // expired: the server told us already, no request needed; invalid or missing: never use it
    const error = config.token_state === 'expired' ? { status: 401, detail: 'token expired', expired: true } : { status: 401, detail: 'invalid token' };
    clear(root).append(errorView(error, ctx));
    root.dataset.ready = 'error';
    root.setAttribute('aria-busy', 'false');
    resized();
    return;
  }
  const widget = MOUNT[config.widget](ctx, widgetOptions(config.widget, params, config, catalog));
  clear(root).append(widget.el);
  root.setAttribute('aria-busy', 'false');
  resized();
}

const config = readConfig();
const root = document.getElementById('ll-root');
if (config.page === 'dashboard') mountDashboard(config, root);
else if (config.page !== 'invite') mountEmbed(config, root); // the invite page is a plain form
