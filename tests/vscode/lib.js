// What the code-server drivers (e2e.js, sessions.js) share: the browser, the command
// palette, the terminal's text.
const path = require("path");
const fs = require("fs");
const os = require("os");
const { chromium } = require(path.join(__dirname, "..", "..", "vscode-client", "node_modules", "playwright-core"));

const started = Date.now();
const lap = (what) => console.log(`${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);

async function launch() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1400, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
  });
  // Removed once the browser has exited (close() waits for it); Chromium still writes
  // to it while it shuts down.
  context.removeProfile = () => fs.rmSync(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  return context;
}

// Types `text` into the quick input `key` opens (F1: the command palette, Control+P: Quick
// Open) until a row showing `row` is listed, then Enter (or, with `pick` false, Escape).
// Contributed commands appear once the extension host has scanned the extensions, and the
// quick input closes when anything takes the focus (a terminal opening or closing, a view
// revealed, the workbench still starting): open it again.
async function quickInput(page, key, text, row, pick = true) {
  let last;
  for (let i = 0; i < 8; i++) {
    try {
      await page.keyboard.press(key);
      const input = page.locator(".quick-input-widget input");
      await input.waitFor({ state: "visible", timeout: 10000 });
      await input.fill(text, { timeout: 5000 });
      await page.locator(".quick-input-list .monaco-list-row", { hasText: row }).first().waitFor({ timeout: 4000 });
      await page.keyboard.press(pick ? "Enter" : "Escape");
      return;
    } catch (err) {
      last = err;
      await page.keyboard.press("Escape");
      await page.waitForTimeout(1500);
    }
  }
  throw new Error(`"${row}" never showed for "${text}": ${String(last?.message ?? last).split("\n")[0]}`);
}

async function palette(page, title, pick = true) {
  await quickInput(page, "F1", `>${title}`, title, pick);
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

async function openWorkbench(page, url) {
  await page.goto(url);
  await page.waitForSelector(".monaco-workbench .statusbar", { timeout: 90000 });
}

// Keys typed before a new terminal has started (or has its session) are lost: type the
// command until its output shows.
async function typeUntilShown(page, command, needle) {
  for (let attempt = 0; ; attempt++) {
    await page.waitForTimeout(1000);
    await page.locator(".terminal-wrapper").last().click();
    await page.keyboard.type(command);
    try {
      await waitForTerminal(page, needle, 10000);
      return;
    } catch (err) {
      if (attempt === 5) throw err;
    }
  }
}

// One driver's run: a browser and a page, the steps, a screenshot named `failure` when a
// step fails, and the exit status the Python test reads (0 when every step passed).
async function drive(artifacts, failure, steps) {
  const context = await launch();
  const page = context.pages()[0] || (await context.newPage());
  const run = {
    page,
    step: "start",
    shot: (name) => page.screenshot({ path: path.join(artifacts, name) }),
  };
  try {
    await steps(run);
    console.log("PASS");
    await context.close();
    context.removeProfile();
    process.exit(0);
  } catch (err) {
    console.log(`FAIL at ${run.step}: ${String(err.message || err).split("\n").slice(0, 6).join("\n")}`);
    await run.shot(failure).catch(() => undefined);
    await context.close().catch(() => undefined);
    try {
      context.removeProfile();
    } catch {
      // a profile left in TMPDIR is not worth hiding the step that failed
    }
    process.exit(1);
  }
}

module.exports = { drive, lap, openWorkbench, palette, quickInput, terminalText, typeUntilShown, waitForTerminal };
