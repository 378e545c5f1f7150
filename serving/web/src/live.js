// Live refresh: pushed over GET /v1/live/stream where a widget has a stream, else (or when the stream
// cannot be had) polled every N seconds without reloading, pausing while the page is hidden, backing off
// on transient errors, stopping for good on 401/403/404. And the freshness badge every widget wears.

import { ApiError } from './api.js';
import { h } from './dom.js';

/**
 * Answers pushed by the server (`event` of `path`'s stream) instead of polled; falls back to `poll` when
 * the stream cannot be opened or breaks off without an `end`. An `end` for an expired or revoked token
 * is fatal like a 401; one for the stream's lifetime reconnects.
 */
export function live(api, { path, params, event }, load, opts) {
  let stopped = false;
  let fallback = null;
  const abort = new AbortController();
  const failOver = () => {
    if (!stopped && !fallback) fallback = poll(load, opts);
  };

  (async () => {
    while (!stopped) {
      let ended = null;
      try {
        await api.stream(
          path,
          params,
          (name, data) => {
            if (stopped) return;
            if (name === event) opts.onData(data);
            else if (name === 'error' && data.topic === event) {
              const error = new ApiError(data.status, data.detail);
              opts.onError(error, { fatal: error.fatal, failures: 1 });
              if (error.fatal) stopped = true;
            } else if (name === 'end') ended = data.reason || 'ended';
          },
          abort.signal,
        );
      } catch (error) {
        if (stopped) return;
        if (error.fatal) {
          stopped = true;
          opts.onError(error, { fatal: true, failures: 1 });
        } else failOver();
        return;
      }
      if (stopped) return;
      if (ended === null) return failOver(); // closed without saying why: poll instead
      if (ended !== 'stream lifetime reached') {
        stopped = true;
        opts.onError(new ApiError(401, ended), { fatal: true, failures: 1 });
      }
    }
  })();

  return {
    stop() {
      stopped = true;
      abort.abort();
      fallback?.stop();
    },
    now() {
      fallback?.now();
    },
  };
}

export function poll(load, { seconds = 5, onData, onError }) {
  let timer = null;
  let stopped = false;
  let failures = 0;
  let inflight = false;

  const schedule = (delay) => {
    clearTimeout(timer);
    if (!stopped && seconds > 0 && !document.hidden) timer = setTimeout(tick, delay);
  };

  async function tick() {
    if (stopped || inflight) return;
    inflight = true;
    try {
      const data = await load();
      failures = 0;
      if (!stopped) onData(data);
      schedule(seconds * 1000);
    } catch (error) {
      failures += 1;
      const fatal = Boolean(error && error.fatal);
      if (fatal) stopped = true;
      onError(error, { fatal, failures });
      const wait = Math.max((error && error.retryAfter) || 0, Math.min(60, seconds * 2 ** failures));
      if (!fatal) schedule(wait * 1000);
    } finally {
      inflight = false;
    }
  }

  const onVisibility = () => {
    if (document.hidden) clearTimeout(timer);
    else if (!stopped) tick();
  };
  document.addEventListener('visibilitychange', onVisibility);
  tick();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    },
    now: tick,
  };
}

/** "Live · updated 3 s ago · batch v12", ticking every second from when the answer arrived. */
export class FreshnessBadge {
  constructor(fmt, refreshSeconds) {
    this.fmt = fmt;
    this.refresh = refreshSeconds;
    this.dot = h('span', { class: 'll-dot', 'aria-hidden': 'true' });
    this.text = h('span', { class: 'll-fresh-text', text: 'Connecting…' });
    this.el = h('p', { class: 'll-fresh', role: 'status', 'aria-live': 'off' }, this.dot, this.text);
    this.receivedAt = null;
    this.freshness = null;
    this.problem = null;
    this.timer = setInterval(() => this.render(), 1000);
  }

  update(freshness) {
    this.freshness = freshness || null;
    this.receivedAt = Date.now();
    this.problem = null;
    if (freshness) {
      this.el.dataset.asOf = freshness.as_of || '';
      this.el.dataset.batchVersion = String(freshness.batch_version ?? '');
      this.el.dataset.speedLagMs = String(freshness.speed_lag_ms ?? '');
    }
    this.render();
  }

  fail(message) {
    this.problem = message;
    this.render();
  }

  stop() {
    clearInterval(this.timer);
  }

  render() {
    const f = this.freshness;
    let state = 'live';
    const parts = [];
    if (this.problem) {
      state = 'error';
      parts.push(this.problem);
    } else if (!f) {
      state = 'idle';
      parts.push('Connecting…');
    } else {
      const age = Math.max(0, (Date.now() - this.receivedAt) / 1000);
      if (document.hidden) state = 'paused';
      else if (this.refresh > 0 && age > Math.max(15, this.refresh * 3)) state = 'stale';
      else if (this.refresh <= 0) state = 'static';
      parts.push(age < 2 ? 'Updated just now' : `Updated ${this.fmt.duration(age)} ago`);
      parts.push(f.batch_version ? `batch v${f.batch_version}` : 'live data only');
      if (f.speed_lag_ms > 5000) parts.push(`${this.fmt.duration(f.speed_lag_ms / 1000)} behind`);
      const details = [
        f.as_of ? `Computed at ${this.fmt.dateTime(f.as_of)}` : '',
        f.batch_watermark_time ? `batch data up to ${this.fmt.dateTime(f.batch_watermark_time)}` : '',
        this.refresh > 0 ? `refreshes every ${this.fmt.duration(this.refresh)}` : 'refresh off',
      ];
      this.el.title = details.filter(Boolean).join(' · ');
    }
    this.el.dataset.state = state;
    this.text.textContent = parts.join(' · ');
  }
}
