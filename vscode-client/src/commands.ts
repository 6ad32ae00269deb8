// The palette and context-menu commands (sandkit.ui.*): each asks the server to act; the
// views follow from what the server then pushes.
import * as vscode from "vscode";
import type { SandkitClient } from "./client";
import * as protocol from "./protocol";
import { SandboxTerminal, type TerminalChannel, type TerminalRouter } from "./terminal";
import type { Filter, NetworkLogView } from "./views/networkLog";
import { SandboxItem, type Sandboxes, impliedSandbox } from "./views/sandboxes";

export interface Parts {
  client: SandkitClient;
  router: TerminalRouter;
  sandboxes: Sandboxes;
  network: NetworkLogView;
}

type Command = (...args: unknown[]) => Promise<unknown>;

export function registerCommands({ client, router, sandboxes, network }: Parts): vscode.Disposable[] {
  const folders = (): string[] => (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath);
  const channel: TerminalChannel = {
    input: (terminal, data) => client.notify(protocol.TERMINAL_INPUT, { terminal, data }),
    resize: (terminal, rows, cols) => client.notify(protocol.TERMINAL_RESIZE, { terminal, rows, cols }),
    close: (terminal) => client.notify(protocol.TERMINAL_CLOSE, { terminal }),
  };

  const refresh = async (): Promise<void> => {
    sandboxes.update(await client.run(protocol.LIST, {}));
  };

  /** The sandbox a command is about: the tree item it was run on, the implied one, or
   * the one a person picks. */
  const pickSandbox = async (item?: unknown): Promise<string | undefined> => {
    if (item instanceof SandboxItem) {
      return item.row.name;
    }
    if (sandboxes.rows.length === 0) {
      await refresh(); // the first push may still be on its way
    }
    const implied = impliedSandbox(sandboxes.rows, folders());
    if (implied !== undefined) {
      return implied;
    }
    const picked = await vscode.window.showQuickPick(
      sandboxes.rows.map((r) => ({ label: r.name, description: `${r.state} · ${r.agent}` })),
      { placeHolder: "Sandbox" },
    );
    return picked?.label;
  };

  const openTerminal = (name: string, agent: boolean): void => {
    const pty = new SandboxTerminal(router, channel, async (rows, cols) => {
      const started = agent
        ? await client.run(protocol.RUN_AGENT, { name, rows, cols })
        : await client.run(protocol.EXEC, {
            name,
            argv: ["bash", "-l"],
            pty: true,
            stream: true,
            rows,
            cols,
          });
      if (!("terminal" in started)) {
        throw new Error("the server ran the program without a terminal");
      }
      return started.terminal;
    });
    const title = agent ? `Sandkit agent: ${name}` : `Sandkit: ${name}`;
    vscode.window.createTerminal({ name: title, pty }).show();
  };

  const commands: Record<string, Command> = {
    "sandkit.ui.openWorkspace": async () => {
      const folder = vscode.workspace.workspaceFolders?.[0];
      if (!folder) {
        throw new Error("open a folder first: the sandbox gets a copy of it");
      }
      const opened = await client.run(protocol.OPEN_WORKSPACE, { folder: folder.uri.toString() });
      openTerminal(opened.name, false);
      void vscode.window.showInformationMessage(
        `Sandkit: sandbox ${opened.name} is ${opened.created ? "created and " : ""}running.`,
      );
    },
    "sandkit.ui.runAgent": async (item) => {
      const name = await pickSandbox(item);
      if (name) {
        openTerminal(name, true);
      }
    },
    "sandkit.ui.openTerminal": async (item) => {
      const name = await pickSandbox(item);
      if (name) {
        openTerminal(name, false);
      }
    },
    "sandkit.ui.stop": async (item) => {
      const name = await pickSandbox(item);
      if (name) {
        await client.run(protocol.STOP, { name });
      }
    },
    "sandkit.ui.remove": async (item) => {
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
        await client.run(protocol.REMOVE, { name });
      }
    },
    "sandkit.ui.showNetworkLog": async () => {
      const name = await pickSandbox();
      if (name) {
        network.replace(await client.run(protocol.SHOW_NETWORK_LOG, { name }));
      }
      await vscode.commands.executeCommand("sandkit.networkLog.focus");
    },
    "sandkit.ui.filterNetworkLog": async () => {
      const picked = await vscode.window.showQuickPick(["all", "allowed", "blocked"], {
        placeHolder: "Show which requests",
      });
      if (picked) {
        network.setFilter(picked as Filter);
      }
    },
    "sandkit.ui.validateKit": async () => {
      const doc = vscode.window.activeTextEditor?.document;
      if (!doc) {
        throw new Error("open a kit's spec.yaml first");
      }
      const result = await client.run(protocol.VALIDATE_KIT, { uri: doc.uri.toString() });
      if (result.valid) {
        const warnings = result.issues.length ? ` (${result.issues.length} warnings)` : "";
        void vscode.window.showInformationMessage(`Sandkit: the kit is valid${warnings}.`);
      } else {
        void vscode.window.showErrorMessage(
          `Sandkit: ${result.issues.length} problem(s): ${result.issues[0]?.message ?? ""}`,
        );
        await vscode.commands.executeCommand("workbench.actions.view.problems");
      }
    },
    "sandkit.ui.newKit": async () => {
      const folder = vscode.workspace.workspaceFolders?.[0];
      if (!folder) {
        throw new Error("open a folder first");
      }
      const name = await vscode.window.showInputBox({ prompt: "Kit name", value: "my-kit" });
      if (!name) {
        return;
      }
      const kind = (await vscode.window.showQuickPick(["mixin", "sandbox"], { placeHolder: "Kind" })) ?? "mixin";
      const made = await client.run(protocol.NEW_KIT, {
        folder: folder.uri.fsPath,
        name,
        kind: kind as protocol.NewKitParams["kind"],
      });
      await vscode.window.showTextDocument(vscode.Uri.parse(made.uri));
    },
    "sandkit.ui.undo": async (item) => {
      const name = await pickSandbox(item);
      if (name) {
        const result = await client.run(protocol.UNDO, { name, last: true });
        void vscode.window.showInformationMessage(
          `Sandkit: restored ${result.restored.length} file(s) from ${name}'s trash.`,
        );
      }
    },
    "sandkit.ui.refresh": refresh,
    "sandkit.ui.restartServer": () => client.restart(),
  };

  return Object.entries(commands).map(([id, command]) =>
    vscode.commands.registerCommand(id, async (...args: unknown[]) => {
      try {
        await command(...args);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        void vscode.window.showErrorMessage(`Sandkit: ${message}`);
      }
    }),
  );
}
