import assert from "node:assert/strict";
import { test } from "node:test";
import { SandboxTerminal, type TerminalChannel, TerminalRouter } from "../src/terminal";

test("output that comes before the terminal knows its id is kept, in order", () => {
  const router = new TerminalRouter();
  router.output(7, "a");
  router.output(7, "b");
  router.output(8, "other");
  const seen: string[] = [];
  let code = -1;
  router.attach(7, { output: (d) => seen.push(d), exit: (c) => (code = c), lost: () => undefined });
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
  router.attach(1, { output: () => undefined, exit: (c) => (code = c), lost: () => undefined });
  assert.equal(code, 130);
  assert.equal(router.open, 0);
});

test("when the server stops, every open terminal is told why; early output is dropped", () => {
  const router = new TerminalRouter();
  const lost: string[] = [];
  const codes: number[] = [];
  router.attach(1, { output: () => undefined, exit: (c) => codes.push(c), lost: (why) => lost.push(why) });
  router.output(9, "for a terminal not yet attached");
  router.endAll("the language server stopped");
  assert.deepEqual(lost, ["the language server stopped"]);
  assert.deepEqual(codes, []);
  assert.equal(router.open, 0);
  const seen: string[] = [];
  router.attach(9, { output: (d) => seen.push(d), exit: () => undefined, lost: () => undefined });
  assert.deepEqual(seen, []);
});

function recorder(): { sent: string[]; channel: TerminalChannel } {
  const sent: string[] = [];
  return {
    sent,
    channel: {
      input: (t, data) => sent.push(`input ${t} ${data}`),
      resize: (t, rows, cols) => sent.push(`resize ${t} ${rows}x${cols}`),
      close: (t) => sent.push(`close ${t}`),
    },
  };
}

test("a terminal starts at its size, sends keys and sizes, and shows the program's output", async () => {
  const router = new TerminalRouter();
  const { sent, channel } = recorder();
  let asked = "";
  const pty = new SandboxTerminal(router, channel, async (rows, cols) => {
    asked = `${rows}x${cols}`;
    return 4;
  });
  const written: string[] = [];
  const closed: (number | void)[] = [];
  pty.onDidWrite((d) => written.push(d));
  pty.onDidClose((c) => closed.push(c));
  pty.handleInput("lost"); // before it has an id: nowhere to go
  await pty.open({ rows: 30, columns: 100 });
  assert.equal(asked, "30x100");
  pty.handleInput("ls\r");
  pty.setDimensions({ rows: 40, columns: 120 });
  router.output(4, "file\r\n");
  router.exit(4, 0);
  pty.close(); // after the exit: the id may be another server's terminal by now
  assert.deepEqual(sent, ["input 4 ls\r", "resize 4 40x120"]);
  assert.deepEqual(written, ["file\r\n"]);
  assert.deepEqual(closed, [0]);
});

test("a terminal closed while its program starts ends that program", async () => {
  const router = new TerminalRouter();
  const { sent, channel } = recorder();
  let release: (id: number) => void = () => undefined;
  const pty = new SandboxTerminal(router, channel, () => new Promise((resolve) => (release = resolve)));
  const opening = pty.open(undefined);
  pty.close();
  release(6);
  await opening;
  assert.deepEqual(sent, ["close 6"]);
  assert.equal(router.open, 0);
});

test("a terminal whose program cannot start says why", async () => {
  const { channel } = recorder();
  const pty = new SandboxTerminal(new TerminalRouter(), channel, async () => {
    throw new Error("no sandbox named 'x'");
  });
  const written: string[] = [];
  const closed: (number | void)[] = [];
  pty.onDidWrite((d) => written.push(d));
  pty.onDidClose((c) => closed.push(c));
  await pty.open(undefined);
  assert.deepEqual(written, ["sandkit: no sandbox named 'x'\r\n"]);
  assert.deepEqual(closed, [1]);
});

test("a session's terminal that lets go says the session runs on; onEnd runs once", async () => {
  const router = new TerminalRouter();
  const { sent, channel } = recorder();
  let ends = 0;
  const pty = new SandboxTerminal(router, channel, async () => 5, { onEnd: () => ends++ });
  const written: string[] = [];
  const closed: (number | void)[] = [];
  pty.onDidWrite((d) => written.push(d));
  pty.onDidClose((c) => closed.push(c));
  router.output(5, "$ echo one\r\none\r\n"); // the replayed screen, before the reply
  await pty.open(undefined);
  router.exit(5, 255, true); // fell behind, or the connection ended
  pty.close();
  assert.deepEqual(written, ["$ echo one\r\none\r\n", "\r\n[sandkit: detached; the session runs on]\r\n"]);
  assert.deepEqual(closed, [255]);
  assert.deepEqual(sent, []);
  assert.equal(ends, 1);
});

test("closing a session's terminal tells the server (which detaches) and ends the view", async () => {
  const router = new TerminalRouter();
  const { sent, channel } = recorder();
  let ends = 0;
  const pty = new SandboxTerminal(router, channel, async () => 8, { onEnd: () => ends++ });
  await pty.open(undefined);
  pty.close();
  router.exit(8, 255, true); // the server's answer to the close
  assert.deepEqual(sent, ["close 8"]);
  assert.equal(ends, 1);
});

for (const session of [false, true]) {
  test(`a ${session ? "session's " : ""}terminal whose server stopped says why, with no exit code, until a key closes it`, async () => {
    const router = new TerminalRouter();
    const { sent, channel } = recorder();
    let ends = 0;
    let lost = 0;
    const pty = new SandboxTerminal(router, channel, async () => 3, { onEnd: () => ends++, session, onLost: () => lost++ });
    const written: string[] = [];
    const closed: (number | void)[] = [];
    pty.onDidWrite((d) => written.push(d));
    pty.onDidClose((c) => closed.push(c));
    await pty.open(undefined);
    router.endAll("the language server stopped");
    const what = session ? "the session runs on" : "this terminal's program ended with it";
    assert.equal(written.length, 1);
    assert.ok(written[0].startsWith("\x1b[?1000l"), "mouse reports off: none closes it unread");
    assert.ok(written[0].endsWith(`\r\n[sandkit: the language server stopped; ${what}. Press any key to close.]\r\n`));
    assert.deepEqual(closed, []); // an exit code would be an alert, and the terminal gone
    assert.equal(ends, 1);
    assert.equal(lost, 1);
    pty.handleInput("\x1b[I"); // the focus coming back is no key
    pty.handleInput("\x1b[<0;10;5M"); // nor is a click
    assert.deepEqual(closed, []);
    pty.handleInput("x"); // not sent: the next server's terminal 3 is another program
    assert.deepEqual(closed, [undefined]);
    pty.close();
    assert.deepEqual(sent, []);
    assert.equal(ends, 1);
  });
}
