// Drives the demo page in headless Chromium: the page links a web companion to a simulated
// phone and exchanges messages with another account; this test checks what each device
// decrypted, saves a screenshot (test/screenshot.png), and with RATCHETRY_BENCH=1 also runs
// demo/bench.html and prints the per-message times.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = normalize(join(here, ".."));
const types = { ".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".wasm": "application/wasm", ".ts": "text/plain" };
let server, browser, base;

before(async () => {
  // A static server on the loopback interface for demo/ and pkg/ (ES modules and wasm need http).
  server = createServer(async (req, res) => {
    const path = normalize(join(root, decodeURIComponent(new URL(req.url, "http://x").pathname)));
    if (!path.startsWith(root)) { res.writeHead(403).end(); return; }
    try {
      const body = await readFile(path);
      res.writeHead(200, { "content-type": types[extname(path)] || "application/octet-stream" }).end(body);
    } catch { res.writeHead(404).end(); }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-gpu"],
  });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test("the demo page links a web companion and every device decrypts its messages", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(`${base}/demo/index.html`);
  await page.waitForFunction(() => window.demo !== undefined, null, { timeout: 60_000 });
  await page.screenshot({ path: join(here, "screenshot.png"), fullPage: true });
  const demo = await page.evaluate(() => window.demo);
  assert.equal(demo.error, undefined, `the page failed: ${demo.error}`);
  assert.deepEqual(errors, []);
  const texts = (list) => list.map((m) => m.text);

  // The web companion: history from the phone, Bob's 1:1 messages, the group.
  assert.deepEqual(texts(demo.web), [
    "bob: (earlier) See you Friday?",
    "bob#1: Hi Alice! Lunch?",
    "[group] alice#1: Group: table for two?",
    "[group] bob#1: Group: great, see you",
    "bob#1: After your restart: still reading?",
    "bob#1: Resent after a corrupted delivery",
  ]);
  // The phone: Bob's message, the own copy of the companion's answer, the group.
  assert.deepEqual(texts(demo.phone), [
    "bob#1: Hi Alice! Lunch?",
    `me (alice#${demo.webId}) → bob: Sure, from my browser`,
    `[group] alice#${demo.webId}: Group: booked, from the web`,
    "[group] bob#1: Group: great, see you",
    "bob#1: After your restart: still reading?",
    "bob#1: once",
    "bob#1: Resent after a corrupted delivery",
  ]);
  // Bob: the companion's 1:1 answer and both of Alice's group messages.
  assert.deepEqual(texts(demo.bob), [
    `alice#${demo.webId}: Sure, from my browser`,
    "[group] alice#1: Group: table for two?",
    `[group] alice#${demo.webId}: Group: booked, from the web`,
  ]);
  assert.equal(demo.restoredFromBackup, false);
  // Errors are RatchetryErrors with a stable code and a readable message.
  assert.equal(demo.replay.name, "RatchetryError");
  assert.equal(demo.replay.code, "fanout.duplicate");
  assert.match(demo.replay.message, /already|duplicate|read/i);
  // A corrupted envelope is unreadable; the retry brought the message (checked above).
  assert.equal(demo.unreadable, "ratchet.authentication_failed");
  // Bad input from JavaScript is refused with binding codes, before the library is called.
  const refused = await page.evaluate(async () => {
    const m = await import("/pkg/ratchetry_wasm.js");
    const codes = [];
    const attempt = (f) => { try { f(); codes.push("no error"); } catch (e) { codes.push(`${e.name} ${e.code}`); } };
    attempt(() => m.createAccount(NaN));
    attempt(() => m.createAccount(-1));
    attempt(() => m.safetyNumber(new Uint8Array(3), new Uint8Array(32)));
    attempt(() => new m.LinkingCompanion(new Uint8Array([1, 2, 3])));
    attempt(() => m.Device.restore(new Uint8Array(10), 0, 0));
    return codes;
  });
  assert.deepEqual(refused.slice(0, 3), [
    "RatchetryError binding.bad_time",
    "RatchetryError binding.bad_time",
    "RatchetryError binding.bad_length",
  ]);
  for (const c of refused.slice(3)) assert.match(c, /^RatchetryError decode\./);
  // And the page shows it.
  assert.match(await page.textContent("#status"), /^done:/);
  assert.equal(await page.locator("#web li.group").count(), 2);
  await page.close();
});

test("the web companion keeps every record in IndexedDB and survives a page reload", async () => {
  // A fresh context: an empty IndexedDB for the page's origin.
  const context = await browser.newContext();
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  const settled = (phase) => page.waitForFunction(
    (p) => window.companion !== undefined && (window.companion.phase === p || window.companion.error),
    phase, { timeout: 60_000 });
  const texts = (list) => list.map((m) => m.text);

  await page.goto(`${base}/demo/companion.html`);
  await settled(1);
  const first = await page.evaluate(() => window.companion);
  assert.equal(first.error, undefined, `the first visit failed: ${first.error}`);
  assert.deepEqual(texts(first.web), ["bob#1: Hi Alice, before your reload"]);
  assert.deepEqual(texts(first.bob), [`alice#2: Hi Bob, from the browser`]);

  await page.reload();
  await settled(2);
  const second = await page.evaluate(() => window.companion);
  assert.equal(second.error, undefined, `the visit after the reload failed: ${second.error}`);
  // Every device was rebuilt from its own records, nothing from memory.
  for (const n of ["phone", "web", "bob"]) assert.ok(second.loaded[n] > 0, `${n} had no records`);
  // The message sent while the page was closed, then a conversation on the rebuilt sessions
  // and sender keys.
  assert.deepEqual(texts(second.web), [
    "bob#1: Sent while your page was closed",
    "[group] bob#1: Group: everyone still here?",
  ]);
  assert.deepEqual(texts(second.bob), [
    "alice#2: Back after a reload",
    "[group] alice#2: Group: yes, reloaded",
  ]);
  assert.deepEqual(texts(second.phone), [
    "bob#1: Sent while your page was closed",
    "me (alice#2) → bob: Back after a reload",
    "[group] bob#1: Group: everyone still here?",
    "[group] alice#2: Group: yes, reloaded",
  ]);
  // Every session runs the post-quantum ratchet, its state rebuilt from the records too.
  assert.ok(second.pq.webWithBob !== null && second.pq.bobWithWeb !== null, JSON.stringify(second.pq));
  assert.deepEqual(second.pq.withoutIt, [0, 0, 0]);
  assert.deepEqual(errors, []);
  await context.close();
});

test("timing in the browser (RATCHETRY_BENCH=1)", { skip: !process.env.RATCHETRY_BENCH }, async () => {
  const page = await browser.newPage();
  await page.goto(`${base}/demo/bench.html`);
  await page.waitForFunction(() => window.bench !== undefined, null, { timeout: 300_000 });
  const bench = await page.evaluate(() => window.bench);
  assert.equal(bench.error, undefined, bench.error);
  console.log(`browser: ${JSON.stringify(bench)}`);
  await page.close();
});
