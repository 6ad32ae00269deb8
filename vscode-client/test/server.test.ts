import assert from "node:assert/strict";
import { test } from "node:test";
import { serverCommand, serverSettings } from "../src/server";

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
  const values: Record<string, unknown> = { defaultKits: ["python-dev"], approvalTimeout: 5 };
  assert.deepEqual(serverSettings((k) => values[k]), {
    sandkit: {
      defaultAgent: "shell",
      defaultKits: ["python-dev"],
      approvalTimeout: 5,
      workspaceTrusted: false,
    },
  });
  assert.equal(
    (serverSettings((k) => values[k], true).sandkit as Record<string, unknown>).workspaceTrusted,
    true,
  );
});
