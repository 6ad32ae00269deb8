// Mirrors server/sandkit/lsp/protocol.py: the server's commands and notifications.
export const OPEN_WORKSPACE = "sandkit.openWorkspace";
export const RUN_AGENT = "sandkit.runAgent";
export const EXEC = "sandkit.exec";
export const STOP = "sandkit.stop";
export const REMOVE = "sandkit.remove";
export const LIST = "sandkit.list";
export const SHOW_NETWORK_LOG = "sandkit.showNetworkLog";
export const VALIDATE_KIT = "sandkit.validateKit";
export const NEW_KIT = "sandkit.newKit";
export const UNDO = "sandkit.undo";

export const TERMINAL_OUTPUT = "sandkit/terminalOutput";
export const TERMINAL_EXIT = "sandkit/terminalExit";
export const TERMINAL_INPUT = "sandkit/terminalInput";
export const TERMINAL_RESIZE = "sandkit/terminalResize";
export const TERMINAL_CLOSE = "sandkit/terminalClose";
export const DECISION = "sandkit/decision";

export interface SandboxRow {
  name: string;
  state: string;
  agent: string;
  kits: string[];
  workspace: string | null;
  sync: string | null;
  error?: string | null;
}

export interface DecisionRecord {
  sandbox: string;
  method: string;
  scheme: string;
  host: string;
  port: number;
  action: "allowed" | "blocked";
  reason: string;
  path?: string | null;
  rule?: string | null;
  origin?: string | null;
  credentials?: string[];
  status?: number | null;
  time: string;
}
