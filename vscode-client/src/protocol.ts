// Mirrors server/sandkit/lsp/protocol.py, name for name and field for field (see there for
// what each message does); tests/lsp/test_protocol.py fails when the two differ.
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
export const ATTACH = "sandkit.attach";
export const STOP_SESSION = "sandkit.stopSession";
export const PUBLISH_PORT = "sandkit.publish";
export const UNPUBLISH_PORT = "sandkit.unpublish";
export const SET_SECRET = "sandkit.setSecret";
export const AGENT_VERBS = "sandkit.agentVerbs";
export const RUN_AGENT_VERB = "sandkit.runAgentVerb";

export const TERMINAL_OUTPUT = "sandkit/terminalOutput";
export const TERMINAL_EXIT = "sandkit/terminalExit";
export const TERMINAL_INPUT = "sandkit/terminalInput";
export const TERMINAL_RESIZE = "sandkit/terminalResize";
export const TERMINAL_CLOSE = "sandkit/terminalClose";
export const DECISION = "sandkit/decision";
export const SANDBOXES = "sandkit/sandboxes";

export const ALLOW_ONCE = "Allow once";
export const ALLOW_SANDBOX = "Allow for this sandbox";
export const ADD_TO_KIT = "Add to kit";
export const DENY = "Deny";
export const PUT_BACK = "Put them back";
export const DELETE_TOO = "Delete on the host too";
export const APPLY_ON_HOST = "Apply on the host";
export const PUBLISH = "Publish";
export const OPEN_IN_BROWSER = "Open in Browser";

export const USER_ERROR = -32001;
export const MISSING_CREDENTIALS = -32002;

export const WORKSPACE_FILE = ".sandkit.yaml";

// -- sandboxes ------------------------------------------------------------------------------
export interface SessionRow {
  name: string;
  running: boolean;
  exit_status: number | null;
  attached: number;
}

export interface PortRow {
  guest: number;
  host: number;
  host_ip: string;
}

export interface SandboxRow {
  name: string;
  state: string;
  agent: string;
  kits: string[];
  workspace: string | null;
  sync: string | null;
  error: string | null;
  sessions: SessionRow[] | null;
  ports: PortRow[];
}

export interface SandboxesParams {
  sandboxes: SandboxRow[];
}

export interface NameParams {
  name: string;
}

export interface Empty {}

export interface OpenWorkspaceParams {
  folder: string;
  agent?: string;
  kits?: string[];
  kitArgs?: Record<string, string>;
  name?: string;
  default?: string;
  memory?: string;
  docker?: boolean;
  resolve?: Record<string, string>;
  upstreamCa?: string;
}

export interface OpenWorkspaceResult {
  name: string;
  state: string;
  created: boolean;
}

export interface RemoveParams {
  name: string;
  force?: boolean;
}

export interface UndoParams {
  name: string;
  paths?: string[];
  last?: boolean;
}

export interface UndoResult {
  restored: string[];
}

export interface SetSecretParams {
  service: string;
  value: string;
  sandbox?: string;
}

export interface MissingCredentialsData {
  services: string[];
}

// -- terminals ------------------------------------------------------------------------------
export interface RunAgentParams {
  name: string;
  args?: string[];
  rows?: number;
  cols?: number;
}

export interface ExecParams {
  name: string;
  argv: string[];
  user?: string;
  cwd?: string;
  env?: Record<string, string>;
  pty?: boolean;
  rows?: number;
  cols?: number;
  stream?: boolean;
}

export interface AttachParams {
  name: string;
  session: string;
  rows?: number;
  cols?: number;
}

export interface SessionParams {
  name: string;
  session?: string;
}

export interface PortParams {
  name: string;
  spec: string;
}

export interface PortsResult {
  ports: PortRow[];
}

export interface TerminalStarted {
  terminal: number;
}

export interface ExecOutput {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TerminalOutputParams {
  terminal: number;
  data: string;
}

export interface TerminalExitParams {
  terminal: number;
  code: number;
  detached?: boolean;
}

export interface TerminalInputParams {
  terminal: number;
  data: string;
  eof?: boolean;
}

export interface TerminalResizeParams {
  terminal: number;
  rows: number;
  cols: number;
}

export interface TerminalCloseParams {
  terminal: number;
}

// -- network decisions ----------------------------------------------------------------------
export interface DecisionRecord {
  sandbox: string;
  method: string;
  scheme: string;
  host: string;
  port: number;
  action: "allowed" | "blocked";
  reason: string;
  path: string | null;
  rule: string | null;
  origin: string | null;
  credentials: string[];
  status: number | null;
  bytes_up: number;
  bytes_down: number;
  latency_ms: number;
  warnings: string[];
  time: string;
}

export interface DecisionParams {
  sandbox: string;
  record: DecisionRecord;
}

export interface ShowNetworkLogParams {
  name: string;
  limit?: number;
}

// -- kits -----------------------------------------------------------------------------------
export interface IssueRange {
  start: number[];
  end: number[];
}

export interface KitIssue {
  file: string;
  range: IssueRange;
  severity: string;
  code: string;
  message: string;
}

export interface ValidateKitParams {
  uri?: string;
  path?: string;
}

export interface ValidateKitResult {
  valid: boolean;
  issues: KitIssue[];
}

export interface NewKitParams {
  folder: string;
  name?: string;
  kind?: "mixin" | "sandbox";
}

export interface NewKitResult {
  uri: string;
}

export interface AgentVerbsResult {
  kit: string;
  verbs: ("prompt" | "continue" | "resume")[];
}

export interface RunAgentVerbParams {
  name: string;
  verb: "prompt" | "continue" | "resume";
  prompt?: string;
  sessionId?: string;
  rows?: number;
  cols?: number;
}

// -- what each message carries ----------------------------------------------------------------
export interface Commands {
  [OPEN_WORKSPACE]: { params: OpenWorkspaceParams; result: OpenWorkspaceResult };
  [RUN_AGENT]: { params: RunAgentParams; result: TerminalStarted };
  [EXEC]: { params: ExecParams; result: TerminalStarted | ExecOutput };
  [STOP]: { params: NameParams; result: Empty };
  [REMOVE]: { params: RemoveParams; result: Empty };
  [LIST]: { params: Empty; result: SandboxRow[] };
  [SHOW_NETWORK_LOG]: { params: ShowNetworkLogParams; result: DecisionRecord[] };
  [VALIDATE_KIT]: { params: ValidateKitParams; result: ValidateKitResult };
  [NEW_KIT]: { params: NewKitParams; result: NewKitResult };
  [UNDO]: { params: UndoParams; result: UndoResult };
  [ATTACH]: { params: AttachParams; result: TerminalStarted };
  [STOP_SESSION]: { params: SessionParams; result: Empty };
  [PUBLISH_PORT]: { params: PortParams; result: PortsResult };
  [UNPUBLISH_PORT]: { params: PortParams; result: PortsResult };
  [SET_SECRET]: { params: SetSecretParams; result: Empty };
  [AGENT_VERBS]: { params: NameParams; result: AgentVerbsResult };
  [RUN_AGENT_VERB]: { params: RunAgentVerbParams; result: TerminalStarted };
}

export interface ServerNotifications {
  [TERMINAL_OUTPUT]: TerminalOutputParams;
  [TERMINAL_EXIT]: TerminalExitParams;
  [DECISION]: DecisionParams;
  [SANDBOXES]: SandboxesParams;
}

export interface ClientNotifications {
  [TERMINAL_INPUT]: TerminalInputParams;
  [TERMINAL_RESIZE]: TerminalResizeParams;
  [TERMINAL_CLOSE]: TerminalCloseParams;
}
