// The kluctl web UI. Plain DOM code, no dependencies (see src/assets.rs for why).
//
// State: one snapshot from /api/events (every deployment and result, slim), kept current by the
// same stream's `deployment` and `result` events. Pages: #/ (overview), #/d/NS/NAME (deployment),
// #/r/ID (one stored result); with several clusters #/c/CLUSTER/d/NS/NAME and #/c/CLUSTER/r/ID
// (without #/c/CLUSTER: the first cluster). The deployment page also follows the controller's log lines of its
// KluctlDeployment (a second stream, open only while that page shows in a visible tab). Every element built from data goes through el() / text nodes,
// never innerHTML, so nothing from the cluster is ever parsed as HTML.
'use strict';

const S = {
  role: null,
  user: null,
  needsLogin: false,
  staticLogin: false, // password logins on
  oidc: false, // OIDC logins on
  oidcName: '',
  clusters: [], // names, in the server's order
  deployments: new Map(), // "cluster|ns/name" -> view
  results: new Map(), // "cluster|id" -> view
  synced: false,
  page: null, // data of the open deployment / result page
  filter: '',
};

// ---------------------------------------------------------------- helpers

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function ago(t) {
  if (!t) return '';
  const s = Math.max(0, (Date.now() - Date.parse(t)) / 1000);
  if (s < 60) return `${Math.floor(s)}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

function short(commit) { return commit ? commit.replace(/^.*@sha1:/, '').slice(0, 8) : ''; }

function toast(text, bad) {
  const t = el('div', { class: bad ? 'toast bad' : 'toast', 'data-testid': 'toast' }, text);
  document.body.append(t);
  setTimeout(() => t.remove(), bad ? 9000 : 4000);
}

async function api(path, opts) {
  const res = await fetch(path, Object.assign({ credentials: 'same-origin' }, opts || {}));
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (res.status === 401 && S.needsLogin) { S.role = null; showLogin(); }
  if (!res.ok) throw new Error((body && body.error) || `${res.status} ${res.statusText}`);
  return body;
}

function keyOf(d) { return `${d.namespace}/${d.name}`; }

// Several clusters: every link and API call names its cluster.
function multi() { return S.clusters.length > 1; }
function clusterOr(c) { return c || S.clusters[0] || ''; }
function mapKey(cluster, rest) { return `${clusterOr(cluster)}|${rest}`; }
function at(cluster) { return cluster ? `?cluster=${encodeURIComponent(cluster)}` : ''; }
function prefix(cluster) { return multi() ? `#/c/${encodeURIComponent(clusterOr(cluster))}` : '#'; }
function dHref(cluster, key) { return `${prefix(cluster)}/d/${key}`; }
function rHref(cluster, id) { return `${prefix(cluster)}/r/${id}`; }

function counts(r) {
  if (!r) return null;
  if (r.kind === 'validate') {
    return el('span', { class: 'counts' },
      el('span', { class: r.ready ? 'badge ok' : 'badge bad' }, r.ready ? 'ready' : 'not ready'),
      r.errors ? el('span', { class: 'd' }, `${r.errors} err`) : null,
      r.warnings ? el('span', { class: 'c' }, `${r.warnings} warn`) : null);
  }
  const parts = [];
  if (r.new) parts.push(el('span', { class: 'n' }, `+${r.new} new`));
  if (r.changed) parts.push(el('span', { class: 'c' }, `~${r.changed} changed`));
  if (r.orphan) parts.push(el('span', { class: 'o' }, `${r.orphan} orphan`));
  if (r.deleted) parts.push(el('span', { class: 'd' }, `-${r.deleted} deleted`));
  if (r.errors) parts.push(el('span', { class: 'd' }, `${r.errors} err`));
  if (r.warnings) parts.push(el('span', { class: 'c' }, `${r.warnings} warn`));
  if (!parts.length) parts.push(el('span', { class: 'o' }, 'no changes'));
  return el('span', { class: 'counts' }, parts);
}

function badges(d) {
  return [
    d.suspend ? el('span', { class: 'badge suspended', 'data-testid': 'suspended' }, 'suspended') : null,
    d.pendingApproval ? el('span', { class: 'badge approval', 'data-testid': 'pending-approval' }, 'awaiting approval') : null,
    d.manual && !d.pendingApproval ? el('span', { class: 'badge' }, 'manual') : null,
    d.dryRun ? el('span', { class: 'badge dry' }, 'dry-run') : null,
  ];
}

function dot(d) {
  return el('span', { class: d.reconciling ? 'dot busy' : 'dot', 'data-ready': d.ready, title: `Ready=${d.ready}` });
}

// ---------------------------------------------------------------- live state

let es = null;
let renderQueued = false;

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => { renderQueued = false; render(); });
}

function setConn(state, label) {
  const c = document.getElementById('conn');
  c.dataset.state = state;
  c.textContent = label;
}

function connect() {
  if (es) es.close();
  es = new EventSource('api/events');
  es.addEventListener('snapshot', (ev) => {
    const snap = JSON.parse(ev.data);
    S.clusters = snap.clusters || [];
    S.deployments = new Map(snap.deployments.map((d) => [mapKey(d.cluster, keyOf(d)), d]));
    S.results = new Map(snap.results.map((r) => [mapKey(r.cluster, r.id), r]));
    S.synced = snap.synced;
    setConn('live', snap.synced ? 'live' : 'syncing');
    refreshPage();
  });
  es.addEventListener('deployment', (ev) => {
    const { key, deployment } = JSON.parse(ev.data);
    const k = mapKey(key.cluster, `${key.namespace}/${key.name}`);
    if (deployment) S.deployments.set(k, deployment); else S.deployments.delete(k);
    if (S.page && S.page.kind === 'deployment' && mapKey(S.page.cluster, S.page.key) === k) refreshPage();
    else queueRender();
  });
  es.addEventListener('result', (ev) => {
    const { cluster, id, result } = JSON.parse(ev.data);
    const k = mapKey(cluster, id);
    if (result) S.results.set(k, result); else S.results.delete(k);
    if (S.page && S.page.kind === 'deployment' && result && mapKey(cluster, result.deployment) === mapKey(S.page.cluster, S.page.key)) refreshPage();
    else queueRender();
  });
  es.onopen = () => setConn('live', 'live');
  es.onerror = () => setConn('lost', 'reconnecting');
}

// A hidden tab gives its stream back: over plain HTTP/1.1 a browser holds at most six connections
// per server, so seven open tabs would otherwise stall. Shown again, it reconnects (a new snapshot).
document.addEventListener('visibilitychange', () => {
  if (!S.role) return;
  if (document.hidden) {
    if (es) { es.close(); es = null; setConn('lost', 'paused'); }
  } else if (!es) {
    connect();
  }
  syncLogs();
});

// ---------------------------------------------------------------- controller logs

// The log panel of the open deployment page: one element kept across re-renders (render() builds
// the page anew, the panel is moved into it), fed by its own EventSource. The stream is open only
// while a deployment page shows in a visible tab, for the same six-connection reason as above.
const MAX_LOG_LINES = 500;
const logs = { es: null, key: null, panel: null, status: null };

function logsWanted() {
  const r = route();
  return S.role && !document.hidden && r.kind === 'deployment' ? mapKey(r.cluster, r.key) : null;
}

function setLogStatus(text) { if (logs.status) logs.status.textContent = text; }

function closeLogs() {
  if (logs.es) { logs.es.close(); logs.es = null; }
  logs.key = null;
}

// Opens, keeps or closes the log stream for what is shown now (called on every render and when
// the tab is hidden or shown).
function syncLogs() {
  const want = logsWanted();
  if (want === logs.key && (logs.es || !want)) return;
  closeLogs();
  if (!want) return;
  if (!logs.panel || logs.panel.dataset.key !== want) {
    logs.status = el('span', { class: 'muted', 'data-testid': 'controller-logs-status' }, 'connecting…');
    logs.panel = el('div', { class: 'logs', 'data-testid': 'controller-logs', 'data-key': want });
  }
  logs.key = want;
  const r = route();
  const [ns, name] = r.key.split('/');
  const es = new EventSource(`api/deployments/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/logs${at(r.cluster)}`);
  logs.es = es;
  // Each (re)connection replays the server's buffered lines: start from an empty panel.
  es.onopen = () => { logs.panel.replaceChildren(); setLogStatus('live'); };
  es.addEventListener('log', (ev) => appendLog(JSON.parse(ev.data).line));
  es.onerror = () => {
    // CLOSED: the server refused (logs not configured, logged out); else it reconnects itself.
    setLogStatus(es.readyState === EventSource.CLOSED ? 'not available on this server' : 'reconnecting…');
  };
}

function appendLog(line) {
  const p = logs.panel;
  const atBottom = p.scrollTop + p.clientHeight >= p.scrollHeight - 8;
  p.append(el('div', { class: line.startsWith('error:') ? 'logline bad' : 'logline' }, line));
  while (p.childElementCount > MAX_LOG_LINES) p.firstElementChild.remove();
  if (atBottom) p.scrollTop = p.scrollHeight;
}

function logsPanel(key) {
  if (!logs.panel || logs.panel.dataset.key !== key) return el('span', { class: 'muted' }, 'connecting…');
  return el('div', {}, el('h2', {}, 'Controller logs ', logs.status), logs.panel);
}

// ---------------------------------------------------------------- routing

function route() {
  let parts = location.hash.replace(/^#\/?/, '').split('/').map((p) => { try { return decodeURIComponent(p); } catch (_) { return p; } });
  let cluster = null;
  if (parts[0] === 'c' && parts.length > 2) { cluster = parts[1]; parts = parts.slice(2); }
  if (parts[0] === 'd' && parts.length === 3) return { kind: 'deployment', cluster, key: `${parts[1]}/${parts[2]}` };
  if (parts[0] === 'r' && parts.length === 2) return { kind: 'result', cluster, id: parts[1] };
  return { kind: 'overview' };
}

let pageSeq = 0;

async function refreshPage() {
  const r = route();
  const seq = ++pageSeq;
  try {
    if (r.kind === 'deployment') {
      const [ns, name] = r.key.split('/');
      const data = await api(`api/deployments/${encodeURIComponent(ns)}/${encodeURIComponent(name)}${at(r.cluster)}`);
      if (seq === pageSeq) S.page = Object.assign({ kind: 'deployment', cluster: r.cluster, key: r.key }, data);
    } else if (r.kind === 'result') {
      if (!(S.page && S.page.kind === 'result' && S.page.id === r.id && S.page.cluster === r.cluster)) {
        const data = await api(`api/results/${encodeURIComponent(r.id)}${at(r.cluster)}`);
        if (seq === pageSeq) S.page = Object.assign({ kind: 'result', cluster: r.cluster, id: r.id }, data);
      }
    } else {
      S.page = null;
    }
  } catch (e) {
    if (seq === pageSeq) S.page = { kind: 'error', error: e.message };
  }
  queueRender();
}

// The old page goes at once ("Loading…"), so nothing stale can be read or clicked meanwhile.
window.addEventListener('hashchange', () => { S.page = null; render(); refreshPage(); });

// ---------------------------------------------------------------- pages

function render() {
  const main = document.getElementById('main');
  const crumbs = document.getElementById('crumbs');
  const r = route();
  let view;
  crumbs.replaceChildren();
  // Before the page is built: the panel it moves in loses its scroll position on the way.
  syncLogs();
  const logScroll = logs.panel ? logs.panel.scrollTop : 0;
  if (S.page && S.page.kind === 'error') {
    view = el('div', { class: 'card' }, el('b', {}, 'Error: '), S.page.error);
  } else if (r.kind === 'deployment') {
    crumbs.append(el('a', { href: '#/' }, 'overview'), ' / ', multi() ? `${clusterOr(r.cluster)} / ` : '', r.key);
    view = S.page && S.page.kind === 'deployment' ? deploymentPage(S.page) : el('p', { class: 'muted' }, 'Loading…');
  } else if (r.kind === 'result') {
    crumbs.append(el('a', { href: '#/' }, 'overview'), ' / ', multi() ? `${clusterOr(r.cluster)} / ` : '', 'result ', r.id.slice(0, 8));
    view = S.page && S.page.kind === 'result' ? resultPage(S.page) : el('p', { class: 'muted' }, 'Loading…');
  } else {
    view = overviewPage();
  }
  const focused = document.activeElement && document.activeElement.id;
  main.replaceChildren(view);
  if (logs.panel) logs.panel.scrollTop = logScroll;
  // When a page first shows its data (make bench reads these; one mark each until cleared).
  const shown = r.kind === 'overview' ? S.synced : S.page && S.page.kind === r.kind;
  const mark = `kluctl:${r.kind}`;
  if (shown && !performance.getEntriesByName(mark).length) performance.mark(mark);
  if (focused) { const f = document.getElementById(focused); if (f) { f.focus(); if (f.setSelectionRange) f.setSelectionRange(f.value.length, f.value.length); } }
}

function projectName(p) {
  if (!p || !p.repoKey) return '(project not known yet)';
  return p.subDir ? `${p.repoKey} / ${p.subDir}` : p.repoKey;
}

function overviewPage() {
  const clusters = new Map(S.clusters.map((c) => [c, new Map()])); // cluster -> project -> target -> {deployments, cli}
  const group = (c, p, t) => {
    const pk = projectName(p);
    const cl = clusterOr(c);
    if (!clusters.has(cl)) clusters.set(cl, new Map());
    const groups = clusters.get(cl);
    if (!groups.has(pk)) groups.set(pk, new Map());
    const tk = t ? `${t.targetName || '(no target)'}${t.discriminator ? ` · ${t.discriminator}` : ''}` : '(target not known yet)';
    const g = groups.get(pk);
    if (!g.has(tk)) g.set(tk, { deployments: [], cli: [] });
    return g.get(tk);
  };
  const f = S.filter.toLowerCase();
  for (const d of S.deployments.values()) {
    if (f && !`${keyOf(d)} ${d.source} ${projectName(d.project)} ${d.cluster}`.toLowerCase().includes(f)) continue;
    group(d.cluster, d.project, d.targetKey).deployments.push(d);
  }
  for (const r of S.results.values()) {
    if (r.deployment || r.kind !== 'command') continue;
    if (f && !`${projectName(r.project)} ${r.cluster}`.toLowerCase().includes(f)) continue;
    group(r.cluster, r.project, r.targetKey).cli.push(r);
  }
  const total = S.deployments.size;
  const failing = [...S.deployments.values()].filter((d) => d.ready === 'False').length;
  const waiting = [...S.deployments.values()].filter((d) => d.pendingApproval).length;
  const head = el('div', {},
    el('h1', {}, 'Deployments'),
    el('div', { class: 'summary-line' },
      el('div', {}, el('b', { 'data-testid': 'count-deployments' }, total), 'KluctlDeployments'),
      el('div', {}, el('b', { style: failing ? 'color: var(--bad)' : '' }, failing), 'not ready'),
      el('div', {}, el('b', {}, waiting), 'awaiting approval'),
      el('div', {}, el('b', {}, S.results.size), 'stored results')),
    el('input', { id: 'filter', class: 'filter', placeholder: 'filter by name, namespace, source…', value: S.filter,
      oninput: (e) => { S.filter = e.target.value; queueRender(); } }));
  if (!total && !S.results.size) {
    return el('div', {}, head, el('p', { class: 'muted' }, S.synced ? `No KluctlDeployments and no stored results on ${multi() ? 'these clusters' : 'this cluster'}.` : 'Reading the cluster…'));
  }
  const sections = [...clusters.entries()].map(([cl, groups]) => {
    const projects = projectCards(groups);
    if (!multi()) return projects;
    return el('section', { class: 'cluster', 'data-testid': 'cluster', 'data-cluster': cl },
      el('h2', {}, cl, ' ', el('span', { class: 'muted' }, projects.length ? '' : 'no KluctlDeployments')), projects);
  });
  return el('div', {}, head, sections);
}

function projectCards(groups) {
  return [...groups.keys()].sort().map((pk) => {
    const targets = [...groups.get(pk).entries()].sort(([a], [b]) => a.localeCompare(b)).map(([tk, g]) => {
      g.deployments.sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
      g.cli.sort((a, b) => b.startTime.localeCompare(a.startTime));
      return el('div', { class: 'target' },
        el('div', { class: 'tname' }, tk),
        g.deployments.length ? el('table', {},
          el('tr', {}, ['', 'KluctlDeployment', 'source', 'revision', 'last deploy', 'validation', 'drift'].map((t) => el('th', {}, t))),
          g.deployments.map((d) => el('tr', { 'data-testid': 'deployment-row', 'data-key': keyOf(d), 'data-cluster': d.cluster, 'data-ready': d.ready },
            el('td', {}, dot(d)),
            el('td', {}, el('a', { href: dHref(d.cluster, keyOf(d)) }, keyOf(d)), ' ', badges(d),
              d.ready === 'False' ? el('div', { class: 'muted msg' }, d.message.slice(0, 200)) : null),
            el('td', { class: 'mono' }, d.source),
            el('td', { class: 'mono' }, short(d.commit)),
            el('td', {}, d.lastDeploy ? [el('a', { href: rHref(d.cluster, d.lastDeploy.id) }, ago(d.lastDeploy.startTime)), ' ', counts(d.lastDeploy)] : el('span', { class: 'muted' }, 'never')),
            el('td', {}, d.lastValidate ? counts(d.lastValidate) : el('span', { class: 'muted' }, '–')),
            el('td', { 'data-testid': 'drift-cell' }, d.drift || el('span', { class: 'muted' }, '–'))))) : null,
        g.cli.length ? el('div', { class: 'muted' }, 'From the command line: ',
          el('a', { href: rHref(g.cli[0].cluster, g.cli[0].id) }, `${g.cli[0].command} ${ago(g.cli[0].startTime)}`), ' ', counts(g.cli[0]),
          g.cli.length > 1 ? ` (and ${g.cli.length - 1} earlier)` : '') : null);
    });
    return el('div', { class: 'card project' }, el('div', { class: 'head' }, el('b', {}, pk)), targets);
  });
}

async function act(cluster, key, action, body) {
  const [ns, name] = key.split('/');
  try {
    const res = await api(`api/deployments/${encodeURIComponent(ns)}/${encodeURIComponent(name)}/actions/${action}${at(cluster)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-kluctl-webui': '1' },
      body: JSON.stringify(body || {}),
    });
    toast(res.requestValue ? `${action} requested; the result appears here when the controller is done` : `${action}: done`);
  } catch (e) {
    toast(`${action} failed: ${e.message}`, true);
  }
}

function diffBlock(text) {
  return el('pre', { class: 'diff' }, (text || '').split('\n').map((l) =>
    el('span', { class: l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : '' }, l + '\n')));
}

// One change of an object: its field path, then the diff.
function changeBlock(c) {
  return el('div', { class: 'change' }, el('div', { class: 'mono muted' }, `${c.type || 'update'} ${c.jsonPath || ''}`),
    diffBlock(c.unifiedDiff || ''));
}

// An object's changes; a new object shows what was rendered, a deleted or orphan one what was there.
function objectBody(o) {
  if ((o.changes || []).length) return o.changes.map(changeBlock);
  const body = o.new ? o.rendered || o.applied : o.remote;
  return body ? el('pre', { class: 'diff' }, JSON.stringify(body, null, 2)) : null;
}

function refName(r) {
  if (!r) return '';
  const kind = r.kind || '';
  return `${kind} ${r.namespace ? `${r.namespace}/` : ''}${r.name}`;
}

function errorList(title, items, cls) {
  if (!items || !items.length) return null;
  return el('div', {}, el('h2', {}, title), el('ul', { class: cls }, items.map((e) => el('li', {}, refName(e.ref), ': ', e.message))));
}

function deploymentPage(p) {
  const d = p.deployment;
  const st = (p.object && p.object.status) || {};
  const admin = S.role === 'admin';
  const btn = (action, label, cls, body) => el('button', { class: cls, 'data-action': action, onclick: () => act(p.cluster, p.key, action, body) }, label);
  const actions = admin ? el('div', { class: 'actions' },
    btn('reconcile', 'Reconcile now', 'primary'),
    btn('deploy', 'Deploy'),
    btn('diff', 'Diff'),
    btn('validate', 'Validate'),
    btn('prune', 'Prune', 'danger'),
    d.suspend ? btn('resume', 'Resume') : btn('suspend', 'Suspend'),
    d.pendingApproval ? btn('approve', 'Approve deployment', 'primary', { objectsHash: d.pendingApproval }) : null,
    d.manual && d.approvedHash ? btn('revoke', 'Revoke approval') : null) : null;
  const drift = st.lastDriftDetectionResult;
  const validate = st.lastValidateResult;
  return el('div', {},
    el('h1', {}, dot(d), keyOf(d), ' ', multi() ? el('span', { class: 'badge' }, d.cluster) : null, ' ', badges(d)),
    actions,
    el('div', { class: 'card' }, el('div', { class: 'grid' },
      el('span', { class: 'k' }, 'Ready'), el('span', { 'data-testid': 'ready' }, `${d.ready}${d.reason ? ` (${d.reason})` : ''}`),
      el('span', { class: 'k' }, 'Message'), el('span', { class: 'msg' }, d.message || '–'),
      el('span', { class: 'k' }, 'Source'), el('span', { class: 'mono' }, d.source),
      el('span', { class: 'k' }, 'Revision'), el('span', { class: 'mono' }, d.commit || '–'),
      el('span', { class: 'k' }, 'Project'), el('span', {}, projectName(d.project)),
      el('span', { class: 'k' }, 'Target'), el('span', {}, d.targetKey ? `${d.targetKey.targetName || '(none)'} · ${d.targetKey.discriminator || ''}` : d.target || '–'),
      el('span', { class: 'k' }, 'Interval'), el('span', {}, d.interval),
      d.manual ? [el('span', { class: 'k' }, 'Approval'), el('span', { class: 'mono' }, d.pendingApproval ? `waiting: ${d.pendingApproval.slice(0, 12)}` : d.approvedHash ? `approved: ${d.approvedHash.slice(0, 12)}` : 'nothing waiting')] : null,
      d.requests.length ? [el('span', { class: 'k' }, 'Requests'), el('span', {}, d.requests.map((r) => el('div', { 'data-testid': 'request', 'data-kind': r.kind },
        `${r.kind}: `, r.endTime ? (r.commandError ? el('span', { style: 'color: var(--bad)' }, `failed: ${r.commandError}`) : 'done') : 'running', ' ', el('span', { class: 'muted' }, ago(r.startTime)),
        r.resultId ? [' ', el('a', { href: rHref(d.cluster, r.resultId) }, 'result')] : null)))] : null)),
    el('h2', {}, 'Drift'),
    el('div', { class: 'card', 'data-testid': 'drift' },
      !drift ? el('span', { class: 'muted' }, 'not checked yet') :
        !(drift.objects || []).length ? el('span', {}, 'no drift ', el('span', { class: 'muted' }, ago(drift.endTime))) :
          [el('div', {}, `${drift.objects.length} object(s) differ from what the last deploy applied `, el('span', { class: 'muted' }, ago(drift.endTime))),
            drift.objects.map((o) => el('details', { class: 'obj', open: true },
              el('summary', {}, refName(o.ref), o.new ? ' (new)' : '', o.orphan ? ' (orphan)' : '', o.deleted ? ' (deleted)' : ''),
              (o.changes || []).map(changeBlock)))]),
    el('h2', {}, 'Validation'),
    el('div', { class: 'card', 'data-testid': 'validation' },
      !validate ? el('span', { class: 'muted' }, 'not validated yet') :
        [el('div', {}, el('span', { class: validate.ready ? 'badge ok' : 'badge bad' }, validate.ready ? 'ready' : 'not ready'), ' ', el('span', { class: 'muted' }, ago(validate.endTime))),
          errorList('Errors', validate.errors, 'errors'), errorList('Warnings', validate.warnings, 'warnings'),
          (validate.results || []).length ? el('ul', {}, validate.results.map((r) => el('li', {}, refName(r.ref), ': ', r.annotation ? `${r.annotation}: ` : '', r.message))) : null]),
    logsPanel(mapKey(p.cluster, p.key)),
    el('h2', {}, 'History'),
    el('div', { class: 'card' }, p.results.length ? el('ul', { class: 'timeline', 'data-testid': 'history' }, p.results.map((r) => el('li', { 'data-result-id': r.id, 'data-command': r.command },
      el('span', { class: 'when', title: r.startTime }, ago(r.startTime)),
      el('span', { class: 'cmd' }, el('a', { href: rHref(r.cluster, r.id) }, r.command)),
      el('span', { class: 'by' }, r.initiator === 'CommandLine' ? 'command line' : 'controller'),
      el('span', { class: 'mono' }, short(r.commit)),
      counts(r)))) : el('span', { class: 'muted' }, 'no stored results yet')));
}

function resultPage(p) {
  const s = p.summary || {};
  const r = p.result || {};
  const objects = (r.objects || []).filter((o) => o.new || o.orphan || o.deleted || (o.changes || []).length);
  const byNs = new Map();
  for (const o of objects) {
    const ns = (o.ref && o.ref.namespace) || '(cluster scoped)';
    if (!byNs.has(ns)) byNs.set(ns, []);
    byNs.get(ns).push(o);
  }
  return el('div', {},
    el('h1', {}, `${s.command || 'result'} `, el('span', { class: 'muted' }, ago(s.startTime))),
    el('div', { class: 'card' }, el('div', { class: 'grid' },
      el('span', { class: 'k' }, 'Result id'), el('span', { class: 'mono' }, p.id),
      multi() ? [el('span', { class: 'k' }, 'Cluster'), el('span', {}, s.cluster)] : null,
      el('span', { class: 'k' }, 'Run by'), el('span', {}, s.deployment ? ['KluctlDeployment ', el('a', { href: dHref(s.cluster, s.deployment) }, s.deployment)] : 'command line'),
      el('span', { class: 'k' }, 'Project'), el('span', {}, projectName(s.project)),
      el('span', { class: 'k' }, 'Target'), el('span', {}, s.targetKey ? `${s.targetKey.targetName || '(none)'} · ${s.targetKey.discriminator || ''}` : '–'),
      el('span', { class: 'k' }, 'Started'), el('span', {}, s.startTime || ''),
      el('span', { class: 'k' }, 'Finished'), el('span', {}, s.endTime || ''),
      el('span', { class: 'k' }, 'Outcome'), el('span', {}, counts(s)))),
    errorList('Errors', r.errors, 'errors'),
    errorList('Warnings', r.warnings, 'warnings'),
    s.kind === 'validate' ? (r.results || []).length ? el('div', {}, el('h2', {}, 'Findings'), el('ul', {}, r.results.map((x) => el('li', {}, refName(x.ref), ': ', x.message)))) : null :
      el('div', {}, el('h2', {}, `Objects with changes (${objects.length} of ${(r.objects || []).length})`),
        [...byNs.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([ns, objs]) => el('div', { class: 'card', 'data-testid': 'result-namespace' },
          el('b', {}, ns),
          objs.map((o) => el('details', { class: 'obj', 'data-testid': 'result-object', open: objs.length < 8 },
            el('summary', {}, refName(o.ref), o.new ? ' (new)' : '', o.orphan ? ' (orphan)' : '', o.deleted ? ' (deleted)' : ''),
            objectBody(o)))))));
}

// ---------------------------------------------------------------- login

function showLogin() {
  if (es) { es.close(); es = null; }
  closeLogs();
  const card = el('div', { class: 'card login' }, el('h1', {}, 'Log in'));
  if (S.oidc) {
    // Relative to the page's <base>, so it works under --path-prefix.
    card.append(el('a', { class: 'button primary', id: 'login-oidc', href: 'auth/oidc/login' }, `Log in with ${S.oidcName || 'OIDC'}`));
  }
  if (S.staticLogin) {
    const user = el('input', { id: 'login-user', value: 'admin', autocomplete: 'username' });
    const pass = el('input', { id: 'login-password', type: 'password', autocomplete: 'current-password' });
    const submit = async (ev) => {
      ev.preventDefault();
      try {
        const res = await api('auth/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: user.value, password: pass.value }) });
        S.role = res.role;
        S.user = res.user;
        showWho();
        connect();
        refreshPage();
      } catch (e) { toast(e.message, true); }
    };
    card.append(el('form', { onsubmit: submit },
      el('label', { for: 'login-user' }, 'User (admin or viewer)'), user,
      el('label', { for: 'login-password' }, 'Password'), pass,
      el('button', { class: 'primary', type: 'submit', id: 'login-submit' }, 'Log in')));
  }
  document.getElementById('main').replaceChildren(card);
}

function showWho() {
  const who = document.getElementById('who');
  who.replaceChildren(S.role ? (S.user && S.user !== S.role ? `${S.user} (${S.role})` : `${S.role}`) : '');
  who.dataset.role = S.role || '';
  if (S.needsLogin && S.role) {
    who.append(el('button', { onclick: async () => { await api('auth/logout', { method: 'POST' }); S.role = null; S.user = null; showWho(); showLogin(); } }, 'log out'));
  }
}

async function start() {
  try {
    const me = await api('api/whoami');
    S.role = me.role;
    S.user = me.user;
    S.needsLogin = me.needsLogin;
    S.staticLogin = me.staticLogin;
    S.oidc = me.oidc;
    S.oidcName = me.oidcName;
  } catch (e) {
    toast(e.message, true);
  }
  showWho();
  if (!S.role) { showLogin(); return; }
  connect();
  refreshPage();
  setInterval(queueRender, 30000); // "5m ago" texts
}

start();
