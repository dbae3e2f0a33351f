// Exercises corral-sdk.js: http.send and http.start over body handles, the raw kv import
// (bytes) and the JSON helpers over kv and tasks, error values.

import * as rawKv from "corral:plugin/kv@0.1.1";
import { Plugin, http, kv, tasks } from "./corral-sdk.js";

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
  rawKv.set(key, new TextEncoder().encode(value));
  return new TextDecoder().decode(rawKv.get(key));
});

// An import's error, not caught: the SDK passes the host's error value through.
plugin.command("kv.get", ({ key }) => new TextDecoder().decode(rawKv.get(key)));

// The JSON helpers, one call each, as the test's input says.
plugin.command("sdk.kv.get", ({ key, fallback }) => kv.get(key, fallback) ?? null);
plugin.command("sdk.kv.set", ({ key, value }) => kv.set(key, value) ?? null);
plugin.command("sdk.kv.delete", ({ key }) => kv.delete(key));
plugin.command("sdk.kv.keys", ({ prefix, page }) => [...kv.keys(prefix, page)]);
plugin.command("sdk.kv.cas", ({ key, expected, value }) => kv.compareAndSet(key, expected, value));
plugin.command("sdk.tasks.get", ({ id }) => tasks.get(id));
plugin.command("sdk.tasks.put-many", ({ items }) => tasks.putMany(items));
plugin.command("sdk.tasks.query", ({ filter, cursor, limit }) => {
  const page = tasks.query(filter, cursor ?? undefined, limit);
  return { ids: page.items.map((task) => task.id), nextCursor: page.nextCursor ?? null };
});
plugin.command("sdk.tasks.all", ({ filter, limit }) =>
  [...tasks.iterQuery(filter, limit)].map((task) => task.id),
);
plugin.command("sdk.tasks.changes", ({ cursor, limit }) => tasks.changes(cursor ?? undefined, limit));
// Links through the helpers: put, read back by key and by task, delete, read a missing one.
plugin.command("sdk.tasks.links", ({ taskId, snapshot }) => {
  tasks.putLink(taskId, "tracker", 42, snapshot);
  const byKey = tasks.getLink("tracker", "42");
  const byTask = tasks.linksForTask(taskId);
  tasks.deleteLink("tracker", 42);
  return { byKey, byTask, gone: tasks.getLink("tracker", "42") ?? null };
});
// Batches started together, then finished in order: the stored tasks of each.
plugin.command("sdk.tasks.started", ({ batches }) =>
  batches.map((items) => tasks.startPutMany(items)).map((batch) => batch.result()),
);

// A bug: the SDK turns it into an `internal` error value instead of a trap.
plugin.command("bug", () => null.field);

plugin.command("print", ({ text }) => {
  console.log(text);
  return null;
});

export const handler = plugin.handler();
