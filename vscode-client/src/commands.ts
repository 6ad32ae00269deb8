// The palette and context-menu commands (sandkit.ui.*): each asks the server to act; the
// views follow from what the server then pushes.
import * as vscode from "vscode";
import { type SessionVerb, VERB_COMMANDS, undeclared } from "./agentVerbs";
import type { SandkitClient } from "./client";
import * as protocol from "./protocol";
import { AGENT_SESSION, OpenSessions, checkPortSpec, missingCredentials, portUrl } from "./sessions";
import { SandboxTerminal, type TerminalChannel, type TerminalRouter } from "./terminal";
import type { Filter, NetworkLogView } from "./views/networkLog";
import { PortItem, SandboxItem, type Sandboxes, SessionItem, impliedSandbox } from "./views/sandboxes";

export interface Parts {
  client: SandkitClient;
  router: TerminalRouter;
  sandboxes: Sandboxes;
  network: NetworkLogView;
  sessions?: OpenSessions; // the session terminals open in this window
}

type Command = (...args: unknown[]) => Promise<unknown>;

export const SET_SECRET_ACTION = "Set secret…";

export function registerCommands({
  client,
  router,
  sandboxes,
  network,
  sessions = new OpenSessions(),
}: Parts): vscode.Disposable[] {
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

  /** A terminal on a session: the agent's (started if need be) or another running one. */
  const openSession = (name: string, session: string): void => {
    if (sessions.has(name, session)) {
      return; // this window shows it already
    }
    const closed = sessions.add(name, session);
    const pty = new SandboxTerminal(
      router,
      channel,
      async (rows, cols) =>
        session === AGENT_SESSION
          ? (await client.run(protocol.RUN_AGENT, { name, rows, cols })).terminal
          : (await client.run(protocol.ATTACH, { name, session, rows, cols })).terminal,
      { onEnd: closed, session: true, onLost: () => sessions.lost(name, session, () => terminal.dispose()) },
    );
    const title = session === AGENT_SESSION ? `Sandkit agent: ${name}` : `Sandkit ${session}: ${name}`;
    const terminal = vscode.window.createTerminal({ name: title, pty });
    terminal.show();
  };

  const openTerminal = (name: string, agent: boolean): void => {
    if (agent) {
      openSession(name, AGENT_SESSION);
      return;
    }
    const pty = new SandboxTerminal(router, channel, async (rows, cols) => {
      const started = await client.run(protocol.EXEC, {
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
    vscode.window.createTerminal({ name: `Sandkit: ${name}`, pty }).show();
  };

  /** A session verb of the sandbox's agent kit, as `sandkit run --prompt/--continue/
   * --resume` runs it: its own agent process, in a terminal that owns it. A verb the kit
   * does not declare is said, naming the kit, and nothing is started. */
  const runVerb = async (item: unknown, verb: SessionVerb): Promise<void> => {
    const name = await pickSandbox(item);
    if (!name) {
      return;
    }
    const why = undeclared(verb, await client.run(protocol.AGENT_VERBS, { name }));
    if (why !== undefined) {
      void vscode.window.showWarningMessage(`Sandkit: ${why}`);
      return;
    }
    const params: protocol.RunAgentVerbParams = { name, verb };
    if (verb === "prompt") {
      const prompt = await vscode.window.showInputBox({
        prompt: `What should the agent of ${name} do? (the kit's prompt verb, as \`sandkit run --prompt\`)`,
        placeHolder: "a prompt for the agent",
        ignoreFocusOut: true,
      });
      if (!prompt?.trim()) {
        return;
      }
      params.prompt = prompt;
    } else if (verb === "resume") {
      const id = await vscode.window.showInputBox({
        prompt: `Session to resume in ${name} (as \`sandkit run --resume ID\`)`,
        placeHolder: "the agent's session id",
        ignoreFocusOut: true,
        validateInput: (value) => (value.trim() ? undefined : "the id of one of the agent's sessions"),
      });
      if (!id?.trim()) {
        return;
      }
      params.sessionId = id.trim();
    }
    const pty = new SandboxTerminal(
      router,
      channel,
      async (rows, cols) => (await client.run(protocol.RUN_AGENT_VERB, { ...params, rows, cols })).terminal,
    );
    vscode.window.createTerminal({ name: `Sandkit agent (${verb}): ${name}`, pty }).show();
  };

  /** Asks for each missing secret (hidden input) and stores it; false if one was not given. */
  const askSecrets = async (services: string[]): Promise<boolean> => {
    for (const service of services) {
      const value = await vscode.window.showInputBox({
        prompt: `Value of the secret "${service}" (stored in sandkit's secret store, like \`sandkit secret set\`)`,
        password: true,
        ignoreFocusOut: true,
      });
      if (!value) {
        return false;
      }
      await client.run(protocol.SET_SECRET, { service, value });
    }
    return true;
  };

  const openInBrowser = async (port: protocol.PortRow): Promise<void> => {
    await vscode.env.openExternal(vscode.Uri.parse(portUrl(port)));
  };

  const commands: Record<string, Command> = {
    "sandkit.ui.openWorkspace": async () => {
      const folder = vscode.workspace.workspaceFolders?.[0];
      if (!folder) {
        throw new Error("open a folder first: the sandbox gets a copy of it");
      }
      let opened: protocol.OpenWorkspaceResult;
      for (;;) {
        try {
          opened = await client.run(protocol.OPEN_WORKSPACE, { folder: folder.uri.toString() });
          break;
        } catch (err) {
          const services = missingCredentials(err);
          if (services === undefined) {
            throw err;
          }
          const message = err instanceof Error ? err.message : String(err);
          const action = await vscode.window.showErrorMessage(`Sandkit: ${message}`, SET_SECRET_ACTION);
          if (action !== SET_SECRET_ACTION || !(await askSecrets(services))) {
            return;
          }
        }
      }
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
    ...Object.fromEntries(
      Object.entries(VERB_COMMANDS).map(([id, verb]): [string, Command] => [id, (item) => runVerb(item, verb)]),
    ),
    "sandkit.ui.stopAgent": async (item) => {
      const name = await pickSandbox(item);
      if (name) {
        await client.run(protocol.STOP_SESSION, { name, session: AGENT_SESSION });
      }
    },
    // From the view (a SessionItem), or (sandbox, session) when the extension restores one.
    "sandkit.ui.attachSession": async (item, session) => {
      if (item instanceof SessionItem) {
        openSession(item.sandbox, item.session.name);
      } else if (typeof item === "string" && typeof session === "string") {
        openSession(item, session);
      }
    },
    "sandkit.ui.stopSession": async (item) => {
      if (item instanceof SessionItem) {
        await client.run(protocol.STOP_SESSION, { name: item.sandbox, session: item.session.name });
      }
    },
    "sandkit.ui.publishPort": async (item) => {
      const name = await pickSandbox(item);
      if (!name) {
        return;
      }
      const spec = await vscode.window.showInputBox({
        prompt: `Publish a port of sandbox ${name} on this machine (127.0.0.1)`,
        placeHolder: "[HOST_PORT:]GUEST_PORT, e.g. 8000 or 18000:8000",
        validateInput: checkPortSpec,
      });
      if (!spec) {
        return;
      }
      const result = await client.run(protocol.PUBLISH_PORT, { name, spec: spec.trim() });
      const guest = Number(spec.trim().split(":").pop());
      const port = result.ports.find((p) => p.guest === guest);
      if (port) {
        const open = await vscode.window.showInformationMessage(
          `Sandkit: port ${guest} of ${name} is at ${portUrl(port)}`,
          protocol.OPEN_IN_BROWSER,
        );
        if (open === protocol.OPEN_IN_BROWSER) {
          await openInBrowser(port);
        }
      }
    },
    "sandkit.ui.openPort": async (item) => {
      if (item instanceof PortItem) {
        await openInBrowser(item.port);
      }
    },
    "sandkit.ui.unpublishPort": async (item) => {
      if (item instanceof PortItem) {
        await client.run(protocol.UNPUBLISH_PORT, { name: item.sandbox, spec: String(item.port.guest) });
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
        const since = network.mark(); // what arrives live while the log is read stays
        network.replace(await client.run(protocol.SHOW_NETWORK_LOG, { name }), name, since);
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
