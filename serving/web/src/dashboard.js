// The tenant dashboard of a signed-in user: the server-side session rides in an HttpOnly cookie (this
// script never holds a credential); the page config says who is signed in. Live wait times, a customer
// lookup (with, for an owner, a request to erase the customer shown), a campaign lookup, the segments
// panel (drilling down to a customer's card), the cohort table and the feed health, each refreshing on
// its own. Sign-out posts the server-rendered form that carries the session's CSRF token.

import { Api } from './api.js';
import { ICONS, clear, h, icon } from './dom.js';
import { Formatter, pickCurrency, pickLocale } from './format.js';
import { Catalog } from './metrics.js';
import { mountCampaignChart } from './widgets/campaign-chart.js';
import { mountCohortHeatmap } from './widgets/cohort-heatmap.js';
import { mountCustomerCard } from './widgets/customer-card.js';
import { mountLiveBadge } from './widgets/live-badge.js';
import { mountMetricChart } from './widgets/metric-chart.js';
import { mountQualityPanel } from './widgets/quality-panel.js';
import { mountErasure } from './erase.js';
import { mountSegmentTable, segmentationLabel } from './widgets/segment-table.js';
import { mountTeam } from './team.js';

const ID = /^\S(?:.{0,126}\S)?$/; // what the API accepts (1-128 characters), without edge spaces
const ROLE_LABEL = { owner: 'Owner', analyst: 'Analyst', viewer: 'Viewer' };

function showLogin() {
  const login = document.getElementById('ll-login');
  if (!login) return;
  login.hidden = false;
  login.querySelector('input[type=email]')?.focus();
}

function signedOut(expired) {
  location.assign(`/dashboard?login=${expired ? 'expired' : 'signed-out'}`);
}

function applyTheme(branding) {
  for (const [name, value] of Object.entries(branding.theme || {})) {
    if (/^--ll-[a-z-]+$/.test(name)) document.documentElement.style.setProperty(name, value);
  }
}

function logoOf(branding, cls) {
  if (!branding.logo_url) return h('span', { class: `${cls} ll-logo-mark`, 'aria-hidden': 'true', text: (branding.display_name || '?').slice(0, 1).toUpperCase() });
  return h('img', { class: cls, src: branding.logo_url, alt: `${branding.display_name} logo`, referrerpolicy: 'no-referrer' });
}

function setQuery(updates) {
  const params = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(updates)) {
    if (v) params.set(k, v);
    else params.delete(k);
  }
  history.replaceState(null, '', `${location.pathname}?${params}`);
}

export async function mountDashboard(config, root) {
  const tenantHint = config.tenant;
  if (tenantHint) {
    document.getElementById('ll-login-brand')?.append(logoOf(tenantHint, 'll-login-logo'));
  }
  const params = new URLSearchParams(location.search);
  const session = config.session;
  if (!session) {
    showLogin();
    return;
  }
  const api = new Api(null, { csrf: session.csrf_token });
  let branding;
  try {
    branding = await api.get('/v1/branding');
  } catch (error) {
    if (error.status === 401) signedOut(true);
    else clear(root).append(h('p', { class: 'll-error', role: 'alert', text: 'The dashboard could not load. Reload the page to try again.' }));
    return;
  }
  applyTheme(branding);
  const catalog = new Catalog(config.catalog);
  const fmt = new Formatter(pickLocale(params.get('locale'), branding.locale), pickCurrency(params.get('currency'), branding.currency));
  const widgets = new Set();
  const refresh = Math.max(2, Number.parseInt(params.get('refresh') || '5', 10) || 5);
  const ctx = {
    page: 'dashboard',
    api,
    fmt,
    catalog,
    tenant: branding,
    scope: null,
    refresh,
    brand: branding.primary_color,
    onUnauthorized() {
      for (const w of widgets) w.stop();
      widgets.clear();
      signedOut(true); // idle or absolute timeout, or signed out elsewhere: the server says which page
    },
  };
  const track = (w) => {
    widgets.add(w);
    return w;
  };
  root.dataset.tenant = branding.tenant_id;
  document.title = `${branding.display_name} · Analytics`;

  const signOut = h('button', { type: 'button', id: 'll-signout-button', class: 'll-button ll-button-quiet', onClick: () => {
    document.getElementById('ll-signout').requestSubmit(); // a POST with the session's CSRF token
  } }, icon(ICONS.logout, 18), 'Sign out');
  const account = h(
    'div',
    { class: 'll-account' },
    h('p', { class: 'll-account-email', id: 'll-account-email', text: session.email }),
    h('p', { class: 'll-muted ll-small', id: 'll-account-role', text: ROLE_LABEL[session.role] || session.role }),
  );

  const header = h(
    'header',
    { class: 'll-topbar' },
    h(
      'div',
      { class: 'll-brand' },
      logoOf(branding, 'll-logo'),
      branding.logo_url
        ? h('p', { class: 'll-brand-sub', text: 'Customer analytics' })
        : h('div', {}, h('p', { class: 'll-brand-name', text: branding.display_name }), h('p', { class: 'll-muted ll-small', text: 'Customer analytics' })),
    ),
    h('div', { class: 'll-topbar-end' }, account, signOut),
  );

  // customer lookup
  const seriesNames = catalog.series('customer').map((m) => m.name);
  const customerInput = h('input', { id: 'll-customer', name: 'customer', class: 'll-input', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'Customer ID', maxlength: '128' });
  const metricSelect = h('select', { id: 'll-metric', name: 'metric', class: 'll-input' }, ...seriesNames.map((n) => h('option', { value: n, text: catalog.label(n) })));
  metricSelect.value = seriesNames.includes(params.get('metric')) ? params.get('metric') : catalog.primary('customer');
  const customerSlot = h('div', { class: 'll-pair', 'aria-live': 'polite' });
  const eraseSlot = h('div', {});
  let customerWidgets = [];
  const showCustomer = (customer, metric) => {
    for (const w of customerWidgets) {
      w.stop();
      widgets.delete(w);
    }
    customerWidgets = [
      track(mountCustomerCard(ctx, { customer })),
      track(mountMetricChart(ctx, { customer, metric, granularity: 'day', days: 30 })),
    ];
    customerSlot.replaceChildren(...customerWidgets.map((w) => w.el));
    // erasing is the owner's decision (the API admits owners and admin keys only)
    const erasure = session.role === 'owner' ? track(mountErasure(ctx, { customer })) : null;
    if (erasure) customerWidgets.push(erasure);
    eraseSlot.replaceChildren(...(erasure ? [erasure.el] : []));
    setQuery({ customer, metric });
  };
  const customerForm = lookupForm('Look up a customer', 'll-customer', customerInput, [h('label', { for: 'll-metric', class: 'll-label', text: 'Chart' }), metricSelect], (event) => {
    event.preventDefault();
    if (customerInput.checkValidity()) showCustomer(customerInput.value.trim(), metricSelect.value);
  });
  metricSelect.addEventListener('change', () => {
    if (customerWidgets.length && customerInput.value) showCustomer(customerInput.value.trim(), metricSelect.value);
  });

  // campaign lookup
  const campaignInput = h('input', { id: 'll-campaign', name: 'campaign', class: 'll-input', required: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'Campaign ID', maxlength: '128' });
  const campaignSlot = h('div', { 'aria-live': 'polite' });
  let campaignWidget = null;
  const showCampaign = (campaign) => {
    if (campaignWidget) {
      campaignWidget.stop();
      widgets.delete(campaignWidget);
    }
    campaignWidget = track(mountCampaignChart(ctx, { campaign, granularity: 'day', days: 30 }));
    campaignSlot.replaceChildren(campaignWidget.el);
    setQuery({ campaign });
  };
  const campaignForm = lookupForm('Look up a campaign', 'll-campaign', campaignInput, [], (event) => {
    event.preventDefault();
    if (campaignInput.checkValidity()) showCampaign(campaignInput.value.trim());
  });

  // segments: pick a segmentation and a metric; a customer picked in the drill-down opens its card above
  const choices = config.segments || { by: [], metrics: [] };
  const bySelect = h('select', { id: 'll-segment-by', name: 'by', class: 'll-input' }, ...choices.by.map((b) => h('option', { value: b, text: segmentationLabel(b) })));
  const segMetricSelect = h('select', { id: 'll-segment-metric', name: 'segment_metric', class: 'll-input' }, ...choices.metrics.map((n) => h('option', { value: n, text: catalog.label(n) })));
  bySelect.value = choices.by.includes(params.get('by')) ? params.get('by') : choices.by.includes('rfm_segment') ? 'rfm_segment' : choices.by[0];
  segMetricSelect.value = choices.metrics.includes(params.get('segment_metric')) ? params.get('segment_metric') : choices.metrics.includes(catalog.primary('customer')) ? catalog.primary('customer') : choices.metrics[0];
  const RANGES = { 0: 'All time', 7: 'Last 7 days', 30: 'Last 30 days', 90: 'Last 90 days' };
  const rangeSelect = h('select', { id: 'll-segment-range', name: 'segment_days', class: 'll-input' }, ...Object.entries(RANGES).map(([d, text]) => h('option', { value: d, text })));
  rangeSelect.value = params.get('segment_days') in RANGES ? params.get('segment_days') : '0';
  const segmentSlot = h('div', { 'aria-live': 'polite' });
  let segmentWidget = null;
  const showSegments = () => {
    if (segmentWidget) {
      segmentWidget.stop();
      widgets.delete(segmentWidget);
    }
    segmentWidget = track(mountSegmentTable(ctx, {
      by: bySelect.value,
      metric: segMetricSelect.value,
      days: Number(rangeSelect.value),
      onCustomer(customer) {
        customerInput.value = customer;
        showCustomer(customer, metricSelect.value);
        customerSlot.scrollIntoView({ block: 'nearest' });
      },
    }));
    segmentSlot.replaceChildren(segmentWidget.el);
    setQuery({ by: bySelect.value, segment_metric: segMetricSelect.value, segment_days: rangeSelect.value === '0' ? null : rangeSelect.value });
  };
  for (const select of [bySelect, segMetricSelect, rangeSelect]) select.addEventListener('change', showSegments);
  const segmentForm = h(
    'div',
    { class: 'll-lookup' },
    h('div', { class: 'll-field' }, h('label', { for: 'll-segment-by', class: 'll-label', text: 'Group by' }), bySelect),
    h('div', { class: 'll-field' }, h('label', { for: 'll-segment-metric', class: 'll-label', text: 'Metric' }), segMetricSelect),
    h('div', { class: 'll-field' }, h('label', { for: 'll-segment-range', class: 'll-label', text: 'Over' }), rangeSelect),
  );

  clear(root).append(
    header,
    h(
      'main',
      { class: 'll-dash' },
      h('div', { class: 'll-dash-live' }, track(mountLiveBadge(ctx, { window: '30m' })).el),
      h('section', { class: 'll-panel', 'aria-labelledby': 'll-customers-title' }, h('h2', { id: 'll-customers-title', class: 'll-panel-title', text: 'Customers' }), customerForm, customerSlot, eraseSlot),
      h('section', { class: 'll-panel', 'aria-labelledby': 'll-campaigns-title' }, h('h2', { id: 'll-campaigns-title', class: 'll-panel-title', text: 'Campaigns' }), campaignForm, campaignSlot),
      h('section', { class: 'll-panel ll-panel-wide', id: 'll-segments-panel', 'aria-labelledby': 'll-segments-title' }, h('h2', { id: 'll-segments-title', class: 'll-panel-title', text: 'Segments' }), segmentForm, segmentSlot),
      h('section', { class: 'll-panel ll-panel-wide', 'aria-labelledby': 'll-cohorts-title' }, h('h2', { id: 'll-cohorts-title', class: 'll-panel-title', text: 'Retention' }), track(mountCohortHeatmap(ctx, { months: 12 })).el),
      h('section', { class: 'll-panel ll-panel-wide', id: 'll-quality-panel', 'aria-labelledby': 'll-quality-title' }, h('h2', { id: 'll-quality-title', class: 'll-panel-title', text: 'Feed health' }), track(mountQualityPanel(ctx, { window: '24h' })).el),
      session.role === 'owner'
        ? h('section', { class: 'll-panel ll-panel-wide', 'aria-labelledby': 'll-team-title' }, h('h2', { id: 'll-team-title', class: 'll-panel-title', text: 'Team' }), mountTeam(ctx).el)
        : null,
    ),
  );
  if (choices.by.length && choices.metrics.length) showSegments();
  root.setAttribute('aria-busy', 'false');
  root.dataset.ready = 'true';

  const customer = params.get('customer');
  if (customer && ID.test(customer)) {
    customerInput.value = customer;
    showCustomer(customer, metricSelect.value);
  }
  const campaign = params.get('campaign');
  if (campaign && ID.test(campaign)) {
    campaignInput.value = campaign;
    showCampaign(campaign);
  }
}

function lookupForm(labelText, inputId, input, extra, onSubmit) {
  return h(
    'form',
    { class: 'll-lookup', role: 'search', onSubmit },
    h('div', { class: 'll-field ll-field-grow' }, h('label', { for: inputId, class: 'll-label', text: labelText }), input),
    extra.length ? h('div', { class: 'll-field' }, ...extra) : null,
    h('button', { type: 'submit', class: 'll-button' }, icon(ICONS.search, 18), 'Show'),
  );
}
