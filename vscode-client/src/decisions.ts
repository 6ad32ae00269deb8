// The network log's model: newest first, bounded, filtered by what a person asks to see.
import type { DecisionRecord } from "./protocol";

export type Filter = "all" | "allowed" | "blocked";

export class DecisionLog {
  private records: DecisionRecord[] = [];
  private seen = new Set<string>();
  filter: Filter = "all";

  constructor(private readonly limit = 500) {}

  /** A record arrives live and again in a fetched log: it is shown once. */
  add(record: DecisionRecord): void {
    const key = recordKey(record);
    if (this.seen.has(key)) {
      return;
    }
    this.seen.add(key);
    this.records.unshift(record);
    if (this.records.length > this.limit) {
      for (const dropped of this.records.splice(this.limit)) {
        this.seen.delete(recordKey(dropped));
      }
    }
  }

  replace(records: DecisionRecord[]): void {
    this.records = [];
    this.seen.clear();
    for (const record of records) {
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
  const creds = r.credentials && r.credentials.length ? `, credential ${r.credentials.join(", ")}` : "";
  const rule = r.origin ? `rule ${r.rule} (${r.origin})` : r.reason;
  return {
    label: `${r.action === "allowed" ? "allowed" : "blocked"} ${where}`,
    description: `${r.sandbox} · ${r.reason}${creds}`,
    tooltip: `${r.method} ${where}\n${r.action}: ${rule}\n${r.time}`,
  };
}

export function sandboxDetails(row: { state: string; agent: string; kits: string[]; workspace: string | null; sync: string | null }): [string, string][] {
  const details: [string, string][] = [
    ["state", row.state],
    ["agent", row.agent],
    ["kits", row.kits.length ? row.kits.join(", ") : "none"],
    ["workspace", row.workspace ?? "none"],
  ];
  if (row.sync) {
    details.push(["sync", row.sync]);
  }
  return details;
}
