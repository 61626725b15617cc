// Drives the `stn serve` page in the system's headless Chromium like a person would: draws a
// "1" and then a "7" on the pad with real mouse (pointer) events, checks that predictions
// arrive while drawing and that the page shows the right digit, and saves a screenshot.
//
//   node drive.mjs URL SCREENSHOT.png
//
// Exits non-zero on any failure. Uses playwright-core with /usr/bin/chromium (it never
// downloads a browser of its own).

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, shot] = process.argv.slice(2);
if (!url || !shot) {
  console.error("usage: node drive.mjs URL SCREENSHOT.png");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

function fail(msg) {
  throw new Error(msg);
}

// Moves the mouse along `points` (pad fractions) with the button down, slowly enough for
// the page's throttled requests (one per ~100 ms) to fire while drawing.
async function stroke(page, box, points, stepsPerSegment = 12, pauseMs = 12) {
  const at = ([fx, fy]) => [box.x + fx * box.width, box.y + fy * box.height];
  let [x, y] = at(points[0]);
  await page.mouse.move(x, y);
  await page.mouse.down();
  for (const p of points.slice(1)) {
    const [nx, ny] = at(p);
    for (let i = 1; i <= stepsPerSegment; i++) {
      await page.mouse.move(x + ((nx - x) * i) / stepsPerSegment, y + ((ny - y) * i) / stepsPerSegment);
      await page.waitForTimeout(pauseMs);
    }
    [x, y] = [nx, ny];
  }
  await page.mouse.up();
}

// Waits until the page has shown the answer to the last request (no request in flight for a
// moment) and returns the digit shown.
async function settledDigit(page) {
  await page.waitForFunction(() => document.querySelector("#big")?.dataset.class !== undefined, null, { timeout: 15000 });
  let last = null;
  for (let i = 0; i < 50; i++) {
    await page.waitForTimeout(100);
    const now = await page.evaluate(() => document.querySelector("#digit").textContent + "|" + document.querySelector("#conf").textContent);
    if (now === last) break;
    last = now;
  }
  return page.evaluate(() => document.querySelector("#digit").textContent.trim());
}

const profile = mkdtempSync(join(tmpdir(), "stn-chromium-"));
let context;
let failed = false;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    deviceScaleFactor: 1,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const problems = [];
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  const origin = new URL(url).origin;
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith("data:") && !u.startsWith("blob:")) problems.push("external request: " + u);
  });
  let predictions = 0;
  page.on("response", (r) => { if (r.url().endsWith("/api/predict")) predictions++; });

  await page.goto(url, { waitUntil: "load" });
  await page.waitForSelector("#health-dot.ok", { timeout: 10000 });
  const box = await page.locator("#pad").boundingBox();
  if (!box || box.width < 100) fail("the drawing pad is missing or tiny");

  // A "1": one vertical stroke, slightly slanted as people draw it.
  await stroke(page, box, [[0.52, 0.18], [0.47, 0.84]]);
  const one = await settledDigit(page);
  console.log(`drew a 1: the page says ${one}`);
  if (one !== "1") fail(`expected 1, the page shows ${one}`);

  await page.click("#clear");
  const cleared = await page.evaluate(() => document.querySelector("#digit").textContent);
  if (cleared !== "?") fail("Clear did not reset the prediction");

  // A "7": the bar, then the long diagonal down to the left, in one stroke.
  const before = predictions;
  await stroke(page, box, [[0.27, 0.22], [0.74, 0.21], [0.62, 0.45], [0.45, 0.83]], 14, 14);
  const during = predictions - before;
  const seven = await settledDigit(page);
  const conf = await page.evaluate(() => document.querySelector("#conf").textContent);
  console.log(`drew a 7: the page says ${seven} (${conf}); ${during} predictions while drawing it`);
  if (seven !== "7") fail(`expected 7, the page shows ${seven}`);
  if (during < 3) fail(`only ${during} predictions for the whole stroke: the page should update as one draws`);

  // The views are drawn: the grid view has more than black in it.
  const lit = await page.evaluate(() => {
    const c = document.querySelector("#v-grid"), d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 60) n++;
    return n;
  });
  if (lit < 500) fail("the sampling-grid view is empty");
  if (problems.length) fail(problems.join("\n"));

  await page.mouse.move(0, 0);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot}`);
} catch (e) {
  console.error("browser test failed: " + e.message);
  failed = true;
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
