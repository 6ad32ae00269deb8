// The status bar item: this workspace's sandbox and its state; a click opens a terminal in it.
import * as vscode from "vscode";
import { type Sandboxes, workspaceSandbox } from "./sandboxes";

export function statusItem(sandboxes: Sandboxes, folders: () => string[]): vscode.Disposable {
  const status = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Left, 50);
  status.command = "sandkit.ui.openTerminal";
  status.tooltip = "Open a terminal in this workspace's sandbox";
  const update = (): void => {
    const mine = workspaceSandbox(sandboxes.rows, folders());
    if (mine) {
      status.text = `$(vm) ${mine.name}: ${mine.state}`;
      status.show();
    } else {
      status.hide();
    }
  };
  const listening = sandboxes.onDidChange(update);
  return {
    dispose: () => {
      listening.dispose();
      status.dispose();
    },
  };
}
