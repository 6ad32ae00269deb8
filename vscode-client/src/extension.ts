// The Sandkit extension: starts `sandkit lsp` (client.ts) and turns what it offers into VS
// Code UI: palette commands (commands.ts), the Sandboxes and Network Log views and a status
// bar item (views/), terminals whose programs run in a sandbox (terminal.ts).
import * as vscode from "vscode";
import { SandkitClient } from "./client";
import { registerCommands } from "./commands";
import * as protocol from "./protocol";
import { TerminalRouter } from "./terminal";
import { NetworkLogView } from "./views/networkLog";
import { Sandboxes, SandboxesView } from "./views/sandboxes";
import { statusItem } from "./views/status";

let client: SandkitClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  client = new SandkitClient();
  const router = new TerminalRouter();
  const sandboxes = new Sandboxes();
  const network = new NetworkLogView();
  const folders = (): string[] => (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);

  client.onNotification(protocol.TERMINAL_OUTPUT, (p) => router.output(p.terminal, p.data));
  client.onNotification(protocol.TERMINAL_EXIT, (p) => router.exit(p.terminal, p.code));
  client.onNotification(protocol.DECISION, (p) => network.add({ ...p.record, sandbox: p.sandbox }));
  client.onNotification(protocol.SANDBOXES, (p) => sandboxes.update(p.sandboxes));
  client.onDidStop(() => {
    router.endAll("the language server stopped");
    sandboxes.update([]); // until the next server says what there is
  });

  context.subscriptions.push(
    client,
    vscode.window.registerTreeDataProvider("sandkit.sandboxes", new SandboxesView(sandboxes)),
    vscode.window.registerTreeDataProvider("sandkit.networkLog", network),
    statusItem(sandboxes, folders),
    ...registerCommands({ client, router, sandboxes, network }),
  );
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
