// The hello plugin in JavaScript: `echo` returns its input, `greet` uses the operator's config.
//
// Build it with `corral build examples/hello-js`. Commands are plain functions taking and
// returning JSON-able values; `corral-sdk.js` (put beside this file by the build) turns them
// into the exported `handler`.

import { get as configGet, getAll as configGetAll } from "corral:plugin/config@0.1.1";
import { Plugin, PluginError, errors, log } from "./corral-sdk.js";

const plugin = new Plugin();

plugin.command("echo", (args) => args);

plugin.command("greet", (args) => {
  let greeting = "Hello";
  try {
    greeting = JSON.parse(configGet("greeting"));
  } catch (error) {
    if (!errors.isNotFound(error)) throw error;
  }
  const name = args?.name ?? "world";
  if (typeof name !== "string") throw new PluginError("invalid-input", "name must be a string");
  log.info("greeting", { name });
  return { message: `${greeting}, ${name}!` };
});

plugin.command("config", () => JSON.parse(configGetAll()));

plugin.on("*", (event) => log.info("event", { type: event.type, id: event.id }));

export const handler = plugin.handler();
