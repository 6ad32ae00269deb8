// How the language server is started: pure, so it is tested without VS Code.
import * as path from "node:path";

export interface ServerSettings {
  path: string; // the sandkit executable, if set
  pythonPath: string; // or a Python whose environment has sandkit
}

export interface ServerCommand {
  command: string;
  args: string[];
}

/** `sandkit.path`, else `python -m sandkit` with `sandkit.pythonPath`, else the
 * `sandkit` next to the workspace's .venv (only in a trusted workspace: a cloned
 * repository could ship its own `.venv/bin/sandkit`), else `sandkit` on PATH. The two
 * settings are restricted configurations, so an untrusted workspace cannot set them. */
export function serverCommand(
  settings: ServerSettings,
  workspaceFolders: string[],
  exists: (p: string) => boolean,
  trusted = false,
): ServerCommand {
  if (settings.path.trim()) {
    return { command: settings.path.trim(), args: ["lsp"] };
  }
  if (settings.pythonPath.trim()) {
    return { command: settings.pythonPath.trim(), args: ["-m", "sandkit", "lsp"] };
  }
  for (const folder of trusted ? workspaceFolders : []) {
    const candidate = path.join(folder, ".venv", "bin", "sandkit");
    if (exists(candidate)) {
      return { command: candidate, args: ["lsp"] };
    }
  }
  return { command: "sandkit", args: ["lsp"] };
}

/** What the server reads from initializationOptions and didChangeConfiguration. */
export function serverSettings(
  get: (key: string) => unknown,
  workspaceTrusted = false,
): Record<string, unknown> {
  return {
    sandkit: {
      defaultAgent: get("defaultAgent") ?? "shell",
      defaultKits: get("defaultKits") ?? [],
      docker: get("docker") ?? false,
      approvalTimeout: get("approvalTimeout") ?? 60,
      workspaceTrusted,
    },
  };
}

/** The settings that choose the server's program. The others reach the running server in
 * workspace/didChangeConfiguration; a change of these starts another server. */
export const PROGRAM_SETTINGS = ["sandkit.path", "sandkit.pythonPath"];

export function choosesProgram(affects: (section: string) => boolean): boolean {
  return PROGRAM_SETTINGS.some((section) => affects(section));
}

/** Whether to start `next` in place of what runs: another program, or none running (it
 * never started, or it stopped: a corrected setting is given its chance). */
export function needsRestart(next: ServerCommand, running: ServerCommand | undefined): boolean {
  return (
    running === undefined ||
    next.command !== running.command ||
    next.args.length !== running.args.length ||
    next.args.some((arg, i) => arg !== running.args[i])
  );
}
