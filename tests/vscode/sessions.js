// The agent's terminal as a view of a session, in a real VS Code (code-server), after
// e2e.js has left the workspace's sandbox running. Called by
// tests/vm/test_vscode_e2e.py:
//   node sessions.js URL ARTIFACTS_DIR
// Run Agent, type into it, close its terminal (it detaches: the agent runs on), reload the
// page (a new extension host and language server), and find the agent's terminal back
// with what it showed. Saves a screenshot per step; exits 0 when every step passed.
const path = require("path");
const { lap, launch, palette, terminalText, waitForTerminal } = require("./lib.js");

const [url, artifacts] = process.argv.slice(2);

async function terminalTabs(page) {
  // The terminal panel's tab list (or, with one terminal, its title in the panel header).
  return (await page.locator(".terminal-tabs-entry, .single-terminal-tab").allInnerTexts()).join("\n");
}

(async () => {
  const context = await launch();
  const page = context.pages()[0] || (await context.newPage());
  const shot = (name) => page.screenshot({ path: path.join(artifacts, name) });
  let step = "start";
  try {
    step = "workbench";
    await page.goto(url);
    await page.waitForSelector(".monaco-workbench .statusbar", { timeout: 90000 });
    lap("workbench up");

    step = "Run Agent";
    await palette(page, "Sandkit: Run Agent");
    await page.locator(".terminal-wrapper .xterm-rows").first().waitFor({ timeout: 300000 });
    for (let attempt = 0; ; attempt++) {
      // keys typed before the session's terminal has its id are lost: type until they count
      await page.waitForTimeout(1000);
      await page.locator(".terminal-wrapper").last().click();
      await page.keyboard.type("echo agent-$((6*7))\n");
      try {
        await waitForTerminal(page, "agent-42", 10000);
        break;
      } catch (err) {
        if (attempt === 5) throw err;
      }
    }
    await shot("7-agent-session.png");
    lap("the agent's terminal runs a session");

    step = "close the agent's terminal (it detaches)";
    await palette(page, "Terminal: Kill the Active Terminal Instance");
    const deadline = Date.now() + 30000;
    while ((await terminalText(page)).includes("agent-42")) {
      if (Date.now() > deadline) throw new Error("the agent's terminal did not close");
      await page.waitForTimeout(250);
    }
    lap("the agent's terminal closed");

    step = "reload the window: the agent's terminal comes back with its screen";
    await page.reload();
    await page.waitForSelector(".monaco-workbench .statusbar", { timeout: 90000 });
    await page.locator(".terminal-wrapper .xterm-rows").first().waitFor({ timeout: 120000 });
    await waitForTerminal(page, "agent-42", 120000); // replayed: nothing was typed here
    const tabs = await terminalTabs(page);
    if (!tabs.includes("Sandkit agent: shell-project")) {
      throw new Error(`the terminals after the reload: ${JSON.stringify(tabs)}`);
    }
    await page.locator(".terminal-wrapper").last().click();
    await page.keyboard.type("echo still-$((6*8))\n"); // the same shell, live
    await waitForTerminal(page, "still-48", 60000);
    await shot("8-agent-restored.png");
    lap("the agent's terminal is back after the reload, live");
    console.log("PASS");
    await context.close();
    process.exit(0);
  } catch (err) {
    console.log(`FAIL at ${step}: ${String(err.message || err).split("\n").slice(0, 6).join("\n")}`);
    await shot("sessions-failure.png").catch(() => undefined);
    await context.close().catch(() => undefined);
    process.exit(1);
  }
})();
