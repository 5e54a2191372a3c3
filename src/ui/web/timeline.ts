// The run's timeline: one small chart per figure (VmPTE, RSS, TLB flushes,
// IPIs, modelled cycles) over the steps, each on its own scale so that no
// line hides another; the current step is a vertical rule, and a click runs
// or rewinds to the step under it.

import type { TimelinePoint } from "../session.js";
import { num } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 560;
const H = 34;

const SERIES: { key: keyof TimelinePoint; label: string }[] = [
  { key: "vmpteKb", label: "VmPTE kB" },
  { key: "rssKb", label: "RSS kB" },
  { key: "tlbFlushes", label: "TLB flushes" },
  { key: "ipis", label: "IPIs" },
  { key: "cycles", label: "modelled cycles" },
];

function el(tag: string, attrs: Record<string, string | number>): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

// points: timeline[0..done]; steps: the number of steps (x axis end).
export function timelineView(points: TimelinePoint[], steps: number, done: number, goto: (n: number) => void): HTMLElement {
  const box = document.createElement("div");
  box.id = "timeline";
  const x = (k: number) => (steps === 0 ? 0 : (k / steps) * W);
  for (const s of SERIES) {
    const vals = points.map((p) => p[s.key]);
    const max = Math.max(1, ...vals);
    const svg = el("svg", { width: W + 2, height: H + 2, viewBox: `-1 -1 ${W + 2} ${H + 2}`, class: "spark" }) as SVGSVGElement;
    svg.append(el("rect", { x: 0, y: 0, width: W, height: H, fill: "#fafafa", stroke: "#ddd" }));
    // A step function: a figure holds its value until the next step.
    const y = (v: number) => (H - (v / max) * H).toFixed(1);
    const d = vals.map((v, k) => (k === 0 ? `M0 ${y(v)}` : `H${x(k).toFixed(1)} V${y(v)}`)).join(" ");
    svg.append(el("path", { d, fill: "none", stroke: "#1565c0", "stroke-width": 1.5 }));
    svg.append(el("line", { x1: x(done), x2: x(done), y1: 0, y2: H, stroke: "#c62828" }));
    svg.addEventListener("click", (ev) => {
      const r = svg.getBoundingClientRect();
      goto(Math.round(((ev.clientX - r.left) / r.width) * steps));
    });
    const row = document.createElement("div");
    row.className = "tl-row";
    const label = document.createElement("span");
    label.className = "tl-label";
    label.textContent = `${s.label}: ${num(vals[vals.length - 1] ?? 0)} (max ${num(Math.max(0, ...vals))})`;
    row.append(svg, label);
    box.append(row);
  }
  return box;
}
