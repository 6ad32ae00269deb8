// The Network Log view: the proxy's decisions, live (sandkit/decision) and fetched for one
// sandbox (sandkit.showNetworkLog); newest first, bounded, filtered by what a person asks to see.
import * as vscode from "vscode";
import type { DecisionRecord } from "../protocol";

export type Filter = "all" | "allowed" | "blocked";

export class DecisionLog {
  private records: DecisionRecord[] = [];
  private seen = new Map<string, number>(); // key -> when it arrived (a count)
  private arrivals = 0;
  filter: Filter = "all";

  constructor(private readonly limit = 500) {}

  /** A record arrives live and again in a fetched log (or from a restarted server): it
   * is shown once. */
  add(record: DecisionRecord): void {
    const key = recordKey(record);
    if (this.seen.has(key)) {
      return;
    }
    this.seen.set(key, ++this.arrivals);
    this.records.unshift(record);
    if (this.records.length > this.limit) {
      for (const dropped of this.records.splice(this.limit)) {
        this.seen.delete(recordKey(dropped));
      }
    }
  }

  /** Where arrivals stand now: pass it to `replace` with the log fetched from here on. */
  mark(): number {
    return this.arrivals;
  }

  /** The log fetched for `sandbox` (oldest first) in place of what is shown; what of it
   * arrived live after `since` (while the log was read) stays. */
  replace(records: DecisionRecord[], sandbox: string, since: number): void {
    const live = this.records
      .filter((r) => r.sandbox === sandbox && (this.seen.get(recordKey(r)) ?? 0) > since)
      .reverse();
    this.records = [];
    this.seen.clear();
    for (const record of [...records, ...live]) {
      this.add(record);
    }
  }

  visible(): DecisionRecord[] {
    return this.filter === "all" ? this.records : this.records.filter((r) => r.action === this.filter);
  }
}

function recordKey(r: DecisionRecord): string {
  return [r.sandbox, r.time, r.method, r.host, r.port, r.path ?? "", r.action].join("|");
}

export function describeDecision(r: DecisionRecord): { label: string; description: string; tooltip: string } {
  const where = r.path ? `${r.host}${r.path}` : `${r.host}:${r.port}`;
  const credentials = r.credentials ?? []; // records of older versions may lack it
  const creds = credentials.length ? `, credential ${credentials.join(", ")}` : "";
  const rule = r.origin ? `rule ${r.rule} (${r.origin})` : r.reason;
  return {
    label: `${r.action === "allowed" ? "allowed" : "blocked"} ${where}`,
    description: `${r.sandbox} · ${r.reason}${creds}`,
    tooltip: `${r.method} ${where}\n${r.action}: ${rule}\n${r.time}`,
  };
}

export class NetworkLogView implements vscode.TreeDataProvider<DecisionRecord> {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeTreeData = this.changed.event;
  readonly log = new DecisionLog();

  add(record: DecisionRecord): void {
    this.log.add(record);
    this.changed.fire();
  }

  mark(): number {
    return this.log.mark();
  }

  replace(records: DecisionRecord[], sandbox: string, since: number): void {
    this.log.replace(records, sandbox, since);
    this.changed.fire();
  }

  setFilter(filter: Filter): void {
    this.log.filter = filter;
    this.changed.fire();
  }

  getTreeItem(record: DecisionRecord): vscode.TreeItem {
    const text = describeDecision(record);
    const item = new vscode.TreeItem(text.label);
    item.description = text.description;
    item.tooltip = text.tooltip;
    item.iconPath = new vscode.ThemeIcon(record.action === "allowed" ? "pass" : "error");
    return item;
  }

  getChildren(): DecisionRecord[] {
    return this.log.visible();
  }
}
