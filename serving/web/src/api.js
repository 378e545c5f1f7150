// The v1 API from the browser, with the page's token (an embed or dashboard token, never a tenant key).

export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail || '';
  }

  /** Errors that no retry can fix: the widget stops refreshing and says why. */
  get fatal() {
    return this.status === 401 || this.status === 403 || this.status === 404 || this.status === 422;
  }

  get expired() {
    return this.status === 401 && this.detail === 'token expired';
  }
}

export class Api {
  constructor(token) {
    this.token = token;
  }

  async get(path, params = {}) {
    const query = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') query.set(k, v);
    const qs = query.toString();
    const url = qs ? `${path}?${qs}` : path;
    let response;
    try {
      response = await fetch(url, {
        headers: { Authorization: `Bearer ${this.token}`, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch {
      throw new ApiError(0, 'network error');
    }
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) {
      const detail = body && typeof body.detail === 'string' ? body.detail : '';
      const error = new ApiError(response.status, detail);
      error.retryAfter = Number(response.headers.get('Retry-After')) || 0;
      throw error;
    }
    return body;
  }
}

export const enc = encodeURIComponent;
