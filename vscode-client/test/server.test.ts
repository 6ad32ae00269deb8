import assert from "node:assert/strict";
import { test } from "node:test";
import { choosesProgram, needsRestart, serverCommand, serverSettings } from "../src/server";

test("sandkit.path wins, then pythonPath, then the workspace's .venv, then PATH", () => {
  const none = () => false;
  assert.deepEqual(serverCommand({ path: " /opt/sk ", pythonPath: "/py" }, [], none), {
    command: "/opt/sk",
    args: ["lsp"],
  });
  assert.deepEqual(serverCommand({ path: "", pythonPath: "/usr/bin/python3" }, [], none), {
    command: "/usr/bin/python3",
    args: ["-m", "sandkit", "lsp"],
  });
  const venv = (p: string) => p === "/ws/b/.venv/bin/sandkit";
  assert.deepEqual(serverCommand({ path: "", pythonPath: "" }, ["/ws/a", "/ws/b"], venv, true), {
    command: "/ws/b/.venv/bin/sandkit",
    args: ["lsp"],
  });
  // An untrusted workspace's own .venv/bin/sandkit is never run: it came with the clone.
  assert.deepEqual(serverCommand({ path: "", pythonPath: "" }, ["/ws/a", "/ws/b"], venv), {
    command: "sandkit",
    args: ["lsp"],
  });
  assert.deepEqual(serverCommand({ path: "", pythonPath: "" }, ["/ws/a"], none), {
    command: "sandkit",
    args: ["lsp"],
  });
});

test("settings reach the server under 'sandkit', with defaults", () => {
  const values: Record<string, unknown> = { defaultKits: ["python-dev"], docker: true, approvalTimeout: 5 };
  assert.deepEqual(serverSettings((k) => values[k]), {
    sandkit: {
      defaultAgent: "shell",
      defaultKits: ["python-dev"],
      docker: true,
      approvalTimeout: 5,
      workspaceTrusted: false,
    },
  });
  assert.equal(
    (serverSettings((k) => values[k], true).sandkit as Record<string, unknown>).workspaceTrusted,
    true,
  );
});

test("a change of sandkit.path or sandkit.pythonPath is one that may restart the server", () => {
  const changed = (key: string) => (section: string) => key === section || key.startsWith(`${section}.`);
  assert.equal(choosesProgram(changed("sandkit.path")), true);
  assert.equal(choosesProgram(changed("sandkit.pythonPath")), true);
  assert.equal(choosesProgram(changed("sandkit.defaultKits")), false); // sent, not restarted
  assert.equal(choosesProgram(changed("sandkit.trace.server")), false); // the client's own
});

test("the server restarts when the settings name another program, or none runs", () => {
  const none = () => false;
  const running = serverCommand({ path: "/old/sandkit", pythonPath: "" }, [], none);
  const moved = serverCommand({ path: "/new/sandkit", pythonPath: "" }, [], none);
  assert.equal(needsRestart(moved, running), true);
  assert.equal(needsRestart({ ...running }, running), false);
  // pythonPath changes, but sandkit.path still wins: the same program, no restart
  assert.equal(needsRestart(serverCommand({ path: "/old/sandkit", pythonPath: "/py" }, [], none), running), false);
  const python = serverCommand({ path: "", pythonPath: "/py" }, [], none);
  assert.equal(needsRestart(python, serverCommand({ path: "", pythonPath: "/py" }, [], none)), false);
  assert.equal(needsRestart(serverCommand({ path: "", pythonPath: "/py3" }, [], none), python), true);
  // A server that never started (a wrong path) is started again once the setting changes,
  // even to the same value.
  assert.equal(needsRestart(running, undefined), true);
});

test("trust granted: the workspace's own .venv/bin/sandkit now chooses the server", () => {
  const venv = (p: string) => p === "/ws/.venv/bin/sandkit";
  const empty = { path: "", pythonPath: "" };
  const untrusted = serverCommand(empty, ["/ws"], venv, false);
  assert.equal(needsRestart(serverCommand(empty, ["/ws"], venv, true), untrusted), true);
  assert.equal(needsRestart(serverCommand(empty, ["/other"], venv, true), untrusted), false);
});
