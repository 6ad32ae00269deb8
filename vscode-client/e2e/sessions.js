// The agent's terminal as a view of a session, in a real VS Code (code-server), after
// tests/vscode/e2e.js has left the workspace's sandbox running. Called by
// tests/vm/test_vscode_e2e.py:
//   node sessions.js URL ARTIFACTS_DIR
// Run Agent, type into it, close its terminal (it detaches: the agent runs on), reload the
// page (a new extension host and language server), and find the agent's terminal back
// with what it showed. Saves a screenshot per step; exits 0 when every step passed.
const path = require("path");
const fs = require("fs");
const os = require("os");
const { chromium } = require(path.join(__dirname, "..", "node_modules", "playwright-core"));

const [url, artifacts] = process.argv.slice(2);
const started = Date.now();
const lap = (what) => console.log(`${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

async function palette(page, title) {
  // Contributed commands appear once the extension host has scanned the extensions: retry.
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press("F1");
    const input = page.locator(".quick-input-widget input");
    await input.waitFor({ state: "visible", timeout: 10000 });
    await input.fill(`>${title}`);
    const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
    try {
      await row.waitFor({ timeout: 4000 });
      await page.keyboard.press("Enter");
      return;
    } catch {
      await page.keyboard.press("Escape");
      await page.waitForTimeout(1500);
    }
  }
  throw new Error(`command "${title}" never showed in the palette`);
}

async function terminalText(page) {
  return (await page.locator(".terminal-wrapper .xterm-rows").allInnerTexts()).join("\n");
}

async function waitForTerminal(page, needle, timeout) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if ((await terminalText(page)).includes(needle)) return;
    await page.waitForTimeout(250);
  }
  throw new Error(`the terminal never showed "${needle}"; it shows:\n${await terminalText(page)}`);
}

async function terminalTabs(page) {
  // The terminal panel's tab list (or, with one terminal, its title in the panel header).
  return (await page.locator(".terminal-tabs-entry, .single-terminal-tab").allInnerTexts()).join("\n");
}

(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
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
