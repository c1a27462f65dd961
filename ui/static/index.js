// The hub debugger: a hub URL and a JWT, subscriptions shown live, a publish form and the
// active subscriptions panel.
import {$, h, topicCode, hubURL, loadConfig, loadMetadata, mintToken, mintAccessToken, matcherLabel, showTokenInfo as showTokenInfoIn, clock, pretty, lines, store, DEFAULT_ISSUER} from './lib.js';
import {HubStream, errorText} from './sse.js';

// What follows subscription events (docs/protocol.md, "Active subscriptions"): the 0.x topic
// selector, and the draft-08 URL pattern of the events of draft-08 subscriptions.
const PRESENCE_SELECTOR = '/.well-known/mercure/subscriptions{/topic}{/subscriber}';
const PRESENCE_PATTERN = '/.well-known/mercure/subscriptions/:type/:match/:subscriber';
const MAX_ROWS = 500;

const hubInput = $('#hub');
const tokenInput = $('#token');
const remember = $('#remember');

const useCookie = $('#use-cookie');

const hub = () => hubInput.value.trim() || hubURL;
// With the cookie option the token travels in the cookie only, never also in a header.
const token = () => (useCookie.checked ? '' : tokenInput.value.trim());
const auth = () => (token() ? {Authorization: `Bearer ${token()}`} : {});

// The draft-08 cookie (docs/protocol.md): set by the page for the hub's path on this origin
// while the option is ticked, cleared when it is unticked. __Secure- cookies need the Secure
// attribute, which browsers accept on HTTPS pages and on localhost.
const COOKIE = '__Secure-mercure_access_token';
const cookiePath = new URL(hubURL).pathname;
function syncCookie() {
  $('#cookie-info').hidden = !useCookie.checked;
  const value = useCookie.checked ? tokenInput.value.trim() : '';
  document.cookie = `${COOKIE}=${value}; Path=${cookiePath}; Secure; SameSite=Strict${value ? '' : '; Max-Age=0'}`;
}
useCookie.addEventListener('change', syncCookie);
tokenInput.addEventListener('input', () => { if (useCookie.checked) syncCookie(); });

// ---- Hub and token ----

if (store.get('remember')) {
  remember.checked = true;
  tokenInput.value = store.get('token') || '';
  hubInput.value = store.get('hub') || hubURL;
} else {
  hubInput.value = hubURL;
}

// persist keeps the hub URL and the token in sessionStorage only while "remember" is ticked.
function persist() {
  if (remember.checked) {
    store.set('remember', '1');
    store.set('hub', hubInput.value);
    store.set('token', tokenInput.value);
  } else {
    for (const k of ['remember', 'hub', 'token']) store.del(k);
  }
}

const showTokenInfo = () => showTokenInfoIn(tokenInput, $('#token-info'));

tokenInput.addEventListener('input', () => { showTokenInfo(); persist(); });
hubInput.addEventListener('input', persist);
remember.addEventListener('change', persist);
setInterval(showTokenInfo, 15000); // keep "expires in" current
showTokenInfo();

// mintWith puts the token mint() gives in the field, or says why there is none.
async function mintWith(mint) {
  try {
    tokenInput.value = await mint();
    showTokenInfo();
    persist();
    if (useCookie.checked) syncCookie();
  } catch (err) {
    const info = $('#token-info');
    info.textContent = `Cannot mint a token: ${err.message}`;
    info.classList.add('bad');
  }
}

$('#mint').addEventListener('click', () => mintWith(() => mintToken({publish: ['*'], subscribe: ['*']})));

// A draft-08 access token's aud is the hub's resource identifier, which the hub's protected
// resource metadata tells; it is read afresh, as the hub URL may have changed.
$('#mint-access').addEventListener('click', () => mintWith(async () => {
  const meta = await loadMetadata(hub());
  const all = [{match: '*', match_type: 'exact'}];
  return mintAccessToken({audience: meta.resource, publish: all, subscribe: all});
}));

// showResource says what the hub's metadata tells about draft-08: the audience its access
// tokens need and the matcher types it supports (unsupported ones are disabled in the form).
let matcherTypes = null; // null: unknown, every type offered
// issuer is the iss of the tokens the hub mints for the page, '' when it mints none.
async function showResource(issuer) {
  const info = $('#resource-info');
  try {
    const meta = await loadMetadata(hub());
    matcherTypes = Array.isArray(meta.mercure_matcher_types_supported) ? meta.mercure_matcher_types_supported : null;
    const minted = issuer ? ` · tokens minted here: iss ${issuer}` : '';
    info.textContent = `draft-08: aud ${meta.resource} · matcher types ${matcherTypes ? matcherTypes.join(', ') : 'not listed'}${minted}`;
  } catch {
    matcherTypes = null;
    info.textContent = ''; // a 0.x-only hub, or one out of reach: nothing to tell
  }
  for (const select of document.querySelectorAll('#matchers select')) offerTypes(select);
}

loadConfig().then(async (cfg) => {
  $('#mint').hidden = !cfg.mintToken;
  $('#mint-access').hidden = !cfg.mintAccessToken;
  $('#demo-link').hidden = !cfg.demo;
  const issuer = cfg.mintAccessToken ? cfg.issuer || DEFAULT_ISSUER : '';
  await showResource(issuer);
  hubInput.addEventListener('change', () => showResource(issuer));
  document.body.dataset.ready = 'true'; // for tests: the optional parts are settled
});

// ---- Events ----

const rows = $('#event-rows');
const byID = new Map(); // update id → {tr, cell, selectors}: one row per update, several selectors

function addRow(tr) {
  rows.prepend(tr);
  $('#events-empty').hidden = true;
  while (rows.rows.length > MAX_ROWS) {
    const last = rows.lastElementChild;
    if (byID.get(last.dataset.id)?.tr === last) byID.delete(last.dataset.id);
    last.remove();
  }
}

// showUpdate adds a row for an update, or adds the selector to the update's row when another
// subscription received it too (SSE does not say which topic matched: each selector has its
// own stream, and the row lists the selectors that received the update).
function showUpdate(selector, ev) {
  const seen = byID.get(ev.id);
  if (seen && !seen.selectors.has(selector)) {
    seen.selectors.add(selector);
    seen.cell.append(topicCode(selector));
    return;
  }
  const data = pretty(ev.data);
  const cell = h('td', {class: 'c-sub'}, topicCode(selector));
  const tr = h('tr', {class: 'update', 'data-id': ev.id},
    h('td', {class: 'c-time'}, clock()),
    cell,
    h('td', {class: 'c-id'}, h('code', {}, ev.id), seen ? h('span', {class: 'badge warn'}, 'duplicate') : null),
    h('td', {class: 'c-type'}, ev.type),
    h('td', {class: 'c-data'}, h('pre', {class: data.json ? 'json' : null}, data.text)));
  if (!seen) byID.set(ev.id, {tr, cell, selectors: new Set([selector])});
  addRow(tr);
}

function showNotice(selector, kind, message) {
  addRow(h('tr', {class: `notice kind-${kind}`},
    h('td', {class: 'c-time'}, clock()),
    h('td', {class: 'c-sub'}, topicCode(selector)),
    h('td', {class: 'c-msg', colspan: 3}, message)));
}

$('#clear').addEventListener('click', () => {
  rows.replaceChildren();
  byID.clear();
  $('#events-empty').hidden = false;
});

// ---- Subscribe ----

const STATE_LABELS = {
  connecting: () => 'connecting…',
  open: () => 'open',
  waiting: (ms) => `retrying in ${(ms / 1000).toFixed(1)} s`,
  failed: () => 'failed',
  closed: () => 'closed',
};

// openStream subscribes to one matcher {type, value} (type: topic, exact or urlpattern); its
// label names it in the lists.
function openStream(matcher, from) {
  const selector = matcherLabel(matcher.type, matcher.value);
  const badge = h('span', {class: 'badge'}, 'connecting…');
  const li = h('li', {'data-selector': selector, 'data-type': matcher.type, 'data-state': 'connecting'}, topicCode(selector), badge);
  const stream = new HubStream({
    hub: hub(),
    matchers: [matcher],
    token: token(),
    lastEventID: from,
    onUpdate: (ev) => showUpdate(selector, ev),
    onNotice: (kind, message) => showNotice(selector, kind, message),
    onState: (state, detail) => {
      li.dataset.state = state;
      badge.textContent = STATE_LABELS[state](detail);
    },
  });
  li.append(h('button', {type: 'button', class: 'quiet', 'aria-label': `Close the subscription to ${selector}`,
    onclick: () => {
      stream.stop();
      li.remove();
      showNotice(selector, 'closed', 'closed');
    }}, 'Close'));
  $('#streams').append(li);
  stream.start();
}

// The matcher lines: a type and a value each.
const MATCHER_TYPES = [
  ['topic', 'topic', 'Mercure 0.x: topic=, an exact topic, a URI template or *'],
  ['exact', 'exact', 'draft-08: match=, compared byte for byte (* for every topic)'],
  ['urlpattern', 'urlpattern', 'draft-08: match_urlpattern=, a URL pattern'],
];

function offerTypes(select) {
  for (const option of select.options) {
    option.disabled = option.value !== 'topic' && matcherTypes !== null && !matcherTypes.includes(option.value);
  }
}

function addMatcher(type = 'topic', value = '') {
  const select = h('select', {'aria-label': 'Matcher type'}, ...MATCHER_TYPES.map(([v, text, title]) => h('option', {value: v, title}, text)));
  select.value = type;
  offerTypes(select);
  const input = h('input', {spellcheck: 'false', autocomplete: 'off', 'aria-label': 'Topic, selector or pattern'});
  input.value = value;
  const li = h('li', {}, select, input, h('button', {type: 'button', class: 'quiet', 'aria-label': 'Remove this line',
    onclick: () => {
      if ($('#matchers').children.length > 1) li.remove();
      else input.value = '';
    }}, '×'));
  $('#matchers').append(li);
  return li;
}

addMatcher('topic', 'https://example.com/books/{id}');
$('#add-matcher').addEventListener('click', () => addMatcher($('#matchers li:last-child select')?.value)?.querySelector('input').focus());

$('#subscribe-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const from = $('#from').value.trim();
  for (const li of $('#matchers').children) {
    const value = li.querySelector('input').value.trim();
    if (value) openStream({type: li.querySelector('select').value, value}, from);
  }
});

// ---- Publish ----

$('#publish-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const out = $('#pub-result');
  const body = new URLSearchParams();
  for (const t of lines($('#pub-topics').value)) body.append('topic', t);
  body.append('data', $('#pub-data').value);
  for (const [field, id] of [['id', '#pub-id'], ['type', '#pub-type'], ['retry', '#pub-retry']]) {
    const v = $(id).value.trim();
    if (v) body.append(field, v);
  }
  if ($('#pub-private').checked) body.append('private', 'on');
  out.className = '';
  out.textContent = 'Publishing…';
  delete out.dataset.id;
  try {
    const resp = await fetch(hub(), {method: 'POST', headers: auth(), body, cache: 'no-store'});
    if (resp.ok) {
      const id = (await resp.text()).trim();
      out.className = 'ok';
      out.dataset.id = id;
      out.replaceChildren('Published ', h('code', {}, id));
    } else {
      out.className = 'bad';
      out.textContent = `Refused: ${await errorText(resp)}`;
    }
  } catch (err) {
    out.className = 'bad';
    out.textContent = `Cannot reach the hub: ${err.message}`;
  }
});

// ---- Active subscriptions ----

let presence = null; // {stream, subs}
const watchButton = $('#presence-watch');

function presenceStatus(text, bad = false) {
  const p = $('#presence-status');
  p.textContent = text;
  p.classList.toggle('bad', bad);
}

// A subscription document is a 0.x one ("Subscription", its topic selector) or a draft-08 one
// ("subscription", its match_type and match).
const isSubscription = (s) => s?.type === 'Subscription' || s?.type === 'subscription';
const subLabel = (s) => (s.type === 'subscription' ? matcherLabel(s.match_type, s.match) : s.topic);

function renderPresence(subs) {
  const list = [...subs.values()].sort((a, b) => (a.id < b.id ? -1 : 1));
  $('#presence-rows').replaceChildren(...list.map((s) => h('tr', {'data-topic': s.topic, 'data-match-type': s.match_type, 'data-match': s.match, 'data-subscriber': s.subscriber},
    h('td', {}, topicCode(subLabel(s))),
    h('td', {}, h('code', {}, s.subscriber)),
    h('td', {}, s.payload === undefined ? '' : h('code', {}, JSON.stringify(s.payload))))));
  $('#presence-table').hidden = false;
}

function logPresence(kind, s, message) {
  const log = $('#presence-log');
  $('#presence-log-h').hidden = false;
  const li = h('li', {class: `kind-${kind}`}, h('time', {}, clock()), ' ', h('strong', {}, kind), ' ');
  if (s) {
    li.append(topicCode(subLabel(s)), ' by ', h('code', {}, s.subscriber));
    if (s.payload !== undefined) li.append(' payload ', h('code', {}, JSON.stringify(s.payload)));
  } else li.append(message);
  log.prepend(li);
  while (log.children.length > 200) log.lastElementChild.remove();
}

function stopPresence() {
  presence?.stream.stop();
  presence = null;
  watchButton.textContent = 'Watch';
}

watchButton.addEventListener('click', async () => {
  if (presence) {
    stopPresence();
    presenceStatus('Stopped.');
    return;
  }
  presenceStatus('Loading…');
  let resp;
  try {
    resp = await fetch(`${hub()}/subscriptions`, {headers: auth(), cache: 'no-store'});
  } catch (err) {
    presenceStatus(`Cannot reach the hub: ${err.message}`, true);
    return;
  }
  if (resp.status === 404) {
    presenceStatus(`${await errorText(resp)}. This hub does not serve the active subscriptions API: it runs without the subscriptions directive.`, true);
    return;
  }
  if (!resp.ok) {
    const hint = resp.status === 401 || resp.status === 403 ? ` The API needs a JWT allowed to subscribe to ${PRESENCE_SELECTOR} (a 0.x token's mercure.subscribe claim, or a draft-08 token's subscribe grant).` : '';
    presenceStatus(`${await errorText(resp)}.${hint}`, true);
    return;
  }
  let doc;
  try {
    doc = await resp.json();
  } catch (err) {
    presenceStatus(`The hub's answer is not JSON: ${err.message}`, true);
    return;
  }
  const subs = new Map((doc.subscriptions || []).filter(isSubscription).map((s) => [s.id, s]));
  // A 0.x collection holds its cursor; a draft-08 one (asked for with a draft-08 token) has it
  // in the Link header.
  const cursor = doc.lastEventID ?? linkCursor(resp.headers.get('Link')) ?? 'earliest';
  renderPresence(subs);
  presenceStatus(`${subs.size} active when loaded; following arrivals and departures after ${cursor}.`);
  // Replaying from the collection's lastEventID misses nothing between the snapshot and the
  // stream. Events are applied in order, so replaying one already in the snapshot is harmless.
  const stream = new HubStream({
    hub: hub(),
    matchers: [{type: 'topic', value: PRESENCE_SELECTOR}, {type: 'urlpattern', value: PRESENCE_PATTERN}],
    token: token(),
    lastEventID: cursor,
    onUpdate: (ev) => {
      let s;
      try { s = JSON.parse(ev.data); } catch { return; }
      // 0.x events are plain messages, draft-08 ones have the event type mercure.
      if (!isSubscription(s) || (s.type === 'subscription') !== (ev.type === 'mercure')) return;
      if (s.active) {
        if (!subs.has(s.id)) logPresence('arrived', s);
        subs.set(s.id, s);
      } else if (subs.delete(s.id)) {
        logPresence('left', s);
      }
      renderPresence(subs);
    },
    onNotice: (kind, message) => { if (kind !== 'open') logPresence(kind, null, message); },
    onState: (state, detail) => {
      if (state === 'failed') {
        presenceStatus(`Cannot follow subscription events: ${detail}`, true);
        stopPresence();
      }
    },
  });
  presence = {stream, subs};
  watchButton.textContent = 'Stop';
  stream.start();
});

// linkCursor reads the last-event-id parameter of the Link header of the hub's rel="mercure"
// link, or undefined.
function linkCursor(link) {
  const m = /;\s*last-event-id="((?:[^"\\]|\\.)*)"/.exec(link ?? '');
  return m ? m[1].replace(/\\(.)/g, '$1') : undefined;
}
