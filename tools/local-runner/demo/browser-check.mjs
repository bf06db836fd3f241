// Drives the demo page (/demo/reconnect) in headless Chromium through the user_mfa login to
// "data ready", saving a screenshot per step and printing how long each step took.
// Usage: node browser-check.mjs BASE_URL SCREENSHOT_DIR
import { chromium } from "playwright-core";

const [base, dir] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 640, height: 720 } });
const timings = [];
let last = Date.now();
async function step(name, action) {
  await action();
  const now = Date.now();
  timings.push([name, now - last]);
  last = now;
  await page.screenshot({ path: `${dir}/${String(timings.length).padStart(2, "0")}-${name}.png` });
  console.log(`${name}: ${timings.at(-1)[1]} ms`);
}
try {
  await step("page-loaded", async () => {
    await page.goto(`${base}/demo/reconnect`);
    await page.waitForSelector("#start", { timeout: 20000 });
  });
  await step("credentials-asked", async () => {
    await page.click("#start");
    await page.waitForSelector("#username");
  });
  await step("mfa-options-shown", async () => {
    await page.fill("#username", "user_mfa");
    await page.fill("#password", "pass_good");
    await page.click("button[type=submit]");
    await page.waitForSelector("input[name=option]", { timeout: 25000 });
  });
  await step("code-asked", async () => {
    await page.click("button[type=submit]");
    await page.waitForSelector("#code", { timeout: 25000 });
  });
  await step("wrong-code-refused", async () => {
    await page.fill("#code", "000000");
    await page.click("button[type=submit]");
    await page.waitForSelector("#prompt-message", { timeout: 25000 });
  });
  await step("data-ready", async () => {
    await page.fill("#code", "123456");
    await page.click("button[type=submit]");
    await page.waitForSelector("#done", { timeout: 40000 });
  });
  console.log("log shown on the page:\n" + await page.textContent("#log"));
  console.log(`browser check passed: ${timings.map(([n, ms]) => `${n} ${ms} ms`).join(", ")}`);
} catch (err) {
  await page.screenshot({ path: `${dir}/failure.png` });
  console.error(`browser check failed: ${err.message}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
