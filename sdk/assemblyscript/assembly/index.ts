// @twoway/fn: the AssemblyScript SDK for twoway functions (guest ABI v1).
//
// A function registers its handlers at the top level of its entry file and
// re-exports the two entry points the host calls:
//
//   import { on, Record, Response } from "<path to>/sdk/assemblyscript/assembly/index";
//   export { twoway_alloc, twoway_handle } from "<path to>/sdk/assemblyscript/assembly/index";
//   on.record((r: Record): Response => Response.ok());
//
// and is built with `--exportStart _initialize` (so the registration runs
// once per instance, when the host starts it) and `--use abort=twowayAbort`
// (so an abort logs through twoway_v1.log instead of importing env.abort).
// Nothing here imports anything else: no Math.random (env.seed), Date
// (env.Date.now) or trace (env.trace); use now() for the time.
//
// The encodings implemented here are the ones in docs/FUNCTIONS.md ("ABI
// version 1"). Everything the host hands over is copied into managed
// objects before a handler runs, so a handler never sees raw memory.

// ---------------------------------------------------------------------------
// Host imports. AssemblyScript imports only the ones a program calls.

// @ts-ignore: decorator
@external("twoway_v1", "log")
declare function host_log(level: i32, ptr: usize, len: usize): void;
// @ts-ignore: decorator
@external("twoway_v1", "result_read")
declare function host_result_read(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("twoway_v1", "now_ms")
declare function host_now_ms(): i64;
// @ts-ignore: decorator
@external("twoway_v1", "state_get")
declare function host_state_get(keyPtr: usize, keyLen: usize): i32;
// @ts-ignore: decorator
@external("twoway_v1", "state_set")
declare function host_state_set(ptr: usize, len: usize): i32;
// @ts-ignore: decorator
@external("twoway_v1", "state_delete")
declare function host_state_delete(): i32;
// @ts-ignore: decorator
@external("twoway_v1", "publish")
declare function host_publish(topicPtr: usize, topicLen: usize, keyPtr: usize, keyLen: u32, valuePtr: usize, valueLen: usize): i32;
// @ts-ignore: decorator
@external("twoway_v1", "timer_set")
declare function host_timer_set(namePtr: usize, nameLen: usize, atMs: i64, payloadPtr: usize, payloadLen: usize): i32;
// @ts-ignore: decorator
@external("twoway_v1", "timer_cancel")
declare function host_timer_cancel(namePtr: usize, nameLen: usize): i32;
// @ts-ignore: decorator
@external("twoway_v1", "config_get")
declare function host_config_get(namePtr: usize, nameLen: usize): i32;
// @ts-ignore: decorator
@external("twoway_v1", "metric_add")
declare function host_metric_add(namePtr: usize, nameLen: usize, delta: f64): i32;
// @ts-ignore: decorator
@external("twoway_v1", "metric_set")
declare function host_metric_set(namePtr: usize, nameLen: usize, value: f64): i32;
// @ts-ignore: decorator
@external("twoway_v1", "http_fetch")
declare function host_http_fetch(reqPtr: usize, reqLen: usize): i32;
// @ts-ignore: decorator
@external("twoway_v1", "read")
declare function host_read(topicPtr: usize, topicLen: usize, partition: i32, offset: i64, max: i32): i32;

// ---------------------------------------------------------------------------
// Error codes. Imports return a value >= 0 on success, one of these on
// failure. Functions below that return an i32 pass the code through; those
// that return a value return null on failure and leave the code in
// lastError().

/** No such state, config value, timer or topic. */
export const NOT_FOUND: i32 = -1;
/** The deployment does not grant this (e.g. publish to a topic not granted). */
export const DENIED: i32 = -2;
/** A malformed argument (bad UTF-8, empty topic or timer name, bad metric name). */
export const INVALID: i32 = -3;
/** Over a limit of the deployment (state per key, record size, effects per invocation). */
export const TOO_LARGE: i32 = -4;
/** The import needs an actor (a keyed invocation); this one is unkeyed. */
export const NO_ACTOR: i32 = -5;
/** The operation failed (an outbound HTTP request that could not be sent); see the log. */
export const FAILED: i32 = -6;

/** The name of an error code, for messages: "NOT_FOUND", ..., or "error N". */
export function errorName(code: i32): string {
  switch (code) {
    case NOT_FOUND: return "NOT_FOUND";
    case DENIED: return "DENIED";
    case INVALID: return "INVALID";
    case TOO_LARGE: return "TOO_LARGE";
    case NO_ACTOR: return "NO_ACTOR";
    case FAILED: return "FAILED";
  }
  return "error " + code.toString();
}

let lastErr: i32 = 0;

/** The code of the last value-returning call (state.get, config.get, ...): 0 after a success. */
export function lastError(): i32 {
  return lastErr;
}

// ---------------------------------------------------------------------------
// Logging and time.

/** Log levels for log(). */
export enum Level {
  Debug = 0,
  Info = 1,
  Warn = 2,
  Error = 3,
}

/** Write one log line (cut by the host at 16 KiB). */
export function log(level: Level, msg: string): void {
  const b = utf8(msg);
  host_log(level, changetype<usize>(b), b.byteLength);
}

/** Wall-clock time, milliseconds since the Unix epoch. */
export function now(): i64 {
  return host_now_ms();
}

let aborting = false;

/**
 * The abort handler: logs the message at error level, then traps (which
 * fails the invocation and discards the instance). It is a global, so the
 * compiler finds it by name wherever the SDK lives: --use abort=twowayAbort.
 */
// @ts-ignore: decorator
@global
export function twowayAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  // An abort raised while building the message (out of memory) must not
  // recurse.
  if (!aborting) {
    aborting = true;
    let m = "abort: " + (message !== null ? message : "(no message)");
    if (fileName !== null) m += " at " + fileName + ":" + line.toString() + ":" + column.toString();
    log(Level.Error, m);
  }
  unreachable();
}

// ---------------------------------------------------------------------------
// Events.

/** A name and value pair: HTTP headers (request, response, fetch). */
export class Header {
  constructor(public name: string, public value: string) {}
}

/** A record header: its value is bytes. */
export class RecordHeader {
  constructor(public name: string, public value: Uint8Array) {}
}

/** What every event carries. */
export class Event {
  /** The actor's key ("" for an unkeyed HTTP request). */
  key: string = "";
  /** A unique id for this invocation (for logs, idempotency). */
  invocation: string = "";
}

/** An HTTP request to the function (kind 1). */
export class HttpRequest extends Event {
  method: string = "";
  /** The path after /fn/{name}; always starts with "/". */
  path: string = "";
  /** The raw query string, without "?". */
  query: string = "";
  /** In canonical form (Content-Type); a header with several values comes once per value. */
  headers: Header[] = [];
  body: Uint8Array = new Uint8Array(0);

  /** The first value of header `name` (compared case-insensitively), or null. */
  header(name: string): string | null {
    const n = name.toLowerCase();
    for (let i = 0; i < this.headers.length; i++) {
      const h = this.headers[i];
      if (h.name.toLowerCase() == n) return h.value;
    }
    return null;
  }

  /** The body decoded as UTF-8. */
  text(): string {
    return bytesText(this.body);
  }
}

/** A record from a subscribed topic (kind 2). */
export class Record extends Event {
  topic: string = "";
  partition: u32 = 0;
  offset: i64 = 0;
  timestampMs: i64 = 0;
  /** The record's key bytes; null for a null key. */
  recordKey: Uint8Array | null = null;
  /** The record's value bytes; null for a null value (a tombstone). */
  value: Uint8Array | null = null;
  headers: RecordHeader[] = [];

  /** The value decoded as UTF-8, or null for a null value. */
  valueText(): string | null {
    const v = this.value;
    return v === null ? null : bytesText(v);
  }

  /** The record key decoded as UTF-8, or null for a null key. */
  recordKeyText(): string | null {
    const k = this.recordKey;
    return k === null ? null : bytesText(k);
  }
}

/** A timer of this actor firing (kind 3). */
export class Timer extends Event {
  name: string = "";
  dueMs: i64 = 0;
  payload: Uint8Array = new Uint8Array(0);
}

/** A direct invocation (kind 4). */
export class Invoke extends Event {
  method: string = "";
  body: Uint8Array = new Uint8Array(0);
}

// ---------------------------------------------------------------------------
// Responses.

/**
 * What a handler returns. An invocation succeeds (its effects commit) when
 * the status is below 400. For records and timers, 400-499 is a permanent
 * failure (dead-lettered at once), 500 and above a transient one (retried);
 * the body is then the error message.
 */
export class Response {
  headers: Header[] = [];
  body: Uint8Array = new Uint8Array(0);

  constructor(public status: u32 = 200) {}

  /** 200, no headers, no body. */
  static ok(): Response {
    return new Response(200);
  }

  /** A UTF-8 text body with Content-Type text/plain. */
  static text(status: u32, body: string): Response {
    return new Response(status).withHeader("Content-Type", "text/plain; charset=utf-8").withText(body);
  }

  /** A JSON body (already encoded) with Content-Type application/json. */
  static json(status: u32, body: string): Response {
    return new Response(status).withHeader("Content-Type", "application/json").withText(body);
  }

  /** A failure: the message is the body (and, for records and timers, the error). */
  static error(status: u32, message: string): Response {
    return Response.text(status, message);
  }

  withHeader(name: string, value: string): Response {
    this.headers.push(new Header(name, value));
    return this;
  }

  withText(body: string): Response {
    this.body = Uint8Array.wrap(utf8(body));
    return this;
  }

  withBody(body: Uint8Array): Response {
    this.body = body;
    return this;
  }

  /** The body decoded as UTF-8. */
  text(): string {
    return bytesText(this.body);
  }
}

// ---------------------------------------------------------------------------
// Handlers.

let recordHandler: ((r: Record) => Response) | null = null;
let timerHandler: ((t: Timer) => Response) | null = null;
let httpHandler: ((r: HttpRequest) => Response) | null = null;
let invokeHandler: ((i: Invoke) => Response) | null = null;

/**
 * Handler registration, at the top level of the entry file. An event of a
 * kind without a handler is answered with 501.
 */
export namespace on {
  export function record(h: (r: Record) => Response): void {
    recordHandler = h;
  }
  export function timer(h: (t: Timer) => Response): void {
    timerHandler = h;
  }
  export function http(h: (r: HttpRequest) => Response): void {
    httpHandler = h;
  }
  export function invoke(h: (i: Invoke) => Response): void {
    invokeHandler = h;
  }
}

// ---------------------------------------------------------------------------
// Effects and host services.

/** This actor's durable state, and other actors' committed state. */
export namespace state {
  /** This actor's state, including this invocation's writes so far; null if none (lastError() says why). */
  export function get(): Uint8Array | null {
    return result(host_state_get(0, 0));
  }

  /** get() decoded as UTF-8. */
  export function getText(): string | null {
    return textOrNull(get());
  }

  /** The committed state of actor `key` (of this function); null if none. "" is this actor. */
  export function getOf(key: string): Uint8Array | null {
    const k = utf8(key);
    return result(host_state_get(changetype<usize>(k), k.byteLength));
  }

  /** getOf() decoded as UTF-8. */
  export function getTextOf(key: string): string | null {
    return textOrNull(getOf(key));
  }

  /** Replace this actor's state when the invocation commits. 0 or an error code. */
  export function set(value: Uint8Array): i32 {
    return host_state_set(value.dataStart, value.byteLength);
  }

  /** set() with UTF-8 text. */
  export function setText(value: string): i32 {
    const b = utf8(value);
    return host_state_set(changetype<usize>(b), b.byteLength);
  }

  /** Delete this actor's state when the invocation commits. 0 or an error code. */
  export function remove(): i32 {
    return host_state_delete();
  }
}

/**
 * Append a record to `topic` when the invocation commits; a null key is a
 * null record key. The topic must be granted (publish:TOPIC). 0 or an error code.
 */
export function publish(topic: string, key: string | null, value: string): i32 {
  return publishBytes(topic, key === null ? null : Uint8Array.wrap(utf8(key)), Uint8Array.wrap(utf8(value)));
}

/** publish() with byte key and value. */
export function publishBytes(topic: string, key: Uint8Array | null, value: Uint8Array): i32 {
  const t = utf8(topic);
  let kp: usize = 0;
  let kl: u32 = 0xFFFFFFFF;
  if (key !== null) {
    kp = key.dataStart;
    kl = <u32>key.byteLength;
  }
  return host_publish(changetype<usize>(t), t.byteLength, kp, kl, value.dataStart, value.byteLength);
}

/** This actor's timers. */
export namespace timers {
  /** Set (or replace) timer `name` to fire at `atMs` (Unix milliseconds). 0 or an error code. */
  export function set(name: string, atMs: i64, payload: Uint8Array | null = null): i32 {
    const n = utf8(name);
    const p = payload !== null ? payload : new Uint8Array(0);
    return host_timer_set(changetype<usize>(n), n.byteLength, atMs, p.dataStart, p.byteLength);
  }

  /** Cancel timer `name`. 0, NOT_FOUND if it had none, or another error code. */
  export function cancel(name: string): i32 {
    const n = utf8(name);
    return host_timer_cancel(changetype<usize>(n), n.byteLength);
  }
}

/** The deployment's configuration. */
export namespace config {
  /** Config value `name`, or null if unset (lastError() is NOT_FOUND) or denied. */
  export function get(name: string): string | null {
    const n = utf8(name);
    return textOrNull(result(host_config_get(changetype<usize>(n), n.byteLength)));
  }
}

/** Counters and gauges. */
export namespace metrics {
  /** Add `delta` to counter `name`. 0 or an error code. */
  export function add(name: string, delta: f64): i32 {
    const n = utf8(name);
    return host_metric_add(changetype<usize>(n), n.byteLength, delta);
  }

  /** Set gauge `name`. 0 or an error code. */
  export function set(name: string, value: f64): i32 {
    const n = utf8(name);
    return host_metric_set(changetype<usize>(n), n.byteLength, value);
  }
}

/** What topics.read returns: the records and the partition's range. */
export class ReadResult {
  /** The partition's first offset. */
  logStart: i64 = 0;
  /** The offset its next record will get. */
  highWatermark: i64 = 0;
  records: Record[] = [];
}

/** Reading topics (grant read:TOPIC). */
export namespace topics {
  /**
   * Up to `max` committed records of `topic`'s `partition` from `offset`,
   * or null (lastError(): DENIED, NOT_FOUND, INVALID for an offset out of
   * range). Not part of the invocation's commit: it sees what is
   * committed when it runs.
   */
  export function read(topic: string, partition: i32, offset: i64, max: i32): ReadResult | null {
    const t = utf8(topic);
    const out = result(host_read(changetype<usize>(t), t.byteLength, partition, offset, max));
    if (out === null) return null;
    const r = new Reader(out.dataStart, out.byteLength);
    const res = new ReadResult();
    res.logStart = r.i64();
    res.highWatermark = r.i64();
    const n = r.u32();
    for (let i: u32 = 0; i < n && r.ok; i++) {
      const rec = new Record();
      rec.topic = topic;
      rec.partition = <u32>partition;
      rec.offset = r.i64();
      rec.timestampMs = r.i64();
      rec.recordKey = r.nullableBytes();
      rec.value = r.nullableBytes();
      const nh = r.u32();
      for (let j: u32 = 0; j < nh && r.ok; j++) {
        const name = r.str();
        rec.headers.push(new RecordHeader(name, r.bytes()));
      }
      res.records.push(rec);
    }
    if (!r.ok) {
      lastErr = INVALID;
      return null;
    }
    return res;
  }
}

/** Outbound HTTP (grant http:HOST). */
export namespace http {
  /**
   * Send a request at once and return its response, or null if it could
   * not be sent (lastError(): FAILED, DENIED, INVALID, ...).
   */
  export function fetch(method: string, url: string, headers: Header[] = [], body: Uint8Array | null = null): Response | null {
    const w = new Writer();
    w.str(method);
    w.str(url);
    w.u32(headers.length);
    for (let i = 0; i < headers.length; i++) {
      w.str(headers[i].name);
      w.str(headers[i].value);
    }
    w.bytes(body !== null ? body : new Uint8Array(0));
    const out = result(host_http_fetch(w.ptr(), w.len));
    if (out === null) return null;
    const r = new Reader(out.dataStart, out.byteLength);
    const res = new Response(r.u32());
    const n = r.u32();
    for (let i: u32 = 0; i < n && r.ok; i++) {
      const name = r.str();
      res.headers.push(new Header(name, r.str()));
    }
    res.body = r.bytes();
    if (!r.ok) {
      lastErr = INVALID;
      return null;
    }
    if (res.status == 0) res.status = 200;
    return res;
  }
}

// ---------------------------------------------------------------------------
// The entry points. Re-export both from the entry file.

// Buffers lent to the host by twoway_alloc, pinned so the collector leaves
// them alone until twoway_handle takes them back.
const lent = new Set<usize>();
// The last output, kept until the next call (the host copies it before).
let lastOut: Writer | null = null;

/** Lend the host `size` bytes to write an event into. */
export function twoway_alloc(size: i32): usize {
  if (size < 0) size = 0;
  const p = __pin(changetype<usize>(new ArrayBuffer(size)));
  lent.add(p);
  return p;
}

/** Handle the event the host wrote at `ptr`; return ptr_out << 32 | len_out. */
export function twoway_handle(ptr: usize, len: u32): u64 {
  lastOut = null;
  const r = new Reader(ptr, len);
  const ev = decodeEvent(r);
  // The event is copied out; the input buffer goes back to the collector.
  if (lent.has(ptr)) {
    lent.delete(ptr);
    __unpin(ptr);
  }
  const res = ev === null ? decodeFailure : dispatch(ev);
  const w = new Writer();
  w.u32(res.status);
  w.u32(res.headers.length);
  for (let i = 0; i < res.headers.length; i++) {
    w.str(res.headers[i].name);
    w.str(res.headers[i].value);
  }
  w.bytes(res.body);
  lastOut = w;
  return (<u64>w.ptr() << 32) | <u64>w.len;
}

const KIND_HTTP: u32 = 1;
const KIND_RECORD: u32 = 2;
const KIND_TIMER: u32 = 3;
const KIND_INVOKE: u32 = 4;

let decodeFailure: Response = Response.ok();
let decodedKind: u32 = 0;

function decodeEvent(r: Reader): Event | null {
  const abi = r.u32();
  const kind = r.u32();
  const key = r.str();
  const invocation = r.str();
  if (!r.ok) {
    decodeFailure = Response.error(400, "twoway: the event is truncated");
    return null;
  }
  if (abi != 1) {
    decodeFailure = Response.error(501, "twoway: this function speaks ABI 1, not " + abi.toString());
    return null;
  }
  let ev: Event;
  if (kind == KIND_HTTP) {
    const h = new HttpRequest();
    h.method = r.str();
    h.path = r.str();
    h.query = r.str();
    const n = r.u32();
    for (let i: u32 = 0; i < n && r.ok; i++) {
      const name = r.str();
      h.headers.push(new Header(name, r.str()));
    }
    h.body = r.bytes();
    ev = h;
  } else if (kind == KIND_RECORD) {
    const rec = new Record();
    rec.topic = r.str();
    rec.partition = r.u32();
    rec.offset = r.i64();
    rec.timestampMs = r.i64();
    rec.recordKey = r.nullableBytes();
    rec.value = r.nullableBytes();
    const n = r.u32();
    for (let i: u32 = 0; i < n && r.ok; i++) {
      const name = r.str();
      rec.headers.push(new RecordHeader(name, r.bytes()));
    }
    ev = rec;
  } else if (kind == KIND_TIMER) {
    const t = new Timer();
    t.name = r.str();
    t.dueMs = r.i64();
    t.payload = r.bytes();
    ev = t;
  } else if (kind == KIND_INVOKE) {
    const inv = new Invoke();
    inv.method = r.str();
    inv.body = r.bytes();
    ev = inv;
  } else {
    decodeFailure = Response.error(501, "twoway: unknown event kind " + kind.toString());
    return null;
  }
  // Bytes after the known fields are ignored (later versions append).
  if (!r.ok) {
    decodeFailure = Response.error(400, "twoway: the event is truncated");
    return null;
  }
  ev.key = key;
  ev.invocation = invocation;
  decodedKind = kind;
  return ev;
}

function dispatch(ev: Event): Response {
  if (ev instanceof HttpRequest) {
    const h = httpHandler;
    if (h !== null) return h(ev as HttpRequest);
    return Response.error(501, "this function does not handle HTTP requests");
  }
  if (ev instanceof Record) {
    const h = recordHandler;
    if (h !== null) return h(ev as Record);
    return Response.error(501, "this function does not handle records");
  }
  if (ev instanceof Timer) {
    const h = timerHandler;
    if (h !== null) return h(ev as Timer);
    return Response.error(501, "this function does not handle timers");
  }
  if (ev instanceof Invoke) {
    const h = invokeHandler;
    if (h !== null) return h(ev as Invoke);
    return Response.error(501, "this function does not handle invocations");
  }
  return Response.error(501, "twoway: unknown event kind " + decodedKind.toString());
}

// ---------------------------------------------------------------------------
// Encoding helpers.

/** UTF-8 bytes of s; a lone surrogate becomes U+FFFD (the host refuses bad UTF-8). */
function utf8(s: string): ArrayBuffer {
  return String.UTF8.encode(s, false, String.UTF8.ErrorMode.REPLACE);
}

function bytesText(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, b.byteLength);
}

function textOrNull(b: Uint8Array | null): string | null {
  return b === null ? null : bytesText(b);
}

// Fetch a pending result of length n (or record the error code n).
function result(n: i32): Uint8Array | null {
  if (n < 0) {
    lastErr = n;
    return null;
  }
  lastErr = 0;
  const b = new Uint8Array(n);
  const got = host_result_read(b.dataStart, n);
  return got < n ? b.subarray(0, max(got, 0)) : b;
}

// Reads the ABI's little-endian encodings from raw memory; a read past the
// end clears ok and yields zero values.
class Reader {
  pos: usize;
  end: usize;
  ok: bool = true;

  constructor(ptr: usize, len: usize) {
    this.pos = ptr;
    this.end = ptr + len;
  }

  private take(n: usize): usize {
    if (!this.ok || this.end - this.pos < n) {
      this.ok = false;
      return 0;
    }
    const p = this.pos;
    this.pos += n;
    return p;
  }

  u32(): u32 {
    const p = this.take(4);
    return this.ok ? load<u32>(p) : 0;
  }

  i64(): i64 {
    const p = this.take(8);
    return this.ok ? load<i64>(p) : 0;
  }

  str(): string {
    const n = this.u32();
    const p = this.take(n);
    return this.ok ? String.UTF8.decodeUnsafe(p, n) : "";
  }

  bytes(): Uint8Array {
    const n = this.u32();
    const p = this.take(n);
    if (!this.ok) return new Uint8Array(0);
    const b = new Uint8Array(n);
    memory.copy(b.dataStart, p, n);
    return b;
  }

  nullableBytes(): Uint8Array | null {
    const n = this.u32();
    if (n == 0xFFFFFFFF) return null;
    const p = this.take(n);
    if (!this.ok) return null;
    const b = new Uint8Array(n);
    memory.copy(b.dataStart, p, n);
    return b;
  }
}

// A growable buffer writing the ABI's little-endian encodings.
class Writer {
  buf: ArrayBuffer = new ArrayBuffer(256);
  len: i32 = 0;

  ptr(): usize {
    return changetype<usize>(this.buf);
  }

  private grow(n: i32): usize {
    const need = this.len + n;
    if (need > this.buf.byteLength) {
      let cap = this.buf.byteLength << 1;
      while (cap < need) cap <<= 1;
      const nb = new ArrayBuffer(cap);
      memory.copy(changetype<usize>(nb), changetype<usize>(this.buf), this.len);
      this.buf = nb;
    }
    const p = changetype<usize>(this.buf) + this.len;
    this.len = need;
    return p;
  }

  u32(v: u32): void {
    store<u32>(this.grow(4), v);
  }

  raw(p: usize, n: i32): void {
    memory.copy(this.grow(n), p, n);
  }

  bytes(b: Uint8Array): void {
    this.u32(b.byteLength);
    this.raw(b.dataStart, b.byteLength);
  }

  str(s: string): void {
    const b = utf8(s);
    this.u32(b.byteLength);
    this.raw(changetype<usize>(b), b.byteLength);
  }
}

// ---------------------------------------------------------------------------
// JSON: a small parser into a tree, and a writer.

export enum JsonKind {
  Null,
  Bool,
  Number,
  String,
  Array,
  Object,
}

/** A parsed JSON value. Objects keep their members in order. */
export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  boolValue: bool = false;
  numberValue: f64 = 0;
  stringValue: string = "";
  /** Array elements, or object member values (parallel to keys). */
  items: JsonValue[] = [];
  /** Object member names. */
  keys: string[] = [];

  isNumber(): bool {
    return this.kind == JsonKind.Number;
  }
  isString(): bool {
    return this.kind == JsonKind.String;
  }
  isObject(): bool {
    return this.kind == JsonKind.Object;
  }

  /** Object member `name` (the last one, if repeated), or null. */
  get(name: string): JsonValue | null {
    for (let i = this.keys.length - 1; i >= 0; i--) {
      if (this.keys[i] == name) return this.items[i];
    }
    return null;
  }
}

export namespace json {
  /** Parse a whole JSON text (RFC 8259); null if it is not valid JSON. */
  export function parse(s: string): JsonValue | null {
    const p = new JsonParser(s);
    p.ws();
    const v = p.value(0);
    if (v === null) return null;
    p.ws();
    return p.pos == s.length ? v : null;
  }

  /** parse() of UTF-8 bytes. */
  export function parseBytes(b: Uint8Array): JsonValue | null {
    return parse(bytesText(b));
  }

  /** s as a JSON string literal, quoted and escaped. */
  export function quote(s: string): string {
    let out = "\"";
    let from = 0;
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c != 0x22 && c != 0x5C) continue;
      out += s.substring(from, i);
      from = i + 1;
      if (c == 0x22) out += "\\\"";
      else if (c == 0x5C) out += "\\\\";
      else if (c == 0x0A) out += "\\n";
      else if (c == 0x0D) out += "\\r";
      else if (c == 0x09) out += "\\t";
      else if (c == 0x08) out += "\\b";
      else if (c == 0x0C) out += "\\f";
      else out += "\\u00" + (c < 0x10 ? "0" : "1") + HEX.charAt(c & 0xF);
    }
    return out + s.substring(from) + "\"";
  }

  /** v as a JSON number: integers without a fraction (85, not 85.0); NaN and infinities as null. */
  export function number(v: f64): string {
    if (!isFinite(v)) return "null";
    if (Math.floor(v) == v && Math.abs(v) < 9007199254740992.0) return (<i64>v).toString();
    return v.toString();
  }
}

const HEX = "0123456789abcdef";
const MAX_DEPTH = 64;

class JsonParser {
  pos: i32 = 0;
  constructor(public s: string) {}

  ws(): void {
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c != 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) break;
      this.pos++;
    }
  }

  private peek(): i32 {
    return this.pos < this.s.length ? this.s.charCodeAt(this.pos) : -1;
  }

  private literal(word: string): bool {
    if (this.s.substr(this.pos, word.length) != word) return false;
    this.pos += word.length;
    return true;
  }

  value(depth: i32): JsonValue | null {
    if (depth > MAX_DEPTH) return null;
    const c = this.peek();
    const v = new JsonValue();
    if (c == 0x7B) { // {
      this.pos++;
      v.kind = JsonKind.Object;
      this.ws();
      if (this.peek() == 0x7D) {
        this.pos++;
        return v;
      }
      while (true) {
        this.ws();
        if (this.peek() != 0x22) return null;
        const k = this.string();
        if (k === null) return null;
        this.ws();
        if (this.peek() != 0x3A) return null;
        this.pos++;
        this.ws();
        const m = this.value(depth + 1);
        if (m === null) return null;
        v.keys.push(k);
        v.items.push(m);
        this.ws();
        const d = this.peek();
        this.pos++;
        if (d == 0x7D) return v;
        if (d != 0x2C) return null;
      }
    }
    if (c == 0x5B) { // [
      this.pos++;
      v.kind = JsonKind.Array;
      this.ws();
      if (this.peek() == 0x5D) {
        this.pos++;
        return v;
      }
      while (true) {
        this.ws();
        const e = this.value(depth + 1);
        if (e === null) return null;
        v.items.push(e);
        this.ws();
        const d = this.peek();
        this.pos++;
        if (d == 0x5D) return v;
        if (d != 0x2C) return null;
      }
    }
    if (c == 0x22) {
      const str = this.string();
      if (str === null) return null;
      v.kind = JsonKind.String;
      v.stringValue = str;
      return v;
    }
    if (c == 0x2D || (c >= 0x30 && c <= 0x39)) {
      if (!this.number(v)) return null;
      return v;
    }
    if (this.literal("true")) {
      v.kind = JsonKind.Bool;
      v.boolValue = true;
      return v;
    }
    if (this.literal("false")) {
      v.kind = JsonKind.Bool;
      return v;
    }
    if (this.literal("null")) return v;
    return null;
  }

  private digits(): i32 {
    const start = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c < 0x30 || c > 0x39) break;
      this.pos++;
    }
    return this.pos - start;
  }

  private number(v: JsonValue): bool {
    const start = this.pos;
    if (this.peek() == 0x2D) this.pos++;
    if (this.peek() == 0x30) {
      this.pos++;
    } else if (this.digits() == 0) {
      return false;
    }
    if (this.peek() == 0x2E) {
      this.pos++;
      if (this.digits() == 0) return false;
    }
    const e = this.peek();
    if (e == 0x65 || e == 0x45) {
      this.pos++;
      const sign = this.peek();
      if (sign == 0x2B || sign == 0x2D) this.pos++;
      if (this.digits() == 0) return false;
    }
    v.kind = JsonKind.Number;
    v.numberValue = parseFloat(this.s.substring(start, this.pos));
    return true;
  }

  private hex4(): i32 {
    if (this.pos + 4 > this.s.length) return -1;
    let v = 0;
    for (let i = 0; i < 4; i++) {
      const c = this.s.charCodeAt(this.pos + i);
      let d: i32;
      if (c >= 0x30 && c <= 0x39) d = c - 0x30;
      else if (c >= 0x61 && c <= 0x66) d = c - 0x61 + 10;
      else if (c >= 0x41 && c <= 0x46) d = c - 0x41 + 10;
      else return -1;
      v = (v << 4) | d;
    }
    this.pos += 4;
    return v;
  }

  // At an opening quote: the unescaped string, or null.
  string(): string | null {
    this.pos++;
    let out = "";
    let from = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c == 0x22) {
        out += this.s.substring(from, this.pos);
        this.pos++;
        return out;
      }
      if (c < 0x20) return null;
      if (c != 0x5C) {
        this.pos++;
        continue;
      }
      out += this.s.substring(from, this.pos);
      this.pos++;
      const e = this.peek();
      this.pos++;
      if (e == 0x22) out += "\"";
      else if (e == 0x5C) out += "\\";
      else if (e == 0x2F) out += "/";
      else if (e == 0x62) out += "\b";
      else if (e == 0x66) out += "\f";
      else if (e == 0x6E) out += "\n";
      else if (e == 0x72) out += "\r";
      else if (e == 0x74) out += "\t";
      else if (e == 0x75) {
        const u = this.hex4();
        if (u < 0) return null;
        out += String.fromCharCode(u);
      } else return null;
      from = this.pos;
    }
    return null;
  }
}

/**
 * Builds JSON text. Commas between members and elements are written for
 * you: call key() before each member's value.
 *
 *   new JsonWriter().beginObject().key("temp").number(85).endObject().toString()
 */
export class JsonWriter {
  private parts: string[] = [];
  // One entry per open object or array: whether it has an element yet.
  private started: bool[] = [];
  private afterKey: bool = false;

  private sep(): void {
    if (this.afterKey) {
      this.afterKey = false;
      return;
    }
    const n = this.started.length;
    if (n > 0) {
      if (this.started[n - 1]) this.parts.push(",");
      this.started[n - 1] = true;
    }
  }

  beginObject(): JsonWriter {
    this.sep();
    this.parts.push("{");
    this.started.push(false);
    return this;
  }

  endObject(): JsonWriter {
    this.started.pop();
    this.parts.push("}");
    return this;
  }

  beginArray(): JsonWriter {
    this.sep();
    this.parts.push("[");
    this.started.push(false);
    return this;
  }

  endArray(): JsonWriter {
    this.started.pop();
    this.parts.push("]");
    return this;
  }

  key(name: string): JsonWriter {
    this.sep();
    this.parts.push(json.quote(name));
    this.parts.push(":");
    this.afterKey = true;
    return this;
  }

  string(v: string): JsonWriter {
    this.sep();
    this.parts.push(json.quote(v));
    return this;
  }

  number(v: f64): JsonWriter {
    this.sep();
    this.parts.push(json.number(v));
    return this;
  }

  integer(v: i64): JsonWriter {
    this.sep();
    this.parts.push(v.toString());
    return this;
  }

  boolean(v: bool): JsonWriter {
    this.sep();
    this.parts.push(v ? "true" : "false");
    return this;
  }

  null(): JsonWriter {
    this.sep();
    this.parts.push("null");
    return this;
  }

  /** Already-encoded JSON, written as one value. */
  raw(jsonText: string): JsonWriter {
    this.sep();
    this.parts.push(jsonText);
    return this;
  }

  toString(): string {
    return this.parts.join("");
  }
}

// ---------------------------------------------------------------------------
// Durations.

/** What parseDuration returns for text that is not a duration. */
export const INVALID_DURATION: i64 = i64.MIN_VALUE;

/**
 * Parse a duration as Go's time.ParseDuration does ("300ms", "-1.5h",
 * "2h45m"; units ns, us (or µs), ms, s, m, h) into nanoseconds, or
 * INVALID_DURATION if it is malformed or out of range.
 */
export function parseDuration(s: string): i64 {
  let i = 0;
  const n = s.length;
  let neg = false;
  if (n > 0) {
    const c = s.charCodeAt(0);
    if (c == 0x2D || c == 0x2B) {
      neg = c == 0x2D;
      i++;
    }
  }
  if (i == n - 1 && s.charCodeAt(i) == 0x30) return 0; // "0", "-0", "+0"
  if (i == n) return INVALID_DURATION;
  const LIMIT: u64 = 1 << 63;
  let d: u64 = 0;
  while (i < n) {
    let c = s.charCodeAt(i);
    if (!(c == 0x2E || (c >= 0x30 && c <= 0x39))) return INVALID_DURATION;
    // The integer part.
    let v: u64 = 0;
    const intStart = i;
    while (i < n) {
      c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      if (v > (LIMIT - 1) / 10) return INVALID_DURATION;
      v = v * 10 + <u64>(c - 0x30);
      if (v > LIMIT) return INVALID_DURATION;
      i++;
    }
    const pre = i != intStart;
    // The fraction: digits past what fits are dropped, as Go does.
    let f: u64 = 0;
    let scale: f64 = 1;
    let post = false;
    if (i < n && s.charCodeAt(i) == 0x2E) {
      i++;
      const fracStart = i;
      let overflow = false;
      while (i < n) {
        c = s.charCodeAt(i);
        if (c < 0x30 || c > 0x39) break;
        if (!overflow) {
          if (f > (LIMIT - 1) / 10) {
            overflow = true;
          } else {
            const y = f * 10 + <u64>(c - 0x30);
            if (y > LIMIT) {
              overflow = true;
            } else {
              f = y;
              scale *= 10;
            }
          }
        }
        i++;
      }
      post = i != fracStart;
    }
    if (!pre && !post) return INVALID_DURATION;
    // The unit.
    const unitStart = i;
    while (i < n) {
      c = s.charCodeAt(i);
      if (c == 0x2E || (c >= 0x30 && c <= 0x39)) break;
      i++;
    }
    if (i == unitStart) return INVALID_DURATION;
    const unit = durationUnit(s.substring(unitStart, i));
    if (unit == 0) return INVALID_DURATION;
    if (v > LIMIT / unit) return INVALID_DURATION;
    v *= unit;
    if (f > 0) {
      v += <u64>(<f64>f * (<f64>unit / scale));
      if (v > LIMIT) return INVALID_DURATION;
    }
    d += v;
    if (d > LIMIT) return INVALID_DURATION;
  }
  if (neg) return -(<i64>d); // d == 1<<63 wraps to i64.MIN_VALUE, which reads as invalid
  if (d > LIMIT - 1) return INVALID_DURATION;
  return <i64>d;
}

function durationUnit(u: string): u64 {
  if (u == "ns") return 1;
  if (u == "us" || u == "\u00B5s" || u == "\u03BCs") return 1000;
  if (u == "ms") return 1000000;
  if (u == "s") return 1000000000;
  if (u == "m") return 60000000000;
  if (u == "h") return 3600000000000;
  return 0;
}
