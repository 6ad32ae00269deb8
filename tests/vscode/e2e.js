// The extension in a real VS Code (code-server) in Debian's headless chromium, driven
// through its UI with playwright-core. Called by test_vscode_e2e.py:
//   node e2e.js URL ARTIFACTS_DIR KERNEL_RELEASE APPROVAL_URL SANDKIT_PATH MARKER
// The last two for the restart step: another sandkit.path to set in the Settings editor (a
// wrapper that touches MARKER when it starts).
// Saves a screenshot per step; exits 0 when every step passed.
const fs = require("fs");
const { drive, lap, openWorkbench, palette, quickInput, typeUntilShown, waitForTerminal } = require("./lib.js");

const [url, artifacts, kernel, approvalUrl, newPath, marker] = process.argv.slice(2);


function sandboxRow(page, name) {
  const pane = page.locator(".pane", { has: page.locator(".pane-header", { hasText: "Sandboxes" }) });
  return pane.locator(".monaco-list-row", { hasText: name }).first();
}


drive(artifacts, "failure.png", async (run) => {
  const { page, shot } = run;
  run.step = "workbench";
  await openWorkbench(page, url);
  lap("workbench up");

  run.step = "broken kit in the Problems panel";
  await quickInput(page, "Control+P", "broken-kit/spec.yaml", "spec.yaml");
  await page.locator(".monaco-editor .squiggly-error").first().waitFor({ timeout: 90000 });
  await page.keyboard.press("Control+Shift+M");
  await page.locator(".markers-panel", { hasText: "must be one of: sandbox, mixin" }).first().waitFor({ timeout: 20000 });
  await shot("1-problems-panel.png");
  lap("diagnostic in the Problems panel");

  run.step = "Open Workspace in Sandbox";
  await palette(page, "Sandkit: Open Workspace in Sandbox");
  await page.locator(".terminal-wrapper .xterm-rows").first().waitFor({ timeout: 300000 });
  await waitForTerminal(page, "$", 120000);
  await page.locator(".terminal-wrapper").first().click();
  await page.keyboard.type("uname -r\n");
  await waitForTerminal(page, kernel, 60000);
  await shot("2-terminal-in-the-vm.png");
  lap("terminal runs in the VM");

  run.step = "approval prompt";
  await page.keyboard.type(`curl -s -o /dev/null -w "code=%{http_code}\\n" ${approvalUrl}\n`);
  const toast = page.locator(".notification-toast", { hasText: "wants to reach" }).first();
  await toast.waitFor({ timeout: 60000 });
  const allowOnce = toast.locator(".monaco-button", { hasText: "Allow once" }).first();
  await allowOnce.waitFor({ state: "visible", timeout: 10000 });
  await toast.hover(); // a toast under the pointer is not hidden by its timer
  await page.waitForTimeout(600); // the toast's fade-in, for a readable screenshot
  await shot("3-approval-prompt.png");
  await allowOnce.click();
  await waitForTerminal(page, "code=200", 60000);
  lap("approved once, request passed");

  run.step = "network log view";
  await palette(page, "Sandkit: Show Network Log");
  const host = new URL(approvalUrl).host;
  await page.locator(".monaco-list-row", { hasText: `allowed ${host}` }).first().waitFor({ timeout: 30000 });
  await shot("4-network-log.png");
  lap("network log shows it");

  run.step = "Sandboxes view, filled by what the server pushes";
  await palette(page, "Focus on Sandboxes View");
  const row = sandboxRow(page, "shell-project");
  await row.waitFor({ timeout: 30000 }); // nothing asked for the list: it was sent
  if (!(await row.innerText()).includes("running")) {
    throw new Error(`the sandbox's row reads "${await row.innerText()}"`);
  }
  await shot("5-sandboxes-view.png");
  lap("sandboxes view shows the running sandbox");

  run.step = "the agent's session verbs: the shell kit declares none";
  await palette(page, "Sandkit: Continue the Agent's Last Session");
  await page
    .locator(".notification-toast", { hasText: "the agent kit 'shell' declares no session verbs" })
    .first()
    .waitFor({ timeout: 30000 });
  for (const title of ["Sandkit: Ask the Agent…", "Sandkit: Resume an Agent Session…"]) {
    await palette(page, title, false);
  }
  lap("the session verbs are in the palette; an undeclared one is said, naming the kit");

  run.step = "a change of sandkit.path restarts the server";
  await palette(page, "Preferences: Open User Settings");
  await page.locator(".settings-editor").waitFor({ timeout: 20000 });
  // The editor shows before its search box has the focus: keys typed then go elsewhere.
  const search = page.locator(".settings-editor .search-container .monaco-editor").first();
  const input = page.locator(".settings-editor .monaco-list-row", { hasText: "Path to the" }).locator("input").first();
  for (let attempt = 0; ; attempt++) {
    await search.click();
    await page.keyboard.press("Control+A");
    await page.keyboard.type("sandkit.path");
    try {
      await input.waitFor({ timeout: 10000 });
      break;
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
  await input.fill(newPath);
  await input.press("Tab");
  const deadline = Date.now() + 60000;
  while (!fs.existsSync(marker)) {
    if (Date.now() > deadline) throw new Error(`${newPath} never started`);
    await page.waitForTimeout(250);
  }
  lap("the server named by the new sandkit.path started");
  // The old server's list went with it: this row is the new server's.
  await sandboxRow(page, "shell-project").waitFor({ timeout: 30000 });
  // The terminal the old server ran says so, and stays until a key closes it.
  await waitForTerminal(page, "[sandkit: the language server stopped; this terminal's program ended with it.", 30000);
  await palette(page, "Sandkit: Open Sandbox Terminal");
  await typeUntilShown(page, "echo restarted-$((6*7))\n", "restarted-42");
  // The old server was stopped cleanly: no message of a request or notification it missed,
  // and no exit alert for the terminal it ran.
  const failures = page.locator(".notification-toast", { hasText: /failed|terminated/ });
  if (await failures.count()) {
    throw new Error(`after the restart: ${await failures.first().innerText()}`);
  }
  await shot("6-restarted.png");
  lap("a terminal through the new server runs in the VM");
});
