// Numbers, money, durations and dates through Intl, in the page's locale and the tenant's currency.

function supported(locale) {
  if (!locale) return null;
  try {
    return Intl.NumberFormat.supportedLocalesOf([locale]).length ? locale : null;
  } catch {
    return null;
  }
}

function currencyOk(code) {
  if (!code || !/^[A-Z]{3}$/.test(code)) return null;
  try {
    new Intl.NumberFormat('en', { style: 'currency', currency: code });
    return code;
  } catch {
    return null;
  }
}

/** Locale: page parameter, else the tenant's default, else the browser's, else English. */
export function pickLocale(param, tenantDefault) {
  return supported(param) || supported(tenantDefault) || supported(navigator.language) || 'en';
}

export function pickCurrency(param, tenantDefault) {
  return currencyOk(param) || currencyOk(tenantDefault);
}

export class Formatter {
  constructor(locale, currency) {
    this.locale = locale;
    this.currencyCode = currency || null;
    this._cache = new Map();
  }

  nf(options) {
    const key = JSON.stringify(options);
    if (!this._cache.has(key)) this._cache.set(key, new Intl.NumberFormat(this.locale, options));
    return this._cache.get(key);
  }

  integer(v) {
    return this.nf({ maximumFractionDigits: 0 }).format(v);
  }

  decimal(v, digits = 2) {
    return this.nf({ maximumFractionDigits: digits }).format(v);
  }

  currency(v, { compact = false } = {}) {
    const base = compact ? { notation: 'compact', maximumFractionDigits: 1 } : {};
    if (this.currencyCode) return this.nf({ ...base, style: 'currency', currency: this.currencyCode }).format(v);
    return this.nf(compact ? base : { minimumFractionDigits: 2, maximumFractionDigits: 2 }).format(v);
  }

  percent(v, digits = 1) {
    return this.nf({ style: 'percent', maximumFractionDigits: digits }).format(v);
  }

  compact(v) {
    return this.nf({ notation: 'compact', maximumFractionDigits: 1 }).format(v);
  }

  unit(v, unit) {
    return this.nf({ style: 'unit', unit, unitDisplay: 'short', maximumFractionDigits: 0 }).format(v);
  }

  /** 42 s · 4 min 05 s · 31 min · 2 h 5 min · 3 d 4 h */
  duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return this.unit(s, 'second');
    if (s < 600) return `${this.unit(Math.floor(s / 60), 'minute')} ${this.unit(s % 60, 'second')}`;
    const m = Math.round(s / 60);
    if (m < 60) return this.unit(m, 'minute');
    if (m < 1440) {
      const rest = m % 60;
      return rest ? `${this.unit(Math.floor(m / 60), 'hour')} ${this.unit(rest, 'minute')}` : this.unit(m / 60, 'hour');
    }
    const hours = Math.round(m / 60);
    const rest = hours % 24;
    return rest ? `${this.unit(Math.floor(hours / 24), 'day')} ${this.unit(rest, 'hour')}` : this.unit(hours / 24, 'day');
  }

  /** "3 minutes ago" / "in 2 hours", from an ISO timestamp or epoch ms. */
  relative(t, now = Date.now()) {
    const ms = typeof t === 'number' ? t : Date.parse(t);
    const diff = (ms - now) / 1000;
    const rtf = new Intl.RelativeTimeFormat(this.locale, { numeric: 'auto' });
    const abs = Math.abs(diff);
    if (abs < 45) return rtf.format(Math.round(diff), 'second');
    if (abs < 2700) return rtf.format(Math.round(diff / 60), 'minute');
    if (abs < 64800) return rtf.format(Math.round(diff / 3600), 'hour');
    if (abs < 86400 * 26) return rtf.format(Math.round(diff / 86400), 'day');
    if (abs < 86400 * 320) return rtf.format(Math.round(diff / (86400 * 30.4)), 'month');
    return rtf.format(Math.round(diff / (86400 * 365)), 'year');
  }

  date(t, options = { dateStyle: 'medium' }) {
    const d = typeof t === 'number' ? new Date(t) : new Date(Date.parse(t));
    return new Intl.DateTimeFormat(this.locale, options).format(d);
  }

  dateTime(t) {
    return this.date(t, { dateStyle: 'medium', timeStyle: 'short' });
  }

  /** A cohort label "2026-01" → "Jan 2026". */
  month(label) {
    const [y, m] = label.split('-').map(Number);
    return new Intl.DateTimeFormat(this.locale, { month: 'short', year: 'numeric', timeZone: 'UTC' }).format(
      new Date(Date.UTC(y, m - 1, 1)),
    );
  }

  /** A metric value as people read it, by the catalog unit. */
  metric(value, unit) {
    if (value === null || value === undefined) return '—';
    switch (unit) {
      case 'currency':
        return this.currency(value);
      case 'seconds':
        return this.duration(value);
      case 'timestamp':
        return this.relative(value);
      case 'ratio':
        return this.percent(value, 2);
      case 'score':
        return this.decimal(value, 2);
      default:
        return Number.isInteger(value) ? this.integer(value) : this.decimal(value, 2);
    }
  }

  /** A short axis label for a value of this unit. */
  axis(value, unit) {
    if (unit === 'currency') return this.currency(value, { compact: true });
    if (unit === 'ratio') return this.percent(value, 1);
    if (unit === 'seconds') return this.duration(value);
    return this.compact(value);
  }
}
