// device-twin, in AssemblyScript: a digital twin per device, fed by the
// `telemetry` topic and read over HTTP. The behaviour is the same in every
// language of examples/device-twin:
//
//   record {"temp": T} for device ID (the record key)
//       state {"count", "min", "max", "last"} updated; an alert published to
//       `alerts` when T > config `threshold` (default 80); timer `offline`
//       (re)set to fire after config `offline_after` (default 5m)
//   timer `offline`
//       {"device": ID, "status": "offline"} published to `alerts`
//   GET /devices/{id}
//       the device's state, or 404

import {
  on, Record, Timer, HttpRequest, Response,
  state, publish, timers, config, log, Level, now, lastError,
  json, JsonWriter, JsonValue, parseDuration, INVALID_DURATION,
  errorName, NOT_FOUND, NO_ACTOR, INVALID, TOO_LARGE,
} from "../../../../sdk/assemblyscript/assembly/index";

export { twoway_alloc, twoway_handle } from "../../../../sdk/assemblyscript/assembly/index";

const ALERTS = "alerts";
const OFFLINE = "offline";
const DEFAULT_THRESHOLD: f64 = 80;
const DEFAULT_OFFLINE_AFTER_MS: i64 = 5 * 60 * 1000;

// Config values are read on every invocation (cheap) but parsed, and
// warned about, only when they change. (Globals come before the top-level
// code that registers the handlers using them.)
let thresholdRaw: string | null = null;
let thresholdValue: f64 = DEFAULT_THRESHOLD;
let offlineRaw: string | null = null;
let offlineValue: i64 = DEFAULT_OFFLINE_AFTER_MS;

on.record((r: Record): Response => {
  const device = r.key;
  const temp = readTemp(r.value);
  if (isNaN(temp)) {
    return Response.error(400, "device-twin: the value is not a JSON object with a numeric \"temp\"");
  }

  // The state, as this invocation sees it (its own writes included).
  let count: f64 = 0;
  let lo = temp;
  let hi = temp;
  const old = state.get();
  if (old !== null) {
    const s = json.parseBytes(old);
    const c = s !== null && s.isObject() ? s.get("count") : null;
    const mn = s !== null && s.isObject() ? s.get("min") : null;
    const mx = s !== null && s.isObject() ? s.get("max") : null;
    if (c === null || !c.isNumber() || mn === null || !mn.isNumber() || mx === null || !mx.isNumber()) {
      // Not ours to repair: fail (transiently) rather than lose the history.
      return Response.error(500, "device-twin: the stored state of " + device + " is not a device-twin state");
    }
    count = c.numberValue;
    lo = Math.min(mn.numberValue, temp);
    hi = Math.max(mx.numberValue, temp);
  } else if (lastError() != NOT_FOUND) {
    return failed("state_get", lastError());
  }

  const next = new JsonWriter().beginObject()
    .key("count").number(count + 1)
    .key("min").number(lo)
    .key("max").number(hi)
    .key("last").number(temp)
    .endObject().toString();
  let rc = state.setText(next);
  if (rc < 0) return failed("state_set", rc);

  if (temp > threshold()) {
    const alert = new JsonWriter().beginObject()
      .key("device").string(device)
      .key("temp").number(temp)
      .key("offset").integer(r.offset)
      .endObject().toString();
    rc = publish(ALERTS, device, alert);
    if (rc < 0) return failed("publish", rc);
  }

  rc = timers.set(OFFLINE, now() + offlineAfterMs());
  if (rc < 0) return failed("timer_set", rc);
  return Response.ok();
});

on.timer((t: Timer): Response => {
  if (t.name != OFFLINE) {
    log(Level.Warn, "device-twin: ignoring unknown timer " + json.quote(t.name) + " of " + t.key);
    return Response.ok();
  }
  const msg = new JsonWriter().beginObject()
    .key("device").string(t.key)
    .key("status").string("offline")
    .endObject().toString();
  const rc = publish(ALERTS, t.key, msg);
  if (rc < 0) return failed("publish", rc);
  return Response.ok();
});

on.http((req: HttpRequest): Response => {
  const prefix = "/devices/";
  const id = req.path.startsWith(prefix) ? req.path.substring(prefix.length) : "";
  // "" would read the request's own actor, and {id} is one path segment.
  if (id.length == 0 || id.includes("/")) {
    return Response.json(404, "{\"error\":\"not found\"}");
  }
  if (req.method != "GET") {
    return Response.json(405, "{\"error\":\"method not allowed\"}").withHeader("Allow", "GET");
  }
  const s = state.getOf(id);
  if (s === null) {
    const code = lastError();
    if (code != NOT_FOUND) return failed("state_get", code);
    const body = new JsonWriter().beginObject().key("error").string("no device " + id).endObject().toString();
    return Response.json(404, body);
  }
  return new Response(200).withHeader("Content-Type", "application/json").withBody(s);
});

// The temperature in a record value, or NaN if the value is not a JSON
// object with a numeric "temp".
function readTemp(value: Uint8Array | null): f64 {
  if (value === null) return NaN;
  const v = json.parseBytes(value);
  if (v === null || !v.isObject()) return NaN;
  const t = v.get("temp");
  if (t === null || !t.isNumber()) return NaN;
  return t.numberValue;
}

// A failed import as a response. Retrying cannot help a record without a
// key, a bad argument or a limit (permanent: 400); a denied grant or a failed
// operation may be fixed by a redeploy or by time (transient: 500).
function failed(what: string, code: i32): Response {
  const status: u32 = code == NO_ACTOR || code == INVALID || code == TOO_LARGE ? 400 : 500;
  return Response.error(status, "device-twin: " + what + " failed: " + errorName(code));
}

// Config values are read on every invocation (cheap) but parsed, and
// warned about, only when they change.

function threshold(): f64 {
  const raw = configValue("threshold");
  if (raw == thresholdRaw) return thresholdValue;
  thresholdRaw = raw;
  thresholdValue = DEFAULT_THRESHOLD;
  if (raw !== null) {
    const v = json.parse(raw);
    if (v !== null && v.isNumber()) {
      thresholdValue = v.numberValue;
    } else {
      log(Level.Warn, "device-twin: config threshold " + json.quote(raw) + " is not a number; using " + json.number(DEFAULT_THRESHOLD));
    }
  }
  return thresholdValue;
}


function offlineAfterMs(): i64 {
  const raw = configValue("offline_after");
  if (raw == offlineRaw) return offlineValue;
  offlineRaw = raw;
  offlineValue = DEFAULT_OFFLINE_AFTER_MS;
  if (raw !== null) {
    const ns = parseDuration(raw);
    if (ns != INVALID_DURATION && ns >= 0) {
      offlineValue = ns / 1000000;
    } else {
      log(Level.Warn, "device-twin: config offline_after " + json.quote(raw) + " is not a duration such as \"5m\" or \"1h30m\"; using 5m");
    }
  }
  return offlineValue;
}

// A config value; unset is null, and so (with a warning) is a failure.
function configValue(name: string): string | null {
  const v = config.get(name);
  if (v === null && lastError() != NOT_FOUND) {
    log(Level.Warn, "device-twin: config_get " + name + " failed: " + errorName(lastError()) + "; using the default");
  }
  return v;
}
