import assert from "node:assert/strict";
import { test } from "node:test";
import type { SandboxRow } from "../src/protocol";
import { SandboxItem, Sandboxes, SandboxesView, impliedSandbox, sandboxDetails } from "../src/views/sandboxes";

const row = (name: string, state: string, workspace: string | null = null): SandboxRow => ({
  name,
  state,
  agent: "shell",
  kits: [],
  workspace,
  sync: state === "running" ? "in sync" : null,
  error: null,
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
