// The web view's entry point (bundled into dist/ui/app.js): the scenario
// editor, validated as you type by the CLI's loader, drives the run panel;
// the counterexample panel replays tokens on the editor's last good scenario.
// A scenario that stops parsing leaves the run at its last good version.

import type { Scenario } from "../../scenario/types.js";
import { type EditorError, validateScenario } from "../validate.js";
import { CxView } from "./cx-view.js";
import { byId, h } from "./dom.js";
import { RunView } from "./run-view.js";

// Delay between the last keystroke and validation: the loader is fast, a
// replay to the current step may not be.
const DEBOUNCE_MS = 250;

let file = "scenario.yaml";
let good: Scenario | null = null;
let goodText = "";

const src = h("textarea", { id: "src", spellcheck: false, autocomplete: "off" }) as HTMLTextAreaElement;
const err = h("div", { class: "err", id: "err" });
const picker = h("select", { id: "builtin", title: "open a built-in scenario" }, h("option", { value: "" }, "built-in scenarios…")) as HTMLSelectElement;
const run = new RunView(byId("run"));
const cx = new CxView(byId("cx"), () => ({ sc: good, text: src.value }));

// The error, the line it is on and a caret under its column.
function showError(e: EditorError): void {
  const line = src.value.split("\n")[e.line - 1] ?? "";
  const jump = h("a", { href: "#", title: "put the cursor there" }, e.text);
  jump.addEventListener("click", (ev) => {
    ev.preventDefault();
    const off =
      src.value
        .split("\n")
        .slice(0, e.line - 1)
        .join("\n").length +
      (e.line > 1 ? 1 : 0) +
      e.col -
      1;
    src.focus();
    src.setSelectionRange(off, off + 1);
  });
  err.replaceChildren(jump, `\n${String(e.line).padStart(4)} | ${line}\n     | ${" ".repeat(Math.max(0, e.col - 1))}^`);
}

function validate(): void {
  const v = validateScenario(src.value, file);
  if (!v.ok) {
    showError(v.error);
    err.classList.remove("okmsg");
    return;
  }
  err.replaceChildren(
    `valid: ${v.scenario.name}, ${v.scenario.steps.length} steps${v.scenario.concurrent !== undefined ? `, ${v.scenario.concurrent.length} concurrent (explore them with the CLI)` : ""}`,
  );
  err.classList.add("okmsg");
  if (src.value === goodText) return;
  good = v.scenario;
  goodText = src.value;
  run.load(v.scenario);
}

function openText(name: string, text: string): void {
  file = name;
  src.value = text;
  byId("status").textContent = name;
  validate();
}

let timer: ReturnType<typeof setTimeout> | undefined;
src.addEventListener("input", () => {
  clearTimeout(timer);
  timer = setTimeout(validate, DEBOUNCE_MS);
});
picker.addEventListener("change", () => {
  const name = picker.value;
  if (name === "") return;
  void fetch(`/api/scenario?name=${encodeURIComponent(name)}`)
    .then((r) => r.json() as Promise<{ file: string; text: string }>)
    .then((d) => openText(d.file, d.text));
});

for (const b of document.querySelectorAll<HTMLButtonElement>("button.tab"))
  b.addEventListener("click", () => {
    for (const x of document.querySelectorAll<HTMLButtonElement>("button.tab")) x.setAttribute("aria-selected", String(x === b));
    for (const id of ["scenario", "cx"]) byId(id).classList.toggle("on", id === b.dataset.tab);
  });

byId("editor").append(h("div", { class: "controls" }, picker), src, err);
// An exported page carries its scenario and has no server to ask.
const inline = document.getElementById("ptlab-initial");
if (inline !== null) {
  picker.disabled = true;
  picker.title = "built-in scenarios need `ptlab ui`; this page was exported";
  const d = JSON.parse(inline.textContent ?? "") as { file: string; text: string };
  openText(d.file, d.text);
} else {
  void fetch("/api/scenarios")
    .then((r) => r.json() as Promise<string[]>)
    .then((names) => picker.append(...names.map((n) => h("option", { value: n }, n))));
  void fetch("/api/initial")
    .then((r) => r.json() as Promise<{ file: string; text: string }>)
    .then((d) => openText(d.file, d.text));
}
// For the browser test and the console: what the page holds.
Object.assign(globalThis, { ptlab: { run, cx } });
