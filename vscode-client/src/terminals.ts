// Routes the server's terminal notifications to the terminal they belong to; output that
// arrives before the terminal learns its id (the exec's reply can come second) is kept.

export interface TerminalSink {
  output(data: string): void;
  exit(code: number): void;
}

type Pending = { kind: "output"; data: string } | { kind: "exit"; code: number };

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

  exit(id: number, code: number): void {
    this.route(id, { kind: "exit", code });
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
      sink.exit(event.code);
    }
  }
}
