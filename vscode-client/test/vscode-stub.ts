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
export const window = {
  showErrorMessage: async (message: string) => void messages.push(`error: ${message}`),
  showInformationMessage: async (message: string) => void messages.push(`info: ${message}`),
  showWarningMessage: async (message: string) => (messages.push(`warning: ${message}`), "Remove"),
  showQuickPick: async () => undefined,
};
export const workspace: { workspaceFolders: { uri: { fsPath: string } }[] | undefined } = {
  workspaceFolders: undefined,
};
