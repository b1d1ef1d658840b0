// llmgw admin console: each page, filled from the admin API (the common parts are in console.js).
(function (c) {
  'use strict';

  if (!c) return;
  const { api, h, s, say, fail, zone, when, usd, count, ms, pct, list, isoDay, daysAgo, table, form, showSecret, button, chart, hourly, tile, topBy, main, content, isAdmin, me } = c;
  const pages = c.pages;

  pages.overview = async function () {
    if (!isAdmin) {
      const mine = await api('GET', '/user/info');
      const u = mine.user_info;
      content.replaceChildren(
        h('div', { class: 'tiles' },
          tile('tile-my-spend', 'Your spend', usd(u.spend)),
          tile('tile-my-budget', 'Your budget', u.max_budget == null ? 'none' : usd(u.max_budget)),
          tile('tile-my-keys', 'Your keys', count(mine.keys.length, 'keys')),
          tile('tile-my-teams', 'Your teams', (mine.teams || []).map((t) => t.team_alias || t.team_id).join(', ') || '—')),
        h('p', null, 'Your keys are on the ', h('a', { href: '/ui/keys', text: 'Keys' }), ' page.'));
      return;
    }
    const [rows, period] = await Promise.all([
      api('GET', `/spend/logs?limit=1000&start_date=${isoDay(daysAgo(1))}`),
      api('GET', `/global/spend/report?group_by=team&start_date=${isoDay(daysAgo(30))}`),
    ]);
    const since = Date.now() - 86400000;
    const day = rows.filter((r) => Date.parse(r.startTime) >= since);
    const startOfToday = new Date(); startOfToday.setHours(0, 0, 0, 0);
    const today = day.filter((r) => Date.parse(r.startTime) >= startOfToday.getTime());
    const errors = day.filter((r) => r.status !== 'success').length;
    const periodSpend = period.reduce((a, t) => a + Number(t.total_spend || 0), 0);
    content.replaceChildren(
      h('div', { class: 'tiles' },
        tile('tile-requests', 'Requests, last 24 h', count(day.length, 'requests')),
        tile('tile-spend-today', 'Spend today', usd(today.reduce((a, r) => a + Number(r.spend || 0), 0))),
        tile('tile-spend-period', 'Spend, last 30 days', usd(periodSpend)),
        tile('tile-error-rate', 'Error rate, last 24 h', day.length ? pct(errors / day.length) : '—'),
        tile('tile-tokens', 'Tokens, last 24 h', count(day.reduce((a, r) => a + (r.total_tokens || 0), 0), 'tokens'))),
      h('div', { class: 'charts' },
        chart('chart-requests', 'Requests per hour', hourly(day, () => 1), (y) => count(y, 'req')),
        chart('chart-spend', 'Spend per hour', hourly(day, (r) => Number(r.spend || 0)), usd)),
      h('p', { class: 'muted', text: `Times in ${zone}. Rows: the last ${rows.length} requests at most.` }),
      h('div', { class: 'split' },
        h('section', null, h('h2', { text: 'Top models' }), table('top-models', [
          ['Model', (e) => e.name], ['Requests', (e) => count(e.requests), 'num'], ['Tokens', (e) => count(e.tokens, 'tok'), 'num'], ['Spend', (e) => usd(e.spend), 'num'],
        ], topBy(day, 'model_group', 5))),
        h('section', null, h('h2', { text: 'Top keys' }), table('top-keys', [
          ['Key', (e) => e.name], ['Requests', (e) => count(e.requests), 'num'], ['Spend', (e) => usd(e.spend), 'num'],
        ], topBy(day, 'key_alias', 5))),
        h('section', null, h('h2', { text: 'Top teams' }), table('top-teams', [
          ['Team', (e) => e.name], ['Requests', (e) => count(e.requests), 'num'], ['Spend', (e) => usd(e.spend), 'num'],
        ], topBy(day, 'team_id', 5)))));
  };

  async function teamOptions() {
    const teams = await api('GET', '/team/list');
    return [['', '(none)'], ...teams.map((t) => [t.team_id, t.team_alias ? `${t.team_alias} (${t.team_id})` : t.team_id])];
  }

  pages.keys = async function () {
    if (!isAdmin) return ownKeys();
    const filters = form('key-filter', [['key_alias', 'Alias'], ['team_id', 'Team id'], ['user_id', 'User id'], ['q', 'Search']], 'Filter', async () => load());
    const holder = h('div');
    const parts = [h('section', null, h('h2', { text: 'Find keys' }), filters), holder];
    if (isAdmin) {
      const create = form('key-create', [
        ['key_alias', 'Alias'], ['team_id', 'Team', 'select', await teamOptions()], ['user_id', 'User id'],
        ['models', 'Models (comma separated)'], ['max_budget', 'Budget (USD)', 'number'], ['duration', 'Expires after (e.g. 30d)'],
      ], 'Create key', async (values, f) => {
        const made = await api('POST', '/key/generate', values);
        showSecret(made.key, 'New key');
        f.reset();
        await load();
      });
      parts.unshift(h('section', null, h('h2', { text: 'Create a key' }), create));
    }
    content.replaceChildren(...parts);
    const asked = new URLSearchParams(location.search);  // (links from the users and teams pages)
    for (const n of ['key_alias', 'team_id', 'user_id']) if (asked.get(n)) filters.elements[n].value = asked.get(n);

    async function load() {
      const q = new URLSearchParams({ return_full_object: 'true', size: '1000' });
      for (const n of ['key_alias', 'team_id', 'user_id']) if (filters.elements[n].value.trim()) q.set(n, filters.elements[n].value.trim());
      const text = filters.elements.q.value.trim().toLowerCase();
      const answer = await api('GET', '/key/list?' + q);
      const keys = answer.keys.filter((k) => !text || [k.key_alias, k.key_name, k.team_id, k.user_id, ...(k.models || [])].some((v) => v && String(v).toLowerCase().includes(text)));
      keys.forEach((k) => { k._data = { token: k.token, alias: k.key_alias || '' }; });
      const cols = [
        ['Alias', (k) => k.key_alias], ['Key', (k) => k.key_name], ['Team', (k) => k.team_id], ['User', (k) => k.user_id],
        ['Models', (k) => list(k.models)], ['Spend', (k) => usd(k.spend), 'num'], ['Budget', (k) => (k.max_budget == null ? 'none' : usd(k.max_budget)), 'num'],
        ['Expires', (k) => (k.expires ? when(k.expires) : 'never')], ['State', (k) => (k.blocked ? 'blocked' : 'active')],
      ];
      if (isAdmin) cols.push(['', (k) => keyActions(k, load), 'actions']);
      holder.replaceChildren(h('h2', { text: `Keys (${keys.length})` }), table('keys-table', cols, keys, 'No keys match.'));
    }
    await load();
  };

  // A user's own keys (and spend), as /user/info shows them to the key's or session's user.
  async function ownKeys() {
    const mine = await api('GET', '/user/info');
    const keys = mine.keys;
    keys.forEach((k) => { k._data = { token: k.token, alias: k.key_alias || '' }; });
    content.replaceChildren(
      h('p', { class: 'muted', text: `Your spend: ${usd(mine.user_info.spend)} · ask a proxy admin or your team's admin for a new key.` }),
      h('h2', { text: `Your keys (${keys.length})` }),
      table('keys-table', [
        ['Alias', (k) => k.key_alias], ['Key', (k) => k.key_name], ['Team', (k) => k.team_id], ['Models', (k) => list(k.models)],
        ['Spend', (k) => usd(k.spend), 'num'], ['Budget', (k) => (k.max_budget == null ? 'none' : usd(k.max_budget)), 'num'],
        ['Expires', (k) => (k.expires ? when(k.expires) : 'never')], ['State', (k) => (k.blocked ? 'blocked' : 'active')],
      ], keys, 'You have no keys yet.'));
  }

  function keyActions(k, reload) {
    const box = h('div', { class: 'buttons' });
    box.append(k.blocked
      ? button('Unblock', 'unblock', async () => { await api('POST', '/key/unblock', { key: k.token }); say(`Key ${k.key_alias || k.key_name} unblocked.`); await reload(); })
      : button('Block', 'block', async () => { await api('POST', '/key/block', { key: k.token }); say(`Key ${k.key_alias || k.key_name} blocked.`); await reload(); }));
    box.append(button('Edit', 'edit', async () => {
      const f = form('key-edit', [['models', 'Models'], ['max_budget', 'Budget (USD)', 'number'], ['duration', 'Expires after']], 'Save', async (values) => {
        await api('POST', '/key/update', { key: k.token, ...values });
        say('Key updated.');
        await reload();
      });
      f.elements.models.value = (k.models || []).join(', ');
      if (k.max_budget != null) f.elements.max_budget.value = k.max_budget;
      box.replaceChildren(f);
    }));
    box.append(button('Regenerate', 'regenerate', async () => {
      const made = await api('POST', '/key/regenerate', { key: k.token });
      showSecret(made.key, 'Regenerated key');
      await reload();
    }, 'Confirm regenerate'));
    box.append(button('Delete', 'delete', async () => { await api('POST', '/key/delete', { keys: [k.token] }); say('Key deleted.'); await reload(); }, 'Confirm delete'));
    return box;
  }

  pages.teams = async function () {
    const holder = h('div');
    const parts = [holder];
    if (isAdmin) {
      parts.unshift(h('section', null, h('h2', { text: 'Create a team' }), form('team-create', [
        ['team_alias', 'Name'], ['team_id', 'Team id (optional)'], ['models', 'Models (comma separated)'], ['max_budget', 'Budget (USD)', 'number'], ['budget_duration', 'Budget period (e.g. 30d)'],
      ], 'Create team', async (values, f) => {
        const made = await api('POST', '/team/new', values);
        say(`Team ${made.team_alias || made.team_id} created.`);
        f.reset();
        await load();
      })));
    }
    content.replaceChildren(...parts);
    async function load() {
      const teams = await api('GET', '/team/list');
      teams.forEach((t) => { t._data = { team: t.team_id }; });
      const cols = [
        ['Name', (t) => t.team_alias], ['Team id', (t) => t.team_id], ['Members', (t) => (t.members_with_roles || []).map((m) => `${m.user_id} (${m.role})`).join(', ') || '—'],
        ['Models', (t) => list(t.models)], ['Spend', (t) => usd(t.spend), 'num'], ['Budget', (t) => (t.max_budget == null ? 'none' : usd(t.max_budget)), 'num'],
        ['State', (t) => (t.blocked ? 'blocked' : 'active')],
        ['Keys', (t) => (isAdmin ? h('a', { href: '/ui/keys?team_id=' + encodeURIComponent(t.team_id), class: 'keys-link', text: 'keys' }) : '—')],
      ];
      const manages = (t) => isAdmin || (t.members_with_roles || []).some((m) => m.user_id === me && m.role === 'admin');
      cols.push(['', (t) => {
        const box = h('div', { class: 'buttons' });
        if (manages(t)) {
          box.append(button('Add member', 'add-member', async () => {
            box.replaceChildren(form('member-add', [['user_id', 'User id'], ['role', 'Role', 'select', [['user', 'user'], ['admin', 'admin']]]], 'Add', async (values) => {
              await api('POST', '/team/member_add', { team_id: t.team_id, member: { user_id: values.user_id, role: values.role || 'user' } });
              say(`${values.user_id} added to ${t.team_alias || t.team_id}.`);
              await load();
            }));
          }));
        }
        if (isAdmin) {
          box.append(t.blocked
            ? button('Unblock', 'unblock', async () => { await api('POST', '/team/unblock', { team_id: t.team_id }); await load(); })
            : button('Block', 'block', async () => { await api('POST', '/team/block', { team_id: t.team_id }); await load(); }, 'Confirm block'));
        }
        return box;
      }, 'actions']);
      holder.replaceChildren(h('h2', { text: `Teams (${teams.length})` }), table('teams-table', cols, teams, 'No teams yet.'));
    }
    await load();
  };

  pages.users = async function () {
    const holder = h('div');
    content.replaceChildren(h('section', null, h('h2', { text: 'Create a user' }), form('user-create', [
      ['user_id', 'User id'], ['user_email', 'E-mail'],
      ['user_role', 'Role', 'select', [['internal_user', 'internal_user'], ['internal_user_viewer', 'internal_user_viewer'], ['proxy_admin', 'proxy_admin'], ['proxy_admin_viewer', 'proxy_admin_viewer']]],
      ['team_id', 'Team', 'select', await teamOptions()], ['max_budget', 'Budget (USD)', 'number'],
    ], 'Create user', async (values, f) => {
      const made = await api('POST', '/user/new', values);
      showSecret(made.key, `Key of user ${made.user_id}`);
      f.reset();
      await load();
    })), holder);
    async function load() {
      const answer = await api('GET', '/user/list?page_size=1000');
      const users = answer.users;
      users.forEach((u) => { u._data = { user: u.user_id }; });
      holder.replaceChildren(h('h2', { text: `Users (${answer.total})` }), table('users-table', [
        ['User id', (u) => u.user_id], ['E-mail', (u) => u.user_email], ['Role', (u) => u.user_role], ['Teams', (u) => (u.teams || []).join(', ') || '—'],
        ['Spend', (u) => usd(u.spend), 'num'], ['Budget', (u) => (u.max_budget == null ? 'none' : usd(u.max_budget)), 'num'], ['Created', (u) => when(u.created_at)],
        ['Keys', (u) => h('a', { href: '/ui/keys?user_id=' + encodeURIComponent(u.user_id), class: 'keys-link', text: 'keys' })],
      ], users, 'No users yet.'));
    }
    await load();
  };

  pages.usage = async function () {
    const statuses = [['', 'any'], ['success', 'success'], ['upstream_error', 'upstream_error'], ['error', 'error'], ['refused', 'refused'], ['cancelled', 'cancelled']];
    const filters = form('usage-filter', [
      ['api_key', 'Key (token)'], ['user_id', 'User id'], ['team_id', 'Team id'], ['model', 'Model'], ['status', 'Status', 'select', statuses],
      ['start_date', 'From', 'date'], ['end_date', 'To', 'date'],
    ], 'Search', async () => load());
    const holder = h('div');
    content.replaceChildren(filters, holder);
    async function load() {
      const q = new URLSearchParams({ limit: '1000' });
      for (const n of ['api_key', 'user_id', 'team_id', 'start_date', 'end_date']) if (filters.elements[n].value.trim()) q.set(n, filters.elements[n].value.trim());
      const model = filters.elements.model.value.trim();
      const status = filters.elements.status.value;
      const rows = (await api('GET', '/spend/logs?' + q)).filter((r) => (!model || r.model_group === model || r.model === model) && (!status || r.status === status));
      rows.forEach((r) => { r._data = { request: r.request_id }; });
      holder.replaceChildren(
        h('p', { class: 'muted', text: `${rows.length} requests · times in ${zone}` }),
        table('usage-table', [
          ['Time', (r) => when(r.startTime)], ['Request', (r) => h('a', { href: '/ui/request/' + encodeURIComponent(r.request_id), text: r.request_id.slice(0, 18) })],
          ['Key', (r) => r.key_alias || r.api_key.slice(0, 10)], ['Team', (r) => r.team_id], ['Model', (r) => r.model_group], ['Status', (r) => r.status],
          ['Tokens', (r) => count(r.total_tokens, 'tok'), 'num'], ['Cost', (r) => usd(r.spend), 'num'], ['Latency', (r) => ms(r.latency_ms), 'num'],
        ], rows, 'No requests match.'));
    }
    await load();
  };

  pages.request = async function () {
    const id = main.dataset.detail;
    const rows = await api('GET', '/spend/logs?request_id=' + encodeURIComponent(id));
    if (!rows.length) { content.replaceChildren(h('p', { text: `No request ${id} in the usage log.` })); return; }
    const r = rows[0];
    const fields = [
      ['Request id', r.request_id], ['Time', when(r.startTime)], ['Status', `${r.status} (HTTP ${r.http_status})`], ['Error', r.error_code || '—'],
      ['Key', `${r.key_alias || '—'} (${r.api_key})`], ['User', r.user || '—'], ['Team', r.team_id || '—'], ['End user', r.end_user || '—'],
      ['Model group', r.model_group], ['Upstream model', r.model], ['Deployment', r.model_id], ['Provider', r.custom_llm_provider],
      ['Call', r.call_type], ['Stream', r.stream ? 'yes' : 'no'], ['Attempts', String(r.attempt)],
      ['Prompt tokens', count(r.prompt_tokens, 'tokens')], ['Completion tokens', count(r.completion_tokens, 'tokens')],
      ['Cached tokens', count(r.cached_tokens, 'tokens')], ['Cost', usd(r.spend) + (r.cost_known ? '' : ' (price unknown)')],
      ['Latency', ms(r.latency_ms)], ['Time to first token', ms(r.ttft_ms)], ['Tags', (r.request_tags || []).join(', ') || '—'],
    ];
    content.replaceChildren(h('dl', { id: 'request-detail', class: 'detail' }, fields.map(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })]).flat()),
      h('p', null, h('a', { href: '/ui/usage', text: '‹ Usage log' })));
  };

  pages.models = async function () {
    const none = Promise.resolve(null);
    const [answer, creds, health, logs] = await Promise.all([
      api('GET', '/model/info'),
      isAdmin ? api('GET', '/credentials') : none,
      isAdmin ? api('GET', '/health?window=60') : none,
      isAdmin ? api('GET', `/spend/logs?limit=1000&start_date=${isoDay(daysAgo(1))}`) : none,
    ]);
    const credOf = new Map(((creds && creds.data) || []).map((c) => [c.deployment_id, c]));
    const healthOf = new Map();
    if (health) {
      for (const e of health.healthy_endpoints) healthOf.set(e.model_id, { ok: true, e: e });
      for (const e of health.unhealthy_endpoints) healthOf.set(e.model_id, { ok: false, e: e });
    }
    const since = Date.now() - 86400000;
    const traffic = new Map();  // deployment id -> requests, failures, latency over the last 24 h
    for (const r of logs || []) {
      if (Date.parse(r.startTime) < since) continue;
      const t = traffic.get(r.model_id) || { requests: 0, failures: 0, latency: 0 };
      t.requests++; t.failures += r.status === 'success' ? 0 : 1; t.latency += r.latency_ms || 0;
      traffic.set(r.model_id, t);
    }
    const rows = answer.data;
    rows.forEach((m) => { m._data = { model: m.model_name }; });
    const cols = [
      ['Model', (m) => m.model_name], ['Upstream', (m) => (m.litellm_params || {}).model], ['API base', (m) => (m.litellm_params || {}).api_base],
      ['Credential', (m) => {
        const c = credOf.get((m.model_info || {}).id);
        return c ? `${c.api_key || 'none'} (${c.source === 'runtime' ? 'rotated ' + when(c.updated_at) : c.source})` : (m.litellm_params || {}).api_key || '—';
      }, 'credential'], ['Deployment id', (m) => (m.model_info || {}).id],
      ['Input price', (m) => { const p = (m.model_info || {}).input_cost_per_token; return p == null ? '—' : usd(p * 1e6) + ' / 1M tok'; }, 'num'],
    ];
    if (isAdmin) {
      const id = (m) => (m.model_info || {}).id;
      cols.push(
        ['Health', (m) => {
          const x = healthOf.get(id(m));
          if (!x) return '—';
          if (x.e.cooldown) return `cooling down until ${when(x.e.cooldown.until)}`;
          return x.ok ? 'healthy' : 'unhealthy: ' + x.e.error;
        }, 'health'],
        ['Requests, 24 h', (m) => count((traffic.get(id(m)) || {}).requests, 'req'), 'num requests'],
        ['Error rate', (m) => { const t = traffic.get(id(m)); return t ? pct(t.failures / t.requests) : '—'; }, 'num errors'],
        ['Mean latency', (m) => { const t = traffic.get(id(m)); return t ? ms(t.latency / t.requests) : '—'; }, 'num latency'],
      );
    }
    if (isAdmin) cols.push(['', (m) => {
      const id = (m.model_info || {}).id;
      return button('Rotate credential', 'rotate', async () => {
        const box = h('form', { class: 'inline rotate', id: 'rotate-form' }, h('label', null, 'New API key', h('input', { type: 'password', name: 'api_key', id: 'rotate-form-api_key', required: true })), h('button', { type: 'submit', id: 'rotate-form-submit' }, 'Save'));
        box.addEventListener('submit', async (ev) => {
          ev.preventDefault();
          try {
            const apiKey = box.elements.api_key.value;
            if ((m.model_info || {}).db_model) await api('POST', '/model/update', { model_info: { id: id }, litellm_params: { api_key: apiKey } });
            else await api('POST', '/credentials/set', { deployment_id: id, api_key: apiKey });
            say(`Credential of ${m.model_name} rotated.`);
            await pages.models();
          } catch (err) { fail(err); }
        });
        document.querySelector(`tr[data-model="${CSS.escape(m.model_name)}"] td.actions`).replaceChildren(box);
      });
    }, 'actions']);
    content.replaceChildren(table('models-table', cols, rows, 'No models.'));
  };

  pages.policies = async function () {
    const [current, teams] = await Promise.all([api('GET', '/policy/system_prompt'), api('GET', '/team/list')]);
    const gateway = form('policy-gateway', [['system_prompt', 'System prompt for every request', 'textarea']], 'Save', async (values) => {
      await api('POST', '/policy/system_prompt', { system_prompt: values.system_prompt || null });
      say(values.system_prompt ? 'The gateway-wide system prompt is saved.' : 'The gateway-wide system prompt is removed.');
      await pages.policies();
    });
    gateway.elements.system_prompt.value = current.system_prompt || '';
    const team = form('policy-team', [
      ['team_id', 'Team', 'select', teams.map((t) => [t.team_id, t.team_alias || t.team_id])], ['system_prompt', 'System prompt of its requests', 'textarea'],
    ], 'Save', async (values) => {
      await api('POST', '/policy/system_prompt', { team_id: values.team_id, system_prompt: values.system_prompt || null });
      say(`The system prompt of team ${values.team_id} is saved.`);
      await pages.policies();
    });
    const withPrompt = teams.filter((t) => t.system_prompt);
    withPrompt.forEach((t) => { t._data = { team: t.team_id }; });
    content.replaceChildren(
      h('section', null, h('h2', { text: 'Gateway' }), h('p', { class: 'muted', text: 'Put before the messages of every request (a team\'s or a key\'s own prompt comes after it).' }), gateway),
      h('section', null, h('h2', { text: 'A team' }), team),
      h('h2', { text: 'Teams with a system prompt' }),
      table('policies-table', [['Team', (t) => t.team_alias || t.team_id], ['System prompt', (t) => t.system_prompt]], withPrompt, 'No team has one.'));
  };

  function burnBar(spend, budget) {
    const W = 160, H = 12;
    const used = budget > 0 ? Math.min(1, spend / budget) : 0;
    const svg = s('svg', { class: 'bar', viewBox: `0 0 ${W} ${H}`, width: W, height: H, 'data-spend': spend, 'data-budget': budget });
    svg.append(s('rect', { x: 0, y: 0, width: W, height: H, class: 'track' }), s('rect', { x: 0, y: 0, width: Math.max(1, used * W), height: H, class: used >= 1 ? 'fill over' : 'fill' }));
    return h('span', { class: 'burn' }, svg, ` ${usd(spend)} of ${usd(budget)} (${pct(budget > 0 ? spend / budget : 0)})`);
  }

  pages.budgets = async function () {
    const [objects, teams, keyList] = await Promise.all([api('GET', '/budget/list'), api('GET', '/team/list'), api('GET', '/key/list?return_full_object=true&size=1000')]);
    const holders = [
      ...teams.filter((t) => t.max_budget != null).map((t) => ({ kind: 'team', name: t.team_alias || t.team_id, spend: Number(t.spend || 0), max: Number(t.max_budget), soft: t.soft_budget, period: t.budget_duration, reset: t.budget_reset_at })),
      ...keyList.keys.filter((k) => k.max_budget != null).map((k) => ({ kind: 'key', name: k.key_alias || k.key_name, spend: Number(k.spend || 0), max: Number(k.max_budget), soft: k.soft_budget, period: k.budget_duration, reset: k.budget_reset_at })),
    ].sort((a, b) => b.spend / b.max - a.spend / a.max);
    holders.forEach((x) => { x._data = { holder: `${x.kind}:${x.name}` }; });
    const alerts = holders.filter((x) => (x.soft != null && x.spend >= Number(x.soft)) || x.spend >= x.max);
    const create = form('budget-create', [
      ['budget_id', 'Budget id'], ['max_budget', 'Budget (USD)', 'number'], ['soft_budget', 'Alert at (USD)', 'number'], ['budget_duration', 'Period (e.g. 30d)'],
      ['rpm_limit', 'Requests / min', 'number'], ['tpm_limit', 'Tokens / min', 'number'],
    ], 'Create budget', async (values) => {
      await api('POST', '/budget/new', values);
      say(`Budget ${values.budget_id || ''} created.`);
      await pages.budgets();
    });
    objects.forEach((b) => { b._data = { budget: b.budget_id }; });
    content.replaceChildren(
      h('h2', { text: `Alerts (${alerts.length})` }),
      alerts.length
        ? h('ul', { id: 'budget-alerts', class: 'alerts' }, alerts.map((x) => h('li', { text: `${x.kind} ${x.name}: ${usd(x.spend)} spent, ${x.spend >= x.max ? 'over its budget of ' + usd(x.max) : 'past its alert level of ' + usd(x.soft)}` })))
        : h('p', { class: 'muted', id: 'budget-alerts', text: 'No key or team is past its alert level.' }),
      h('h2', { text: 'Burn against budget' }),
      table('burn-table', [
        ['Holder', (x) => `${x.kind} ${x.name}`], ['Spent', (x) => burnBar(x.spend, x.max)], ['Alert at', (x) => (x.soft == null ? '—' : usd(x.soft)), 'num'],
        ['Period', (x) => x.period || 'none'], ['Resets', (x) => (x.reset ? when(x.reset) : '—')],
      ], holders, 'No key or team has a budget.'),
      h('section', null, h('h2', { text: 'Create a budget object' }), create),
      h('h2', { text: `Budget objects (${objects.length})` }),
      table('budgets-table', [
        ['Budget id', (b) => b.budget_id], ['Budget', (b) => (b.max_budget == null ? 'none' : usd(b.max_budget)), 'num'], ['Alert at', (b) => (b.soft_budget == null ? '—' : usd(b.soft_budget)), 'num'],
        ['Period', (b) => b.budget_duration || 'none'], ['Requests / min', (b) => (b.rpm_limit == null ? '—' : count(b.rpm_limit, 'rpm')), 'num'], ['Tokens / min', (b) => (b.tpm_limit == null ? '—' : count(b.tpm_limit, 'tpm')), 'num'],
      ], objects, 'No budget objects.'));
  };

  pages.sessions = async function () {
    async function load() {
      const answer = await api('GET', '/ui/sessions/list');
      const rows = answer.sessions;
      rows.forEach((x) => { x._data = { session: x.session }; });
      content.replaceChildren(table('sessions-table', [
        ['User', (x) => x.email || x.user_id], ['Role', (x) => x.role], ['Signed in with', (x) => x.via], ['Started', (x) => when(x.created_at)], ['Ends', (x) => when(x.expires_at)],
        ['', (x) => button('End', 'end', async () => { await api('POST', '/ui/sessions/end', { session: x.session }); say('Session ended.'); await load(); }, 'Confirm end'), 'actions'],
      ], rows, 'No sessions.'));
    }
    await load();
  };

  const run = pages[main.dataset.page];
  if (run) {
    run().then(() => { main.dataset.ready = 'true'; }).catch((err) => { fail(err); main.dataset.ready = 'error'; });
  }
})(window.llmgwConsole);
