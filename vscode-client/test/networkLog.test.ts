import assert from "node:assert/strict";
import { test } from "node:test";
import type { DecisionRecord } from "../src/protocol";
import { DecisionLog, NetworkLogView, describeDecision } from "../src/views/networkLog";

const record = (host: string, action: "allowed" | "blocked"): DecisionRecord => ({
  sandbox: "box",
  method: "CONNECT",
  scheme: "tunnel",
  host,
  port: 443,
  action,
  reason: action === "allowed" ? "allow-rule" : "default-deny",
  path: null,
  rule: null,
  origin: null,
  credentials: [],
  status: null,
  bytes_up: 0,
  bytes_down: 0,
  latency_ms: 0,
  warnings: [],
  time: "2026-01-01T00:00:00Z",
});

test("newest first, bounded, filtered", () => {
  const log = new DecisionLog(3);
  for (const [i, action] of (["allowed", "blocked", "allowed", "blocked"] as const).entries()) {
    log.add(record(`h${i}`, action));
  }
  assert.deepEqual(log.visible().map((r) => r.host), ["h3", "h2", "h1"]);
  log.filter = "blocked";
  assert.deepEqual(log.visible().map((r) => r.host), ["h3", "h1"]);
  log.replace([record("old", "allowed"), record("new", "allowed")], "box", log.mark());
  log.filter = "all";
  assert.deepEqual(log.visible().map((r) => r.host), ["new", "old"]);
  log.add(record("new", "allowed")); // the same record, live after the fetch
  assert.deepEqual(log.visible().map((r) => r.host), ["new", "old"]);
});

test("a record that arrives live while the log is fetched is kept; the rest is replaced", () => {
  const log = new DecisionLog();
  const at = (host: string, sandbox = "box"): DecisionRecord => ({ ...record(host, "allowed"), sandbox });
  log.add(at("other-box", "other"));
  log.add(at("shown-before"));
  const since = log.mark(); // the fetch is sent
  log.add(at("live")); // written after the server read the file
  log.replace([at("fetched-1"), at("fetched-2")], "box", since);
  assert.deepEqual(log.visible().map((r) => r.host), ["live", "fetched-2", "fetched-1"]);
  log.replace([], "box", log.mark()); // an empty log (the sandbox made anew): nothing stays
  assert.deepEqual(log.visible(), []);
});

test("a decision reads as what happened and why", () => {
  const text = describeDecision({ ...record("api.test", "allowed"), credentials: ["anthropic"], rule: "api.test", origin: "k (spec.yaml:8:9)" });
  assert.equal(text.label, "allowed api.test:443");
  assert.equal(text.description, "box · allow-rule, credential anthropic");
  assert.match(text.tooltip, /rule api.test \(k \(spec.yaml:8:9\)\)/);
});

test("the view redraws on each live record and filter, and shows what the filter lets through", () => {
  const view = new NetworkLogView();
  let redraws = 0;
  view.onDidChangeTreeData(() => redraws++);
  view.add(record("a.test", "allowed"));
  view.add(record("b.test", "blocked"));
  view.setFilter("blocked");
  assert.equal(redraws, 3);
  assert.deepEqual(view.getChildren().map((r) => r.host), ["b.test"]);
  assert.equal(view.getTreeItem(view.getChildren()[0]).label, "blocked b.test:443");
});
