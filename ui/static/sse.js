// Server-Sent Events over fetch(): a parser for the event-stream format and HubStream, one
// subscription to a Mercure hub that reconnects by itself with Last-Event-ID.
//
// fetch() rather than EventSource, because EventSource cannot send an Authorization header,
// does not show why a request failed, and hides the response's Last-Event-ID header.

// SSEParser turns chunks of an event stream into events, as the HTML standard's
// "interpreting an event stream" describes: lines end with CRLF, LF or CR; a blank line
// dispatches the event; "field: value" (one leading space of the value dropped); lines
// starting with ":" are comments.
export class SSEParser {
  #buf = '';
  #skipLF = false; // the previous chunk ended with CR: a leading LF belongs to it
  #first = true;
  #data = [];
  #type = '';
  #id = null; // the id field of the event being read, if any
  #onEvent;
  #onComment;

  lastEventID = ''; // the last id field seen, kept across events
  retry = null; // the last valid retry field, in ms

  // onEvent({id, type, data, retry}) is called for each event with data; id is the last
  // event id seen so far (SSE keeps it across events). onComment(text) for comment lines.
  constructor(onEvent, onComment = () => {}) {
    this.#onEvent = onEvent;
    this.#onComment = onComment;
  }

  push(chunk) {
    if (this.#first && chunk.length > 0) {
      this.#first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    if (this.#skipLF && chunk.startsWith('\n')) chunk = chunk.slice(1);
    this.#skipLF = false;
    let text = this.#buf + chunk;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (c !== '\n' && c !== '\r') continue;
      this.#line(text.slice(start, i));
      if (c === '\r') {
        if (i + 1 === text.length) this.#skipLF = true;
        else if (text[i + 1] === '\n') i++;
      }
      start = i + 1;
    }
    this.#buf = text.slice(start);
  }

  #line(line) {
    if (line === '') return this.#dispatch();
    if (line.startsWith(':')) return this.#onComment(line.slice(1));
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data': this.#data.push(value); break;
      case 'event': this.#type = value; break;
      case 'id': if (!value.includes('\0')) this.#id = value; break;
      case 'retry': if (/^[0-9]+$/.test(value)) this.retry = Number(value); break;
    }
  }

  #dispatch() {
    if (this.#id !== null) this.lastEventID = this.#id;
    const data = this.#data, type = this.#type || 'message';
    this.#data = [];
    this.#type = '';
    this.#id = null;
    if (data.length === 0) return;
    this.#onEvent({id: this.lastEventID, type, data: data.join('\n'), retry: this.retry});
  }
}

// errorText reads a failed response's body, which the hub keeps to one short line.
export async function errorText(resp) {
  let reason = '';
  try { reason = (await resp.text()).trim(); } catch { /* the body is gone: keep the status */ }
  if (reason.length > 300) reason = reason.slice(0, 300) + '…';
  if (reason.startsWith(`${resp.status} `)) return reason; // "404 page not found"
  return `${resp.status}: ${reason || resp.statusText || 'error'}`;
}

// HTTPError is a hub's answer other than 200, worded "status: reason".
class HTTPError extends Error {}

// A 4xx answer will not change by retrying (except 408 and 429): the stream stops.
const permanent = (status) => status >= 400 && status < 500 && status !== 408 && status !== 429;

const sleep = (ms, signal) => new Promise((resolve) => {
  const t = setTimeout(resolve, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, {once: true});
});

// MATCHER_PARAMS maps the matcher types of the subscribe form to their query parameters:
// topic= is a Mercure 0.x selector (exact, *, URI template), match= and match_urlpattern= are
// the draft-08 matchers (docs/protocol.md).
export const MATCHER_PARAMS = {topic: 'topic', exact: 'match', urlpattern: 'match_urlpattern'};

// HubStream is one subscription: GET hub?topic=… (or ?match=…, ?match_urlpattern=…) with the
// JWT in an Authorization header, read as an event stream, reopened after the hub ends it or it fails, with Last-Event-ID
// set to the last id received so that nothing is missed.
//
// Callbacks:
//   onUpdate({id, type, data, retry})
//   onNotice(kind, message): kind is one of open, reconnect, warning, error, ended;
//   onState(state, detail): connecting, open, waiting (detail: ms before the next try),
//     failed (a permanent error), closed (stop() was called).
export class HubStream {
  #abort = new AbortController();
  #hub;
  #selectors;
  #matchers;
  #token;
  #lastID;
  #retry = null;

  // selectors are 0.x topic selectors; matchers, [{type, value}] with a type of
  // MATCHER_PARAMS, may mix both dialects.
  constructor({hub, selectors = [], matchers = [], token = '', lastEventID = '', onUpdate = () => {}, onNotice = () => {}, onState = () => {}}) {
    this.#hub = hub;
    this.#selectors = selectors;
    this.#matchers = matchers;
    this.#token = token.trim();
    this.#lastID = lastEventID.trim();
    this.onUpdate = onUpdate;
    this.onNotice = onNotice;
    this.onState = onState;
  }

  // The id the stream would resume after.
  get lastEventID() { return this.#lastID; }

  start() {
    this.#run().catch((err) => this.onNotice('error', `unexpected: ${err.message}`));
    return this;
  }

  stop() {
    if (this.#abort.signal.aborted) return;
    this.#abort.abort();
    this.onState('closed');
  }

  #url() {
    const u = new URL(this.#hub, location.href);
    for (const s of this.#selectors) u.searchParams.append('topic', s);
    for (const m of this.#matchers) u.searchParams.append(MATCHER_PARAMS[m.type], m.value);
    return u;
  }

  async #run() {
    const signal = this.#abort.signal;
    let connected = false; // a stream was open before: the next one is a reconnect
    let failures = 0;
    let why = '';
    while (!signal.aborted) {
      const resumeFrom = this.#lastID;
      const headers = {Accept: 'text/event-stream'};
      if (this.#token) headers.Authorization = `Bearer ${this.#token}`;
      if (resumeFrom) headers['Last-Event-ID'] = resumeFrom;
      this.onState('connecting');
      let opened = false;
      try {
        const resp = await fetch(this.#url(), {headers, signal, cache: 'no-store'});
        if (!resp.ok) {
          const msg = await errorText(resp);
          if (permanent(resp.status)) {
            this.onNotice('error', msg);
            this.onState('failed', msg);
            return;
          }
          throw new HTTPError(msg);
        }
        opened = true;
        failures = 0;
        if (connected) {
          const after = resumeFrom ? `resuming after ${resumeFrom}` : 'no event received yet, nothing to resume from';
          this.onNotice('reconnect', `reconnected, ${after}${why ? ` (${why})` : ''}`);
        } else {
          this.onNotice('open', resumeFrom ? `connected, replaying history after ${resumeFrom}` : 'connected');
        }
        connected = true;
        // draft-08 answers echo the resume point in Mercure-Last-Event-ID only.
        const echoed = resp.headers.get('Mercure-Last-Event-ID') ?? resp.headers.get('Last-Event-ID');
        if (resumeFrom && resumeFrom !== 'earliest' && echoed === 'earliest') {
          this.onNotice('warning', `the hub no longer had ${resumeFrom}: updates may have been missed (it replays all the history it keeps)`);
        }
        this.onState('open');
        await this.#read(resp.body);
        why = 'the hub ended the stream';
        this.onNotice('ended', why);
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof HTTPError) why = err.message;
        else why = opened ? `the stream broke: ${err.message}` : `cannot reach the hub: ${err.message}`;
        this.onNotice('error', why);
        failures++;
      }
      // After a clean end, come back quickly (the hub's retry field, else half a second);
      // after failures, back off exponentially up to 30 s, with jitter.
      let delay = this.#retry ?? 500;
      if (failures > 0) delay = Math.min(30000, 1000 * 2 ** (failures - 1)) * (0.8 + 0.4 * Math.random());
      delay = Math.round(delay);
      this.onState('waiting', delay);
      await sleep(delay, signal);
    }
  }

  async #read(body) {
    const parser = new SSEParser((ev) => {
      this.#lastID = ev.id;
      this.onUpdate(ev);
    });
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    try {
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        parser.push(value);
      }
    } finally {
      if (parser.retry !== null) this.#retry = parser.retry;
      // An event with an id but no data still moves the resume point, as EventSource does.
      if (parser.lastEventID) this.#lastID = parser.lastEventID;
      reader.releaseLock();
    }
  }
}
