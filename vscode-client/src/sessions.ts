// Sessions and published ports on the editor's side: which session terminals this window
// has open, which ones to reopen after a window reload (or a new language server), and
// the few facts the commands need about ports and missing credentials.
import type { PortRow, SandboxRow } from "./protocol";
import { MISSING_CREDENTIALS } from "./protocol";
import { workspaceSandbox } from "./views/sandboxes";

export const AGENT_SESSION = "agent";

const key = (sandbox: string, session: string): string => `${sandbox}\u0000${session}`;

/** The session terminals open in this window, so that none is opened twice. */
export class OpenSessions {
  private readonly open = new Set<string>();
  // Views whose language server stopped, still open saying so: closed when their session
  // is opened again (the restorer does, for the next server), so that one tab shows it.
  private readonly stale = new Map<string, () => void>();

  has(sandbox: string, session: string): boolean {
    return this.open.has(key(sandbox, session));
  }

  /** Marks it open (closing a stale view of it); answers the function that marks it
   * closed again. */
  add(sandbox: string, session: string): () => void {
    const k = key(sandbox, session);
    this.stale.get(k)?.();
    this.stale.delete(k);
    this.open.add(k);
    return () => this.open.delete(k);
  }

  /** A view of it lost its server and stays open: `close` closes it. */
  lost(sandbox: string, session: string, close: () => void): void {
    this.stale.set(key(sandbox, session), close);
  }
}

/** Reopens a terminal for each running session of the workspace's sandbox, once per
 * language server: a new window (or a reload) has none, and the sessions ran on. A session
 * whose terminal a person closed later is not reopened (closing it meant detaching). */
export class SessionRestorer {
  private restored = new Set<string>();

  constructor(
    private readonly open: OpenSessions,
    private readonly reopen: (sandbox: string, session: string) => void,
  ) {}

  update(rows: SandboxRow[], folders: string[]): void {
    const mine = workspaceSandbox(rows, folders);
    if (mine === undefined || mine.state !== "running" || mine.sessions === null) {
      return; // not running, or its sessions not known yet: wait for the next push
    }
    if (this.restored.has(mine.name)) {
      return;
    }
    this.restored.add(mine.name);
    for (const session of mine.sessions) {
      if (session.running && !this.open.has(mine.name, session.name)) {
        this.reopen(mine.name, session.name);
      }
    }
  }

  /** A new language server: its first push restores again (the old terminals ended). */
  reset(): void {
    this.restored.clear();
  }
}

/** `[HOST_PORT:]GUEST_PORT` as typed, or why not. */
export function checkPortSpec(text: string): string | undefined {
  const match = /^\s*(?:(\d{1,5}):)?(\d{1,5})\s*$/.exec(text);
  if (!match) {
    return "write GUEST_PORT or HOST_PORT:GUEST_PORT, e.g. 8000 or 18000:8000";
  }
  for (const port of [match[1], match[2]]) {
    if (port !== undefined && (Number(port) < 1 || Number(port) > 65535)) {
      return `${port} is not a port (1-65535)`;
    }
  }
  return undefined;
}

/** Where a published port answers on this machine. */
export function portUrl(port: PortRow): string {
  const ip = port.host_ip === "0.0.0.0" || port.host_ip === "" ? "127.0.0.1" : port.host_ip;
  const host = ip.includes(":") ? `[${ip}]` : ip;
  return `http://${host}:${port.host}/`;
}

/** The services a failed command found without a value (sandkit.openWorkspace refusing
 * to boot), or undefined for any other error. */
export function missingCredentials(err: unknown): string[] | undefined {
  if (typeof err !== "object" || err === null) {
    return undefined;
  }
  const { code, data } = err as { code?: unknown; data?: { services?: unknown } };
  const services = data?.services;
  if (code !== MISSING_CREDENTIALS || !Array.isArray(services)) {
    return undefined;
  }
  return services.filter((s): s is string => typeof s === "string");
}
