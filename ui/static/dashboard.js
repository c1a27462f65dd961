// The operator's dashboard: the hub's live stats, read as an event stream from the private
// topic /.well-known/mercure/stats with the JWT entered here, drawn as charts of the last
// 15 minutes, current figures, the busiest topics and the cluster's nodes.
import {$, h, topicCode, hubURL, loadConfig, mintToken, showTokenInfo as showTokenInfoIn, clock, store} from './lib.js';
import {HubStream} from './sse.js';
import {Chart} from './chart.js';

const STATS_TOPIC = '/.well-known/mercure/stats';
const statsURL = `${hubURL}/stats`;

const tokenInput = $('#token');
const remember = $('#remember');
const connectButton = $('#connect');
const statusLine = $('#status');

// ---- Formatting ----

const num = (n) => (n == null ? '–' : Number(n).toLocaleString('en-US'));
function bytes(n) {
  if (n == null || n < 0) return '?';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  if (i === 0) return `${+n.toFixed(1)} B`;
  return `${n >= 100 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}
function duration(s) {
  s = Math.floor(s);
  const d = Math.floor(s / 86400), hh = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d) return `${d} d ${hh} h`;
  if (hh) return `${hh} h ${m} min`;
  if (m) return `${m} min ${s % 60} s`;
  return `${s} s`;
}
const ms = (sec) => `${(sec * 1000).toFixed(sec < 0.01 ? 2 : 1)} ms`;
const rate = (v) => (v == null ? '–' : v >= 100 ? Math.round(v).toLocaleString('en-US') : +v.toFixed(1));

// ---- Token ----

if (store.get('dash.remember')) {
  remember.checked = true;
  tokenInput.value = store.get('dash.token') || '';
}

function persist() {
  if (remember.checked) {
    store.set('dash.remember', '1');
    store.set('dash.token', tokenInput.value);
  } else {
    store.del('dash.remember');
    store.del('dash.token');
  }
}

const showTokenInfo = () => showTokenInfoIn(tokenInput, $('#token-info'), 'No token yet: the dashboard needs one.');

tokenInput.addEventListener('input', () => { showTokenInfo(); persist(); });
remember.addEventListener('change', persist);
showTokenInfo();

$('#mint').addEventListener('click', async () => {
  try {
    tokenInput.value = await mintToken({subscribe: [STATS_TOPIC]});
    showTokenInfo();
    persist();
    start();
  } catch (err) {
    setStatus('bad', `Cannot mint a token: ${err.message}`);
  }
});

// ---- Status ----

function setStatus(state, text) {
  statusLine.dataset.state = state;
  statusLine.textContent = text;
  statusLine.classList.toggle('bad', state === 'refused' || state === 'bad');
}

// refusalText says in words why the hub refused the stream.
function refusalText(msg) {
  if (msg.startsWith('401')) {
    return `The hub refused the token (${msg}). The dashboard needs a valid JWT whose mercure.subscribe claim matches ${STATS_TOPIC}.`;
  }
  if (msg.startsWith('403')) {
    return `This token may not read the dashboard (${msg}). Its mercure.subscribe claim must match ${STATS_TOPIC}, as * does.`;
  }
  if (msg.startsWith('404')) return `This hub does not serve live stats (${msg}).`;
  return `The hub refused the stream: ${msg}.`;
}

// ---- Charts ----

const CHARTS = [
  {id: 'subscribers', title: 'Connected subscribers', series: [{label: 'subscribers', color: '--accent'}], value: (s) => [s.subscribers]},
  {id: 'connections', title: 'New connections /s', series: [{label: 'connections', color: '--accent'}], rate: (t) => [t.connections]},
  {id: 'published', title: 'Publishes /s', series: [{label: 'publishes', color: '--accent'}], rate: (t) => [t.published]},
  {id: 'delivered', title: 'Deliveries /s', series: [{label: 'deliveries', color: '--accent'}], rate: (t) => [t.delivered]},
  {id: 'bytes', title: 'Bytes written /s', series: [{label: 'bytes', color: '--accent'}], rate: (t) => [t.bytes_written], format: bytes},
  {id: 'slow', title: 'Slow-subscriber disconnects /s', series: [{label: 'disconnects', color: '--bad'}], rate: (t) => [t.slow_disconnects]},
  {id: 'replays', title: 'History replays /s and updates replayed /s',
    series: [{label: 'replays', color: '--accent'}, {label: 'updates replayed', color: '--warn'}], rate: (t) => [t.replays, t.replayed]},
  {id: 'latency', title: 'Publish latency (received → stored)',
    series: [{label: 'p99', color: '--warn'}, {label: 'p50', color: '--accent'}],
    value: (s) => (s.publish_latency.count ? [s.publish_latency.p99_seconds * 1000, s.publish_latency.p50_seconds * 1000] : [null, null]),
    format: (v) => `${+v.toFixed(v < 1 ? 2 : 1)} ms`},
];

const charts = CHARTS.map((def) => {
  const canvas = h('canvas', {id: `chart-${def.id}`, 'data-points': '0', role: 'img', 'aria-label': def.title});
  const legend = h('span', {class: 'legend'});
  $('#charts').append(h('figure', {class: 'chart'},
    h('figcaption', {}, h('span', {class: 'chart-title'}, def.title), legend),
    canvas));
  return {def, legend, chart: new Chart(canvas, {series: def.series, format: def.format})};
});

let prev = null;

function plot(st) {
  const t = Date.parse(st.time);
  for (const {def, legend, chart} of charts) {
    let values;
    if (def.rate) {
      const dt = prev ? (t - Date.parse(prev.time)) / 1000 : 0;
      if (!(dt > 0)) continue; // the first snapshot gives no rate
      const now = def.rate(st.totals), before = def.rate(prev.totals);
      values = now.map((v, i) => Math.max(0, v - before[i]) / dt);
    } else values = def.value(st);
    chart.push(t, values);
    legend.replaceChildren(...def.series.map((s, i) => h('span', {class: 'legend-item', 'data-series': s.label},
      h('i', {class: 'swatch', 'data-color': s.color}), `${s.label} `,
      h('strong', {}, values[i] == null ? '–' : (def.format || rate)(values[i])))));
  }
  redraw();
}

let drawPending = false;
function redraw() {
  if (drawPending) return;
  drawPending = true;
  requestAnimationFrame(() => {
    drawPending = false;
    for (const {chart} of charts) chart.draw();
  });
}
window.addEventListener('resize', redraw);
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', redraw);

// ---- Figures and tables ----

function figure(id, label, value, title) {
  return [h('dt', {}, label), h('dd', {id, title}, value)];
}

function showNow(st) {
  const th = st.transport_health || {};
  const store = th.store;
  const lat = st.publish_latency || {};
  const q = st.queue || {};
  const t = st.totals;
  const health = th.reachable ? h('span', {class: 'ok'}, 'reachable') : h('span', {class: 'bad'}, `unreachable: ${th.error || 'no answer'}`);
  const items = [
    ...figure('now-uptime', 'Uptime', duration(st.uptime_seconds)),
    ...figure('now-version', 'Version', st.version || '?'),
    ...figure('now-transport', 'Transport', h('span', {}, `${st.transport} · `, health, ` · lag ${num(th.lag)}`)),
  ];
  if (store) {
    const cap = store.max_file_bytes > 0 ? ` of ${bytes(store.max_file_bytes)}` : '';
    items.push(...figure('now-store', 'Store file', `${bytes(store.file_bytes)}${cap} · keeps ${num(store.retain_updates)} updates, ${bytes(store.retain_bytes)}`, store.path));
  }
  items.push(
    ...figure('now-subscribers', 'Subscribers', num(st.subscribers)),
    ...figure('now-queues', 'Queues over half full', `${num(q.above_half)} (queue_size ${num(q.queue_size)})`),
    ...figure('now-latency', 'Publish latency', lat.count ? `p50 ${ms(lat.p50_seconds)} · p99 ${ms(lat.p99_seconds)}` : 'no publish in the last second'),
    ...figure('now-goroutines', 'Goroutines', num(st.goroutines)),
    ...figure('now-rss', 'Memory (RSS)', bytes(st.rss_bytes)),
    ...figure('now-files', 'Open files', `${st.open_files < 0 ? '?' : num(st.open_files)} of ${st.max_open_files < 0 ? '?' : num(st.max_open_files)}`),
    ...figure('total-published', 'Published', num(t.published)),
    ...figure('total-delivered', 'Delivered', num(t.delivered)),
    ...figure('total-bytes', 'Bytes written', bytes(t.bytes_written)),
    ...figure('total-connections', 'Connections', num(t.connections)),
    ...figure('total-slow', 'Slow disconnects', num(t.slow_disconnects)),
    ...figure('total-replays', 'History replays', `${num(t.replays)} (${num(t.replayed)} updates)`),
  );
  $('#now').replaceChildren(...items);
}

function showTops(id, list, empty) {
  const body = $(`#${id} tbody`);
  if (!list || list.length === 0) {
    body.replaceChildren(h('tr', {class: 'none'}, h('td', {colspan: 2}, empty)));
    return;
  }
  body.replaceChildren(...list.map((e, i) => h('tr', {'data-topic': e.topic, 'data-rank': i + 1},
    h('td', {}, topicCode(e.topic)), h('td', {class: 'num'}, num(e.count)))));
}

function showNodes(nodes) {
  $('#nodes tbody').replaceChildren(...(nodes || []).map((n) => h('tr', {'data-tag': n.tag, class: n.self ? 'self' : null},
    h('td', {}, h('code', {}, n.tag), n.self ? h('span', {class: 'badge'}, 'this node') : null),
    h('td', {}, n.addr || '?'),
    h('td', {class: 'num'}, num(n.subscribers)),
    h('td', {class: 'num'}, num(n.lag)),
    h('td', {class: 'num'}, n.self ? 'now' : `${n.seen_seconds_ago.toFixed(0)} s ago`))));
}

function show(st) {
  showNow(st);
  showTops('top-subscribed', st.top_subscribed, 'No subscribers.');
  showTops('top-delivered', st.top_delivered, 'No deliveries since this page began watching.');
  $('#top-delivered-span').textContent = `last ${Math.round(st.top_delivered_seconds)} s`;
  showNodes(st.nodes);
  plot(st);
  prev = st;
  setStatus('live', `Live · last snapshot ${clock(new Date(st.time))}`);
}

// ---- The stream ----

let stream = null;

function stop() {
  stream?.stop();
  stream = null;
  connectButton.textContent = 'Watch';
}

function start() {
  stop();
  prev = null;
  setStatus('connecting', 'Connecting…');
  connectButton.textContent = 'Stop';
  stream = new HubStream({
    hub: statsURL,
    selectors: [],
    token: tokenInput.value,
    onUpdate: (ev) => {
      if (ev.type !== 'stats') return;
      let st;
      try { st = JSON.parse(ev.data); } catch { return; }
      show(st);
    },
    onState: (state, detail) => {
      if (state === 'failed') {
        setStatus('refused', refusalText(detail));
        stream = null;
        connectButton.textContent = 'Watch';
      } else if (state === 'waiting') {
        prev = null; // no rate across the gap
        setStatus('waiting', `The stream ended; reconnecting in ${(detail / 1000).toFixed(1)} s.`);
      }
    },
    onNotice: (kind, message) => {
      if (kind === 'error' && statusLine.dataset.state !== 'refused') setStatus('bad', `Cannot read the live stats: ${message}`);
    },
  });
  stream.start();
}

connectButton.addEventListener('click', () => {
  if (stream) {
    stop();
    setStatus('stopped', 'Stopped.');
  } else start();
});

loadConfig().then((cfg) => {
  $('#mint').hidden = !cfg.mintToken;
  document.body.dataset.ready = 'true';
  if (tokenInput.value.trim()) start();
});
redraw();
