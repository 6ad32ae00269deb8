import assert from "node:assert/strict";
import { test } from "node:test";
import { undeclared } from "../src/agentVerbs";
import type { SandkitClient } from "../src/client";
import { registerCommands } from "../src/commands";
import * as protocol from "../src/protocol";
import { OpenSessions } from "../src/sessions";
import { TerminalRouter } from "../src/terminal";
import { NetworkLogView } from "../src/views/networkLog";
import { SandboxItem, Sandboxes } from "../src/views/sandboxes";
import { answers, inputs, messages, registered, terminals } from "./vscode-stub";

const row: protocol.SandboxRow = {
  name: "box",
  state: "running",
  agent: "claude",
  kits: [],
  workspace: null,
  sync: null,
  error: null,
  sessions: [],
  ports: [],
};

type Opening = { open(d: unknown): Promise<void> };

function setUp(verbs: string[]) {
  const calls: [string, unknown][] = [];
  const client = {
    run: async (method: string, args: unknown) => {
      calls.push([method, args]);
      return method === protocol.AGENT_VERBS ? { kit: "claude", verbs } : { terminal: 7 };
    },
    notify: () => undefined,
  } as unknown as SandkitClient;
  const sandboxes = new Sandboxes();
  sandboxes.update([row]);
  const disposables = registerCommands({
    client,
    router: new TerminalRouter(),
    sandboxes,
    network: new NetworkLogView(),
    sessions: new OpenSessions(),
  });
  return { calls, done: () => disposables.forEach((d) => d.dispose()) };
}

test("each verb asks what it needs, then runs in a terminal of its own", async () => {
  terminals.length = 0;
  inputs.length = 0;
  const { calls, done } = setUp(["prompt", "continue", "resume"]);
  answers.input.push("fix the build");
  await registered.get("sandkit.ui.askAgent")!();
  await registered.get("sandkit.ui.continueAgent")!(new SandboxItem(row));
  answers.input.push("  s-1 ");
  await registered.get("sandkit.ui.resumeAgent")!();
  const validate = inputs.at(-1)!.validateInput as (v: string) => string | undefined;
  assert.ok(validate(" "));
  assert.equal(validate("s-1"), undefined);
  assert.deepEqual(
    terminals.map((t) => t.name),
    ["Sandkit agent (prompt): box", "Sandkit agent (continue): box", "Sandkit agent (resume): box"],
  );
  for (const t of terminals) await (t.pty as Opening).open({ rows: 30, columns: 90 });
  const runs = calls.filter(([method]) => method === protocol.RUN_AGENT_VERB).map(([, args]) => args);
  assert.deepEqual(runs, [
    { name: "box", verb: "prompt", prompt: "fix the build", rows: 30, cols: 90 },
    { name: "box", verb: "continue", rows: 30, cols: 90 },
    { name: "box", verb: "resume", sessionId: "s-1", rows: 30, cols: 90 },
  ]);
  assert.equal(calls.filter(([method]) => method === protocol.AGENT_VERBS).length, 3); // asked each time
  done();
});

test("a verb the kit does not declare is said, naming the kit; no terminal opens", async () => {
  terminals.length = 0;
  messages.length = 0;
  const { calls, done } = setUp(["prompt"]);
  await registered.get("sandkit.ui.resumeAgent")!();
  assert.deepEqual(messages, ["warning: Sandkit: the agent kit 'claude' declares no 'resume' session verb; it declares 'prompt'"]);
  done();
  const none = setUp([]);
  await registered.get("sandkit.ui.continueAgent")!();
  assert.match(messages[1], /the agent kit 'claude' declares no session verbs/);
  assert.equal(terminals.length, 0);
  assert.deepEqual([...calls, ...none.calls].map(([m]) => m), [protocol.AGENT_VERBS, protocol.AGENT_VERBS]);
  none.done();
});

test("an empty prompt runs nothing", async () => {
  terminals.length = 0;
  const { calls, done } = setUp(["prompt"]);
  answers.input.push("   ");
  await registered.get("sandkit.ui.askAgent")!();
  assert.equal(terminals.length, 0);
  assert.deepEqual(calls.map(([m]) => m), [protocol.AGENT_VERBS]);
  done();
});

test("undeclared answers nothing for a declared verb", () => {
  assert.equal(undeclared("continue", { kit: "k", verbs: ["continue"] }), undefined);
});
