// The live demo: a publisher of simulated readings and panes subscribed to different topic
// selectors, so that one publish is seen reaching every pane that matches it.
import {$, h, topicCode, hubURL, loadConfig, mintToken, clock} from './lib.js';
import {HubStream, errorText} from './sse.js';

const BASE = 'https://example.com/demo/';
// What the demo token may publish and subscribe to.
const DEMO_SELECTORS = [`${BASE}sensors/{n}`, `${BASE}stocks/{symbol}`];

// The simulated sources, published in turn; values take a small random walk.
const SOURCES = [
  {topic: `${BASE}sensors/1`, sensor: 1, value: 21.0, step: 0.3},
  {topic: `${BASE}sensors/2`, sensor: 2, value: 18.5, step: 0.3},
  {topic: `${BASE}sensors/3`, sensor: 3, value: 24.2, step: 0.3},
  {topic: `${BASE}stocks/HRLD`, symbol: 'HRLD', value: 112.4, step: 0.8},
  {topic: `${BASE}stocks/MRCR`, symbol: 'MRCR', value: 48.75, step: 0.4},
];

const reduceMotion = matchMedia('(prefers-reduced-motion: reduce)');
let token = '';

// ---- Panes: one subscriber each ----

const STATE_LABELS = {connecting: 'connecting…', open: 'live', waiting: 'reconnecting…', failed: 'failed', closed: 'closed'};

const panes = [...document.querySelectorAll('.pane')].map((section) => {
  const pane = {section, selector: section.dataset.selector, n: 0, stream: null};
  pane.badge = h('span', {class: 'badge'}, 'connecting…');
  pane.count = h('output', {class: 'count'}, '0');
  pane.note = h('p', {class: 'note', 'aria-live': 'polite'});
  pane.list = h('ol', {class: 'recent', 'aria-label': `Last updates of ${section.querySelector('h2').firstChild.textContent.trim()}`});
  section.dataset.count = '0';
  section.append(
    h('p', {class: 'selector'}, topicCode(pane.selector), pane.badge),
    h('p', {class: 'counter'}, pane.count, h('span', {}, ' updates received')),
    pane.note, pane.list);
  return pane;
});

function connect(pane) {
  pane.stream?.stop();
  pane.note.textContent = '';
  pane.stream = new HubStream({
    hub: hubURL,
    selectors: [pane.selector],
    token,
    onUpdate: (ev) => receive(pane, ev),
    onNotice: (kind, message) => {
      if (kind === 'open' || kind === 'ended') return;
      pane.note.textContent = message;
      pane.note.classList.toggle('bad', kind === 'error' || kind === 'warning');
    },
    onState: (state) => {
      pane.section.dataset.state = state;
      pane.badge.textContent = STATE_LABELS[state];
    },
  }).start();
}

function receive(pane, ev) {
  pane.n++;
  pane.count.textContent = String(pane.n);
  pane.section.dataset.count = String(pane.n);
  let d = null;
  try { d = JSON.parse(ev.data); } catch { /* not one of ours */ }
  let what = ev.data.slice(0, 40), value = '';
  if (d?.sensor) [what, value] = [`sensor ${d.sensor}`, `${d.celsius.toFixed(1)} °C`];
  else if (d?.symbol) [what, value] = [d.symbol, d.price.toFixed(2)];
  pane.list.prepend(h('li', {}, h('span', {class: 'what'}, what), h('span', {class: 'value'}, value), h('time', {}, clock().slice(0, 8))));
  while (pane.list.children.length > 6) pane.list.lastElementChild.remove();
  if (!reduceMotion.matches) {
    pane.count.animate([{color: 'var(--accent)', transform: 'scale(1.08)'}, {}], {duration: 250});
  }
}

// ---- Publisher ----

const startButton = $('#start');
const rate = $('#rate');
const published = {total: 0, sensor1: 0, sensors: 0, stocks: 0};
let running = false;

rate.addEventListener('input', () => { $('#rate-value').textContent = `${rate.value} updates/s`; });

function count(src) {
  published.total++;
  if (src.sensor === 1) published.sensor1++;
  if (src.sensor) published.sensors++;
  else published.stocks++;
  const p = $('#published');
  Object.assign(p.dataset, published);
  p.textContent = `Published ${published.total}: ${published.sensors} sensor readings (${published.sensor1} from sensor 1) and ${published.stocks} ticker prices.`;
}

function failed(message) {
  const p = $('#publisher-error');
  p.textContent = message;
  p.hidden = !message;
}

async function publishLoop() {
  for (let seq = 0; running; seq++) {
    const started = performance.now();
    const src = SOURCES[seq % SOURCES.length];
    src.value = Math.max(0, src.value + (Math.random() - 0.5) * 2 * src.step);
    const value = Math.round(src.value * 100) / 100;
    const data = src.sensor ? {sensor: src.sensor, celsius: value} : {symbol: src.symbol, price: value};
    data.at = new Date().toISOString();
    const headers = token ? {Authorization: `Bearer ${token}`} : {};
    try {
      const resp = await fetch(hubURL, {method: 'POST', headers, body: new URLSearchParams({topic: src.topic, data: JSON.stringify(data)})});
      if (!resp.ok) {
        failed(`Publishing stopped: ${await errorText(resp)}`);
        break;
      }
      count(src);
    } catch (err) {
      failed(`Publishing stopped: cannot reach the hub: ${err.message}`);
      break;
    }
    const wait = 1000 / Number(rate.value) - (performance.now() - started);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  stop();
}

function stop() {
  running = false;
  startButton.textContent = 'Start publishing';
  startButton.setAttribute('aria-pressed', 'false');
}

startButton.addEventListener('click', () => {
  if (running) return stop();
  if (!token) {
    failed('Paste a JWT allowed to publish to the demo topics first.');
    return;
  }
  failed('');
  running = true;
  startButton.textContent = 'Stop publishing';
  startButton.setAttribute('aria-pressed', 'true');
  publishLoop();
});

// ---- Token: minted by a dev hub, else pasted ----

const tokenInput = $('#token');
tokenInput.addEventListener('change', () => {
  token = tokenInput.value.trim();
  failed('');
  panes.forEach(connect); // subscribe again with the new token
});

const cfg = await loadConfig();
if (cfg.mintToken) {
  try {
    token = await mintToken({publish: DEMO_SELECTORS, subscribe: DEMO_SELECTORS});
  } catch (err) {
    failed(`Cannot mint a token: ${err.message}`);
  }
}
$('#token-field').hidden = token !== '';
panes.forEach(connect);
document.body.dataset.ready = 'true'; // for tests: the token is settled and the panes connect
