// The web view's page: layout and style only; the bundle (web/app.ts) builds
// everything in it. Served, it loads /app.js and fetches the scenario; as
// `ptlab ui --export` writes it, both are inside and it fetches nothing
// (the Content-Security-Policy allows no other origin either way; it allows
// eval because report/by-function.ts, which the runner imports, builds its
// counter loop with new Function() when loaded). No Node or DOM APIs.

const CSS = `
:root { --fg: #1d1d1f; --muted: #6e6e73; --line: #d2d2d7; --bg2: #f5f5f7; --hi: #fff3b0; --bad: #c62828; --ok: #2e7d32; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, sans-serif; color: var(--fg); }
header { display: flex; gap: 1em; align-items: center; padding: 6px 12px; border-bottom: 1px solid var(--line); background: var(--bg2); }
header h1 { font-size: 15px; margin: 0; }
header button.tab[aria-selected="true"] { font-weight: bold; background: white; }
main { display: none; padding: 8px 12px; gap: 12px; }
main.on { display: grid; }
#scenario { grid-template-columns: minmax(320px, 38%) 1fr; }
textarea { width: 100%; font: 12px/1.35 ui-monospace, monospace; tab-size: 2; }
#editor textarea { height: 55vh; }
.err { color: var(--bad); font-family: ui-monospace, monospace; white-space: pre-wrap; min-height: 1.4em; }
.okmsg { color: var(--ok); }
.muted { color: var(--muted); }
.controls { display: flex; gap: 4px; align-items: center; flex-wrap: wrap; margin: 4px 0; }
ol.steps { max-height: 22vh; overflow: auto; margin: 4px 0; padding-left: 3.2em; font-family: ui-monospace, monospace; font-size: 12px; border: 1px solid var(--line); }
ol.steps li { cursor: pointer; }
ol.steps li.done { color: var(--muted); }
ol.steps li.cur { background: var(--hi); color: var(--fg); }
ol.steps li.failed { background: #ffd6d6; }
table { border-collapse: collapse; font-size: 12px; }
td, th { border: 1px solid var(--line); padding: 1px 6px; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
h2 { font-size: 14px; margin: 10px 0 4px; }
h3 { font-size: 13px; margin: 8px 0 4px; }
.cols { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
details { margin-left: 1.1em; }
details > summary { cursor: pointer; font-family: ui-monospace, monospace; font-size: 12px; margin-left: -1.1em; }
.leaf { font-family: ui-monospace, monospace; font-size: 12px; }
.grid { display: grid; grid-template-columns: repeat(32, 11px); gap: 1px; margin: 4px 0 6px; }
.grid span { width: 11px; height: 11px; background: #eee; cursor: pointer; }
.grid span.page { background: #66bb6a; }
.grid span.page.file { background: #42a5f5; }
.grid span.page.zero { background: #b0bec5; }
.grid span.page.large { background: #2e7d32; }
.grid span.page.large.alt { background: #81c784; }
.grid span.cont { outline: 2px solid #ef6c00; outline-offset: -2px; }
.grid span.swap { background: #8e24aa; }
.grid span.migration { background: #e53935; }
.grid span.other { background: #795548; }
.grid span.sel { outline: 2px solid black; outline-offset: -1px; }
.legend span { display: inline-block; width: 10px; height: 10px; margin: 0 3px 0 10px; vertical-align: middle; }
#entry { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; background: var(--bg2); padding: 4px 6px; min-height: 2em; }
.stop { border: 1px solid var(--bad); background: #fff0f0; padding: 4px 8px; white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; }
.stale { color: var(--bad); }
.tl-row { display: flex; align-items: center; gap: 8px; }
.tl-row svg { cursor: pointer; flex: none; }
.tl-label { font-size: 12px; color: var(--muted); }
.scroll { max-height: 45vh; overflow: auto; }
#cx { grid-template-columns: 1fr; }
.lanes td { font-family: ui-monospace, monospace; font-size: 12px; min-width: 10em; }
.lanes { width: 100%; }
.lanes tr { cursor: pointer; }
.lanes tr.cur td { background: var(--hi); }
.lanes tr.fail td.act { background: #ffd6d6; }
.lanes td.act { border-left: 3px solid #1565c0; }
.lanes td.span { box-shadow: inset 3px 0 0 #e0a000; }
.lanes .holds { color: #8a6000; font-size: 85%; }
.lanes .arrow { color: #6a1b9a; font-size: 85%; }
.lanes .ch { color: var(--muted); white-space: pre-wrap; word-break: break-all; }
.cxcols { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 12px; }
.scroll70 { max-height: 70vh; overflow: auto; }
#cx-state td { font-family: ui-monospace, monospace; font-size: 11px; }
.lanes .ch.hit, .hit { color: var(--bad); font-weight: bold; }
`;

/** An offline page: the bundle and the scenario inside it, nothing fetched. */
export interface Inline {
  bundle: string;
  initial: { file: string; text: string };
}

// Text inside <script>: nothing in it may close the element early or open a
// comment (JSON gets \u003c for every "<"; the bundle has neither, checked).
function scriptText(js: string): string {
  if (/<\/script|<!--/i.test(js)) throw new Error("model bug: the bundle holds </script or <!--; escape it before inlining");
  return js;
}

export function pageHtml(inline: Inline | null = null): string {
  const script =
    inline === null
      ? `<script type="module" src="/app.js"></script>`
      : `<script type="application/json" id="ptlab-initial">${JSON.stringify(inline.initial).replace(/</g, "\\u003c")}</script>
<script type="module">${scriptText(inline.bundle)}</script>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ptlab</title>
<link rel="icon" href="data:,">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval' 'self'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'">
<style>${CSS}</style>
</head>
<body>
<header>
  <h1>ptlab</h1>
  <button class="tab" data-tab="scenario" aria-selected="true">Scenario</button>
  <button class="tab" data-tab="cx" aria-selected="false">Counterexample</button>
  <span id="status" class="muted"></span>
</header>
<main id="scenario" class="on">
  <section id="editor"></section>
  <section id="run"></section>
</main>
<main id="cx"></main>
<noscript>The web view needs JavaScript: the model runs in the page.</noscript>
${script}
</body>
</html>
`;
}
