// The frame every widget shares: a card with a title, a body that shows loading / empty / error states,
// and a footer with the freshness badge. Widgets only fill the body with data.

import { ICONS, clear, h, icon } from './dom.js';
import { FreshnessBadge, live, poll } from './live.js';

export function skeleton(kind = 'tiles') {
  const rows = {
    tiles: () => h('div', { class: 'll-skel-row' }, ...[0, 1, 2].map(() => h('div', { class: 'll-skel ll-skel-tile' }))),
    chart: () => h('div', { class: 'll-skel ll-skel-chart' }),
    table: () => h('div', {}, ...[0, 1, 2, 3].map(() => h('div', { class: 'll-skel ll-skel-line' }))),
    badge: () => h('div', { class: 'll-skel-row' }, ...[0, 1, 2].map(() => h('div', { class: 'll-skel ll-skel-small' }))),
  };
  return h('div', { class: 'll-skeleton', 'aria-hidden': 'true' }, (rows[kind] || rows.tiles)());
}

/** Who to ask for a new link, in the words the tenant chose. */
export function askWho(ctx) {
  return ctx.tenant?.display_name || 'the site that gave it to you';
}

export function errorView(error, ctx, { what = 'this data' } = {}) {
  if (error && error.expired) {
    return message(
      'expired',
      ICONS.clock,
      ctx.page === 'dashboard'
        ? 'Your session has expired'
        : `This link has expired — ask ${askWho(ctx)} for a new one`,
      ctx.page === 'dashboard' ? 'Sign in again to keep watching your numbers.' : 'Shared links stop working after a while, to keep your data private.',
    );
  }
  if (error && error.status === 401) {
    return message('invalid', ICONS.lock, `This link is not valid — ask ${askWho(ctx)} for a new one`, '');
  }
  if (error && (error.status === 404 || error.status === 403)) {
    return message('unavailable', ICONS.lock, 'Not available', `${capital(what)} is not available with this link.`);
  }
  if (error && error.status === 422) {
    return message('unavailable', ICONS.alert, 'Not available', error.detail || 'This request is not supported.');
  }
  if (error && error.status === 503) {
    return message('retrying', ICONS.wifi, 'Catching up', 'The latest numbers are being prepared. Retrying…');
  }
  return message('retrying', ICONS.wifi, 'Connection lost', 'Retrying in a moment…');
}

function capital(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

export function message(kind, paths, title, text) {
  return h(
    'div',
    { class: `ll-state ll-state-${kind}`, role: kind === 'retrying' ? 'status' : 'alert', dataset: { state: kind } },
    icon(paths, 28),
    h('p', { class: 'll-state-title', text: title }),
    text ? h('p', { class: 'll-state-text', text }) : null,
  );
}

export function emptyView(title = 'No data yet', text = 'Numbers appear here as soon as the first events arrive.') {
  return message('empty', ICONS.empty, title, text);
}

/**
 * A card that polls `load`, renders with `render(data, body)`, and shows every state on the way.
 * Returns {el, stop}.
 */
export function widgetCard(ctx, { title, subtitle, kind = 'tiles', what, load, push, render, className = '', headExtra }) {
  const titleEl = h('h2', { class: 'll-title', text: title });
  const subEl = subtitle ? h('p', { class: 'll-subtitle', text: subtitle }) : null;
  const body = h('div', { class: 'll-body' }, skeleton(kind));
  const badge = new FreshnessBadge(ctx.fmt, ctx.refresh);
  const el = h(
    'section',
    { class: `ll-card ll-widget ${className}`, 'aria-busy': 'true', 'aria-label': title },
    h('header', { class: 'll-card-head' }, h('div', { class: 'll-head-text' }, titleEl, subEl), headExtra || null),
    body,
    h('footer', { class: 'll-card-foot' }, badge.el),
  );
  let shown = false;
  const refresh = {
    seconds: ctx.refresh,
    onData(data) {
      if (!shown) clear(body);
      shown = true;
      el.setAttribute('aria-busy', 'false');
      el.dataset.ready = 'true';
      render(data, body, { titleEl, subEl });
      badge.update(data && data.freshness);
      ctx.resized?.();
    },
    onError(error, { fatal }) {
      el.setAttribute('aria-busy', 'false');
      if (fatal) {
        clear(body).append(errorView(error, ctx, { what }));
        el.dataset.ready = 'error';
        badge.stop();
        badge.el.hidden = true;
        if (error.status === 401) ctx.onUnauthorized?.(error);
      } else if (!shown) {
        clear(body).append(errorView(error, ctx, { what }));
        badge.fail(error.status === 503 ? 'Catching up…' : 'Reconnecting…');
      } else {
        badge.fail(error.status === 503 ? 'Catching up…' : 'Reconnecting…');
      }
      ctx.resized?.();
    },
  };
  // `push`: the widget's answer has a stream; refresh=0 (a still snapshot) neither streams nor polls
  const handle = push && ctx.refresh > 0 ? live(ctx.api, push, load, refresh) : poll(load, refresh);
  return {
    el,
    stop() {
      handle.stop();
      badge.stop();
    },
    refreshNow: handle.now,
  };
}
