// The counterexample panel: open `ptlab explore --json` output or a replay
// token, and step through the schedule as a swimlane (one lane per thread,
// the RCU agent and the hardware), with the state after the selected step
// when the token could be replayed on the editor's scenario.

import type { Scenario } from "../../scenario/types.js";
import { addressesIn, type CxDoc, CxError, crossLane, lanes, lockSpans, mentions, openCxJson, replayToken, tokenInText } from "../counterexample.js";
import { h } from "./dom.js";

export class CxView {
  doc: CxDoc | null = null;
  cur = 0; // selected trace step (index)
  private error = "";
  private readonly paste: HTMLTextAreaElement;

  constructor(
    private readonly root: HTMLElement,
    // The editor's last good scenario and its text.
    private readonly editor: () => { sc: Scenario | null; text: string },
  ) {
    this.paste = h("textarea", {
      id: "cx-paste",
      rows: 3,
      placeholder: "paste the JSON of `ptlab explore ... --json FILE`, or a replay token (v1....)",
    }) as HTMLTextAreaElement;
    document.addEventListener("keydown", (ev) => {
      if (!this.root.classList.contains("on") || this.doc === null || ev.target instanceof HTMLTextAreaElement) return;
      if (ev.key === "ArrowDown" || ev.key === "ArrowRight") this.select(this.cur + 1);
      else if (ev.key === "ArrowUp" || ev.key === "ArrowLeft") this.select(this.cur - 1);
      else return;
      ev.preventDefault();
    });
    this.render();
  }

  private attempt(f: () => CxDoc): void {
    try {
      this.doc = f();
      this.error = "";
      this.cur = firstView(this.doc);
    } catch (e) {
      // Anything but bad input is a model bug: shown, not left uncaught.
      this.error = e instanceof CxError ? e.message : `internal error (a model bug: please report it): ${e instanceof Error ? e.message : String(e)}`;
    }
    this.render();
    (this.root.querySelector("tr.cur") as HTMLElement | null)?.scrollIntoView({ block: "nearest" });
  }

  // Pasted text or an opened file: a token (replayed) or JSON.
  open(text: string): void {
    const t = text.trim();
    if (t.startsWith("v1.")) this.replay(t);
    else this.attempt(() => openCxJson(t));
  }

  replay(token: string): void {
    this.attempt(() => {
      const sc = this.editor().sc;
      if (sc === null) throw new CxError("the editor holds no valid scenario to replay the token on");
      return replayToken(sc, token);
    });
  }

  select(i: number): void {
    if (this.doc === null) return;
    this.cur = Math.max(0, Math.min(i, this.doc.cx.trace.length - 1));
    this.render();
    (this.root.querySelector("tr.cur") as HTMLElement | null)?.scrollIntoView({ block: "nearest" });
  }

  render(): void {
    const file = h("input", { type: "file", id: "cx-file", accept: ".json,application/json" }) as HTMLInputElement;
    file.addEventListener("change", () => {
      const f = file.files?.[0];
      if (f !== undefined) void f.text().then((t) => this.open(t));
    });
    const fromEditor = () => {
      const tok = tokenInText(this.editor().text) ?? this.doc?.cx.token ?? null;
      if (tok === null) {
        this.error = "no token: the editor's scenario has no `# token:` line (a hunt finding's) and no counterexample is open";
        this.render();
      } else this.replay(tok);
    };
    this.root.replaceChildren(
      h(
        "div",
        null,
        h(
          "div",
          { class: "controls" },
          "Open JSON: ",
          file,
          h(
            "button",
            {
              id: "cx-replay",
              onclick: fromEditor,
              title: "replay the open counterexample's token, or the editor's `# token:` line, on the editor's scenario",
            },
            "replay on the editor's scenario",
          ),
        ),
        this.paste,
        h("div", { class: "controls" }, h("button", { id: "cx-open", onclick: () => this.open(this.paste.value) }, "open pasted")),
        h("div", { class: "err", id: "cx-error" }, this.error),
        this.doc === null ? h("p", { class: "muted" }, "No counterexample open.") : this.body(this.doc),
      ),
    );
  }

  private body(d: CxDoc): HTMLElement {
    const cx = d.cx;
    const broke = cx.invariant !== "(none)";
    const addrs = addressesIn(cx.message);
    const hit = (s: string) => mentions(s, addrs);
    const ls = lanes(cx);
    const spans = lockSpans(cx);
    const holds = (i: number, l: string) => {
      const v = spans[i]?.get(l);
      return v === undefined ? null : h("div", { class: "holds", title: "locks this thread holds after the step" }, `holds ${v.join(", ")}`);
    };
    const cross = crossLane(cx);
    const arrows = (i: number, l: string) => (cross[i]?.get(l) ?? []).map((t) => h("div", { class: "arrow" }, t));
    const n = cx.trace.length;
    const cur = cx.trace[this.cur];
    return h(
      "div",
      null,
      h("div", { class: broke ? "stop" : "", id: "cx-head" }, broke ? `COUNTEREXAMPLE [${cx.invariant}] ${cx.message}` : `REPLAY: ${cx.message}`),
      h(
        "div",
        { class: "muted" },
        `${d.scenario ?? "scenario not named"}; variants: ${d.variants || "none (v6.17)"}; ${cx.schedule.length} decisions; token ${cx.token}${d.states === null ? `; no state per step: ${d.replayNote ?? "replay the token on the scenario to see it"}` : ""}`,
      ),
      h(
        "div",
        { class: "controls" },
        h("button", { id: "cx-prev", onclick: () => this.select(this.cur - 1) }, "◀ prev"),
        h("button", { id: "cx-next", onclick: () => this.select(this.cur + 1) }, "next ▶"),
        h(
          "span",
          { id: "cx-pos" },
          n === 0 ? "no steps" : `step ${cur?.n} of ${n}${cur !== undefined ? `: ${cur.thread} on CPU${cur.cpu} at ${cur.site}` : ""}`,
        ),
      ),
      h(
        "div",
        { class: "cxcols" },
        h(
          "div",
          { class: "scroll70" },
          h(
            "table",
            { class: "lanes", id: "lanes" },
            h(
              "tr",
              null,
              h("th", null, "#"),
              ls.map((l) => h("th", null, l)),
            ),
            cx.trace.map((s, i) =>
              h(
                "tr",
                { class: `${i === this.cur ? "cur" : ""} ${broke && i === n - 1 ? "fail" : ""}`, onclick: () => this.select(i) },
                h("td", { class: "n" }, s.n),
                ls.map((l) =>
                  l !== s.thread
                    ? h("td", { class: spans[i]?.has(l) ? "span" : "" }, arrows(i, l), holds(i, l))
                    : h(
                        "td",
                        { class: `act${spans[i]?.has(l) ? " span" : ""}` },
                        h("div", null, `${"  ".repeat(s.depth)}CPU${s.cpu} [${s.op}] ${s.site}`),
                        // What happened in the step (events), else what it changed.
                        (s.events !== undefined && s.events.length > 0 && s.explained !== undefined ? s.explained : s.changes).map((c) =>
                          h("div", { class: `ch${hit(c) ? " hit" : ""}` }, c),
                        ),
                        holds(i, l),
                      ),
                ),
              ),
            ),
          ),
        ),
        d.states === null ? null : this.state(d, hit),
      ),
    );
  }

  // The state after the selected step; what that step changed is marked.
  private state(d: CxDoc, hit: (s: string) => boolean): HTMLElement {
    const st = (d.states as NonNullable<CxDoc["states"]>)[this.cur];
    const before = this.cur > 0 ? (d.states as NonNullable<CxDoc["states"]>)[this.cur - 1] : undefined;
    if (st === undefined) return h("div");
    const part = (title: string, now: [string, string][], was: [string, string][] | undefined) => {
      const old = new Map(was ?? []);
      return h(
        "div",
        null,
        h("h3", null, `${title} (${now.length})`),
        h(
          "table",
          null,
          now.map(([k, v]) =>
            h(
              "tr",
              { class: old.get(k) !== v && was !== undefined ? "changed" : "" },
              h("td", { class: hit(`${k} ${v}`) ? "hit" : "" }, k),
              h("td", { style: old.get(k) !== v && was !== undefined ? "background: var(--hi)" : "" }, v),
            ),
          ),
        ),
      );
    };
    return h(
      "div",
      { id: "cx-state" },
      h("h2", null, `State after step ${this.cur + 1}`),
      part("page tables", st.ptes, before?.ptes),
      part("TLBs and walk caches", st.tlbs, before?.tlbs),
      part("locks held", st.locks, before?.locks),
    );
  }
}

// The step to show first: with states, the last one whose state holds what
// the violation names (the stale entry may be gone by the final step);
// else the final step.
function firstView(d: CxDoc): number {
  const last = Math.max(0, d.cx.trace.length - 1);
  if (d.states === null) return last;
  const marks = addressesIn(d.cx.message);
  for (let i = d.states.length - 1; i >= 0; i--) {
    const st = d.states[i] as NonNullable<CxDoc["states"]>[number];
    if ([...st.ptes, ...st.tlbs].some(([k, v]) => mentions(`${k} ${v}`, marks))) return i;
  }
  return last;
}
