// Helpers shared by the UI's pages. The DOM is built with createElement and textContent
// only: the pages' Content-Security-Policy requires Trusted Types, so assigning HTML markup
// to an element would throw.

// h creates an element: h('td', {class: 'id', title: '…'}, 'text', child, …). Properties
// starting with "on" add event listeners; other properties are attributes (true → present,
// false or null → absent). Children are nodes or strings.
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false && v != null) el.setAttribute(k, String(v));
  }
  el.append(...children.filter((c) => c != null && c !== false));
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// topicCode shows a topic or selector in a <code>, with line-break opportunities after the
// slashes of its path (<wbr> elements: copied text stays intact), not after "https://".
export function topicCode(text) {
  const parts = text.split(/(?<=[^:/]\/)(?!\/)/);
  return h('code', {}, ...parts.flatMap((p, i) => (i ? [h('wbr'), p] : [p])));
}

// The UI lives at <hub>/ui/…; uiBase is the URL of <hub>/ui/, hubURL the hub's endpoint.
const uiPath = location.pathname.replace(/\/ui\/.*$/, '/ui/');
export const uiBase = new URL(uiPath, location.origin);
export const hubURL = new URL(uiPath.slice(0, -'/ui/'.length), location.origin).href;

// loadConfig returns which optional parts the hub serves: {demo, mintToken, mintAccessToken,
// issuer} (issuer: the iss of the access tokens the hub mints for the page).
export async function loadConfig() {
  try {
    const resp = await fetch(new URL('config.json', uiBase), {cache: 'no-store'});
    if (resp.ok) return await resp.json();
  } catch { /* an old hub, or offline: nothing optional */ }
  return {demo: false, mintToken: false, mintAccessToken: false, issuer: ''};
}

// DEFAULT_ISSUER is the issuer a hub trusts with its own keys when none is configured.
export const DEFAULT_ISSUER = 'https://localhost';

// metadataURL is the URL of a hub's protected resource metadata (RFC 9728): the well-known
// prefix goes between the host and the hub's path.
export function metadataURL(hub) {
  const u = new URL(hub, location.href);
  return `${u.origin}/.well-known/oauth-protected-resource${u.pathname.replace(/\/$/, '')}`;
}

// loadMetadata reads a hub's protected resource metadata: {resource, mercure_matcher_types_supported, …}.
export async function loadMetadata(hub) {
  const resp = await fetch(metadataURL(hub), {cache: 'no-store'});
  if (!resp.ok) throw new Error(`${resp.status}: ${(await resp.text()).trim() || resp.statusText}`);
  const doc = await resp.json();
  if (typeof doc?.resource !== 'string') throw new Error('the metadata has no resource identifier');
  return doc;
}

// mintToken asks the hub for a Mercure 0.x dev token (dev mode only).
export async function mintToken({publish = [], subscribe = []} = {}) {
  const u = new URL('token', uiBase);
  for (const s of publish) u.searchParams.append('publish', s);
  for (const s of subscribe) u.searchParams.append('subscribe', s);
  return fetchToken(u);
}

// mintAccessToken asks the hub for a draft-08 access token (dev mode only) for the audience
// (the hub's resource identifier), with grants [{match, match_type}] (match_type exact or
// urlpattern) for publishing and subscribing.
export async function mintAccessToken({audience, publish = [], subscribe = []}) {
  const u = new URL('token', uiBase);
  u.searchParams.set('kind', 'access');
  u.searchParams.set('audience', audience);
  for (const [action, grants] of [['publish', publish], ['subscribe', subscribe]]) {
    for (const g of grants) u.searchParams.append(g.match_type === 'urlpattern' ? `${action}_urlpattern` : action, g.match);
  }
  return fetchToken(u);
}

async function fetchToken(u) {
  const resp = await fetch(u, {cache: 'no-store'});
  const text = (await resp.text()).trim();
  if (!resp.ok) throw new Error(`${resp.status}: ${text || resp.statusText}`);
  return text;
}

// decodeJWT returns a token's claims without verifying it (the hub does), or null; part 0
// gives its protected header.
export function decodeJWT(token, part = 1) {
  const parts = token.trim().split('.');
  if (parts.length !== 3) return null;
  const b64 = parts[part].replace(/-/g, '+').replace(/_/g, '/');
  try {
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

// describeToken says in a line what a token allows and until when.
export function describeToken(token) {
  if (!token.trim()) return {text: 'No token: subscriptions are anonymous (public updates only, if the hub allows it); publishing needs one.', bad: false};
  const c = decodeJWT(token);
  if (!c) return {text: 'This does not look like a JWT (three base64url parts separated by dots).', bad: true};
  const typ = String(decodeJWT(token, 0)?.typ ?? '').toLowerCase();
  if (typ === 'at+jwt' || typ === 'application/at+jwt') return describeAccessToken(c);
  const m = c.mercure || {};
  const list = (v) => (Array.isArray(v) && v.length ? v.join(', ') : 'nothing');
  let {text, bad} = withExpiry(`publish: ${list(m.publish)} · subscribe: ${list(m.subscribe)}`, c);
  if (m.payload !== undefined) text += ` · payload ${JSON.stringify(m.payload)}`;
  return {text, bad};
}

// The type of Mercure's entries in authorization_details.
const DETAIL_TYPE = 'https://mercure.rocks/authorization-detail';

// matcherLabel names a matcher of the subscribe form, a subscription or a grant: a 0.x topic
// selector as it is, a draft-08 matcher with its type ("urlpattern: /books/:id"); plainExact
// leaves draft-08 exact matchers unmarked too (in grants, where exact is the default).
export function matcherLabel(type, value, plainExact = false) {
  return type === 'topic' || (plainExact && (type ?? 'exact') === 'exact') ? value : `${type ?? 'exact'}: ${value}`;
}

// describeAccessToken describes a draft-08 access token: its grants by action, its issuer
// and audience, its expiry and subscribe payloads.
function describeAccessToken(c) {
  const grants = {publish: [], subscribe: []};
  const payloads = [];
  let malformed = false;
  for (const d of Array.isArray(c.authorization_details) ? c.authorization_details : []) {
    if (d?.type !== DETAIL_TYPE) continue;
    if (!Array.isArray(d.actions) || !Array.isArray(d.topics)) { malformed = true; continue; }
    for (const action of d.actions) {
      if (!grants[action]) continue;
      for (const t of d.topics) grants[action].push(matcherLabel(t?.match_type, String(t?.match), true));
    }
    if (d.actions.includes('subscribe') && d.payload !== undefined) payloads.push(JSON.stringify(d.payload));
  }
  const list = (v) => (v.length ? v.join(', ') : 'nothing');
  let {text, bad} = withExpiry(`draft-08 access token · publish: ${list(grants.publish)} · subscribe: ${list(grants.subscribe)}`, c);
  const aud = Array.isArray(c.aud) ? c.aud.join(', ') : c.aud;
  text += ` · iss ${c.iss ?? 'missing'} · aud ${aud ?? 'missing'}`;
  if (payloads.length) text += ` · payload ${payloads.join(', ')}`;
  if (malformed || c.iss === undefined || aud === undefined || c.exp === undefined) {
    text += ' · the hub will refuse it: a malformed Mercure detail, or iss, aud or exp missing';
    bad = true;
  }
  return {text, bad};
}

// withExpiry adds when the token expires to text, bad when it has.
function withExpiry(text, c) {
  let bad = false;
  if (typeof c.exp === 'number') {
    const left = c.exp * 1000 - Date.now();
    if (left <= 0) {
      text += ` · expired ${relative(-left)} ago`;
      bad = true;
    } else text += ` · expires in ${relative(left)}`;
  } else text += ' · no expiry';
  return {text, bad};
}

// showTokenInfo writes what the token in input allows into the element info, marked bad
// when it is not a JWT or has expired; empty, when given, replaces the words for no token.
export function showTokenInfo(input, info, empty = '') {
  const {text, bad} = empty && !input.value.trim() ? {text: empty, bad: false} : describeToken(input.value);
  info.textContent = text;
  info.classList.toggle('bad', bad);
}

function relative(ms) {
  const s = Math.round(ms / 1000);
  if (s < 90) return `${s} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} days`;
}

// clock formats a time as HH:MM:SS.mmm, local time.
export function clock(d = new Date()) {
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// pretty returns the data indented when it is a JSON object or array, as is otherwise.
export function pretty(data) {
  const t = data.trim();
  if (t.startsWith('{') || t.startsWith('[')) {
    try { return {text: JSON.stringify(JSON.parse(t), null, 2), json: true}; } catch { /* not JSON */ }
  }
  return {text: data, json: false};
}

// lines splits a textarea's value into its non-empty trimmed lines.
export const lines = (s) => s.split('\n').map((l) => l.trim()).filter(Boolean);

// store keeps values in sessionStorage (this tab only), under a prefix.
export const store = {
  get: (k) => { try { return sessionStorage.getItem(`herald.${k}`); } catch { return null; } },
  set: (k, v) => { try { sessionStorage.setItem(`herald.${k}`, v); } catch { /* storage disabled */ } },
  del: (k) => { try { sessionStorage.removeItem(`herald.${k}`); } catch { /* storage disabled */ } },
};
