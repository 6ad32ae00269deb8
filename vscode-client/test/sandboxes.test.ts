import assert from "node:assert/strict";
import { test } from "node:test";
import type { SandboxRow } from "../src/protocol";
import {
  PortItem,
  SandboxItem,
  Sandboxes,
  SandboxesView,
  SessionItem,
  impliedSandbox,
  sandboxDetails,
} from "../src/views/sandboxes";

const row = (name: string, state: string, workspace: string | null = null): SandboxRow => ({
  name,
  state,
  agent: "shell",
  kits: [],
  workspace,
  sync: state === "running" ? "in sync" : null,
  error: null,
  sessions: [],
  ports: [],
});

test("the view shows the rows the server pushed, redrawn on each push, never asking for them", () => {
  const sandboxes = new Sandboxes();
  const view = new SandboxesView(sandboxes);
  let redraws = 0;
  view.onDidChangeTreeData(() => redraws++);
  assert.deepEqual(view.getChildren(), []);
  sandboxes.update([row("a", "running", "/ws"), row("b", "stopped")]);
  assert.equal(redraws, 1);
  const items = view.getChildren();
  assert.deepEqual(items.map((i) => [i.label, i.description]), [["a", "running"], ["b", "stopped"]]);
  assert.ok(items[0] instanceof SandboxItem);
  assert.deepEqual(view.getChildren(items[0]).map((i) => [i.label, i.description]), [
    ["state", "running"],
    ["agent", "shell"],
    ["kits", "none"],
    ["workspace", "/ws"],
    ["sync", "in sync"],
  ]);
  sandboxes.update([]);
  assert.equal(redraws, 2);
  assert.deepEqual(view.getChildren(), []);
});

test("a damaged sandbox says why", () => {
  const damaged = { ...row("x", "damaged"), agent: "", error: "sandbox 'x' is damaged" };
  assert.deepEqual(sandboxDetails(damaged).at(-1), ["error", "sandbox 'x' is damaged"]);
  assert.equal(new SandboxItem(damaged).tooltip, "sandbox 'x' is damaged");
});

test("a command without a sandbox means the only one, or this workspace's while it runs", () => {
  assert.equal(impliedSandbox([row("only", "stopped")], []), "only");
  const rows = [row("other", "running", "/elsewhere"), row("mine", "running", "/ws")];
  assert.equal(impliedSandbox(rows, ["/ws"]), "mine");
  assert.equal(impliedSandbox(rows, ["/nowhere"]), undefined); // a person picks
  assert.equal(impliedSandbox([rows[0], row("mine", "stopped", "/ws")], ["/ws"]), undefined);
  assert.equal(impliedSandbox([], ["/ws"]), undefined);
});

test("under a sandbox: its sessions (running ones attach on click) and its published ports", () => {
  const sandboxes = new Sandboxes();
  const view = new SandboxesView(sandboxes);
  sandboxes.update([
    {
      ...row("a", "running", "/ws"),
      sessions: [
        { name: "agent", running: true, exit_status: null, attached: 1 },
        { name: "1", running: false, exit_status: 3, attached: 0 },
      ],
      ports: [{ guest: 8000, host: 18000, host_ip: "127.0.0.1" }],
    },
  ]);
  const children = view.getChildren(view.getChildren()[0]).slice(5);
  assert.deepEqual(children.map((i) => [i.label, i.description, i.contextValue]), [
    ["session agent", "running · 1 attached", "session"],
    ["session 1", "exited 3", "session-ended"],
    ["port 8000", "127.0.0.1:18000", "port"],
  ]);
  assert.ok(children[0] instanceof SessionItem && children[2] instanceof PortItem);
  assert.equal(children[0].command?.command, "sandkit.ui.attachSession");
  assert.equal(children[1].command, undefined);
  assert.equal(children[2].command?.command, "sandkit.ui.openPort");
});
