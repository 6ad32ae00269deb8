import assert from "node:assert/strict";
import { test } from "node:test";
import { TerminalRouter } from "../src/terminals";

test("output that comes before the terminal knows its id is kept, in order", () => {
  const router = new TerminalRouter();
  router.output(7, "a");
  router.output(7, "b");
  router.output(8, "other");
  const seen: string[] = [];
  let code = -1;
  router.attach(7, { output: (d) => seen.push(d), exit: (c) => (code = c) });
  router.output(7, "c");
  router.exit(7, 3);
  assert.deepEqual(seen, ["a", "b", "c"]);
  assert.equal(code, 3);
  assert.equal(router.open, 0);
});

test("an exit before attach closes the terminal as soon as it attaches", () => {
  const router = new TerminalRouter();
  router.exit(1, 130);
  let code = -1;
  router.attach(1, { output: () => undefined, exit: (c) => (code = c) });
  assert.equal(code, 130);
  assert.equal(router.open, 0);
});
