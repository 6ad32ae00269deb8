import assert from "node:assert/strict";
import { test } from "node:test";
import { DecisionLog, describeDecision, sandboxDetails } from "../src/decisions";
import type { DecisionRecord } from "../src/protocol";

const record = (host: string, action: "allowed" | "blocked"): DecisionRecord => ({
  sandbox: "box",
  method: "CONNECT",
  scheme: "tunnel",
  host,
  port: 443,
  action,
  reason: action === "allowed" ? "allow-rule" : "default-deny",
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
  log.replace([record("old", "allowed"), record("new", "allowed")]);
  log.filter = "all";
  assert.deepEqual(log.visible().map((r) => r.host), ["new", "old"]);
  log.add(record("new", "allowed")); // the same record, live after the fetch
  assert.deepEqual(log.visible().map((r) => r.host), ["new", "old"]);
});

test("a decision reads as what happened and why", () => {
  const text = describeDecision({ ...record("api.test", "allowed"), credentials: ["anthropic"], rule: "api.test", origin: "k (spec.yaml:8:9)" });
  assert.equal(text.label, "allowed api.test:443");
  assert.equal(text.description, "box · allow-rule, credential anthropic");
  assert.match(text.tooltip, /rule api.test \(k \(spec.yaml:8:9\)\)/);
});

test("a sandbox's details, as the tree shows them", () => {
  assert.deepEqual(
    sandboxDetails({ state: "running", agent: "shell", kits: [], workspace: "/ws", sync: "in sync" }),
    [["state", "running"], ["agent", "shell"], ["kits", "none"], ["workspace", "/ws"], ["sync", "in sync"]],
  );
});
