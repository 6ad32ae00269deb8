// The Sandboxes view and the list behind it: the rows the server pushes (sandkit/sandboxes)
// whenever a sandbox is made, started, stopped or removed; nothing here asks for them.
import * as vscode from "vscode";
import type { SandboxRow } from "../protocol";

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
      return sandboxDetails(item.row).map(([key, value]) => {
        const detail = new vscode.TreeItem(key);
        detail.description = value;
        return detail;
      });
    }
    return this.sandboxes.rows.map((row) => new SandboxItem(row));
  }
}
