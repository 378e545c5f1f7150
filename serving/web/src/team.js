// The owner's Team panel: the tenant's users (email, role, invited or active), a role picker and a
// remove button per user, and an invite form. Every write goes through the API with the session's CSRF
// token; the server refuses what a role may not do (only owners see the panel, and only owners may act).

import { clear, h } from './dom.js';

const ROLES = [
  ['viewer', 'Viewer — the dashboard'],
  ['analyst', 'Analyst — all data, share embeds'],
  ['owner', 'Owner — users, keys, branding'],
];

export function mountTeam(ctx) {
  const status = h('p', { class: 'll-muted ll-small', role: 'status', id: 'll-team-status' });
  const list = h('tbody');
  const table = h(
    'table',
    { class: 'll-table ll-team-table', id: 'll-team' },
    h('caption', { class: 'll-sr', text: 'Users of this tenant' }),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Email' }), h('th', { scope: 'col', text: 'Role' }), h('th', { scope: 'col', text: 'Status' }), h('th', { scope: 'col', text: '' }))),
    list,
  );
  const say = (text) => {
    status.textContent = text;
  };
  const failed = (error) => say(error.detail || `The change was refused (${error.status}).`);

  async function refresh() {
    const { users } = await ctx.api.get('/v1/users');
    clear(list);
    for (const user of users) {
      const select = h('select', { class: 'll-input', 'aria-label': `Role of ${user.email}`, dataset: { email: user.email } }, ...ROLES.map(([value, label]) => h('option', { value, text: label.split(' — ')[0] })));
      select.value = user.role;
      select.addEventListener('change', async () => {
        try {
          await ctx.api.send('PATCH', `/v1/users/${encodeURIComponent(user.user_id)}`, { role: select.value });
          say(`${user.email} is now ${select.value}.`);
        } catch (error) {
          select.value = user.role;
          failed(error);
        }
        await refresh();
      });
      const remove = h('button', { type: 'button', class: 'll-button ll-button-quiet', text: 'Remove', 'aria-label': `Remove ${user.email}`, onClick: async () => {
        try {
          await ctx.api.send('DELETE', `/v1/users/${encodeURIComponent(user.user_id)}`);
          say(`${user.email} was removed.`);
        } catch (error) {
          failed(error);
        }
        await refresh();
      } });
      list.append(h('tr', { dataset: { email: user.email } }, h('th', { scope: 'row', text: user.email }), h('td', {}, select), h('td', { text: user.active ? 'active' : 'invited' }), h('td', {}, remove)));
    }
  }

  const email = h('input', { id: 'll-invite-email', name: 'email', type: 'email', class: 'll-input', required: true, autocomplete: 'off', placeholder: 'colleague@example.com', maxlength: '254' });
  const role = h('select', { id: 'll-invite-role', name: 'role', class: 'll-input' }, ...ROLES.map(([value, label]) => h('option', { value, text: label })));
  const invite = h('output', { class: 'll-invite', id: 'll-invite-token', 'aria-live': 'polite' });
  const form = h(
    'form',
    { class: 'll-lookup', id: 'll-invite-form', onSubmit: async (event) => {
      event.preventDefault();
      if (!email.checkValidity()) return;
      try {
        const created = await ctx.api.send('POST', '/v1/users', { email: email.value.trim(), role: role.value });
        clear(invite).append(
          h('span', { text: `Invite for ${created.email} (shown once, valid 72 h): ` }),
          h('code', { text: created.invite_token }),
          h('span', { text: ' — they choose a password at ' }),
          h('code', { text: `${location.origin}/dashboard/invite` }),
        );
        say('');
        email.value = '';
      } catch (error) {
        failed(error);
      }
      await refresh();
    } },
    h('div', { class: 'll-field ll-field-grow' }, h('label', { for: 'll-invite-email', class: 'll-label', text: 'Invite a colleague' }), email),
    h('div', { class: 'll-field' }, h('label', { for: 'll-invite-role', class: 'll-label', text: 'Role' }), role),
    h('button', { type: 'submit', class: 'll-button', text: 'Invite' }),
  );
  const el = h('div', { class: 'll-card ll-team' }, table, form, invite, status);
  refresh().catch((error) => {
    if (error.status === 401) ctx.onUnauthorized?.(error);
    else failed(error);
  });
  return { el, stop() {} };
}
