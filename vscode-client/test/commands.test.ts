import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { SandkitClient } from "../src/client";
import { registerCommands } from "../src/commands";
import * as protocol from "../src/protocol";
import { TerminalRouter } from "../src/terminal";
import { NetworkLogView } from "../src/views/networkLog";
import { SandboxItem, Sandboxes } from "../src/views/sandboxes";
import { messages, registered } from "./vscode-stub";

const manifest = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8"));
const row = (name: string): protocol.SandboxRow => ({
  name,
  state: "running",
  agent: "shell",
  kits: [],
  workspace: null,
  sync: null,
  error: null,
});

function setUp(answers: Partial<Record<string, unknown>>) {
  const calls: [string, unknown][] = [];
  const client = {
    run: async (method: string, args: unknown) => {
      calls.push([method, args]);
      if (answers[method] instanceof Error) throw answers[method];
      return answers[method] ?? {};
    },
    notify: () => undefined,
    restart: async () => void calls.push(["restart", null]),
  } as unknown as SandkitClient;
  const sandboxes = new Sandboxes();
  const disposables = registerCommands({ client, router: new TerminalRouter(), sandboxes, network: new NetworkLogView() });
  return { calls, sandboxes, done: () => disposables.forEach((d) => d.dispose()) };
}

test("every command the manifest contributes is registered, and no other", () => {
  const { done } = setUp({});
  const contributed = manifest.contributes.commands.map((c: { command: string }) => c.command).sort();
  assert.deepEqual([...registered.keys()].sort(), contributed);
  const menus = Object.values(manifest.contributes.menus).flat() as { command: string }[];
  for (const item of menus) {
    assert.ok(contributed.includes(item.command), item.command);
  }
  done();
  assert.equal(registered.size, 0);
});

test("a command run on a tree item acts on that sandbox; refresh asks for the list once", async () => {
  const { calls, sandboxes, done } = setUp({ [protocol.LIST]: [row("a"), row("b")] });
  await registered.get("sandkit.ui.stop")!(new SandboxItem(row("b")));
  await registered.get("sandkit.ui.remove")!(new SandboxItem(row("a")));
  await registered.get("sandkit.ui.refresh")!();
  await registered.get("sandkit.ui.restartServer")!();
  assert.deepEqual(calls, [
    [protocol.STOP, { name: "b" }],
    [protocol.REMOVE, { name: "a" }],
    [protocol.LIST, {}],
    ["restart", null],
  ]);
  assert.deepEqual(sandboxes.rows.map((r) => r.name), ["a", "b"]);
  done();
});

test("without a tree item, the only sandbox is meant; a server error becomes a message", async () => {
  messages.length = 0;
  const { calls, sandboxes, done } = setUp({ [protocol.UNDO]: new Error("the trash is empty") });
  sandboxes.update([row("only")]);
  await registered.get("sandkit.ui.undo")!();
  assert.deepEqual(calls, [[protocol.UNDO, { name: "only", last: true }]]);
  assert.deepEqual(messages, ["error: Sandkit: the trash is empty"]);
  done();
});
