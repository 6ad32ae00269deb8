// The agent's terminal as a view of a session, in a real VS Code (code-server), after
// e2e.js has left the workspace's sandbox running. Called by
// tests/vm/test_vscode_e2e.py:
//   node sessions.js URL ARTIFACTS_DIR
// Run Agent, type into it, close its terminal (it detaches: the agent runs on), reload the
// page (a new extension host and language server), and find the agent's terminal back
// with what it showed. Saves a screenshot per step; exits 0 when every step passed.
const { drive, lap, openWorkbench, palette, terminalText, typeUntilShown, waitForTerminal } = require("./lib.js");

const [url, artifacts] = process.argv.slice(2);

async function terminalTabs(page) {
  // The terminal panel's tab list (or, with one terminal, its title in the panel header).
  return (await page.locator(".terminal-tabs-entry, .single-terminal-tab").allInnerTexts()).join("\n");
}

drive(artifacts, "sessions-failure.png", async (run) => {
  const { page, shot } = run;
  run.step = "workbench";
  await openWorkbench(page, url);
  lap("workbench up");

  run.step = "Run Agent";
  await palette(page, "Sandkit: Run Agent");
  await page.locator(".terminal-wrapper .xterm-rows").first().waitFor({ timeout: 300000 });
  await typeUntilShown(page, "echo agent-$((6*7))\n", "agent-42");
  await shot("7-agent-session.png");
  lap("the agent's terminal runs a session");

  run.step = "close the agent's terminal (it detaches)";
  await palette(page, "Terminal: Kill the Active Terminal Instance");
  const deadline = Date.now() + 30000;
  while ((await terminalText(page)).includes("agent-42")) {
    if (Date.now() > deadline) throw new Error("the agent's terminal did not close");
    await page.waitForTimeout(250);
  }
  lap("the agent's terminal closed");

  run.step = "reload the window: the agent's terminal comes back with its screen";
  await page.reload();
  await page.waitForSelector(".monaco-workbench .statusbar", { timeout: 90000 }); // a new extension host
  await page.locator(".terminal-wrapper .xterm-rows").first().waitFor({ timeout: 120000 });
  await waitForTerminal(page, "agent-42", 120000); // replayed: nothing was typed here
  const tabs = await terminalTabs(page);
  if (!tabs.includes("Sandkit agent: shell-project")) {
    throw new Error(`the terminals after the reload: ${JSON.stringify(tabs)}`);
  }
  await typeUntilShown(page, "echo still-$((6*8))\n", "still-48"); // the same shell, live
  await shot("8-agent-restored.png");
  lap("the agent's terminal is back after the reload, live");
});
