// Exercises corral-sdk.js: http.send and http.start over body handles, kv with bytes, error
// values.

import * as kv from "corral:plugin/kv@0.1.1";
import { Plugin, http } from "./corral-sdk.js";

const plugin = new Plugin();

plugin.command("http", ({ method, url, body, headers }) => {
  const response = http.send(method, url, { body, headers });
  return {
    status: response.status,
    contentType: response.header("Content-Type"),
    size: response.body.length,
    json: response.json(),
  };
});

// Started together, finished last first.
plugin.command("http.started", ({ urls }) => {
  const started = urls.map((url) => http.start("GET", url));
  return started.reverse().map((request) => request.result().json().path);
});

plugin.command("kv.round-trip", ({ key, value }) => {
  kv.set(key, new TextEncoder().encode(value));
  return new TextDecoder().decode(kv.get(key));
});

// An import's error, not caught: the SDK passes the host's error value through.
plugin.command("kv.get", ({ key }) => new TextDecoder().decode(kv.get(key)));

// A bug: the SDK turns it into an `internal` error value instead of a trap.
plugin.command("bug", () => null.field);

plugin.command("print", ({ text }) => {
  console.log(text);
  return null;
});

export const handler = plugin.handler();
