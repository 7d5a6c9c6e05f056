// Swagger UI in a real browser (Debian's Chromium, driven by playwright-core):
// open /docs/, authorize with the sandbox key, "Try it out" on GET /v1/account,
// and check the 200 and the account in the rendered response. Keeps a screenshot.
//
//   GATEWAY_URL=http://127.0.0.1:8080 SCREENSHOT=target/contract/swagger-ui.png node tests/contract/swagger-ui.mjs
import { chromium } from "playwright-core";

const base = process.env.GATEWAY_URL ?? "http://127.0.0.1:8080";
const key = process.env.GATEWAY_KEY ?? "sandbox-key";
const screenshot = process.env.SCREENSHOT ?? "target/contract/swagger-ui.png";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
    "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
  ],
});
let failed = false;
const page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
try {
  // Everything Swagger UI needs must come from the gateway itself.
  const foreign = [];
  page.on("request", (r) => { if (!r.url().startsWith(base)) foreign.push(r.url()); });

  await page.goto(`${base}/docs/`, { waitUntil: "networkidle" });
  await page.getByRole("button", { name: /Authorize/ }).first().click();
  // The dialog lists every scheme (api_key, csrf, session): the key's form.
  const keyForm = page.locator(".auth-container form").filter({ hasText: "api_key (http, Bearer)" });
  await keyForm.locator("input").first().fill(key);
  await keyForm.locator("button.authorize").click();
  await page.locator(".auth-btn-wrapper button.btn-done").first().click();

  const operation = page.locator("#operations-account-get_account");
  await operation.locator(".opblock-summary").click();
  await operation.locator("button.try-out__btn").click();
  await operation.locator("button.execute").click();

  const live = operation.locator(".live-responses-table tbody tr.response");
  await live.first().waitFor({ timeout: 15000 });
  const status = (await live.locator(".response-col_status").first().innerText()).trim();
  const body = await operation.locator(".live-responses-table .microlight").first().innerText();
  if (status !== "200") throw new Error(`expected 200 from Try it out, got ${status}: ${body}`);
  const account = JSON.parse(body);
  if (account.id !== 20408 || account.first_name !== "Anna") {
    throw new Error(`unexpected account in the response: ${body}`);
  }
  if (foreign.length > 0) throw new Error(`Swagger UI fetched from elsewhere: ${foreign.join(", ")}`);
  console.log(`swagger-ui: authorized, tried GET /v1/account, got ${status} for account ${account.id}`);
} catch (error) {
  failed = true;
  console.error(`swagger-ui: ${error.message}`);
} finally {
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  console.log(`swagger-ui: screenshot in ${screenshot}`);
  await browser.close();
}
process.exit(failed ? 1 : 0);
