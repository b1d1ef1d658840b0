// llmgw admin console, its common parts: the admin API (the same routes curl users call, with the
// session's CSRF token), DOM helpers, formats, paged tables, forms and charts. The pages are in
// console-pages.js. No framework, nothing from another origin.
(function () {
  'use strict';

  const main = document.getElementById('page');
  if (!main) return;
  const content = document.getElementById('content');
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : '';
  const isAdmin = main.dataset.role === 'proxy_admin';
  const me = main.dataset.user;
  const PAGE_SIZE = 25;

  // ---- the admin API ----
  async function api(method, path, body) {
    const opts = { method: method, credentials: 'same-origin', headers: { 'x-llmgw-csrf': csrf, accept: 'application/json' } };
    if (body !== undefined) {
      opts.headers['content-type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    if (r.status === 401) {
      location.href = '/ui/login?next=' + encodeURIComponent(location.pathname);
      throw new Error('Your session has ended; sign in again.');
    }
    const text = await r.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!r.ok) throw new Error((data && data.error && data.error.message) || 'HTTP ' + r.status);
    return data;
  }

  // ---- DOM ----
  function h(tag, attrs) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'data') for (const [dk, dv] of Object.entries(v)) el.dataset[dk] = dv;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (let i = 2; i < arguments.length; i++) {
      const c = arguments[i];
      if (c === null || c === undefined) continue;
      if (Array.isArray(c)) c.forEach((x) => x != null && el.append(x));
      else el.append(c);
    }
    return el;
  }
  const svgNS = 'http://www.w3.org/2000/svg';
  function s(tag, attrs) {
    const el = document.createElementNS(svgNS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    for (let i = 2; i < arguments.length; i++) if (arguments[i] != null) el.append(arguments[i]);
    return el;
  }
  function say(text, cls) {
    const box = document.getElementById('notice') || main.insertBefore(h('div', { id: 'notice' }), content);
    box.className = cls || 'ok';
    box.textContent = text;
  }
  function fail(err) { say(err.message || String(err), 'error'); }

  // ---- formats: the viewer's time zone, numbers with units ----
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const timeFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const hourFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  function when(iso) { return iso ? timeFmt.format(new Date(iso)) : '—'; }
  function usd(n) {
    if (n === null || n === undefined) return '—';
    const v = Number(n);
    return '$' + (v !== 0 && Math.abs(v) < 0.01 ? v.toPrecision(3) : v.toFixed(2));
  }
  function count(n, unit) { return Number(n || 0).toLocaleString() + (unit ? ' ' + unit : ''); }
  function ms(n) { return n === null || n === undefined ? '—' : Math.round(n).toLocaleString() + ' ms'; }
  function pct(n) { return (100 * n).toFixed(1) + ' %'; }
  function list(xs) { return xs && xs.length ? xs.join(', ') : 'all'; }
  function isoDay(d) { return d.toISOString().slice(0, 10); }
  function daysAgo(n) { return new Date(Date.now() - n * 86400000); }

  // ---- a paginated table ----
  function table(id, columns, rows, emptyText) {
    const wrap = h('div', { class: 'table', id: id });
    let pageNo = 0;
    function draw() {
      wrap.replaceChildren();
      const pages = Math.max(1, Math.ceil(rows.length / PAGE_SIZE));
      pageNo = Math.min(pageNo, pages - 1);
      const shown = rows.slice(pageNo * PAGE_SIZE, (pageNo + 1) * PAGE_SIZE);
      const head = h('tr', null, columns.map((c) => h('th', { text: c[0] })));
      const body = shown.map((r) => h('tr', { data: r._data || {} }, columns.map((c) => {
        const v = c[1](r);
        return h('td', { class: c[2] || null }, v instanceof Node ? v : String(v === null || v === undefined ? '—' : v));
      })));
      wrap.append(h('table', null, h('thead', null, head), h('tbody', null, body)));
      if (!rows.length) wrap.append(h('p', { class: 'muted', text: emptyText || 'Nothing yet.' }));
      if (pages > 1) {
        wrap.append(h('div', { class: 'pager' },
          h('button', { type: 'button', class: 'prev', disabled: pageNo === 0, onclick: () => { pageNo--; draw(); } }, '‹ Previous'),
          h('span', { text: `page ${pageNo + 1} of ${pages} · ${rows.length} rows` }),
          h('button', { type: 'button', class: 'next', disabled: pageNo >= pages - 1, onclick: () => { pageNo++; draw(); } }, 'Next ›')));
      }
    }
    draw();
    return wrap;
  }

  // ---- a form of labelled inputs ----
  function form(id, fields, submitText, onsubmit) {
    const f = h('form', { id: id, class: 'inline' });
    for (const [name, label, type, options] of fields) {
      let input;
      if (type === 'textarea') {
        input = h('textarea', { name: name, id: id + '-' + name, rows: 4, cols: 60 });
      } else if (type === 'select') {
        input = h('select', { name: name, id: id + '-' + name }, (options || []).map((o) => h('option', { value: o[0], text: o[1] })));
      } else {
        input = h('input', { name: name, id: id + '-' + name, type: type || 'text', step: type === 'number' ? 'any' : null });
      }
      f.append(h('label', null, label, input));
    }
    f.append(h('button', { type: 'submit', id: id + '-submit' }, submitText));
    f.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const values = {};
      for (const [name, , type] of fields) {
        const raw = f.elements[name].value.trim();
        if (raw === '') continue;
        if (type === 'number') values[name] = Number(raw);
        else if (name === 'models' || name === 'teams') values[name] = raw.split(',').map((x) => x.trim()).filter(Boolean);
        else values[name] = raw;
      }
      try { await onsubmit(values, f); } catch (err) { fail(err); }
    });
    return f;
  }

  // Shown once: the plaintext of a key just made, with a copy button.
  function showSecret(key, what) {
    const box = h('div', { id: 'new-key', class: 'secret' },
      h('p', null, h('strong', { text: what + ': ' }), 'copy it now, it is not shown again.'),
      h('code', { id: 'new-key-value', text: key }),
      h('button', { type: 'button', id: 'copy-key', onclick: async (ev) => {
        try { await navigator.clipboard.writeText(key); ev.target.textContent = 'Copied'; } catch (e) { ev.target.textContent = 'Select and copy'; }
      } }, 'Copy'));
    const old = document.getElementById('new-key');
    if (old) old.remove();
    main.insertBefore(box, content);
  }

  function button(text, cls, action, confirmText) {
    const b = h('button', { type: 'button', class: cls });
    b.textContent = text;
    let armed = !confirmText;
    b.addEventListener('click', async () => {
      if (!armed) { armed = true; b.textContent = confirmText; b.classList.add('armed'); return; }
      b.disabled = true;
      try { await action(); } catch (err) { fail(err); b.disabled = false; }
    });
    return b;
  }

  // ---- charts: inline SVG, each point's data in the DOM ----
  function chart(id, title, points, format) {
    const W = 640, H = 180, P = 30;
    const top = Math.max(0, ...points.map((p) => p.y));
    const max = top > 0 ? top : 1;
    const step = points.length > 1 ? (W - 2 * P) / (points.length - 1) : 0;
    const xy = points.map((p, i) => [P + i * step, H - P - (p.y / max) * (H - 2 * P)]);
    const svg = s('svg', { id: id, class: 'chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
    svg.append(s('line', { x1: P, y1: H - P, x2: W - P, y2: H - P, class: 'axis' }));
    if (xy.length > 1) svg.append(s('polyline', { points: xy.map((p) => p.join(',')).join(' '), class: 'line' }));
    points.forEach((p, i) => {
      const dot = s('circle', { cx: xy[i][0], cy: xy[i][1], r: p.y > 0 ? 3.5 : 1.5, class: 'point', 'data-x': p.x, 'data-y': p.y });
      dot.append(s('title', null, `${hourFmt.format(new Date(p.x))}: ${format(p.y)}`));
      svg.append(dot);
    });
    svg.append(s('text', { x: P, y: 14, class: 'label' }, `${title} (max ${format(max)})`));
    if (points.length) {
      svg.append(s('text', { x: P, y: H - 8, class: 'label' }, hourFmt.format(new Date(points[0].x))));
      svg.append(s('text', { x: W - P, y: H - 8, class: 'label end' }, hourFmt.format(new Date(points[points.length - 1].x))));
    }
    return h('figure', null, svg);
  }

  function hourly(rows, value) {
    const HOUR = 3600000;
    const now = Math.floor(Date.now() / HOUR) * HOUR;
    const buckets = new Map();
    for (let t = now - 23 * HOUR; t <= now; t += HOUR) buckets.set(t, 0);
    for (const r of rows) {
      const t = Math.floor(Date.parse(r.startTime) / HOUR) * HOUR;
      if (buckets.has(t)) buckets.set(t, buckets.get(t) + value(r));
    }
    return [...buckets].map(([x, y]) => ({ x: x, y: Math.round(y * 1e9) / 1e9 }));
  }

  function tile(id, label, value) { return h('div', { class: 'tile', id: id }, h('span', { class: 'label', text: label }), h('span', { class: 'value', text: value })); }

  function topBy(rows, field, n) {
    const m = new Map();
    for (const r of rows) {
      const k = r[field] || '—';
      const e = m.get(k) || { name: k, requests: 0, spend: 0, tokens: 0 };
      e.requests++; e.spend += Number(r.spend || 0); e.tokens += r.total_tokens || 0;
      m.set(k, e);
    }
    return [...m.values()].sort((a, b) => b.requests - a.requests || b.spend - a.spend).slice(0, n);
  }


  window.llmgwConsole = { api, h, s, say, fail, zone, when, usd, count, ms, pct, list, isoDay, daysAgo, table, form, showSecret, button, chart, hourly, tile, topBy, main, content, isAdmin, me, pages: {} };
})();
