// The Sandkit extension: starts `sandkit lsp` and turns its features into VS Code UI
// (palette commands, the Sandboxes and Network Log views, a status bar item, terminals).
import * as fs from "node:fs";
import * as vscode from "vscode";
import {
  ExecuteCommandRequest,
  LanguageClient,
  type LanguageClientOptions,
  type ServerOptions,
} from "vscode-languageclient/node";
import { DecisionLog, type Filter, describeDecision, sandboxDetails } from "./decisions";
import * as protocol from "./protocol";
import type { DecisionRecord, SandboxRow } from "./protocol";
import { serverCommand, serverSettings } from "./server";
import { TerminalRouter } from "./terminals";

let client: LanguageClient | undefined;

async function run<T>(command: string, args: Record<string, unknown> = {}): Promise<T> {
  if (!client) {
    throw new Error("the sandkit language server is not running");
  }
  return client.sendRequest(ExecuteCommandRequest.type, { command, arguments: [args] }) as Promise<T>;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// -- terminals ----------------------------------------------------------------------------
class SandboxTerminal implements vscode.Pseudoterminal {
  private readonly write = new vscode.EventEmitter<string>();
  private readonly done = new vscode.EventEmitter<number | void>();
  readonly onDidWrite = this.write.event;
  readonly onDidClose = this.done.event;
  private id: number | undefined;

  constructor(
    private readonly router: TerminalRouter,
    private readonly start: (rows: number, cols: number) => Promise<number>,
  ) {}

  private closed = false;

  async open(dimensions: vscode.TerminalDimensions | undefined): Promise<void> {
    try {
      this.id = await this.start(dimensions?.rows ?? 24, dimensions?.columns ?? 80);
      if (this.closed) {
        // closed while it was starting: end what started
        client?.sendNotification(protocol.TERMINAL_CLOSE, { terminal: this.id });
        return;
      }
      this.router.attach(this.id, {
        output: (data) => this.write.fire(data),
        exit: (code) => this.done.fire(code),
      });
    } catch (err) {
      this.write.fire(`sandkit: ${errorMessage(err)}\r\n`);
      this.done.fire(1);
    }
  }

  handleInput(data: string): void {
    if (this.id !== undefined) {
      client?.sendNotification(protocol.TERMINAL_INPUT, { terminal: this.id, data });
    }
  }

  setDimensions(dimensions: vscode.TerminalDimensions): void {
    if (this.id !== undefined) {
      client?.sendNotification(protocol.TERMINAL_RESIZE, {
        terminal: this.id,
        rows: dimensions.rows,
        cols: dimensions.columns,
      });
    }
  }

  close(): void {
    this.closed = true;
    if (this.id !== undefined) {
      client?.sendNotification(protocol.TERMINAL_CLOSE, { terminal: this.id });
    }
  }
}

// -- views --------------------------------------------------------------------------------
class SandboxItem extends vscode.TreeItem {
  constructor(readonly row: SandboxRow) {
    super(row.name, vscode.TreeItemCollapsibleState.Collapsed);
    this.description = row.state;
    this.contextValue = "sandbox";
    this.tooltip = row.error ?? `${row.agent} on ${row.workspace ?? "no workspace"}`;
    this.iconPath = new vscode.ThemeIcon(row.state === "running" ? "vm-running" : "vm");
  }
}

class SandboxesView implements vscode.TreeDataProvider<vscode.TreeItem> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  rows: SandboxRow[] = [];

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(item: vscode.TreeItem): vscode.TreeItem {
    return item;
  }

  async getChildren(item?: vscode.TreeItem): Promise<vscode.TreeItem[]> {
    if (item instanceof SandboxItem) {
      return sandboxDetails(item.row).map(([key, value]) => {
        const detail = new vscode.TreeItem(key);
        detail.description = value;
        return detail;
      });
    }
    try {
      this.rows = await run<SandboxRow[]>(protocol.LIST);
    } catch {
      this.rows = [];
    }
    return this.rows.map((row) => new SandboxItem(row));
  }
}

class NetworkLogView implements vscode.TreeDataProvider<DecisionRecord> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly log = new DecisionLog();

  refresh(): void {
    this.changed.fire();
  }

  getTreeItem(record: DecisionRecord): vscode.TreeItem {
    const text = describeDecision(record);
    const item = new vscode.TreeItem(text.label);
    item.description = text.description;
    item.tooltip = text.tooltip;
    item.iconPath = new vscode.ThemeIcon(record.action === "allowed" ? "pass" : "error");
    return item;
  }

  getChildren(): DecisionRecord[] {
    return this.log.visible();
  }
}

// -- activation -----------------------------------------------------------------------------
export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const config = vscode.workspace.getConfiguration("sandkit");
  const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  const command = serverCommand(
    { path: config.get<string>("path") ?? "", pythonPath: config.get<string>("pythonPath") ?? "" },
    folders,
    (p) => fs.existsSync(p),
    vscode.workspace.isTrusted,
  );
  const serverOptions: ServerOptions = { command: command.command, args: command.args };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [
      { scheme: "file", language: "yaml" },
      { scheme: "untitled", language: "yaml" },
    ],
    initializationOptions: serverSettings((key) => config.get(key), vscode.workspace.isTrusted),
    synchronize: { configurationSection: "sandkit" },
    outputChannelName: "Sandkit",
  };
  client = new LanguageClient("sandkit", "Sandkit", serverOptions, clientOptions);
  const router = new TerminalRouter();
  const sandboxes = new SandboxesView();
  const network = new NetworkLogView();
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  status.command = "sandkit.ui.openTerminal";
  context.subscriptions.push(
    status,
    vscode.window.registerTreeDataProvider("sandkit.sandboxes", sandboxes),
    vscode.window.registerTreeDataProvider("sandkit.networkLog", network),
  );

  client.onNotification(protocol.TERMINAL_OUTPUT, (p: { terminal: number; data: string }) =>
    router.output(p.terminal, p.data),
  );
  client.onNotification(protocol.TERMINAL_EXIT, (p: { terminal: number; code: number }) =>
    router.exit(p.terminal, p.code),
  );
  client.onNotification(protocol.DECISION, (p: { sandbox: string; record: DecisionRecord }) => {
    network.log.add({ ...p.record, sandbox: p.sandbox });
    network.refresh();
  });
  try {
    await client.start();
  } catch (err) {
    void vscode.window.showErrorMessage(
      `Sandkit: cannot start "${command.command} ${command.args.join(" ")}": ${errorMessage(err)}. ` +
        "Set sandkit.path or sandkit.pythonPath.",
    );
    return;
  }
  // Trust granted later: the server may now use the folder's .sandkit.yaml in full.
  context.subscriptions.push(
    vscode.workspace.onDidGrantWorkspaceTrust(() => {
      const current = vscode.workspace.getConfiguration("sandkit");
      void client?.sendNotification("workspace/didChangeConfiguration", {
        settings: serverSettings((key) => current.get(key), true),
      });
    }),
  );

  const updateStatus = (): void => {
    const mine = sandboxes.rows.find((r) => r.workspace !== null && folders.includes(r.workspace));
    if (mine) {
      status.text = `$(vm) ${mine.name}: ${mine.state}`;
      status.tooltip = "Open a terminal in this workspace's sandbox";
      status.show();
    } else {
      status.hide();
    }
  };
  const refresh = async (): Promise<void> => {
    try {
      sandboxes.rows = await run<SandboxRow[]>(protocol.LIST);
    } catch {
      return;
    }
    sandboxes.refresh();
    updateStatus();
  };
  const timer = setInterval(() => void refresh(), 3000);
  context.subscriptions.push({ dispose: () => clearInterval(timer) });

  const pickSandbox = async (item?: SandboxItem): Promise<string | undefined> => {
    if (item instanceof SandboxItem) {
      return item.row.name;
    }
    await refresh();
    const mine = sandboxes.rows.find((r) => r.workspace !== null && folders.includes(r.workspace));
    if (sandboxes.rows.length === 1 || (mine && sandboxes.rows.length > 0 && item === undefined && mine.state === "running")) {
      return (mine ?? sandboxes.rows[0]).name;
    }
    const picked = await vscode.window.showQuickPick(
      sandboxes.rows.map((r) => ({ label: r.name, description: `${r.state} · ${r.agent}` })),
      { placeHolder: "Sandbox" },
    );
    return picked?.label;
  };

  const openTerminal = (name: string, agent: boolean): vscode.Terminal => {
    const pty = new SandboxTerminal(router, async (rows, cols) => {
      const result = agent
        ? await run<{ terminal: number }>(protocol.RUN_AGENT, { name, rows, cols })
        : await run<{ terminal: number }>(protocol.EXEC, {
            name,
            argv: ["bash", "-l"],
            pty: true,
            stream: true,
            rows,
            cols,
          });
      return result.terminal;
    });
    const terminal = vscode.window.createTerminal({
      name: agent ? `Sandkit agent: ${name}` : `Sandkit: ${name}`,
      pty,
    });
    terminal.show();
    return terminal;
  };

  const guarded =
    (fn: (...args: any[]) => Promise<unknown>) =>
    async (...args: any[]): Promise<void> => {
      try {
        await fn(...args);
      } catch (err) {
        void vscode.window.showErrorMessage(`Sandkit: ${errorMessage(err)}`);
      }
      void refresh();
    };

  const register = (id: string, fn: (...args: any[]) => Promise<unknown>): void => {
    context.subscriptions.push(vscode.commands.registerCommand(id, guarded(fn)));
  };

  register("sandkit.ui.openWorkspace", async () => {
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder) {
      throw new Error("open a folder first: the sandbox gets a copy of it");
    }
    const opened = await run<{ name: string; created: boolean }>(protocol.OPEN_WORKSPACE, {
      folder: folder.uri.toString(),
    });
    openTerminal(opened.name, false);
    void vscode.window.showInformationMessage(
      `Sandkit: sandbox ${opened.name} is ${opened.created ? "created and " : ""}running.`,
    );
  });
  register("sandkit.ui.runAgent", async (item?: SandboxItem) => {
    const name = await pickSandbox(item);
    if (name) {
      openTerminal(name, true);
    }
  });
  register("sandkit.ui.openTerminal", async (item?: SandboxItem) => {
    const name = await pickSandbox(item);
    if (name) {
      openTerminal(name, false);
    }
  });
  register("sandkit.ui.stop", async (item?: SandboxItem) => {
    const name = await pickSandbox(item);
    if (name) {
      await run(protocol.STOP, { name });
    }
  });
  register("sandkit.ui.remove", async (item?: SandboxItem) => {
    const name = await pickSandbox(item);
    if (!name) {
      return;
    }
    const sure = await vscode.window.showWarningMessage(
      `Remove sandbox ${name}? Its disk, logs and trash go; your workspace stays.`,
      { modal: true },
      "Remove",
    );
    if (sure === "Remove") {
      await run(protocol.REMOVE, { name });
    }
  });
  register("sandkit.ui.showNetworkLog", async () => {
    const name = await pickSandbox();
    if (name) {
      network.log.replace(await run<DecisionRecord[]>(protocol.SHOW_NETWORK_LOG, { name }));
      network.refresh();
    }
    await vscode.commands.executeCommand("sandkit.networkLog.focus");
  });
  register("sandkit.ui.filterNetworkLog", async () => {
    const picked = await vscode.window.showQuickPick(["all", "allowed", "blocked"], {
      placeHolder: "Show which requests",
    });
    if (picked) {
      network.log.filter = picked as Filter;
      network.refresh();
    }
  });
  register("sandkit.ui.validateKit", async () => {
    const doc = vscode.window.activeTextEditor?.document;
    if (!doc) {
      throw new Error("open a kit's spec.yaml first");
    }
    const result = await run<{ valid: boolean; issues: { message: string }[] }>(protocol.VALIDATE_KIT, {
      uri: doc.uri.toString(),
    });
    if (result.valid) {
      void vscode.window.showInformationMessage(
        `Sandkit: the kit is valid${result.issues.length ? ` (${result.issues.length} warnings)` : ""}.`,
      );
    } else {
      void vscode.window.showErrorMessage(
        `Sandkit: ${result.issues.length} problem(s): ${result.issues[0]?.message ?? ""}`,
      );
      await vscode.commands.executeCommand("workbench.actions.view.problems");
    }
  });
  register("sandkit.ui.newKit", async () => {
    const folder = vscode.workspace.workspaceFolders?.[0];
    if (!folder) {
      throw new Error("open a folder first");
    }
    const name = await vscode.window.showInputBox({ prompt: "Kit name", value: "my-kit" });
    if (!name) {
      return;
    }
    const kind = await vscode.window.showQuickPick(["mixin", "sandbox"], { placeHolder: "Kind" });
    const made = await run<{ uri: string }>(protocol.NEW_KIT, {
      folder: folder.uri.fsPath,
      name,
      kind: kind ?? "mixin",
    });
    await vscode.window.showTextDocument(vscode.Uri.parse(made.uri));
  });
  register("sandkit.ui.undo", async (item?: SandboxItem) => {
    const name = await pickSandbox(item);
    if (name) {
      const result = await run<{ restored: string[] }>(protocol.UNDO, { name, last: true });
      void vscode.window.showInformationMessage(
        `Sandkit: restored ${result.restored.length} file(s) from ${name}'s trash.`,
      );
    }
  });
  register("sandkit.ui.refresh", refresh);
  void refresh();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}
