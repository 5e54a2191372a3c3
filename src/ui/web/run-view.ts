// The run panel: step controls, the list of steps, the counters, each
// process's page-table tree (tables expand on click; a PTE table is a grid
// of its entries) and each CPU's TLB and walk-cache entries.

import { countersJson } from "../../cli/format.js";
import type { Machine } from "../../core/machine.js";
import type { Mm } from "../../core/mm/types.js";
import { type Scenario, ScenarioError } from "../../scenario/types.js";
import { type EntryView, hex, pgdView, type TableView, tableView, tlbEntries, tlbRuns, treeStats } from "../inspect.js";
import { StepSession } from "../session.js";
import { editorError } from "../validate.js";
import { h, num } from "./dom.js";
import { timelineView } from "./timeline.js";

// Rows of a CPU's TLB table before "... n more".
const TLB_ROWS = 200;

const size = (b: number) => (b >= 2 ** 30 ? `${b / 2 ** 30}G` : b >= 2 ** 20 ? `${b / 2 ** 20}M` : `${b / 1024}K`);

export class RunView {
  session: StepSession | null = null;
  // Open tables ("mm:level:va") and the PTE picked in a grid, kept across steps.
  private readonly open = new Set<string>();
  private picked: string | null = null;
  private lastTotals: Record<string, number> | null = null;
  private setupError: string | null = null;
  // An exception that is not an input error or a violation: a model bug,
  // shown instead of leaving the page half updated.
  private crash: string | null = null;

  constructor(private readonly root: HTMLElement) {}

  private guard(f: () => void): void {
    try {
      f();
    } catch (e) {
      this.crash = `internal error (a model bug: please report it with the scenario): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`;
    }
  }

  // A new version of the scenario: a fresh run brought to the same step.
  load(sc: Scenario): void {
    const pos = this.session?.done ?? 0;
    this.session?.runner.m.release();
    this.session = null;
    this.setupError = null;
    this.crash = null;
    this.guard(() => {
      try {
        this.session = new StepSession(sc);
      } catch (e) {
        if (!(e instanceof ScenarioError)) throw e;
        this.setupError = editorError(e).text;
      }
      this.session?.goto(pos);
    });
    this.lastTotals = null;
    this.render();
  }

  private act(f: (s: StepSession) => void): void {
    if (this.session === null || this.crash !== null) return;
    this.guard(() => f(this.session as StepSession));
    this.render();
  }

  render(): void {
    const s = this.session;
    this.root.replaceChildren();
    if (this.crash !== null) {
      this.root.append(h("div", { class: "stop", id: "stopped" }, this.crash));
      return;
    }
    if (s === null) {
      this.root.append(h("div", { class: "stop" }, this.setupError ?? "no scenario loaded"));
      return;
    }
    const m = s.runner.m;
    this.root.append(
      h(
        "div",
        { class: "controls" },
        h("button", { id: "b-start", title: "back to the start", onclick: () => this.act((x) => x.goto(0)) }, "|◀ start"),
        h("button", { id: "b-back", title: "one step back (replays from the start)", onclick: () => this.act((x) => x.back()) }, "◀ back"),
        h("button", { id: "b-step", title: "run the next step", onclick: () => this.act((x) => x.forward()) }, "step ▶"),
        h("button", { id: "b-report", title: "run up to the next report step", onclick: () => this.act((x) => x.toNextReport()) }, "to report ▶|"),
        h("button", { id: "b-end", title: "run to the end", onclick: () => this.act((x) => x.goto(x.items.length)) }, "to end ▶▶"),
        h(
          "span",
          { id: "pos", class: "muted" },
          `${s.done} of ${s.items.length} steps done; ${m.arch.name}, ${m.config.cpus} CPUs, ${m.geo.pageSize / 1024}K pages`,
        ),
      ),
    );
    if (s.stopped !== null)
      this.root.append(h("div", { class: "stop", id: "stopped" }, `${s.stopped.kind === "violation" ? "INVARIANT VIOLATION" : "stopped"}: ${s.stopped.text}`));
    this.root.append(
      h(
        "ol",
        { class: "steps", id: "steps" },
        s.items.map((it, i) =>
          h(
            "li",
            {
              class: i < s.done - 1 ? "done" : i === s.done - 1 ? (s.stopped !== null ? "cur failed" : "cur") : "",
              title: it.line > 0 ? `line ${it.line}` : "",
              onclick: () => this.act((x) => x.goto(i + 1)),
            },
            it.label,
          ),
        ),
      ),
    );
    (this.root.querySelector("li.cur") as HTMLElement | null)?.scrollIntoView({ block: "nearest" });
    this.root.append(
      h("h2", null, "Timeline"),
      timelineView(s.timeline, s.items.length, s.done, (n) => this.act((x) => x.goto(n))),
    );
    const totals = countersJson(m.counters);
    const prev = this.lastTotals;
    this.lastTotals = totals;
    this.root.append(
      h(
        "div",
        { class: "cols" },
        h("div", null, h("h2", null, "Counters"), this.counters(totals, prev)),
        h(
          "div",
          { style: "flex: 1; min-width: 420px" },
          h("h2", null, "Processes"),
          this.processes(m),
          h("h3", null, "Selected entry"),
          h("div", { id: "entry" }, this.pickedText(m)),
        ),
      ),
      h("h2", null, "TLBs and walk caches"),
      h(
        "div",
        { class: "cols" },
        m.cpus.map((c) => this.tlb(m, c.id)),
      ),
    );
  }

  private counters(totals: Record<string, number>, prev: Record<string, number> | null): HTMLElement {
    const rows = Object.entries(totals).filter(([k, v]) => v !== 0 || (prev?.[k] ?? 0) !== 0);
    return h(
      "table",
      { id: "counters" },
      h("tr", null, h("th", null, "counter"), h("th", null, "total"), h("th", { title: "since the previous view" }, "change")),
      rows.length === 0 ? h("tr", null, h("td", { colspan: 3, class: "muted" }, "all zero")) : null,
      rows.map(([k, v]) => {
        const d = prev === null ? 0 : v - (prev[k] ?? 0);
        return h("tr", null, h("td", null, k), h("td", { class: "n" }, num(v)), h("td", { class: "n" }, d === 0 ? "" : `${d > 0 ? "+" : ""}${num(d)}`));
      }),
    );
  }

  private procName(mmId: number): string {
    for (const p of this.session?.runner.procs.values() ?? []) if (p.mm.id === mmId) return p.name;
    return `mm${mmId}`;
  }

  private processes(m: Machine): HTMLElement {
    const out = h("div", { id: "procs" });
    const r = (this.session as StepSession).runner;
    for (const p of r.procs.values()) {
      if (!p.mm.alive) {
        out.append(h("h3", null, `${p.name} (mm${p.mm.id}): exited`));
        continue;
      }
      const f = r.figures(p.mm);
      const st = treeStats(m, p.mm);
      out.append(
        h("h3", null, `${p.name} (mm${p.mm.id})`),
        h(
          "div",
          { class: "muted" },
          Object.entries(f)
            .map(([k, v]) => `${k} ${num(v)}`)
            .join(" · "),
        ),
        h(
          "div",
          { class: "muted" },
          `tables: ${st.tables.map((t) => `${t.level} ${t.count}`).join(", ")}; leaves: ${
            Object.entries(st.leaves)
              .filter(([, n]) => n > 0)
              .map(([k, n]) => `${num(n)} ${k}`)
              .join(", ") || "none"
          }${st.cont > 0 ? `; ${st.cont} in contpte blocks` : ""}; regions: ${[...p.regions].map(([n, x]) => `${n} ${hex(x.start)}+${size(x.len)}`).join(", ") || "none"}`,
        ),
        this.table(m, p.mm, pgdView(m, p.mm)),
      );
    }
    return out;
  }

  private key(mm: Mm, level: number, va: number): string {
    return `${mm.id}:${level}:${va}`;
  }

  // One table: upper levels as a list of entries (tables expand), PTE tables as a grid.
  private table(m: Machine, mm: Mm, t: TableView): HTMLElement {
    if (t.level === 0) return this.grid(m, mm, t);
    const span = (m.geo.span[t.level] as number) * m.geo.pageSize;
    const box = h("div", { class: "tbl" });
    if (t.entries.length === 0) box.append(h("div", { class: "leaf muted" }, `(${t.levelName} table empty)`));
    for (const e of t.entries) {
      const head = `${t.levelName}[${e.index}] ${hex(e.va)}..${hex(e.va + span)}`;
      if (e.kind === "table") {
        const k = this.key(mm, t.level - 1, e.va);
        const d = h("details", { open: this.open.has(k) }, h("summary", null, `${head} → table pfn ${e.pfn}`));
        const fill = () => {
          if (d.childElementCount < 2) d.append(this.table(m, mm, tableView(m, e.childSlot, t.level - 1, e.va)));
        };
        if (this.open.has(k)) fill();
        d.addEventListener("toggle", () => {
          if ((d as HTMLDetailsElement).open) {
            this.open.add(k);
            fill();
          } else this.open.delete(k);
        });
        box.append(d);
      } else box.append(h("div", { class: `leaf ${e.kind}` }, `${head} ${e.kind === "huge" ? `${size(span)} leaf` : e.kind}: ${e.desc}${folioText(e)}`));
    }
    return box;
  }

  private grid(m: Machine, mm: Mm, t: TableView): HTMLElement {
    const byIndex = new Map(t.entries.map((e) => [e.index, e]));
    const g = h("div", { class: "grid", title: "" });
    let lastHead = -1;
    let alt = false;
    for (let i = 0; i < m.geo.ptrs; i++) {
      const e = byIndex.get(i);
      const va = t.va + i * m.geo.pageSize;
      const k = `${mm.id}:${va}`;
      const cls: string[] = [];
      if (e !== undefined) {
        cls.push(e.kind);
        const f = e.folio;
        if (f !== null) {
          if (f.flags.includes("zero")) cls.push("zero");
          else if (f.flags.includes("file") || f.flags.includes("shmem")) cls.push("file");
          if (f.pages > 1) {
            if (f.head !== lastHead) alt = !alt;
            lastHead = f.head;
            cls.push("large");
            if (alt) cls.push("alt");
          }
        }
        if (e.cont) cls.push("cont");
      }
      if (this.picked === k) cls.push("sel");
      const cell = h("span", {
        class: cls.join(" "),
        title: e === undefined ? `PTE[${i}] ${hex(va)}: none` : `PTE[${i}] ${hex(va)}: ${e.desc}${folioText(e)}`,
      });
      cell.addEventListener("click", () => {
        this.picked = k;
        this.render();
      });
      g.append(cell);
    }
    return h("div", null, h("div", { class: "leaf muted" }, `PTE table pfn ${t.pfn}: ${t.entries.length} of ${m.geo.ptrs} entries used`), g);
  }

  private pickedText(m: Machine): string {
    if (this.picked === null) return "click an entry of a PTE table";
    const [mmId, va] = this.picked.split(":").map(Number) as [number, number];
    const mm = m.mms.find((x) => x.id === mmId && x.alive);
    if (mm === undefined) return `mm${mmId} has exited`;
    // Walk down to the PTE table holding va.
    let t = pgdView(m, mm);
    while (t.level > 0) {
      const span = (m.geo.span[t.level] as number) * m.geo.pageSize;
      const e = t.entries.find((x) => x.va <= va && va < x.va + span);
      if (e === undefined || e.kind !== "table")
        return `${this.procName(mmId)} ${hex(va)}: ${e === undefined ? `no ${t.levelName} entry` : `${t.levelName} ${e.kind}: ${e.desc}${folioText(e)}`}`;
      t = tableView(m, e.childSlot, t.level - 1, e.va);
    }
    const e = t.entries.find((x) => x.va === va);
    return `${this.procName(mmId)} ${hex(va)}: PTE ${e === undefined ? "none" : `${e.kind}: ${e.desc}${folioText(e)}${e.cont ? "\ncontpte block member" : ""}`}`;
  }

  private tlb(m: Machine, cpu: number): HTMLElement {
    const es = tlbEntries(m, cpu);
    const runs = tlbRuns(es, m.geo.pageSize);
    const c = m.cpus[cpu] as Machine["cpus"][number];
    const loaded = c.loadedMm === null ? "none" : this.procName(c.loadedMm.id);
    return h(
      "div",
      { class: "cpu", id: `tlb-${cpu}` },
      h("h3", null, `CPU${cpu}: ${num(es.length)} entries in ${num(runs.length)} runs (loaded: ${loaded}${c.running === null ? ", lazy" : ""})`),
      h(
        "div",
        { class: "scroll" },
        h(
          "table",
          null,
          h(
            "tr",
            null,
            ["kind", "asid", "mm", "va", "entries", "size", "pfn", "perm"].map((x) => h("th", null, x)),
          ),
          runs
            .slice(0, TLB_ROWS)
            .map((e) =>
              h(
                "tr",
                null,
                h("td", null, e.kind === "walk" ? `walk L${e.level}` : e.kind),
                h("td", { class: "n" }, e.asid),
                h(
                  "td",
                  { class: e.mm === 0 ? "stale" : "", title: e.mm === 0 ? "no mm may use this ASID's entries without a flush first" : "" },
                  e.mm === 0 ? "unreachable" : this.procName(e.mm),
                ),
                h("td", null, e.count > 1 ? `${hex(e.va)}..${hex(e.va + e.count * e.bytes)}` : hex(e.va)),
                h("td", { class: "n" }, e.count),
                h("td", null, size(e.bytes)),
                h(
                  "td",
                  { class: "n" },
                  e.kind === "walk" ? `table ${e.pfn}` : e.count > 1 ? `${e.pfn}..${e.pfn + (e.count * e.bytes) / m.geo.pageSize - 1}` : e.pfn,
                ),
                h("td", null, e.perm),
              ),
            ),
          runs.length > TLB_ROWS ? h("tr", null, h("td", { colspan: 8, class: "muted" }, `... ${runs.length - TLB_ROWS} more runs`)) : null,
        ),
      ),
    );
  }
}

function folioText(e: EntryView): string {
  const f = e.folio;
  if (f === null) return "";
  return ` — folio pfn ${f.head} (${f.pages} page${f.pages > 1 ? "s" : ""}) ref ${f.refcount} map ${f.mapcount}${f.entireMapcount > 0 ? ` entire ${f.entireMapcount}` : ""} ${f.flags.join(",")}`;
}
