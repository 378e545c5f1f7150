// The owner's "request erasure" step for the customer shown in the dashboard: a button, a confirmation
// that asks for the customer id again, then DELETE /v1/customers/{id} with the session's CSRF token and
// the receipt (GET /v1/erasures/{id}), polled until the purge is complete: every store purged, what it
// removed and when, and what remains until Kafka retention. Only the dashboard mounts it, and only for an
// owner (the API admits owners and admin keys, never an embed token); the server decides either way.

import { enc } from './api.js';
import { h } from './dom.js';

const POLL_MS = 2000;

const STORE_LABEL = {
  speed_store: 'Speed store (this server)',
  answer_cache: 'Answer cache',
  master: 'Master dataset',
  event_index: 'Event-id index',
  quality_ledger: 'Quality ledger (identified-customer marks)',
  views: 'Batch views',
  serving_store: 'Serving-store files',
  master_second_pass: 'Master, second pass',
};

/** What one store's purge removed, in words (every count the receipt gives). */
function removed(facts) {
  const parts = [];
  for (const [name, value] of Object.entries(facts)) {
    if (name === 'at' || value === null || value === undefined) continue;
    const label = name.replaceAll('_', ' ');
    parts.push(Array.isArray(value) ? `${label}: ${value.length ? value.join(', ') : 'none'}` : `${label}: ${value}`);
  }
  return parts.join(' · ') || '—';
}

function when(ctx, iso) {
  return h('time', { datetime: iso, text: ctx.fmt.date(iso, { dateStyle: 'medium', timeStyle: 'medium' }) });
}

function receiptView(ctx, receipt) {
  const rows = Object.entries(receipt.stores).map(([store, facts]) =>
    h(
      'tr',
      { dataset: { store } },
      h('th', { scope: 'row', text: STORE_LABEL[store] || store }),
      h('td', { text: removed(facts) }),
      h('td', {}, when(ctx, facts.at)),
    ),
  );
  const state = receipt.state === 'complete' ? 'Complete' : 'Pending — the purge is running';
  return h(
    'div',
    { class: 'll-receipt', id: 'll-erasure-receipt', dataset: { erasureId: receipt.erasure_id, state: receipt.state } },
    h('h3', { class: 'll-panel-subtitle', text: 'Erasure receipt' }),
    h(
      'dl',
      { class: 'll-kv ll-receipt-facts' },
      h('dt', { text: 'Receipt' }),
      h('dd', {}, h('code', { text: receipt.erasure_id })),
      h('dt', { text: 'State' }),
      h('dd', { class: 'll-receipt-state', text: state }),
      h('dt', { text: 'Requested' }),
      h('dd', {}, when(ctx, receipt.requested_at)),
      h('dt', { text: 'Completed' }),
      h('dd', { class: 'll-receipt-completed' }, receipt.completed_at ? when(ctx, receipt.completed_at) : '—'),
      h('dt', { text: 'Ids erased' }),
      h('dd', { class: 'll-receipt-identities', text: String(receipt.identities) }),
    ),
    h(
      'table',
      { class: 'll-table ll-receipt-stores' },
      h('caption', { class: 'll-sr', text: 'Stores purged' }),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Store' }), h('th', { scope: 'col', text: 'Removed' }), h('th', { scope: 'col', text: 'When' }))),
      h('tbody', {}, ...rows),
    ),
    h('p', { class: 'll-muted ll-small ll-receipt-remains', text: `What remains: ${receipt.remains}` }),
  );
}

/** The erasure step for `customer`; `{ el, stop }` like a widget. */
export function mountErasure(ctx, { customer }) {
  const slot = h('div', { class: 'll-erase-body', 'aria-live': 'polite' });
  const status = h('p', { class: 'll-muted ll-small', role: 'status', id: 'll-erase-status' });
  let timer = null;
  let stopped = false;

  const stop = () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };

  const show = (receipt) => {
    slot.replaceChildren(receiptView(ctx, receipt));
    if (receipt.state !== 'complete' && !stopped) timer = setTimeout(() => poll(receipt.erasure_id), POLL_MS);
  };

  async function poll(erasureId) {
    try {
      show(await ctx.api.get(`/v1/erasures/${enc(erasureId)}`));
    } catch (error) {
      if (error.status === 401) ctx.onUnauthorized?.(error);
      else if (!stopped) {
        status.textContent = `The receipt could not be read (${error.detail || error.status}); retrying.`;
        timer = setTimeout(() => poll(erasureId), POLL_MS);
      }
    }
  }

  const confirmInput = h('input', { id: 'll-erase-confirm', class: 'll-input', autocomplete: 'off', spellcheck: 'false', maxlength: '128', placeholder: customer });
  const erase = h('button', { type: 'submit', class: 'll-button ll-button-danger', id: 'll-erase-submit', disabled: true, text: 'Erase permanently' });
  confirmInput.addEventListener('input', () => {
    erase.disabled = confirmInput.value.trim() !== customer;
  });
  const cancel = h('button', { type: 'button', class: 'll-button ll-button-quiet', id: 'll-erase-cancel', text: 'Cancel', onClick: () => {
    slot.replaceChildren(start);
    status.textContent = '';
  } });
  const confirm = h(
    'form',
    { class: 'll-erase-confirm', id: 'll-erase-form', onSubmit: async (event) => {
      event.preventDefault();
      if (confirmInput.value.trim() !== customer) return;
      erase.disabled = true;
      cancel.disabled = true;
      status.textContent = 'Requesting the erasure…';
      try {
        const receipt = await ctx.api.send('DELETE', `/v1/customers/${enc(customer)}`);
        status.textContent = '';
        show(receipt);
      } catch (error) {
        if (error.status === 401) ctx.onUnauthorized?.(error);
        status.textContent = `The erasure was refused (${error.detail || error.status}).`;
        erase.disabled = false;
        cancel.disabled = false;
      }
    } },
    h(
      'p',
      { class: 'll-erase-warning', role: 'alert' },
      'This permanently removes ',
      h('strong', { text: customer }),
      ' and every id merged with it from the master dataset, every batch view, the serving and speed stores and every cache. Their events are not counted again if they arrive later. It cannot be undone.',
    ),
    h('div', { class: 'll-field ll-field-grow' }, h('label', { for: 'll-erase-confirm', class: 'll-label', text: 'Type the customer id to confirm' }), confirmInput),
    h('div', { class: 'll-erase-actions' }, erase, cancel),
  );
  const start = h('button', { type: 'button', class: 'll-button ll-button-quiet', id: 'll-erase-request', text: 'Request erasure…', onClick: () => {
    confirmInput.value = '';
    erase.disabled = true;
    slot.replaceChildren(confirm);
    confirmInput.focus();
  } });
  slot.append(start);
  const el = h('div', { class: 'll-card ll-erase', id: 'll-erase', dataset: { customer } }, slot, status);
  return { el, stop };
}
