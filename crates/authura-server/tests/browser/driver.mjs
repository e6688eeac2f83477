// Drives Debian's Chromium for authura-server's browser test (tests/it/browser.rs).
//
// Usage: node driver.mjs <chromium-executable>
//
// Reads one JSON command per line on stdin and answers each with one JSON line on stdout, so the
// Rust test keeps the assertions and can fetch mail from its SMTP sink between browser steps:
//
//   {"op":"goto","url":U}                  -> page state
//   {"op":"fill","label":L,"value":V}      -> {}   (the input labelled L, as a person finds it)
//   {"op":"submit","button":B}             -> page state of the page the click navigates to
//   {"op":"follow","link":L}               -> page state of the page the link (named L) leads to,
//                                             after every redirect
//   {"op":"back"}                          -> page state
//   {"op":"eval","js":EXPR}                -> {"value": EXPR evaluated in the page}
//   {"op":"screenshot","path":P}           -> {}   (full page, PNG)
//   {"op":"cookies"}                       -> {"cookies": the browser's cookies, with their
//                                             attributes (httpOnly, secure, sameSite, path, …)}
//
// A page state is {url, status, title, heading, text, items, form, dialogs, errors}: `text` is
// what the browser renders (innerText), `items` the list items, `form` the first form's action,
// method and fields, `dialogs` every alert/confirm/prompt so far and `errors` every uncaught page
// error so far. A failed command answers {"error": message}. End of input closes the browser.
//
// Nothing is downloaded: the browser is the executable given, never one of Playwright's builds.

import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const executablePath = process.argv[2];
if (!executablePath) {
  process.stderr.write("usage: node driver.mjs <chromium-executable>\n");
  process.exit(2);
}

// Playwright's launch() gives every run a fresh, empty profile (user-data-dir) and removes it on
// close. The networking flags keep Chromium from calling home, which this machine's closed
// network refuses, many connections at a time.
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const page = await browser.newPage();
// A step that cannot happen fails within this time instead of hanging the test.
page.setDefaultTimeout(15_000);
page.setDefaultNavigationTimeout(15_000);

const dialogs = [];
const errors = [];
page.on("dialog", (dialog) => {
  dialogs.push(`${dialog.type()}: ${dialog.message()}`);
  dialog.dismiss().catch(() => {});
});
page.on("pageerror", (error) => errors.push(String(error)));

async function state(response) {
  const dom = await page.evaluate(() => {
    const form = document.querySelector("form");
    return {
      title: document.title,
      heading: document.querySelector("h1")?.innerText ?? "",
      text: document.body?.innerText ?? "",
      items: [...document.querySelectorAll("li")].map((li) => li.innerText),
      form: form && {
        action: form.getAttribute("action"),
        method: form.getAttribute("method"),
        fields: [...form.elements].map((el) => ({
          tag: el.tagName.toLowerCase(),
          type: el.type ?? "",
          name: el.name ?? "",
          // Only hidden fields: their value is what the server put there.
          value: el.type === "hidden" ? el.value : null,
          label: el.labels?.[0]?.innerText.trim() ?? el.innerText?.trim() ?? "",
        })),
      },
    };
  });
  return {
    url: page.url(),
    status: response ? response.status() : null,
    ...dom,
    dialogs: [...dialogs],
    errors: [...errors],
  };
}

async function run(cmd) {
  switch (cmd.op) {
    case "goto":
      return state(await page.goto(cmd.url, { waitUntil: "load" }));
    case "fill":
      await page.getByLabel(cmd.label, { exact: true }).fill(cmd.value);
      return {};
    case "submit": {
      // The navigation is awaited together with the click that starts it: no sleeps.
      const [response] = await Promise.all([
        page.waitForNavigation({ waitUntil: "load" }),
        page.getByRole("button", { name: cmd.button, exact: true }).click(),
      ]);
      return state(response);
    }
    case "follow": {
      const [response] = await Promise.all([
        page.waitForNavigation({ waitUntil: "load" }),
        page.getByRole("link", { name: cmd.link, exact: true }).click(),
      ]);
      return state(response);
    }
    case "back":
      return state(await page.goBack({ waitUntil: "load" }));
    case "eval":
      return { value: (await page.evaluate(cmd.js)) ?? null };
    case "screenshot":
      await page.screenshot({ path: cmd.path, fullPage: true });
      return {};
    case "cookies":
      return { cookies: await page.context().cookies() };
    default:
      throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = await run(JSON.parse(line));
  } catch (error) {
    answer = { error: String(error?.message ?? error) };
  }
  process.stdout.write(`${JSON.stringify(answer)}\n`);
}

// Input ended (the test finished or panicked): close the browser, but never linger.
setTimeout(() => process.exit(1), 10_000).unref();
await browser.close();
