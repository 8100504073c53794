// Drives Airflow's connection form in the system Chromium (headless) and reports what a user sees, as JSON
// on stdout: tests/ui/test_ui_connection_form.py starts Airflow, runs this, and asserts on the report.
//
//   node connection_form.mjs '{"baseUrl": "...", "chromium": "/usr/bin/chromium", "screenshotDir": "...",
//                              "testConnectionId": "..."}'
//
// playwright-core only (no browser download): the browser is Debian's chromium package.
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const report = {};
const browser = await chromium.launch({
  executablePath: options.chromium,
  headless: true,
  // Root in a container has no user namespace for Chromium's sandbox.
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 2400 } });
  page.setDefaultTimeout(20000);

  // Airflow 3.1's UI first logs the visitor in (all users are admins here), through redirects that end
  // on the home page: wait for the app's navigation before going to the connections page.
  await page.goto(options.baseUrl, { waitUntil: "networkidle" });
  await page.getByRole("button", { name: /admin/i }).first().waitFor();
  const openConnections = () => page.goto(`${options.baseUrl}/connections`, { waitUntil: "networkidle" });

  // The "Add Connection" form, type Ntropy.
  await openConnections();
  await page.getByRole("button", { name: "Add Connection" }).click();
  const dialog = page.getByRole("dialog");
  await dialog.getByRole("combobox").first().focus(); // react-select: type, then Enter picks the match
  await page.keyboard.type("Ntropy");
  await page.keyboard.press("Enter");
  await dialog.getByText("Extra Fields JSON").waitFor();

  const labels = () => dialog.locator("label[data-part=label]").allInnerTexts();
  const inputs = () =>
    dialog.locator("input").evaluateAll((all) => all.map((e) => ({ id: e.id, name: e.name, type: e.type })));
  // Standard fields: labels and inputs (the API key's type).
  report.standardLabels = await labels();
  report.standardInputs = await inputs();

  // Extra fields: labels, the Region choices, the webhook token's input type.
  await dialog.getByRole("button", { name: "Extra Fields", exact: true }).click();
  await dialog.getByText("Webhook token").waitFor();
  report.extraLabels = await labels();
  report.extraInputs = await inputs();
  await dialog.getByRole("combobox").nth(1).focus(); // the Region dropdown (react-select)
  await page.keyboard.press("ArrowDown");
  report.regionOptions = await page.getByRole("option").allInnerTexts();
  await dialog.getByRole("heading").first().click(); // close the menu (Escape would close the dialog)
  await page.screenshot({ path: `${options.screenshotDir}/connection-form-extra-fields.png`, fullPage: true });

  // The Extra JSON the form would save, untouched.
  await dialog.getByRole("button", { name: "Extra Fields JSON" }).click();
  // The form's JSON editor: Monaco (Airflow 3.3) or CodeMirror (3.1).
  const editor = dialog.locator(".monaco-editor .view-lines, .cm-content").first();
  await editor.waitFor();
  report.extraJson = (await editor.innerText()).replace(/\u00a0/g, " ");
  await page.screenshot({ path: `${options.screenshotDir}/connection-form-extra-json.png`, fullPage: true });
  await dialog.getByRole("button", { name: "Close" }).click().catch(() => page.keyboard.press("Escape"));

  // The list's Test button on a stored connection, and the message the user reads.
  if (options.testConnectionId) {
    await openConnections();
    const row = page.getByRole("row").filter({ hasText: options.testConnectionId });
    const answer = page.waitForResponse((r) => r.url().endsWith("/api/v2/connections/test"));
    await row.getByRole("button", { name: /test/i }).click();
    report.testStatus = (await answer).status();
    const toast = page.locator("[data-scope=toast][data-part=root]").first();
    await toast.waitFor();
    report.testToast = await page.locator("[data-scope=toast][data-part=root]").allInnerTexts();
    await page.screenshot({ path: `${options.screenshotDir}/connection-test.png` });
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report));
