// Helpers for Corral plugins written in JavaScript (runs inside the component, not on the host).
//
// `corral build` places this file beside the plugin's `plugin.js`, so a plugin can write:
//
//     import { Plugin, PluginError, http, kv, log, tasks } from "./corral-sdk.js";
//
//     const plugin = new Plugin();
//     plugin.command("greet", (args) => {
//       if (!args?.name) throw new PluginError("invalid-input", "greet needs a name");
//       log.info("greeting", { name: args.name });
//       return { message: `Hello, ${args.name}!` };
//     });
//
//     export const handler = plugin.handler();   // the export componentize-js binds
//
// Host imports that fail throw a `ComponentError` whose `payload` is the `plugin-error` value
// (`{ tag: "not-found", val: "..." }`); a `PluginError` carries the same `payload`, so
// `errors.kindOf` and `errors.isNotFound` read both.

import { log as hostLog } from "corral:plugin/log@0.1.1";
import * as hostHttp from "corral:plugin/http@0.1.1";
import * as hostKv from "corral:plugin/kv@0.1.1";
import * as hostTasks from "corral:plugin/tasks@0.1.1";

const KINDS = new Set([
  "permission-denied",
  "not-found",
  "invalid-input",
  "conflict",
  "rate-limited",
  "timeout",
  "unavailable",
  "internal",
]);

/** An error value for the host: throw one from a command to return that `plugin-error`. */
export class PluginError extends Error {
  /**
   * @param {string} kind a `plugin-error` case, e.g. "not-found"
   * @param {string} message
   * @param {{retryAfterMs?: number}} [options] the retry hint of "rate-limited"
   */
  constructor(kind, message, { retryAfterMs = 0 } = {}) {
    if (!KINDS.has(kind)) {
      throw new TypeError(`unknown plugin-error kind ${JSON.stringify(kind)}`);
    }
    super(message);
    this.name = "PluginError";
    this.kind = kind;
    this.payload =
      kind === "rate-limited"
        ? { tag: kind, val: { retryAfterMs: BigInt(retryAfterMs), message } }
        : { tag: kind, val: message };
  }
}

/** Recognising error values, whether thrown by a host import or by `PluginError`. */
export const errors = {
  /** The `plugin-error` case of `error` ("not-found", ...), or undefined for other errors. */
  kindOf(error) {
    const tag = error?.payload?.tag;
    return KINDS.has(tag) ? tag : undefined;
  },
  isNotFound(error) {
    return errors.kindOf(error) === "not-found";
  },
};

function logAt(level) {
  return (message, fields = {}) =>
    hostLog(
      level,
      String(message),
      Object.entries(fields).map(([key, value]) => [key, String(value)]),
    );
}

/** Structured logging to the host: `log.info("message", { key: value })`. */
export const log = {
  trace: logAt("trace"),
  debug: logAt("debug"),
  info: logAt("info"),
  warn: logAt("warn"),
  error: logAt("error"),
};

/** Collects commands and event handlers and builds the exported `handler`. */
export class Plugin {
  #commands = new Map();
  #events = new Map();

  /** Register `fn(args) -> JSON-able` as the command `name`. */
  command(name, fn) {
    this.#commands.set(name, fn);
    return this;
  }

  /** Register `fn(event, payload)` for events of `eventType` ("*" for any). */
  on(eventType, fn) {
    this.#events.set(eventType, fn);
    return this;
  }

  /** The `handler` interface: export it as `export const handler = plugin.handler();`. */
  handler() {
    const commands = this.#commands;
    const events = this.#events;
    return {
      invoke(command, input) {
        const fn = commands.get(command);
        if (fn === undefined) {
          const known = [...commands.keys()].sort().join(", ");
          throw errorValue(
            new PluginError("invalid-input", `unknown command '${command}' (known: ${known})`),
          );
        }
        let args;
        try {
          args = input ? JSON.parse(input) : null;
        } catch (exc) {
          throw errorValue(new PluginError("invalid-input", `input is not JSON: ${exc.message}`));
        }
        try {
          return JSON.stringify(fn(args) ?? null);
        } catch (exc) {
          throw errorValue(exc, command);
        }
      },
      onEvent(event) {
        const fn = events.get(event.type) ?? events.get("*");
        if (fn === undefined) return;
        try {
          fn(event, event.payload ? JSON.parse(event.payload) : null);
        } catch (exc) {
          throw errorValue(exc, `event ${event.type}`);
        }
      },
    };
  }
}

// What componentize-js returns as `err`: an uncaught exception would trap the instance, so a
// bug in a command becomes an `internal` error value, its stack in the host's log.
function errorValue(exc, where) {
  if (errors.kindOf(exc) !== undefined) return exc.payload;
  const summary = `${where}: ${exc?.name ?? typeof exc}: ${exc?.message ?? String(exc)}`;
  // SpiderMonkey's `stack` holds the frames only, without the message.
  hostLog("error", `${summary}\n${exc?.stack ?? ""}`.trimEnd(), []);
  return { tag: "internal", val: summary };
}

// The host returns at most 64 KiB per read; writes of that size cost it little memory each.
const CHUNK = 64 << 10;
// Text crosses as one string, up to 1 MiB per read.
const TEXT_CHUNK = 1 << 20;

/**
 * A response: `status`, `headers` (lower-case names) and the whole body. A UTF-8 body is read
 * as text (`readBodyText`: many times cheaper than bytes), so `text()` and `json()` decode
 * nothing; `body` is the bytes, as a Uint8Array.
 */
export class Response {
  constructor(status, headers, body) {
    this.status = status;
    this.headers = headers;
    this._body = body;
  }

  get body() {
    if (typeof this._body === "string") this._body = new TextEncoder().encode(this._body);
    return this._body;
  }

  /** The first value of header `name` (any case), or `fallback`. */
  header(name, fallback = undefined) {
    const wanted = name.toLowerCase();
    const found = this.headers.find(([key]) => key === wanted);
    return found === undefined ? fallback : found[1];
  }

  text() {
    return typeof this._body === "string" ? this._body : new TextDecoder().decode(this._body);
  }

  json() {
    return JSON.parse(this.text());
  }
}

/** The rest of response body `handle`: a string if it is UTF-8, else a Uint8Array. */
function readBody(handle) {
  const parts = [];
  try {
    for (;;) {
      const text = hostHttp.readBodyText(handle, TEXT_CHUNK);
      if (text.length === 0) break;
      parts.push(text);
    }
  } catch (exc) {
    if (errors.kindOf(exc) !== "invalid-input") throw exc;
    // The UTF-8 part before the first byte that is not, then the rest as bytes.
    return readBytes(handle, [new TextEncoder().encode(parts.join(""))]);
  }
  hostHttp.dropBody(handle);
  return parts.join("");
}

/** The rest of response body `handle` after `chunks`, as one Uint8Array; frees the handle. */
function readBytes(handle, chunks) {
  let size = chunks.reduce((total, chunk) => total + chunk.length, 0);
  for (;;) {
    const chunk = hostHttp.readBody(handle, CHUNK);
    if (chunk.length === 0) break;
    chunks.push(chunk);
    size += chunk.length;
  }
  hostHttp.dropBody(handle);
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.length;
  }
  return body;
}

/** The `request` record of the `http` import, its body written to a body handle. */
function request(method, url, { headers = [], body = undefined, timeoutMs = undefined } = {}) {
  const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
  let handle;
  if (bytes !== undefined && bytes.length > 0) {
    handle = hostHttp.newBody();
    for (let start = 0; start < bytes.length; start += CHUNK) {
      hostHttp.writeBody(handle, bytes.subarray(start, start + CHUNK));
    }
  }
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  return {
    method,
    url,
    headers: pairs.map(([key, value]) => [String(key), String(value)]),
    body: handle,
    timeoutMs,
  };
}

function response(answer) {
  return new Response(answer.status, answer.headers, readBody(answer.body));
}

/** Outbound HTTP with whole bodies, over the `http` import's chunked body handles. */
export const http = {
  /**
   * Send a request through the host and return its `Response`, body read whole.
   * `body` is a string (sent as UTF-8) or a Uint8Array. Errors from the host (not allowed,
   * timeout, too large, ...) throw as every import does.
   */
  send(method, url, options = {}) {
    return response(hostHttp.send(request(method, url, options)));
  },

  /**
   * Send a request in the background and return at once, to work while it travels (at most
   * four per call at a time); `result()` waits for its `Response` (or throws what `send`
   * would have). Takes the same arguments as `send`.
   */
  start(method, url, options = {}) {
    const pending = hostHttp.start(request(method, url, options));
    return { result: () => response(hostHttp.finish(pending)) };
  },
};

/** The host's tasks as JSON values (the `tasks` import carries JSON text). */
export const tasks = {
  /** The task `id` (throws not-found). */
  get(id) {
    return JSON.parse(hostTasks.get(id));
  },

  /** One page of tasks matching `filter`: `{ items, nextCursor }` (no cursor on the last). */
  query(filter = {}, cursor = undefined, limit = 100) {
    const page = hostTasks.query(JSON.stringify(filter), cursor, limit);
    return { items: JSON.parse(page.items), nextCursor: page.nextCursor };
  },

  /** Every task matching `filter` (status, assignee, label, updated_since, linked, unlinked;
   * fields: only those keys of each task), read `limit` at a time. */
  *iterQuery(filter = {}, limit = 500) {
    let cursor;
    do {
      const page = tasks.query(filter, cursor, limit);
      yield* page.items;
      cursor = page.nextCursor;
    } while (cursor != null); // none crosses as undefined; null would end it too
  },

  /** Upsert an array of tasks atomically; returns the stored tasks. */
  putMany(items) {
    return JSON.parse(hostTasks.putMany(JSON.stringify([...items])));
  },

  /** `putMany`, written by the host while the plugin works on (at most two unfinished per call,
   * written in the order started); `result()` waits for the stored tasks, or throws what
   * `putMany` would have. */
  startPutMany(items) {
    const batch = hostTasks.startPutMany(JSON.stringify([...items]));
    return { result: () => JSON.parse(hostTasks.finishPutMany(batch)) };
  },

  /** One page of the change feed: `{ changes, cursor }`, where `cursor` is the next one or, when
   * nothing was new, the one you passed. Your plugin's own changes carry no task (null). */
  changes(cursor = undefined, limit = 500) {
    const page = hostTasks.changesSince(cursor, limit);
    return { changes: JSON.parse(page.items), cursor: page.nextCursor ?? cursor };
  },

  /** Your plugin's link to `externalKey` in `system` (`{ taskId, system, externalKey,
   * snapshot }`, the snapshot decoded), or undefined. */
  getLink(system, externalKey) {
    try {
      return decodedLink(hostTasks.getLink(system, String(externalKey)));
    } catch (exc) {
      if (errors.isNotFound(exc)) return undefined;
      throw exc;
    }
  },

  /** Your plugin's links of a task, as `getLink` returns them. */
  linksForTask(taskId) {
    return hostTasks.linksForTask(taskId).map(decodedLink);
  },

  /** Link a task to `externalKey` in `system` (replacing that key's link), with a JSON-able
   * `snapshot`: the state both sides last agreed on. */
  putLink(taskId, system, externalKey, snapshot) {
    hostTasks.putLink({
      taskId,
      system,
      externalKey: String(externalKey),
      snapshot: JSON.stringify(snapshot),
    });
  },

  deleteLink(system, externalKey) {
    hostTasks.deleteLink(system, String(externalKey));
  },
};

function decodedLink(link) {
  return { ...link, snapshot: JSON.parse(link.snapshot) };
}

// One encoding for every value, keys sorted, so `compareAndSet` matches a value `kv` wrote
// whatever the order of the expected value's keys.
function encodeValue(value) {
  const sorted = (_key, v) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v;
  return new TextEncoder().encode(JSON.stringify(value, sorted));
}

/** JSON values in the plugin's private `kv` state (the import itself stores bytes). */
export const kv = {
  /** The value at `key`, or `fallback` when it is unset. */
  get(key, fallback = undefined) {
    let bytes;
    try {
      bytes = hostKv.get(key);
    } catch (exc) {
      if (errors.isNotFound(exc)) return fallback;
      throw exc;
    }
    return JSON.parse(new TextDecoder().decode(bytes));
  },

  /** Store a JSON-able value at `key`. */
  set(key, value) {
    hostKv.set(key, encodeValue(value));
  },

  /** Remove `key`; returns whether it was set. */
  delete(key) {
    return hostKv.delete(key);
  },

  /** Every key starting with `prefix`, in order, read `page` at a time. */
  *keys(prefix = "", page = 500) {
    let cursor;
    do {
      const found = hostKv.listKeys(prefix, cursor, page);
      yield* found.keys;
      cursor = found.nextCursor;
    } while (cursor != null);
  },

  /** Set `key` to `value` only if it holds `expected` now (null or undefined: only if unset);
   * returns whether it did. */
  compareAndSet(key, expected, value) {
    const current = expected === undefined || expected === null ? undefined : encodeValue(expected);
    return hostKv.compareAndSet(key, current, encodeValue(value));
  },
};
