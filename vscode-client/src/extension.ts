// The Sandkit extension: starts `sandkit lsp` (client.ts) and turns what it offers into VS
// Code UI: palette commands (commands.ts), the Sandboxes and Network Log views and a status
// bar item (views/), terminals whose programs run in a sandbox (terminal.ts), the agent's
// a view of a session that outlives it (sessions.ts).
import * as vscode from "vscode";
import { SandkitClient } from "./client";
import { registerCommands } from "./commands";
import * as protocol from "./protocol";
import { OpenSessions, SessionRestorer } from "./sessions";
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

  const sessions = new OpenSessions();
  // After a window reload the sessions of this workspace's sandbox ran on: their terminals
  // come back, each replaying its screen.
  const restorer = new SessionRestorer(sessions, (name, session) => {
    void vscode.commands.executeCommand("sandkit.ui.attachSession", name, session);
  });

  client.onNotification(protocol.TERMINAL_OUTPUT, (p) => router.output(p.terminal, p.data));
  client.onNotification(protocol.TERMINAL_EXIT, (p) => router.exit(p.terminal, p.code, p.detached));
  client.onNotification(protocol.DECISION, (p) => network.add({ ...p.record, sandbox: p.sandbox }));
  client.onNotification(protocol.SANDBOXES, (p) => {
    sandboxes.update(p.sandboxes);
    restorer.update(p.sandboxes, folders());
  });
  client.onDidStop(() => {
    router.endAll("the language server stopped");
    restorer.reset(); // the next server's sessions are attached to again
    sandboxes.update([]); // until the next server says what there is
  });

  context.subscriptions.push(
    client,
    vscode.window.registerTreeDataProvider("sandkit.sandboxes", new SandboxesView(sandboxes)),
    vscode.window.registerTreeDataProvider("sandkit.networkLog", network),
    statusItem(sandboxes, folders),
    ...registerCommands({ client, router, sandboxes, network, sessions }),
  );
  await client.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
  client = undefined;
}
