// Opens the GraphiQL playground as a person would, types a mutation, runs it and checks the result.
// Fails if any request leaves localhost. Usage: node graphiql.mjs <base-url> <screenshot.png>
import { chromium } from "playwright-core";

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error("usage: node graphiql.mjs <base-url> <screenshot.png>");
  process.exit(2);
}
const origin = new URL(base).host;
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const userDataDir = `/tmp/mg-chromium-${process.pid}-${Date.now()}`;

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
});
const page = context.pages()[0] ?? (await context.newPage());
const outside = [];
const failures = [];
await context.route("**/*", (route) => {
  const url = new URL(route.request().url());
  if (url.protocol === "data:" || url.protocol === "blob:" || url.host === origin) return route.continue();
  outside.push(url.href);
  return route.abort();
});
page.on("pageerror", (error) => failures.push(`page error: ${error.message}`));
page.on("requestfailed", (request) => {
  const url = new URL(request.url());
  if (url.host === origin) failures.push(`failed: ${request.url()} ${request.failure()?.errorText}`);
});

try {
  await page.goto(base, { waitUntil: "load" });
  await page.waitForSelector(".graphiql-container", { timeout: 30000 });
  const email = `browser-${Date.now()}@example.com`;
  const mutation = `mutation Register { register(input: { email: "${email}", password: "password123" }) { user { email role } } }`;
  // Replace the editor's content by typing, as a person would.
  await page.click(".graphiql-query-editor .CodeMirror");
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Backspace");
  await page.keyboard.insertText(mutation);
  // GraphiQL picks the operation name from the editor after a short debounce.
  await page.waitForTimeout(700);
  await page.click(".graphiql-execute-button");
  await page.waitForFunction(
    (expected) => document.querySelector(".graphiql-response")?.textContent?.includes(expected),
    email,
    { timeout: 30000 }
  );
  const result = await page.textContent(".graphiql-response");
  await page.screenshot({ path: screenshot, fullPage: true });
  if (!result.includes('"role": "USER"')) throw new Error(`unexpected result: ${result}`);
  if (outside.length) throw new Error(`requests left localhost: ${outside.join(", ")}`);
  if (failures.length) throw new Error(failures.join("\n"));
  console.log(`GraphiQL ok: ${email} registered through the page; screenshot ${screenshot}`);
} catch (error) {
  await page.screenshot({ path: screenshot, fullPage: true }).catch(() => {});
  console.error(String(error));
  process.exitCode = 1;
} finally {
  await context.close();
}
