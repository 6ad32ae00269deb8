// Editor terminals whose program runs in a sandbox: the server streams the output in
// notifications that name a terminal id, and the terminal sends keys and sizes back. A
// session's terminal (the agent's) is a view: closing it detaches, the program runs on.
import * as vscode from "vscode";

export interface TerminalSink {
  output(data: string): void;
  /** The program ended (`detached` false or absent), or a session's terminal let go. */
  exit(code: number, detached?: boolean): void;
  /** The server that ran the program stopped: the program went with it. */
  lost(why: string): void;
}

type Pending = { kind: "output"; data: string } | { kind: "exit"; code: number; detached?: boolean };

/** Routes the server's terminal notifications to the terminal they belong to; output that
 * arrives before the terminal learns its id (the exec's reply can come second) is kept. */
export class TerminalRouter {
  private sinks = new Map<number, TerminalSink>();
  private early = new Map<number, Pending[]>();

  attach(id: number, sink: TerminalSink): void {
    this.sinks.set(id, sink);
    for (const event of this.early.get(id) ?? []) {
      this.deliver(id, sink, event);
    }
    this.early.delete(id);
  }

  output(id: number, data: string): void {
    this.route(id, { kind: "output", data });
  }

  exit(id: number, code: number, detached?: boolean): void {
    this.route(id, { kind: "exit", code, detached });
  }

  /** The server stopped: its programs are gone; their terminals say why. */
  endAll(why: string): void {
    const sinks = [...this.sinks.values()];
    this.sinks.clear();
    this.early.clear();
    for (const sink of sinks) {
      sink.lost(why);
    }
  }

  get open(): number {
    return this.sinks.size;
  }

  private route(id: number, event: Pending): void {
    const sink = this.sinks.get(id);
    if (sink) {
      this.deliver(id, sink, event);
    } else {
      const list = this.early.get(id) ?? [];
      list.push(event);
      this.early.set(id, list);
    }
  }

  private deliver(id: number, sink: TerminalSink, event: Pending): void {
    if (event.kind === "output") {
      sink.output(event.data);
    } else {
      this.sinks.delete(id);
      sink.exit(event.code, event.detached);
    }
  }
}

/** What a terminal sends to the server (sandkit/terminalInput, Resize, Close). */
export interface TerminalChannel {
  input(terminal: number, data: string): void;
  resize(terminal: number, rows: number, cols: number): void;
  close(terminal: number): void;
}

export interface TerminalOptions {
  /** Runs once, when the terminal closes or its program (or session view) ends. */
  onEnd?: () => void;
  /** A session's terminal: a view of a program that outlives it. */
  session?: boolean;
  /** Its server stopped and it stays open saying so (until a key closes it). */
  onLost?: () => void;
}

// What the dead program may have left switched on in xterm (mouse reports, focus
// reports, bracketed paste): off, so that no report closes the terminal unread.
const RESET_MODES = "\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1004l\x1b[?2004l";
const REPORT = /^\x1b\[(?:I|O|M|<)/; // focus in/out, a mouse report

/** A VS Code terminal for one program in a sandbox; `start` asks the server for it
 * (sandkit.exec or sandkit.runAgent with stream) and answers its terminal id. */
export class SandboxTerminal implements vscode.Pseudoterminal {
  private readonly write = new vscode.EventEmitter<string>();
  private readonly done = new vscode.EventEmitter<number | void>();
  readonly onDidWrite = this.write.event;
  readonly onDidClose = this.done.event;
  private id: number | undefined;
  private closed = false;
  private ended = false;
  private lingering = false; // its server stopped: it shows why until a key closes it

  constructor(
    private readonly router: TerminalRouter,
    private readonly channel: TerminalChannel,
    private readonly start: (rows: number, cols: number) => Promise<number>,
    private readonly options: TerminalOptions = {},
  ) {}

  private end(): void {
    if (!this.ended) {
      this.ended = true;
      this.options.onEnd?.();
    }
  }

  async open(dimensions: vscode.TerminalDimensions | undefined): Promise<void> {
    try {
      const id = await this.start(dimensions?.rows ?? 24, dimensions?.columns ?? 80);
      if (this.closed) {
        this.channel.close(id); // closed while it was starting: end (or detach from) it
        return;
      }
      this.id = id;
      this.router.attach(id, {
        output: (data) => this.write.fire(data),
        exit: (code, detached) => {
          this.id = undefined; // ended: a later close must not reach another server's terminal
          this.end();
          if (detached) {
            this.write.fire("\r\n[sandkit: detached; the session runs on]\r\n");
          }
          this.done.fire(code);
        },
        // Not an exit code: VS Code would take it for the program's failure, alert, and
        // close the terminal (moving the focus) before anyone read why. The terminal stays,
        // as a finished task's does, until a key closes it.
        lost: (why) => {
          this.id = undefined;
          this.end();
          this.lingering = true;
          const what = this.options.session ? "the session runs on" : "this terminal's program ended with it";
          this.write.fire(`${RESET_MODES}\r\n[sandkit: ${why}; ${what}. Press any key to close.]\r\n`);
          this.options.onLost?.();
        },
      });
    } catch (err) {
      this.end();
      this.write.fire(`sandkit: ${err instanceof Error ? err.message : String(err)}\r\n`);
      this.done.fire(1);
    }
  }

  handleInput(data: string): void {
    if (this.lingering) {
      if (!REPORT.test(data)) {
        this.done.fire(); // a key, not xterm reporting the focus or the mouse
      }
    } else if (this.id !== undefined) {
      this.channel.input(this.id, data);
    }
  }

  setDimensions(dimensions: vscode.TerminalDimensions): void {
    if (this.id !== undefined) {
      this.channel.resize(this.id, dimensions.rows, dimensions.columns);
    }
  }

  close(): void {
    this.closed = true;
    this.end();
    if (this.id !== undefined) {
      this.channel.close(this.id);
    }
  }
}
