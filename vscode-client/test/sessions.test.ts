import assert from "node:assert/strict";
import { test } from "node:test";
import type { SandboxRow, SessionRow } from "../src/protocol";
import { OpenSessions, SessionRestorer, checkPortSpec, missingCredentials, portUrl } from "../src/sessions";

const session = (name: string, running = true): SessionRow => ({ name, running, exit_status: running ? null : 0, attached: 0 });
const row = (name: string, workspace: string, sessions: SessionRow[] | null, state = "running"): SandboxRow => ({
  name,
  state,
  agent: "shell",
  kits: [],
  workspace,
  sync: null,
  error: null,
  sessions,
  ports: [],
});

function restorer() {
  const open = new OpenSessions();
  const reopened: string[] = [];
  const r = new SessionRestorer(open, (sandbox, name) => {
    reopened.push(`${sandbox}/${name}`);
    open.add(sandbox, name);
  });
  return { open, reopened, r };
}

test("after a reload, each running session of the workspace's sandbox gets its terminal back, once", () => {
  const { reopened, r } = restorer();
  r.update([row("mine", "/ws", null)], ["/ws"]); // its sessions not known yet: wait
  r.update([row("mine", "/ws", [], "booting")], ["/ws"]);
  assert.deepEqual(reopened, []);
  const rows = [
    row("other", "/elsewhere", [session("agent")]),
    row("mine", "/ws", [session("agent"), session("1", false), session("build")]),
  ];
  r.update(rows, ["/ws"]);
  assert.deepEqual(reopened, ["mine/agent", "mine/build"]); // not the ended one, nor others'
  r.update(rows, ["/ws"]); // the next push: nothing reopened twice
  assert.equal(reopened.length, 2);
});

test("a session whose terminal a person closed (detached) is not reopened by later pushes", () => {
  const { open, reopened, r } = restorer();
  const close = open.add("mine", "agent"); // opened by Run Agent before the first push
  r.update([row("mine", "/ws", [session("agent")])], ["/ws"]);
  assert.deepEqual(reopened, []); // this window shows it already
  close();
  r.update([row("mine", "/ws", [session("agent")])], ["/ws"]);
  assert.deepEqual(reopened, []);
});

test("a new language server restores again (the old server's terminals ended)", () => {
  const { open, reopened, r } = restorer();
  r.update([row("mine", "/ws", [session("agent")])], ["/ws"]);
  assert.deepEqual(reopened, ["mine/agent"]);
  r.reset();
  open.add("mine", "agent")(); // its terminal ended with the old server
  r.update([row("mine", "/ws", [session("agent")])], ["/ws"]);
  assert.deepEqual(reopened, ["mine/agent", "mine/agent"]);
});

test("a port to publish is GUEST_PORT or HOST_PORT:GUEST_PORT", () => {
  assert.equal(checkPortSpec("8000"), undefined);
  assert.equal(checkPortSpec(" 18000:8000 "), undefined);
  assert.match(checkPortSpec("localhost:8000") ?? "", /HOST_PORT:GUEST_PORT/);
  assert.match(checkPortSpec("") ?? "", /GUEST_PORT/);
  assert.equal(checkPortSpec("70000"), "70000 is not a port (1-65535)");
  assert.equal(checkPortSpec("0:8000"), "0 is not a port (1-65535)");
});

test("a published port opens on its host address", () => {
  assert.equal(portUrl({ guest: 8000, host: 18000, host_ip: "127.0.0.1" }), "http://127.0.0.1:18000/");
  assert.equal(portUrl({ guest: 80, host: 8080, host_ip: "0.0.0.0" }), "http://127.0.0.1:8080/");
  assert.equal(portUrl({ guest: 80, host: 8080, host_ip: "::1" }), "http://[::1]:8080/");
});

test("only the server's missing-credentials error names services to ask for", () => {
  const error = Object.assign(new Error("kit needs GITHUB_TOKEN"), { code: -32002, data: { services: ["github"] } });
  assert.deepEqual(missingCredentials(error), ["github"]);
  assert.equal(missingCredentials(Object.assign(new Error("x"), { code: -32001 })), undefined);
  assert.equal(missingCredentials(new Error("x")), undefined);
  assert.equal(missingCredentials("x"), undefined);
});
