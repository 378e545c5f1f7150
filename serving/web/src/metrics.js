// Human labels for the catalog's metric names; the catalog itself (units, descriptions) comes from the
// server with the page, the same list GET /v1/metrics publishes.

const LABELS = {
  events_total: 'Events',
  first_seen: 'First seen',
  last_seen: 'Last seen',
  sessions: 'Sessions',
  page_views: 'Page views',
  orders: 'Orders',
  paid_orders: 'Paid orders',
  revenue: 'Revenue',
  refunds: 'Refunds',
  last_order_at: 'Last order',
  ad_impressions: 'Ad impressions',
  ad_clicks: 'Ad clicks',
  tickets_opened: 'Tickets opened',
  tickets_resolved: 'Tickets resolved',
  net_revenue: 'Net revenue',
  avg_order_value: 'Avg. order value',
  open_tickets: 'Open tickets',
  avg_first_response_seconds: 'Avg. first response',
  avg_resolution_seconds: 'Avg. resolution time',
  csat_avg: 'Satisfaction (CSAT)',
  impressions: 'Impressions',
  clicks: 'Clicks',
  spend: 'Spend',
  conversions: 'Conversions',
  ctr: 'Click-through rate',
  cpc: 'Cost per click',
  cpa: 'Cost per acquisition',
  orders_in_progress: 'Orders in progress',
  avg_wait_seconds: 'Average wait',
  p90_wait_seconds: '90% delivered within',
};

export const SEGMENTS = {
  champions: 'Champion',
  loyal: 'Loyal',
  new: 'New',
  promising: 'Promising',
  at_risk: 'At risk',
  hibernating: 'Hibernating',
  need_attention: 'Needs attention',
};

const SHORT = {
  ctr: 'CTR',
  cpc: 'CPC',
  cpa: 'CPA',
  avg_first_response_seconds: 'First response',
  avg_resolution_seconds: 'Resolution time',
  csat_avg: 'CSAT',
};

/** A label that fits a small tile; the full label goes in its title. */
export function shortLabel(name) {
  return SHORT[name] || label(name);
}

export function label(name) {
  if (LABELS[name]) return LABELS[name];
  const text = name.replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export class Catalog {
  constructor(entries) {
    this.byName = new Map((entries || []).map((m) => [m.name, m]));
  }

  unit(name) {
    return this.byName.get(name)?.unit || 'count';
  }

  description(name) {
    return this.byName.get(name)?.description || '';
  }

  /** Customer metrics that have a time series (GET /v1/customers/{id}/timeseries). */
  series() {
    return [...this.byName.values()].filter((m) => m.series);
  }

  additive(name) {
    return Boolean(this.byName.get(name)?.additive);
  }
}
