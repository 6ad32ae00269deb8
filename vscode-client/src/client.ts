// The language client, after vscode-python-tools-extension-template: settings flow to the
// server (initializationOptions, then workspace/didChangeConfiguration), and a change of
// the settings that choose the server's program starts another server in its place. The
// notification handlers and the output channel carry over from one server to the next.
import * as fs from "node:fs";
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  State,
} from "vscode-languageclient/node";
import type { ClientNotifications, Commands, ServerNotifications } from "./protocol";
import { type ServerCommand, choosesProgram, needsRestart, serverCommand, serverSettings } from "./server";

type Handler = { method: string; handler: (params: any) => void };

export class SandkitClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private program: ServerCommand | undefined; // what `client` runs
  private readonly handlers: Handler[] = [];
  private readonly output = vscode.window.createOutputChannel("Sandkit");
  private readonly stopped = new vscode.EventEmitter<void>();
  private readonly disposables: vscode.Disposable[] = [];
  private queue: Promise<void> = Promise.resolve();
  /** The server stopped (restarted, crashed, or could not start): what it ran is gone. */
  readonly onDidStop = this.stopped.event;

  constructor() {
    this.disposables.push(
      this.output,
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (choosesProgram((section) => e.affectsConfiguration(section))) {
          void this.start(true);
        } else if (e.affectsConfiguration("sandkit")) {
          void this.next(() => this.sendSettings());
        }
      }),
      // Trust granted: the folder's own settings and .venv may now choose another server,
      // and the server may use the folder's .sandkit.yaml in full.
      vscode.workspace.onDidGrantWorkspaceTrust(() => void this.start(true)),
    );
  }

  /** Calls `handler` for each such notification, from this server and the next ones. */
  onNotification<M extends keyof ServerNotifications>(
    method: M,
    handler: (params: ServerNotifications[M]) => void,
  ): void {
    this.handlers.push({ method, handler });
    this.client?.onNotification(method, handler);
  }

  async run<M extends keyof Commands>(
    command: M,
    args: Commands[M]["params"],
  ): Promise<Commands[M]["result"]> {
    await this.queue; // a server being started is waited for
    if (this.client?.state !== State.Running) {
      throw new Error("the sandkit language server is not running (see the Sandkit output)");
    }
    return this.client.sendRequest(ExecuteCommandRequest.type, { command, arguments: [args] });
  }

  notify<M extends keyof ClientNotifications>(method: M, params: ClientNotifications[M]): void {
    if (this.client?.state === State.Running) {
      void this.client.sendNotification(method, params);
    }
  }

  /** Starts the server the settings name, in place of the one running if that is another
   * program or none runs; otherwise, with `settingsChanged`, sends the settings again. */
  start(settingsChanged = false): Promise<void> {
    return this.next(() => this.startNow(settingsChanged));
  }

  /** Stops the server and starts it again, whatever the settings say. */
  restart(): Promise<void> {
    return this.next(async () => {
      await this.stop();
      await this.startNow(false);
    });
  }

  /** One start or stop at a time, in the order asked. */
  private next(step: () => Promise<void>): Promise<void> {
    this.queue = this.queue.then(step).catch((err) => {
      this.output.appendLine(`sandkit: ${err instanceof Error ? err.message : String(err)}`);
    });
    return this.queue;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.program = undefined;
    if (client !== undefined) {
      try {
        await client.dispose();
      } catch {
        // it never started, or is gone already
      }
      this.stopped.fire();
    }
  }

  dispose(): void {
    void this.stop().finally(() => {
      for (const disposable of this.disposables) {
        disposable.dispose();
      }
    });
  }

  /** The settings the server reads, to the running server (not the language client's
   * own `synchronize`, which would also send them to a server being stopped). */
  private async sendSettings(): Promise<void> {
    if (this.client?.state === State.Running) {
      const config = vscode.workspace.getConfiguration("sandkit");
      await this.client.sendNotification("workspace/didChangeConfiguration", {
        settings: serverSettings((key) => config.get(key), vscode.workspace.isTrusted),
      });
    }
  }

  private async startNow(settingsChanged: boolean): Promise<void> {
    const trusted = vscode.workspace.isTrusted;
    const config = vscode.workspace.getConfiguration("sandkit");
    const next = serverCommand(
      { path: config.get<string>("path") ?? "", pythonPath: config.get<string>("pythonPath") ?? "" },
      (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
      (p) => fs.existsSync(p),
      trusted,
    );
    const running = this.client?.state === State.Running ? this.program : undefined;
    if (!needsRestart(next, running)) {
      if (settingsChanged) {
        await this.sendSettings();
      }
      return;
    }
    await this.stop();
    const options: LanguageClientOptions = {
      documentSelector: [
        { scheme: "file", language: "yaml" },
        { scheme: "untitled", language: "yaml" },
      ],
      initializationOptions: serverSettings((key) => config.get(key), trusted),
      outputChannel: this.output,
    };
    const program = { command: next.command, args: next.args };
    const client = new LanguageClient("sandkit", "Sandkit", program, options);
    for (const { method, handler } of this.handlers) {
      client.onNotification(method, handler);
    }
    client.onDidChangeState((e) => {
      if (e.oldState === State.Running && client === this.client) {
        this.stopped.fire(); // crashed (the client may start it again)
      }
    });
    this.client = client;
    this.program = next;
    try {
      await client.start();
    } catch (err) {
      this.output.appendLine(`cannot start ${next.command} ${next.args.join(" ")}: ${String(err)}`);
      void vscode.window.showErrorMessage(
        `Sandkit: cannot start "${next.command} ${next.args.join(" ")}": ` +
          `${err instanceof Error ? err.message : String(err)}. Set sandkit.path or sandkit.pythonPath.`,
      );
    }
  }
}
