// A headless Chromium (Debian's /usr/bin/chromium) driven by puppeteer-core
// for test_web.py: one JSON command per line on stdin, one JSON answer per
// line on stdout ({"ok":true,"value":...} or {"ok":false,"error":...}).
// The page's console and errors go to stderr. NODE_PATH names the npm
// packages of the build tree (web/CMakeLists.txt).
'use strict';
const puppeteer = require('puppeteer-core');
const readline = require('readline');

let browser = null;
let page = null;

const commands = {
  async launch({ executable, width, height }) {
    browser = await puppeteer.launch({
      executablePath: executable || '/usr/bin/chromium',
      headless: true,
      // --no-sandbox: the tests may run as root, where Chromium's sandbox refuses to start
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
      defaultViewport: { width: width || 1280, height: height || 800 },
    });
    page = await browser.newPage();
    page.on('console', (m) => process.stderr.write(`[page ${m.type()}] ${m.text()}\n`));
    page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.message}\n`));
    page.on('dialog', (d) => d.accept()); // confirm(): "Leave #group?"
    return (await browser.version());
  },
  async goto({ url }) {
    await page.goto(url, { waitUntil: 'load' });
    return page.url();
  },
  async type({ sel, text }) {
    await page.type(sel, text);
  },
  async fill({ sel, text }) {
    await page.$eval(sel, (e) => { e.value = ''; });
    await page.type(sel, text);
  },
  async click({ sel }) {
    await page.click(sel);
  },
  async press({ key }) {
    await page.keyboard.press(key);
  },
  // expr: a JavaScript expression evaluated in the page until it is truthy
  async wait({ expr, timeout }) {
    const h = await page.waitForFunction(expr, { timeout: timeout || 10000, polling: 25 });
    return h.jsonValue();
  },
  async eval({ expr }) {
    return page.evaluate(expr);
  },
  async upload({ sel, path }) {
    const input = await page.$(sel);
    await input.uploadFile(path);
  },
  async viewport({ width, height }) {
    await page.setViewport({ width, height, deviceScaleFactor: 1 });
  },
  async screenshot({ path }) {
    await page.screenshot({ path });
  },
  async quit() {
    if (browser) await browser.close();
    browser = null;
  },
};

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on('line', (line) => {
  queue = queue.then(async () => {
    let answer;
    try {
      const cmd = JSON.parse(line);
      const value = await commands[cmd.cmd](cmd);
      answer = { ok: true, value: value === undefined ? null : value };
    } catch (e) {
      answer = { ok: false, error: String(e && e.stack || e) };
    }
    process.stdout.write(JSON.stringify(answer) + '\n');
  });
});
rl.on('close', () => { queue.then(() => commands.quit()).then(() => process.exit(0)); });
