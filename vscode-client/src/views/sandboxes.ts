// The Sandboxes view and the list behind it: the rows the server pushes (sandkit/sandboxes)
// whenever a sandbox is made, started, stopped or removed, or its sessions or published
// ports change; nothing here asks for them. Under each sandbox: its details, its sessions
// (Attach / Stop) and its published ports (Open in Browser / Unpublish).
import * as vscode from "vscode";
import type { PortRow, SandboxRow, SessionRow } from "../protocol";

export class Sandboxes {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  rows: SandboxRow[] = [];

  update(rows: SandboxRow[]): void {
    this.rows = rows;
    this.changed.fire();
  }
}

/** The sandbox of one of these folders, if any. */
export function workspaceSandbox(rows: SandboxRow[], folders: string[]): SandboxRow | undefined {
  return rows.find((r) => r.workspace !== null && folders.includes(r.workspace));
}

/** The sandbox a command means when none was named: the only one, or this workspace's
 * while it runs; undefined when a person has to choose. */
export function impliedSandbox(rows: SandboxRow[], folders: string[]): string | undefined {
  if (rows.length === 1) {
    return rows[0].name;
  }
  const mine = workspaceSandbox(rows, folders);
  return mine?.state === "running" ? mine.name : undefined;
}

export function sandboxDetails(row: SandboxRow): [string, string][] {
  const details: [string, string][] = [
    ["state", row.state],
    ["agent", row.agent],
    ["kits", row.kits.length ? row.kits.join(", ") : "none"],
    ["workspace", row.workspace ?? "none"],
  ];
  if (row.sync) {
    details.push(["sync", row.sync]);
  }
  if (row.error) {
    details.push(["error", row.error]);
  }
  return details;
}

export class SandboxItem extends vscode.TreeItem {
  constructor(readonly row: SandboxRow) {
    super(row.name, vscode.TreeItemCollapsibleState.Collapsed);
    this.description = row.state;
    this.contextValue = "sandbox";
    this.tooltip = row.error ?? `${row.agent} on ${row.workspace ?? "no workspace"}`;
    this.iconPath = new vscode.ThemeIcon(row.state === "running" ? "vm-running" : "vm");
  }
}

export function sessionDescription(session: SessionRow): string {
  if (!session.running) {
    return session.exit_status === null ? "ended" : `exited ${session.exit_status}`;
  }
  return session.attached ? `running · ${session.attached} attached` : "running";
}

export class SessionItem extends vscode.TreeItem {
  constructor(
    readonly sandbox: string,
    readonly session: SessionRow,
  ) {
    super(`session ${session.name}`, vscode.TreeItemCollapsibleState.None);
    this.description = sessionDescription(session);
    this.contextValue = session.running ? "session" : "session-ended";
    this.iconPath = new vscode.ThemeIcon(session.running ? "terminal" : "debug-stop");
    if (session.running) {
      this.command = { command: "sandkit.ui.attachSession", title: "Attach", arguments: [this] };
    }
  }
}

export class PortItem extends vscode.TreeItem {
  constructor(
    readonly sandbox: string,
    readonly port: PortRow,
  ) {
    super(`port ${port.guest}`, vscode.TreeItemCollapsibleState.None);
    this.description = `${port.host_ip}:${port.host}`;
    this.contextValue = "port";
    this.iconPath = new vscode.ThemeIcon("globe");
    this.command = { command: "sandkit.ui.openPort", title: "Open in Browser", arguments: [this] };
  }
}

export class SandboxesView implements vscode.TreeDataProvider<vscode.TreeItem> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly sandboxes: Sandboxes) {
    sandboxes.onDidChange(() => this.changed.fire());
  }

  getTreeItem(item: vscode.TreeItem): vscode.TreeItem {
    return item;
  }

  getChildren(item?: vscode.TreeItem): vscode.TreeItem[] {
    if (item instanceof SandboxItem) {
      const details = sandboxDetails(item.row).map(([key, value]) => {
        const detail = new vscode.TreeItem(key);
        detail.description = value;
        return detail;
      });
      const sessions = (item.row.sessions ?? []).map((s) => new SessionItem(item.row.name, s));
      const ports = item.row.ports.map((p) => new PortItem(item.row.name, p));
      return [...details, ...sessions, ...ports];
    }
    return this.sandboxes.rows.map((row) => new SandboxItem(row));
  }
}
