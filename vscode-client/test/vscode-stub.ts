// A small stand-in for the `vscode` module, enough for the modules unit-tested here.
export class EventEmitter<T> {
  private listeners: ((value: T) => void)[] = [];
  event = (listener: (value: T) => void) => {
    this.listeners.push(listener);
    return { dispose: () => undefined };
  };
  fire(value: T): void {
    for (const l of this.listeners) l(value);
  }
}
export class TreeItem {
  description?: string;
  contextValue?: string;
  command?: { command: string; title: string; arguments?: unknown[] };
  constructor(public label: string, public collapsibleState?: number) {}
}
export const TreeItemCollapsibleState = { None: 0, Collapsed: 1, Expanded: 2 };
export class ThemeIcon {
  constructor(public id: string) {}
}

// Commands and messages, recorded for the tests to look at.
export const registered = new Map<string, (...args: unknown[]) => Promise<unknown>>();
export const messages: string[] = [];
export const commands = {
  registerCommand(id: string, fn: (...args: unknown[]) => Promise<unknown>) {
    registered.set(id, fn);
    return { dispose: () => registered.delete(id) };
  },
  executeCommand: async () => undefined,
};
// What a person answers, in order: to error and information messages with actions, and
// to input boxes (each records its options).
export const answers: { error: string[]; info: string[]; input: (string | undefined)[] } = {
  error: [],
  info: [],
  input: [],
};
export const inputs: Record<string, unknown>[] = [];
export const terminals: { name: string; pty: unknown; disposed?: boolean }[] = [];
export const opened: string[] = []; // env.openExternal
export const window = {
  showErrorMessage: async (message: string) => (messages.push(`error: ${message}`), answers.error.shift()),
  showInformationMessage: async (message: string) => (messages.push(`info: ${message}`), answers.info.shift()),
  showWarningMessage: async (message: string) => (messages.push(`warning: ${message}`), "Remove"),
  showQuickPick: async () => undefined,
  showInputBox: async (options: Record<string, unknown>) => (inputs.push(options), answers.input.shift()),
  createTerminal: (options: { name: string; pty: unknown }) => {
    const terminal: { name: string; pty: unknown; disposed?: boolean } = { ...options };
    terminals.push(terminal);
    return { show: () => undefined, dispose: () => void (terminal.disposed = true) };
  },
};
export const Uri = {
  parse: (value: string) => ({ toString: () => value }),
};
export const env = {
  openExternal: async (uri: { toString(): string }) => (opened.push(uri.toString()), true),
};
export const workspace: { workspaceFolders: { uri: { fsPath: string } }[] | undefined } = {
  workspaceFolders: undefined,
};
