// twoway console: one page, hash routes (#/topics/orders), every number
// read from the agent's HTTP API (docs/HTTP.md) — the same API the CLI uses.
// Views refresh at 1 Hz by updating the elements they built once, so an
// open console does not grow: charts redraw fixed polylines, tables are
// rebuilt in place, the metrics history is a bounded ring.
'use strict';

// 15 minutes at 1 s; ?history=N keeps fewer samples (a test fills the
// ring in seconds with it).
const HISTORY = Math.max(10, Math.min(900, Number(new URLSearchParams(location.search).get('history')) || 900));
const TOKEN_KEY = 'twoway.token';

// ---- DOM ----

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
  }
  for (const k of kids.flat()) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}
const SVG = 'http://www.w3.org/2000/svg';
function s(tag, attrs) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}
const $view = () => document.getElementById('view');

function fmtNum(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(2) + 'M';
  if (Math.abs(n) >= 1e4) return (n / 1e3).toFixed(1) + 'k';
  if (Number.isInteger(n)) return String(n);
  return n.toFixed(Math.abs(n) < 10 ? 2 : 1);
}
function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + ' ' + u[i];
}
function fmtAgo(ms) {
  if (!ms) return '–';
  const d = Date.now() - ms;
  if (d < 1500) return 'just now';
  if (d < 60e3) return Math.round(d / 1e3) + ' s ago';
  if (d < 3600e3) return Math.round(d / 60e3) + ' min ago';
  if (d < 86400e3) return (d / 3600e3).toFixed(1) + ' h ago';
  return new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}
function fmtTime(ms) { return ms ? new Date(ms).toISOString().replace('T', ' ').replace('Z', '') : '–'; }
function fmtRetention(ms) {
  if (ms === -1 || ms === undefined) return 'forever';
  if (ms % 86400000 === 0) return ms / 86400000 + 'd';
  if (ms % 3600000 === 0) return ms / 3600000 + 'h';
  return ms + 'ms';
}

// ---- API ----

class APIError extends Error {
  constructor(status, body) {
    super((body && body.error) || ('HTTP ' + status));
    this.status = status; this.code = body && body.code;
  }
}
function token() { return localStorage.getItem(TOKEN_KEY) || ''; }

async function api(path, opts = {}) {
  // X-Requested-With: the agent answers 401 with a Bearer challenge, not
  // Basic, so the browser does not prompt for a password itself.
  const headers = Object.assign({ 'X-Requested-With': 'twoway-console' }, opts.headers || {});
  const t = token();
  if (t) headers['Authorization'] = 'Bearer ' + t;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(opts.json);
  }
  const resp = await fetch(path, { method: opts.method || 'GET', headers, body: opts.body, signal: opts.signal });
  if (resp.status === 401) {
    // A refusal of a token that has been replaced since (a request still
    // in flight when the user signed in again) asks nothing.
    if (t === token()) showLogin(t ? 'That token was refused: sign in again.' : 'This agent requires authentication.');
    throw new APIError(401, { error: 'authentication required', code: 'unauthorized' });
  }
  if (opts.raw) {
    if (!resp.ok) {
      let body = null;
      try { body = await resp.json(); } catch (e) { /* not JSON */ }
      throw new APIError(resp.status, body);
    }
    return resp;
  }
  const text = await resp.text();
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch (e) { body = { error: text }; }
  }
  if (!resp.ok) throw new APIError(resp.status, body);
  return body;
}
// tryAPI answers null instead of failing (for optional capabilities).
async function tryAPI(path) {
  try { return await api(path); } catch (e) { if (e.status === 401) throw e; return null; }
}

// ---- metrics history: a ring the 1 Hz tick fills ----

const metrics = {
  t: [], series: new Map(), last: 0,
  async pull() {
    const r = await api('/v1/metrics/history?since=' + this.last);
    const n = r.t.length;
    if (n === 0) return;
    // A series first seen now gets nulls for the samples before it.
    for (const [name, vals] of Object.entries(r.series)) {
      if (!this.series.has(name)) this.series.set(name, new Array(this.t.length).fill(null));
    }
    for (const [name, arr] of this.series) {
      const vals = r.series[name];
      for (let i = 0; i < n; i++) arr.push(vals ? vals[i] : null);
    }
    for (const x of r.t) this.t.push(x);
    this.last = r.t[n - 1];
    const over = this.t.length - HISTORY;
    if (over > 0) {
      this.t.splice(0, over);
      for (const [name, arr] of this.series) {
        arr.splice(0, over);
        if (arr.every((v) => v === null)) this.series.delete(name);
      }
    }
  },
  get(name) { return this.series.get(name) || []; },
  latest(name) {
    const a = this.series.get(name);
    if (!a) return null;
    for (let i = a.length - 1; i >= Math.max(0, a.length - 3); i--) if (a[i] !== null) return a[i];
    return null;
  },
  names(prefix) { return [...this.series.keys()].filter((k) => k.startsWith(prefix)).sort(); },
  // mean of a series over the last n samples (nulls count as 0).
  mean(name, n) {
    const a = this.series.get(name);
    if (!a || a.length === 0) return 0;
    const from = Math.max(0, a.length - n);
    let sum = 0;
    for (let i = from; i < a.length; i++) sum += a[i] || 0;
    return sum / (a.length - from);
  },
};

// chart builds a line chart of up to 6 series once; update() moves its
// polylines' points. series: [[label, name], ...] or a function giving them.
// The SVG has no viewBox: its user units are CSS pixels, so text keeps its
// natural aspect at any width, and update() lays the chart out for the
// width the element has now (the tick and a window resize call it).
function chart(title, series, unit) {
  const H = 120, P = 28;
  let W = 0;
  const svg = s('svg', { role: 'img', 'aria-label': title });
  const axis = s('line', { x1: P, y1: H - 14, x2: P, y2: H - 14, class: 'axis' });
  const top = s('text', { x: 0, y: 10, class: 'lbl' });
  const zero = s('text', { x: 0, y: H - 16, class: 'lbl' }); zero.textContent = '0';
  const left = s('text', { x: P, y: H - 2, class: 'lbl' }); left.textContent = '−15 min';
  const right = s('text', { x: P, y: H - 2, class: 'lbl', 'text-anchor': 'end' }); right.textContent = 'now';
  svg.append(axis, top, zero, left, right);
  const lines = [];
  for (let i = 0; i < 6; i++) {
    const pl = s('polyline', { class: 's' + i, points: '' });
    svg.append(pl); lines.push(pl);
  }
  const legend = h('div', { class: 'legend' });
  const current = h('span', { class: 'muted' });
  const el = h('div', { class: 'chart' }, h('h3', null, title, ' ', current), svg, legend);
  let legendKey = '';
  el.update = () => {
    const w = Math.max(P + 40, Math.round(svg.getBoundingClientRect().width) || 600);
    if (w !== W) {
      W = w;
      axis.setAttribute('x2', W);
      right.setAttribute('x', W - 1);
    }
    const list = (typeof series === 'function' ? series() : series).slice(0, 6);
    const key = list.map((x) => x[0]).join('|');
    if (key !== legendKey) {
      legendKey = key;
      legend.replaceChildren(...list.map(([label], i) => h('span', null, h('i', { class: 's' + i }), label)));
    }
    let maxV = 0;
    const data = list.map(([, name]) => metrics.get(name));
    for (const a of data) for (const v of a) if (v !== null && v > maxV) maxV = v;
    if (maxV === 0) maxV = 1;
    top.textContent = fmtNum(maxV) + (unit ? ' ' + unit : '');
    const n = metrics.t.length;
    const t0 = metrics.last - (HISTORY - 1) * 1000;
    for (let i = 0; i < 6; i++) {
      const a = data[i];
      if (!a) { lines[i].setAttribute('points', ''); continue; }
      const pts = [];
      for (let j = 0; j < n; j++) {
        if (a[j] === null || a[j] === undefined) continue;
        const x = P + (W - P) * (metrics.t[j] - t0) / ((HISTORY - 1) * 1000);
        const y = (H - 14) - (H - 26) * a[j] / maxV;
        pts.push(x.toFixed(1) + ',' + y.toFixed(1));
      }
      lines[i].setAttribute('points', pts.join(' '));
    }
    const first = list[0] && metrics.latest(list[0][1]);
    current.textContent = first === null || first === undefined ? '' : '· ' + fmtNum(first) + (unit ? ' ' + unit : '');
  };
  return el;
}
// A resize lays the charts out again at once, not at the next tick.
let resizing = 0;
window.addEventListener('resize', () => {
  if (resizing) return;
  resizing = requestAnimationFrame(() => {
    resizing = 0;
    for (const c of $view().querySelectorAll('.chart')) if (c.update) c.update();
  });
});

// table builds <table> once; set(rows) replaces its body. cols: [label, cls?]
function table(cols, attrs) {
  const tbody = h('tbody');
  const t = h('table', attrs, h('thead', null, h('tr', null, cols.map(([label, cls]) => h('th', { class: cls, scope: 'col' }, label)))), tbody);
  const wrap = h('div', { class: 'scroll' }, t);
  // set replaces only the cells that changed, so a link or a button that
  // has the keyboard focus keeps it across refreshes.
  wrap.set = (rows, empty) => {
    const want = rows.length === 0 ? [h('tr', null, h('td', { colspan: cols.length, class: 'muted' }, empty || 'none'))]
      : rows.map((r) => h('tr', null, r.map((c, i) => h('td', { class: cols[i][1] }, c))));
    want.forEach((tr, i) => {
      const old = tbody.rows[i];
      if (!old) { tbody.append(tr); return; }
      const oc = [...old.cells], nc = [...tr.cells];
      if (oc.length !== nc.length) { old.replaceWith(tr); return; }
      for (let j = 0; j < nc.length; j++) if (oc[j].outerHTML !== nc[j].outerHTML) oc[j].replaceWith(nc[j]);
    });
    while (tbody.rows.length > want.length) tbody.lastElementChild.remove();
  };
  return wrap;
}
function stat(label) {
  const b = h('b', null, '–');
  const el = h('div', { class: 'stat' }, b, h('span', null, label));
  el.set = (v) => { b.textContent = v; };
  return el;
}
function message(el, text, ok) {
  el.replaceChildren(text ? h('div', { class: 'msg ' + (ok ? 'ok' : 'err'), role: ok ? 'status' : 'alert' }, text) : '');
}
const link = (href, text) => h('a', { href }, text);
const enc = encodeURIComponent;

// ---- views ----
// A view is {el, refresh?}: refresh runs at 1 Hz after the history pull.

const views = {};

views.overview = () => {
  const st = { topics: stat('topics'), records: stat('records appended'), groups: stat('consumer groups'), functions: stat('functions'), tables: stat('tables'), applied: stat('applied commit') };
  const agents = table([['agent'], ['version'], ['addresses'], ['applied', 'num'], ['tail lag', 'num'], ['health'], ['started']], { id: 'agents' });
  const peers = table([['agent'], ['started'], ['last seen'], ['hint']]);
  const charts = [
    chart('Produce throughput', [['records/s', 'produce_records_per_s'], ['Kafka produce req/s', 'kafka:produce:per_s'], ['HTTP produce req/s', 'http:produce:per_s']], '/s'),
    chart('Produce latency', [['Kafka p50', 'kafka:produce:p50_ms'], ['Kafka p99', 'kafka:produce:p99_ms'], ['HTTP p99', 'http:produce:p99_ms'], ['commit PUT p99', 'commit:p99_ms']], 'ms'),
    chart('Fetch throughput', [['Kafka fetch req/s', 'kafka:fetch:per_s'], ['HTTP read req/s', 'http:read:per_s']], '/s'),
    chart('Fetch latency (includes the wait clients ask for)', [['Kafka p50', 'kafka:fetch:p50_ms'], ['Kafka p99', 'kafka:fetch:p99_ms'], ['HTTP read p99', 'http:read:p99_ms']], 'ms'),
    chart('Commit rate', [['all agents', 'commits_per_s'], ['this agent', 'own_commits_per_s']], '/s'),
    chart('Bucket requests and errors', () => [...metrics.names('bucket:').map((n) => [n.split(':')[1], n]), ['errors', 'bucket_errors_per_s']].slice(-6), '/s'),
  ];
  const el = h('section', null, h('h1', null, 'Overview'),
    h('div', { class: 'stats' }, Object.values(st)),
    h('h2', null, 'This agent'), agents,
    h('h2', null, 'Live agents on the bucket'), peers,
    h('h2', null, 'Last 15 minutes'), h('div', { class: 'charts' }, charts));
  return {
    el,
    async refresh() {
      const [ag, topics, groups, fns, tbls] = await Promise.all([api('/v1/agents'), api('/v1/topics'), tryAPI('/v1/groups'), tryAPI('/v1/functions'), tryAPI('/v1/tables')]);
      const me = ag.self;
      document.getElementById('agent').textContent = 'agent ' + me.agent + ' on ' + me.bucket;
      agents.set([[h('code', null, me.agent), me.version, Object.entries(me.addrs || {}).map(([k, v]) => k + ' ' + v).join(', '), me.applied, me.tail_lag_ms + ' ms',
        h('span', { class: me.ready ? 'good' : 'bad' }, me.status + (me.reason ? ': ' + me.reason : '')), fmtAgo(me.started_ms)]]);
      peers.set(ag.agents.map((a) => [h('code', null, a.agent + (a.self ? ' (this one)' : '')), fmtAgo(a.started_ms), fmtAgo(a.updated_ms), a.hint || '']));
      st.topics.set(topics.topics.length);
      st.records.set(fmtNum(metrics.latest('records_total') || 0));
      st.groups.set(groups ? groups.groups.length : '–');
      st.functions.set(fns ? fns.functions.length : '–');
      st.tables.set(tbls ? tbls.tables.length : '–');
      st.applied.set(me.applied);
      for (const c of charts) c.update();
    },
  };
};

views.topics = () => {
  const list = table([['topic'], ['partitions', 'num'], ['records', 'num'], ['bytes', 'num'], ['retention'], ['records/s', 'num']], { id: 'topics' });
  const el = h('section', null, h('h1', null, 'Topics'), list);
  return {
    el,
    async refresh() {
      const r = await api('/v1/topics');
      const full = await Promise.all(r.topics.slice(0, 200).map((t) => api('/v1/topics/' + enc(t.name))));
      list.set(full.map((t) => {
        const recs = t.partition_info.reduce((a, p) => a + p.end_offset - p.start_offset, 0);
        const bytes = t.partition_info.reduce((a, p) => a + p.bytes, 0);
        return [link('#/topics/' + enc(t.name), t.name), t.partitions, h('span', { 'data-topic-records': t.name }, recs), fmtBytes(bytes),
          fmtRetention(t.retention_ms) + (t.retention_bytes > 0 ? ' / ' + fmtBytes(t.retention_bytes) : ''), fmtNum(metrics.latest('topic:' + t.name + ':records_per_s'))];
      }), 'no topics yet: create one with `twoway topic create NAME` or let a Kafka producer name one');
    },
  };
};

// decodeValue shows a record's key or value as text, pretty JSON or hex.
function bytesOf(r, field) {
  if (r[field] !== undefined) return new TextEncoder().encode(r[field]);
  if (r[field + '_b64'] !== undefined) return Uint8Array.from(atob(r[field + '_b64']), (c) => c.charCodeAt(0));
  return null;
}
function show(bytes, fmt) {
  if (bytes === null) return h('span', { class: 'muted' }, 'null');
  if (fmt === 'hex') return h('pre', null, [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' '));
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  if (fmt === 'json') {
    try { return h('pre', null, JSON.stringify(JSON.parse(text), null, 2)); } catch (e) { return h('pre', { title: 'not JSON' }, text); }
  }
  return h('pre', null, text);
}

views.topic = (name, q) => {
  const parts = table([['partition', 'num'], ['start offset', 'num'], ['end offset', 'num'], ['bytes', 'num']], { id: 'partitions' });
  const rate = chart('Records appended', [['records/s', 'topic:' + name + ':records_per_s']], '/s');
  // The produce form.
  const pKey = h('input', { name: 'key', id: 'produce-key', placeholder: 'null' });
  const pValue = h('textarea', { name: 'value', id: 'produce-value', rows: 3 });
  const pPart = h('input', { name: 'partition', id: 'produce-partition', type: 'number', min: 0, placeholder: 'by key' });
  const pMsg = h('div', { id: 'produce-msg' });
  const produce = h('form', { id: 'produce', onsubmit: async (ev) => {
    ev.preventDefault();
    const rec = { value: pValue.value };
    if (pKey.value !== '') rec.key = pKey.value;
    if (pPart.value !== '') rec.partition = Number(pPart.value);
    try {
      const r = await api('/v1/topics/' + enc(name) + '/records', { method: 'POST', json: [rec] });
      const o = r.offsets[0];
      message(pMsg, `appended at partition ${o.partition}, offset ${o.offset}`, true);
      bPart.value = o.partition; bMode.value = 'offset'; bAt.value = o.offset; browse();
    } catch (e) { message(pMsg, e.message); }
  } },
  h('div', { class: 'row' }, h('label', null, 'key', pKey), h('label', null, 'partition', pPart)),
  h('label', null, 'value', pValue), h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Produce')), pMsg);
  // The record browser.
  const bPart = h('select', { id: 'browse-partition', 'aria-label': 'partition' });
  const bMode = h('select', { id: 'browse-mode', 'aria-label': 'find by' }, h('option', { value: 'offset' }, 'from offset'), h('option', { value: 'time' }, 'from time (ISO or ms)'), h('option', { value: 'key' }, 'with key'));
  const bAt = h('input', { id: 'browse-at', placeholder: 'earliest', 'aria-label': 'offset, time or key' });
  const bFmt = h('select', { id: 'browse-format', 'aria-label': 'value format' }, h('option', { value: 'text' }, 'text'), h('option', { value: 'json' }, 'JSON'), h('option', { value: 'hex' }, 'hex'));
  const bMsg = h('div');
  const recs = table([['partition', 'num'], ['offset', 'num'], ['timestamp'], ['key'], ['value'], ['headers']], { id: 'records' });
  let shown = [];
  const render = () => recs.set(shown.map((r) => [r.partition, r.offset, fmtTime(r.timestamp), show(bytesOf(r, 'key'), bFmt.value), show(bytesOf(r, 'value'), bFmt.value),
    (r.headers || []).map((x) => (x.key || '') + '=' + (x.value !== undefined ? x.value : '')).join(', ')]), 'no records here');
  bFmt.addEventListener('change', render);
  async function browse() {
    const p = bPart.value || '0';
    const base = '/v1/topics/' + enc(name) + '/partitions/' + p;
    message(bMsg, '');
    try {
      let from = 'earliest';
      const v = bAt.value.trim();
      if (bMode.value === 'offset' && v !== '') from = v;
      if (bMode.value === 'time' && v !== '') {
        const ms = /^\d+$/.test(v) ? Number(v) : Date.parse(v);
        if (Number.isNaN(ms)) throw new Error('not a time: ' + v + ' (use 2026-01-31T12:00:00Z or milliseconds)');
        from = (await api(base + '/offsets?timestamp=' + ms)).offset;
      }
      if (bMode.value === 'key') {
        // Scan from the start, at most 20,000 records, for the key.
        const found = [];
        let off = 'earliest', scanned = 0;
        for (;;) {
          const r = await api(base + '/records?offset=' + off + '&max=1000');
          for (const x of r.records) {
            const k = bytesOf(x, 'key');
            if (k !== null && new TextDecoder().decode(k) === v) found.push(x);
          }
          scanned += r.records.length;
          if (r.records.length === 0 || r.next_offset >= r.high_watermark || scanned >= 20000 || found.length >= 100) {
            message(bMsg, `scanned ${scanned} records from offset ${r.log_start_offset}: ${found.length} with key ${JSON.stringify(v)}`, true);
            break;
          }
          off = r.next_offset;
        }
        shown = found.slice(-100);
      } else {
        const r = await api(base + '/records?offset=' + from + '&max=50');
        shown = r.records;
        message(bMsg, `partition ${p}: offsets ${r.log_start_offset} to ${r.high_watermark - 1}; showing ${r.records.length} from ${r.records.length ? r.records[0].offset : r.next_offset}`, true);
      }
      render();
    } catch (e) { message(bMsg, e.message); }
  }
  const browser = h('form', { id: 'browse', onsubmit: (ev) => { ev.preventDefault(); browse(); } },
    h('div', { class: 'row' }, h('label', null, 'partition', bPart), h('label', null, 'find', bMode), h('label', null, 'offset / time / key', bAt), h('label', null, 'show as', bFmt),
      h('button', { type: 'submit', class: 'primary' }, 'Show')), bMsg, recs);
  if (q.get('offset')) bAt.value = q.get('offset');
  const el = h('section', null, h('h1', null, link('#/topics', 'Topics'), ' / ', name),
    h('div', { class: 'two' }, h('div', null, h('h2', null, 'Partitions'), parts), h('div', null, h('h2', null, 'Produce a record'), produce)),
    h('div', { class: 'charts' }, rate),
    h('h2', null, 'Records'), browser);
  let first = true;
  return {
    el,
    async refresh() {
      const t = await api('/v1/topics/' + enc(name));
      parts.set(t.partition_info.map((p) => [p.partition, p.start_offset, p.end_offset, fmtBytes(p.bytes)]));
      if (bPart.options.length !== t.partitions) {
        const cur = bPart.value || q.get('p') || '0';
        bPart.replaceChildren(...t.partition_info.map((p) => h('option', { value: p.partition }, p.partition)));
        bPart.value = cur;
      }
      rate.update();
      if (first) { first = false; browse(); }
    },
  };
};

views.groups = () => {
  const list = table([['group'], ['state'], ['members', 'num'], ['partitions', 'num'], ['lag', 'num'], ['coordinator']], { id: 'groups' });
  const el = h('section', null, h('h1', null, 'Consumer groups'), list);
  return {
    el,
    async refresh() {
      const r = await api('/v1/groups');
      list.set(r.groups.map((g) => [link('#/groups/' + enc(g.name), g.name), g.state || (g.coordinator ? 'coordinated elsewhere' : 'no coordinator'), g.members, g.partitions, h('span', { 'data-group-lag': g.name }, g.lag),
        g.coordinator ? h('code', null, g.coordinator.slice(0, 12) + (g.coordinated_here ? ' (this agent)' : '') + (g.coordinator_addr ? ' ' + g.coordinator_addr : '')) : '–']), 'no consumer groups yet');
    },
  };
};

views.group = (name) => {
  const members = table([['member'], ['client id'], ['host'], ['assignment']], { id: 'members' });
  const offsets = table([['topic'], ['partition', 'num'], ['committed', 'num'], ['end offset', 'num'], ['lag', 'num'], ['committed at']], { id: 'offsets' });
  const lag = chart('Lag per partition', () => metrics.names('group:' + name + ':').filter((n) => n.split(':').length === 5).map((n) => [n.split(':').slice(2, 4).join('/'), n]), 'records');
  const total = chart('Total lag', [['lag', 'group:' + name + ':lag']], 'records');
  const info = h('p', { class: 'muted' });
  const el = h('section', null, h('h1', null, link('#/groups', 'Consumer groups'), ' / ', name), info,
    h('h2', null, 'Members and assignments'), members, h('h2', null, 'Committed offsets'), offsets,
    h('div', { class: 'charts' }, lag, total));
  return {
    el,
    async refresh() {
      const r = await api('/v1/groups/' + enc(name));
      const g = r.group;
      info.textContent = `state ${g.state || 'unknown here'} · ${g.members} members · lag ${g.lag}` + (g.coordinator ? ` · coordinator ${g.coordinator}${g.coordinator_addr ? ' at ' + g.coordinator_addr : ''}` : '') +
        (g.coordinator && !g.coordinated_here ? ' (members are shown by the coordinating agent)' : '');
      members.set(r.members.map((m) => [h('code', null, m.member_id), m.client_id, m.client_host, m.assignment.map((a) => a.topic + ' [' + a.partitions.join(', ') + ']').join('; ')]), 'no members');
      offsets.set(r.offsets.map((o) => [link('#/topics/' + enc(o.topic), o.topic), o.partition, o.committed, o.end_offset, o.lag, fmtAgo(o.commit_ms)]), 'no committed offsets');
      lag.update(); total.update();
    },
  };
};

views.functions = () => {
  const list = table([['function'], ['version', 'num'], ['module sha256'], ['grants'], ['triggers'], ['limits'], ['invocations/s', 'num']], { id: 'functions' });
  const el = h('section', null, h('h1', null, 'Functions'), list);
  return {
    el,
    async refresh() {
      const r = await tryAPI('/v1/functions');
      if (!r) { list.set([], 'functions are not available on this agent'); return; }
      list.set(r.functions.map((f) => [link('#/functions/' + enc(f.name), f.name), f.version, h('code', { title: f.module }, f.module.slice(0, 12)), f.grants.join(', '),
        [...(f.subscribe || []).map((t) => 'topic ' + t), f.http ? 'http /fn/' + f.name : null].filter(Boolean).join(', '), limitsText(f.limits), fmtNum(metrics.latest('fn:' + f.name + ':invocations_per_s'))]), 'no functions deployed: twoway fn deploy NAME --module FILE.wasm');
    },
  };
};
function limitsText(l) {
  if (!l) return '';
  return `${l.memory_pages} pages, ${l.timeout_ms} ms, ×${l.max_concurrency}`;
}

views.function = (name, q) => {
  const info = table([['version', 'num'], ['module sha256'], ['size', 'num'], ['grants'], ['subscribes'], ['http'], ['config'], ['limits'], ['deployed']], { id: 'function-info' });
  const charts = [
    chart('Invocations and errors', [['invocations/s', 'fn:' + name + ':invocations_per_s'], ['errors/s', 'fn:' + name + ':errors_per_s']], '/s'),
    chart('Duration', [['p50', 'fn:' + name + ':p50_ms'], ['p90', 'fn:' + name + ':p90_ms'], ['p99', 'fn:' + name + ':p99_ms']], 'ms'),
    chart('Subscription lag', [['records behind', 'fn:' + name + ':lag']], 'records'),
  ];
  const hist = table([['version', 'num'], ['module'], ['deployed'], ['note'], ['']], { id: 'function-history' });
  const hMsg = h('div');
  const aKey = h('input', { id: 'actor-key', placeholder: 'key, e.g. d1', 'aria-label': 'actor key' });
  const aOut = h('div', { id: 'actor-state' });
  async function lookup() {
    if (aKey.value === '') return;
    try {
      const resp = await api('/v1/functions/' + enc(name) + '/actors/' + enc(aKey.value), { raw: true });
      const ver = resp.headers.get('Twoway-Version');
      const text = await resp.text();
      let body = text;
      try { body = JSON.stringify(JSON.parse(text), null, 2); } catch (e) { /* not JSON */ }
      aOut.replaceChildren(h('p', { class: 'muted' }, `actor ${JSON.stringify(aKey.value)} · state version ${ver} · ${text.length} bytes`), h('pre', { class: 'logs' }, body));
    } catch (e) { message(aOut, e.message); }
  }
  const actor = h('form', { id: 'actor', class: 'row', onsubmit: (ev) => { ev.preventDefault(); location.hash = '#/functions/' + enc(name) + '?actor=' + enc(aKey.value); } },
    h('label', null, 'actor key', aKey), h('button', { type: 'submit', class: 'primary' }, 'Look up'));
  const logs = h('div', { class: 'logs', id: 'logs', role: 'log', 'aria-live': 'off' });
  let logSeq = 0;
  const el = h('section', null, h('h1', null, link('#/functions', 'Functions'), ' / ', name), info,
    h('div', { class: 'charts' }, charts),
    h('h2', null, 'Actor state'), actor, aOut,
    h('h2', null, 'Live log (this agent, newest 500 lines)'), logs,
    h('h2', null, 'Deploy history'), hMsg, hist);
  if (q.get('actor') !== null) { aKey.value = q.get('actor'); lookup(); }
  let live = 0;
  return {
    el,
    async refresh() {
      const [f, hs, lg] = await Promise.all([api('/v1/functions/' + enc(name)), api('/v1/functions/' + enc(name) + '/history'), api('/v1/functions/' + enc(name) + '/logs?after=' + logSeq)]);
      info.set([[f.version, h('code', null, f.module), fmtBytes(f.size), f.grants.join(', '), (f.subscribe || []).join(', '), f.http ? '/fn/' + name : 'no',
        Object.entries(f.config || {}).map(([k, v]) => k + '=' + v).join(', '), limitsText(f.limits), fmtAgo(f.deployed_ms)]]);
      if (live !== f.version) {
        live = f.version;
        hist.set(hs.versions.slice().reverse().map((v) => [v.version, h('code', { title: v.module }, v.module.slice(0, 12)), fmtTime(v.deployed_ms),
          v.rollback_of ? 'rollback to ' + v.rollback_of : '', v.version === f.version ? h('b', null, 'live') :
            h('button', { type: 'button', onclick: async () => {
              if (!confirm(`Deploy version ${v.version} of ${name} again, as a new version?`)) return;
              try { const d = await api('/v1/functions/' + enc(name) + '/rollback?to=' + v.version, { method: 'POST' }); message(hMsg, 'rolled back: version ' + d.version + ' is live', true); } catch (e) { message(hMsg, e.message); }
            } }, 'Roll back to ' + v.version)]));
      }
      for (const l of lg.lines) {
        const attrs = Object.entries(l.attrs || {}).filter(([k]) => k !== 'invocation' && k !== 'version').map(([k, v]) => k + '=' + v).join(' ');
        logs.append(h('div', { class: 'lv-' + l.level }, fmtTime(l.time_ms).slice(11), ' ', l.level, ' ', l.source === 'guest' ? '' : '[runtime] ', l.message, attrs ? ' ' + attrs : ''));
      }
      while (logs.childElementCount > 500) logs.firstElementChild.remove();
      if (lg.lines.length) logs.scrollTop = logs.scrollHeight;
      logSeq = lg.last;
      for (const c of charts) c.update();
    },
  };
};

views.tables = () => {
  const list = table([['table'], ['topic'], ['rows', 'num'], ['dead letters', 'num'], ['commits', 'num'], ['files', 'num'], ['fresh as of'], ['metadata']], { id: 'tables' });
  const el = h('section', null, h('h1', null, 'Tables'), list, h('p', null, link('#/sql', 'Query them with SQL')));
  return {
    el,
    async refresh() {
      const r = await tryAPI('/v1/tables');
      if (!r) { list.set([], 'tables are not available on this agent'); return; }
      list.set(r.tables.map((t) => [link('#/tables/' + enc(t.name), t.name), link('#/topics/' + enc(t.topic), t.topic), h('span', { 'data-table-rows': t.name }, t.rows), t.dlq_rows, t.commits, t.live_files,
        fmtAgo(t.committed_ms), 'v' + (t.metadata_version || 0)]), 'no tables: twoway table create NAME --topic TOPIC');
    },
  };
};

views.table = (name) => {
  const cols = table([['column'], ['type'], ['required']]);
  const parts = table([['partition', 'num'], ['in table', 'num'], ['topic end', 'num'], ['not yet in files', 'num']]);
  const snaps = table([['snapshot'], ['when'], ['operation'], ['added records', 'num'], ['total records', 'num'], ['data files', 'num']], { id: 'snapshots' });
  const files = table([['data file'], ['size', 'num']], { id: 'files' });
  const info = h('p', { class: 'muted' });
  const el = h('section', null, h('h1', null, link('#/tables', 'Tables'), ' / ', name), info,
    h('div', { class: 'two' }, h('div', null, h('h2', null, 'Columns'), cols), h('div', null, h('h2', null, 'Partitions'), parts)),
    h('h2', null, 'Snapshots'), snaps, h('h2', null, 'Data files'), files,
    h('p', null, link('#/sql?q=' + enc(`select count(*) from ${name}`), 'Query in SQL')));
  let seen = -1;
  return {
    el,
    async refresh() {
      const t = await api('/v1/tables/' + enc(name));
      info.textContent = `${t.rows} rows (${t.dlq_rows} in ${t.dlq_table}) · ${t.commits} commits · fresh as of ${fmtAgo(t.committed_ms)} · ${t.metadata_location || 'no metadata yet'}`;
      cols.set(t.columns.map((c) => [c.name, c.type, c.required ? 'yes' : '']));
      parts.set((t.partitions || []).map((p) => [p.partition, p.table_offset, p.topic_end, p.topic_end - p.table_offset]));
      if (t.metadata_version === seen) return;
      seen = t.metadata_version;
      const meta = await tryAPI('/iceberg/v1/namespaces/default/tables/' + enc(name));
      const list = meta && meta.metadata && meta.metadata.snapshots ? meta.metadata.snapshots.slice().reverse().slice(0, 50) : [];
      snaps.set(list.map((sn) => [h('code', null, String(sn['snapshot-id'])), fmtTime(sn['timestamp-ms']), (sn.summary || {}).operation || '', (sn.summary || {})['added-records'] || '0',
        (sn.summary || {})['total-records'] || '', (sn.summary || {})['total-data-files'] || '']), 'no snapshot yet: the first commit comes within the commit interval');
      const objs = await api('/v1/bucket/objects?max=200&prefix=' + enc('tables/' + name + '/data/'));
      files.set(objs.objects.map((o) => [h('code', null, o.key), fmtBytes(o.size)]).concat(objs.more ? [['… more', '']] : []), 'no data files yet');
    },
  };
};

views.sql = (q) => {
  const text = h('textarea', { id: 'sql-text', 'aria-label': 'SQL', spellcheck: 'false' }, q.get('q') || 'select count(*) from ');
  const msg = h('div', { id: 'sql-msg' });
  const out = h('div', { id: 'sql-result', class: 'scroll' });
  const dl = h('div');
  let last = '';
  async function run() {
    const sql = text.value;
    message(msg, 'running…', true);
    const t0 = performance.now();
    try {
      const r = await api('/v1/sql', { method: 'POST', json: { sql } });
      const ms = performance.now() - t0;
      last = sql;
      message(msg, `${r.rows.length} rows in ${ms.toFixed(1)} ms`, true);
      msg.firstChild.id = 'sql-time';
      const grid = table(r.columns.map((c) => [c.name + ' ' + c.type.toLowerCase()]), { id: 'sql-grid' });
      grid.set(r.rows.map((row) => row.map((v) => v === null ? h('span', { class: 'muted' }, 'null') : typeof v === 'object' ? JSON.stringify(v) : String(v))), 'no rows');
      out.replaceChildren(grid);
      dl.replaceChildren(h('button', { type: 'button', id: 'sql-csv', onclick: csv }, 'Download CSV'));
    } catch (e) { message(msg, e.message); out.replaceChildren(); dl.replaceChildren(); }
  }
  async function csv() {
    try {
      const resp = await api('/v1/sql', { method: 'POST', json: { sql: last }, headers: { Accept: 'text/csv' }, raw: true });
      const url = URL.createObjectURL(await resp.blob());
      const a = h('a', { href: url, download: 'query.csv' });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { message(msg, e.message); }
  }
  text.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); run(); } });
  const el = h('section', null, h('h1', null, 'SQL'),
    h('p', { class: 'muted' }, 'One read-only query over the tables (DuckDB), seeing every acknowledged record. Ctrl+Enter runs it.'),
    text, h('div', { class: 'row' }, h('button', { id: 'sql-run', class: 'primary', type: 'button', onclick: run }, 'Run'), dl), msg, out);
  if (q.get('q')) setTimeout(run, 0);
  return { el };
};

let prices = null;
views.bucket = () => {
  const kinds = table([['kind'], ['objects', 'num'], ['bytes', 'num']], { id: 'kinds' });
  const counted = h('p', { class: 'muted', id: 'counted' });
  const rates = chart('Requests', () => metrics.names('bucket:').map((n) => [n.split(':')[1], n]).slice(0, 6), '/s');
  const errors = chart('Errors', [['errors/s', 'bucket_errors_per_s']], '/s');
  const pick = h('select', { id: 'price-list', 'aria-label': 'price list' });
  const win = h('select', { id: 'cost-window', 'aria-label': 'averaged over' }, h('option', { value: 60 }, 'last minute'), h('option', { value: 300 }, 'last 5 minutes'), h('option', { value: 900, selected: true }, 'last 15 minutes'));
  const cost = table([['item'], ['rate now'], ['per month', 'num'], ['price'], ['cost per month', 'num']], { id: 'cost' });
  const note = h('p', { class: 'muted' });
  const el = h('section', null, h('h1', null, 'Bucket'), h('p', { id: 'bucket-url', class: 'mono' }),
    h('h2', null, 'Objects by kind'), kinds, counted,
    h('div', { class: 'charts' }, rates, errors),
    h('h2', null, 'Estimated monthly cost'), h('div', { class: 'row' }, h('label', null, 'price list', pick), h('label', null, 'rates averaged over', win)), cost, note);
  let bytesStored = 0;
  const PUT_CLASS = ['put', 'put-if-absent', 'put-if-match', 'list'];
  const GET_CLASS = ['get', 'get-range', 'stat'];
  function estimate() {
    if (!prices) return;
    const p = prices.lists.find((x) => x.id === pick.value) || prices.lists[0];
    const n = Number(win.value);
    const month = 30 * 86400;
    const rate = (ops) => ops.reduce((a, op) => a + metrics.mean('bucket:' + op + ':per_s', n), 0);
    const puts = rate(PUT_CLASS), gets = rate(GET_CLASS);
    const gb = bytesStored / 1e9;
    const rows = [
      ['PUT, LIST (class A)', fmtNum(puts) + '/s', fmtNum(puts * month), '$' + p.put_per_1000 + ' per 1,000', '$' + (puts * month / 1000 * p.put_per_1000).toFixed(2)],
      ['GET, HEAD (class B)', fmtNum(gets) + '/s', fmtNum(gets * month), '$' + p.get_per_1000 + ' per 1,000', '$' + (gets * month / 1000 * p.get_per_1000).toFixed(2)],
      ['storage', fmtBytes(bytesStored), gb.toFixed(3) + ' GB', '$' + p.storage_gb_month + ' per GB-month', '$' + (gb * p.storage_gb_month).toFixed(2)],
    ];
    const total = puts * month / 1000 * p.put_per_1000 + gets * month / 1000 * p.get_per_1000 + gb * p.storage_gb_month;
    rows.push([h('b', null, 'total'), '', '', '', h('b', { id: 'cost-total' }, '$' + total.toFixed(2))]);
    cost.set(rows);
    note.textContent = `Estimates: this agent's request rates only (multiply by the agents sharing the bucket), without data transfer, retrieval or minimum-duration charges. ${p.name}: prices as published ${p.as_of}${p.note ? '; ' + p.note : ''}. PUTs per second fall as --linger grows (docs/BENCHMARKS.md).`;
  }
  pick.addEventListener('change', () => { localStorage.setItem('twoway.prices', pick.value); estimate(); });
  win.addEventListener('change', estimate);
  return {
    el,
    async refresh() {
      if (!prices) {
        prices = await (await fetch('prices.json')).json();
      }
      if (pick.options.length === 0) {
        pick.replaceChildren(...prices.lists.map((p) => h('option', { value: p.id }, p.name)));
        pick.value = localStorage.getItem('twoway.prices') || prices.lists[0].id;
      }
      const b = await api('/v1/bucket');
      document.getElementById('bucket-url').textContent = b.bucket;
      kinds.set(b.kinds.map((k) => [k.kind, h('span', { 'data-kind-objects': k.kind }, k.objects), fmtBytes(k.bytes)]), b.counting ? 'counting…' : 'no objects');
      bytesStored = b.kinds.reduce((a, k) => a + k.bytes, 0);
      counted.textContent = (b.counted_ms ? `Counted ${fmtAgo(b.counted_ms)} in ${b.took_ms} ms (${b.list_requests} list requests). ` : 'Counting… ') +
        `Listing the bucket costs requests and time, so it is recounted at most every ${Math.round(b.recount_every_ms / 1000)} s.` + (b.error ? ' Last count failed: ' + b.error : '');
      rates.update(); errors.update();
      estimate();
    },
  };
};

// ---- login ----

function showLogin(why) {
  stopTick();
  // Several calls refused at once show one form, and keep what is typed.
  const shown = document.querySelector('#login');
  if (shown && current === null) {
    shown.parentElement.querySelector('p').textContent = why;
    return;
  }
  const input = h('input', { id: 'token', type: 'password', autocomplete: 'current-password', placeholder: 'tw_…', 'aria-label': 'token' });
  const el = h('section', { class: 'login' }, h('h1', null, 'Sign in'), h('p', null, why),
    h('p', { class: 'muted' }, 'Paste a token made with `twoway token create --principal User:NAME`. It is kept in this browser and sent as a bearer token with every call.'),
    h('form', { id: 'login', onsubmit: (ev) => { ev.preventDefault(); localStorage.setItem(TOKEN_KEY, input.value.trim()); document.getElementById('logout').hidden = false; route(); } },
      input, h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Sign in'))));
  current = null;
  $view().replaceChildren(el);
  input.focus();
}

// ---- router and the 1 Hz tick ----

let current = null, timer = null, busy = false, generation = 0, ticks = 0;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, query] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, q: new URLSearchParams(query || '') };
}

function route() {
  const { parts, q } = parseHash();
  const page = parts[0] || 'overview';
  let v;
  switch (page) {
    case 'topics': v = parts[1] ? views.topic(parts[1], q) : views.topics(); break;
    case 'groups': v = parts[1] ? views.group(parts[1]) : views.groups(); break;
    case 'functions': v = parts[1] ? views.function(parts[1], q) : views.functions(); break;
    case 'tables': v = parts[1] ? views.table(parts[1]) : views.tables(); break;
    case 'sql': v = views.sql(q); break;
    case 'bucket': v = views.bucket(); break;
    default: v = views.overview();
  }
  for (const a of document.querySelectorAll('nav a')) {
    const known = ['topics', 'groups', 'functions', 'tables', 'sql', 'bucket'].includes(page) ? page : 'overview';
    if (a.dataset.page === known) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  generation++;
  current = v;
  $view().replaceChildren(v.el);
  document.title = 'twoway · ' + (parts.join(' / ') || 'overview');
  const foot = document.getElementById('agent');
  if (!foot.textContent) tryAPI('/v1/agents').then((a) => { if (a) foot.textContent = 'agent ' + a.self.agent + ' on ' + a.self.bucket; }).catch(() => {});
  startTick();
  tick();
}

async function tick() {
  if (busy || document.hidden) return;
  busy = true;
  // Each request leaves a resource-timing entry; the browser keeps up to
  // its buffer's size, so drop them now and then.
  if (++ticks % 60 === 0 && performance.clearResourceTimings) performance.clearResourceTimings();
  const gen = generation;
  const live = document.getElementById('live');
  try {
    await metrics.pull();
    if (current && current.refresh && gen === generation) await current.refresh();
    live.textContent = 'live · ' + new Date().toLocaleTimeString();
    live.classList.remove('bad');
  } catch (e) {
    if (e.status !== 401) {
      live.textContent = 'update failed: ' + e.message;
      live.classList.add('bad');
    }
  } finally {
    busy = false;
  }
}
function startTick() { if (!timer) timer = setInterval(tick, 1000); }
function stopTick() { clearInterval(timer); timer = null; }

document.addEventListener('keydown', (ev) => {
  const t = ev.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const pages = ['overview', 'topics', 'groups', 'functions', 'tables', 'sql', 'bucket'];
  if (ev.key >= '1' && ev.key <= '7') { location.hash = '#/' + pages[Number(ev.key) - 1]; ev.preventDefault(); }
  if (ev.key === '/') { const i = $view().querySelector('input, textarea'); if (i) { i.focus(); ev.preventDefault(); } }
  if (ev.key === '?') alert('Keys: 1 overview · 2 topics · 3 groups · 4 functions · 5 tables · 6 SQL · 7 bucket · / first field · Tab moves between links and fields · Ctrl+Enter runs SQL');
});
window.addEventListener('hashchange', route);
document.addEventListener('visibilitychange', () => { if (!document.hidden) tick(); });
document.getElementById('logout').addEventListener('click', () => { localStorage.removeItem(TOKEN_KEY); document.getElementById('logout').hidden = true; showLogin('Signed out.'); });
document.getElementById('logout').hidden = !token();
if (!location.hash) window.history.replaceState(null, '', '#/overview');
route();
