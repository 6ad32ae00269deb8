import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { SandkitClient } from "../src/client";
import { registerCommands } from "../src/commands";
import * as protocol from "../src/protocol";
import { TerminalRouter } from "../src/terminal";
import { NetworkLogView } from "../src/views/networkLog";
import { OpenSessions } from "../src/sessions";
import { PortItem, SandboxItem, Sandboxes, SessionItem } from "../src/views/sandboxes";
import { answers, inputs, messages, opened, registered, terminals, workspace } from "./vscode-stub";

const manifest = JSON.parse(readFileSync(join(__dirname, "..", "package.json"), "utf8"));
const row = (name: string): protocol.SandboxRow => ({
  name,
  state: "running",
  agent: "shell",
  kits: [],
  workspace: null,
  sync: null,
  error: null,
  sessions: [],
  ports: [],
});

/** Answers given in turn, one per call. */
class Replies {
  constructor(readonly list: unknown[]) {}
}

function setUp(replies: Partial<Record<string, unknown>>) {
  const calls: [string, unknown][] = [];
  const client = {
    run: async (method: string, args: unknown) => {
      calls.push([method, args]);
      const planned = replies[method];
      const reply = planned instanceof Replies ? planned.list.shift() : planned;
      if (reply instanceof Error) throw reply;
      return reply ?? {};
    },
    notify: () => undefined,
    restart: async () => void calls.push(["restart", null]),
  } as unknown as SandkitClient;
  const sandboxes = new Sandboxes();
  const sessions = new OpenSessions();
  const router = new TerminalRouter();
  const disposables = registerCommands({ client, router, sandboxes, network: new NetworkLogView(), sessions });
  return { calls, sandboxes, sessions, router, done: () => disposables.forEach((d) => d.dispose()) };
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

type Opening = { open(d: unknown): Promise<void>; close(): void };

test("the agent's terminal runs the agent session; a restored session attaches; none opens twice", async () => {
  terminals.length = 0;
  const { calls, sandboxes, sessions, done } = setUp({
    [protocol.RUN_AGENT]: { terminal: 1 },
    [protocol.ATTACH]: { terminal: 2 },
  });
  sandboxes.update([row("box")]);
  await registered.get("sandkit.ui.runAgent")!();
  await registered.get("sandkit.ui.attachSession")!("box", "agent"); // shown already
  await registered.get("sandkit.ui.attachSession")!("box", "build");
  assert.deepEqual(terminals.map((t) => t.name), ["Sandkit agent: box", "Sandkit build: box"]);
  for (const t of terminals) await (t.pty as Opening).open({ rows: 30, columns: 90 });
  assert.deepEqual(calls, [
    [protocol.RUN_AGENT, { name: "box", rows: 30, cols: 90 }],
    [protocol.ATTACH, { name: "box", session: "build", rows: 30, cols: 90 }],
  ]);
  (terminals[0].pty as Opening).close(); // detached: Run Agent may show it again
  assert.equal(sessions.has("box", "agent"), false);
  assert.equal(sessions.has("box", "build"), true);
  done();
});

test("a session's view whose server stopped stays until the session is opened again", async () => {
  terminals.length = 0;
  const { sandboxes, sessions, router, done } = setUp({ [protocol.ATTACH]: new Replies([{ terminal: 1 }, { terminal: 1 }]) });
  sandboxes.update([row("box")]);
  await registered.get("sandkit.ui.attachSession")!("box", "build");
  await (terminals[0].pty as Opening).open(undefined);
  router.endAll("the language server stopped");
  assert.equal(sessions.has("box", "build"), false); // the restorer may open it again
  assert.equal(terminals[0].disposed, undefined); // it says why, until then
  await registered.get("sandkit.ui.attachSession")!("box", "build"); // the next server's
  assert.equal(terminals[0].disposed, true); // one tab shows the session, not two
  assert.equal(terminals.length, 2);
  done();
});

test("Stop Agent Session and Stop on a session stop it; ports publish, open, unpublish", async () => {
  messages.length = 0;
  opened.length = 0;
  const port = { guest: 8000, host: 18000, host_ip: "127.0.0.1" };
  const { calls, sandboxes, done } = setUp({ [protocol.PUBLISH_PORT]: { ports: [port] } });
  sandboxes.update([row("box")]);
  await registered.get("sandkit.ui.stopAgent")!();
  const running = { name: "build", running: true, exit_status: null, attached: 1 };
  await registered.get("sandkit.ui.stopSession")!(new SessionItem("box", running));
  answers.input.push("18000:8000");
  answers.info.push(protocol.OPEN_IN_BROWSER);
  await registered.get("sandkit.ui.publishPort")!(new SandboxItem(row("box")));
  const validate = inputs.at(-1)!.validateInput as (v: string) => string | undefined;
  assert.equal(validate("8000"), undefined);
  assert.ok(validate("eight"));
  await registered.get("sandkit.ui.openPort")!(new PortItem("box", port));
  await registered.get("sandkit.ui.unpublishPort")!(new PortItem("box", port));
  assert.deepEqual(calls, [
    [protocol.STOP_SESSION, { name: "box", session: "agent" }],
    [protocol.STOP_SESSION, { name: "box", session: "build" }],
    [protocol.PUBLISH_PORT, { name: "box", spec: "18000:8000" }],
    [protocol.UNPUBLISH_PORT, { name: "box", spec: "8000" }],
  ]);
  assert.deepEqual(messages, ["info: Sandkit: port 8000 of box is at http://127.0.0.1:18000/"]);
  assert.deepEqual(opened, ["http://127.0.0.1:18000/", "http://127.0.0.1:18000/"]);
  done();
});

test("a workspace whose kit needs a secret asks for it (hidden), stores it, and tries again", async () => {
  messages.length = 0;
  inputs.length = 0;
  terminals.length = 0;
  workspace.workspaceFolders = [{ uri: { fsPath: "/ws", toString: () => "file:///ws" } } as never];
  const missing = Object.assign(new Error("kit 'gh' requires the secret github"), {
    code: protocol.MISSING_CREDENTIALS,
    data: { services: ["github"] },
  });
  const { calls, done } = setUp({
    [protocol.OPEN_WORKSPACE]: new Replies([missing, { name: "ws", state: "running", created: true }]),
  });
  answers.error.push("Set secret…");
  answers.input.push("s3cret");
  await registered.get("sandkit.ui.openWorkspace")!();
  assert.deepEqual(calls, [
    [protocol.OPEN_WORKSPACE, { folder: "file:///ws" }],
    [protocol.SET_SECRET, { service: "github", value: "s3cret" }],
    [protocol.OPEN_WORKSPACE, { folder: "file:///ws" }],
  ]);
  assert.equal(inputs[0].password, true);
  assert.equal(messages[0], "error: Sandkit: kit 'gh' requires the secret github");
  assert.deepEqual(terminals.map((t) => t.name), ["Sandkit: ws"]);

  answers.error.push(undefined as never); // dismissed: nothing stored, nothing retried
  done();
  const again = setUp({ [protocol.OPEN_WORKSPACE]: new Replies([missing]) });
  await registered.get("sandkit.ui.openWorkspace")!();
  assert.deepEqual(again.calls, [[protocol.OPEN_WORKSPACE, { folder: "file:///ws" }]]);
  again.done();
  workspace.workspaceFolders = undefined;
});
