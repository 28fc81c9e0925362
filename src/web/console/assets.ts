/**
 * The console's stylesheet and its one small script, served by the web
 * role from memory: the pages load nothing from another host, and the
 * Content-Security-Policy (src/web/security-headers.ts) allows scripts and
 * styles only from here. The pages work without the script: it only
 * submits the findings filter when a choice changes.
 */
import { createHash } from 'node:crypto';
import { Router, type RequestHandler } from 'express';

/**
 * Scoped to the console's own pages (`.console`) and header, since the
 * report page (inline styles, as mail clients need) carries the header too.
 * Badges carry a word, a colour and a glyph from the common fonts (DejaVu has them all); rows carry the state as text too, so
 * colour is never the only signal. On a narrow screen (the on-call's
 * phone) tables turn into stacked cards, each cell labelled.
 */
const CSS = `
:root { --fg:#1d232b; --muted:#5b6572; --line:#dde2e8; --bg:#f5f7f9; --card:#fff; --link:#0b57d0;
  --critical:#b3261e; --missed:#8e1d6b; --late:#b55a00; --error:#5b2b9e; --warning:#f2b000; --ok:#1e7a34; --never:#6b7480; --info:#1565c0; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color:var(--fg); background:var(--bg); }
a { color:var(--link); }
header.top { background:#1d232b; color:#fff; padding:8px 16px; display:flex; flex-wrap:wrap; gap:4px 16px; align-items:center; }
header.top .brand { font-weight:700; margin-right:8px; }
header.top a { color:#d7e3ff; text-decoration:none; padding:2px 0; }
header.top a[aria-current="page"] { color:#fff; border-bottom:2px solid #fff; }
header.top .who { margin-left:auto; color:#aab4c0; font-size:12px; }
.console { padding:12px 16px 32px; max-width:1400px; margin:0 auto; }
.console h1 { font-size:20px; margin:8px 0; }
.console h2 { font-size:16px; margin:20px 0 6px; }
.console h3 { font-size:14px; margin:14px 0 4px; color:var(--muted); }
.banner { padding:8px 12px; margin:8px 0; border-left:6px solid; background:var(--card); }
.banner.alarm { border-color:var(--critical); }
.banner.note { border-color:var(--info); }
.banner.done { border-color:var(--ok); }
.summary-line { font-size:16px; margin:6px 0 12px; }
.table-wrap { overflow-x:auto; background:var(--card); border:1px solid var(--line); border-radius:4px; }
.console table { border-collapse:collapse; width:100%; }
.console th, .console td { text-align:left; padding:6px 8px; border-bottom:1px solid var(--line); vertical-align:top; }
.console th { font-size:12px; color:var(--muted); font-weight:600; white-space:nowrap; }
tr.group th { background:#eef1f4; color:var(--fg); font-size:13px; }
td.num { text-align:right; white-space:nowrap; }
td.when { white-space:nowrap; }
.console td[data-label="schedule"] code { white-space:nowrap; }
.muted { color:var(--muted); }
.console code { font:12px ui-monospace, Menlo, Consolas, monospace; background:#eef1f4; padding:0 3px; border-radius:2px; overflow-wrap:anywhere; }
.badge { display:inline-block; min-width:64px; text-align:center; font-size:11px; font-weight:700; letter-spacing:.03em;
  text-transform:uppercase; padding:2px 6px; border-radius:3px; color:#fff; white-space:nowrap; }
.badge::before { margin-right:4px; }
.s-critical { background:var(--critical); } .s-critical::before { content:"\\2716"; }
.s-missed { background:var(--missed); } .s-missed::before { content:"\\2298"; }
.s-late { background:var(--late); } .s-late::before { content:"\\25D4"; }
.s-error { background:var(--error); } .s-error::before { content:"?"; }
.s-warning { background:var(--warning); color:#2b1d00; } .s-warning::before { content:"\\25B2"; }
.s-ok { background:var(--ok); } .s-ok::before { content:"\\2714"; }
.s-never_ran { background:var(--never); } .s-never_ran::before { content:"\\2013"; }
.s-info { background:var(--info); } .s-info::before { content:"i"; }
.counts .badge { min-width:0; }
.suggestion { color:var(--ok); }
form.filter { display:flex; flex-wrap:wrap; gap:8px; align-items:end; margin:6px 0 10px; }
form.filter label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
.console select, .console input, .console button { font:inherit; padding:4px 6px; }
.console button { cursor:pointer; }
form.run-now { display:inline-flex; gap:8px; align-items:center; margin:4px 0; }
form.suppress .fields { display:flex; flex-wrap:wrap; gap:8px; margin:6px 0; }
form.suppress label { display:flex; flex-direction:column; font-size:12px; color:var(--muted); }
.silenced { color:var(--muted); font-size:12px; }
.finding-actions { font-size:12px; }
dl.facts { display:grid; grid-template-columns:max-content 1fr; gap:2px 12px; margin:8px 0; }
dl.facts dt { color:var(--muted); }
dl.facts dd { margin:0; }
.console pre { white-space:pre-wrap; word-break:break-word; background:var(--card); border:1px solid var(--line); padding:8px; font-size:12px; }
@media (max-width: 720px) {
  .console { padding:8px; }
  table.cards thead { display:none; }
  table.cards, table.cards tbody, table.cards tr, table.cards td, table.cards th { display:block; width:100%; }
  table.cards tr { border-bottom:2px solid var(--line); padding:4px 0; }
  table.cards td { border:0; padding:2px 8px; }
  table.cards td[data-label]::before { content:attr(data-label) ": "; color:var(--muted); font-size:12px; }
  td.num { text-align:left; }
}
`;

/** Submits a filter form as soon as one of its choices changes (the form's button does the same without script). */
const JS = `
document.querySelectorAll('form.filter select').forEach(function (s) {
  s.addEventListener('change', function () { s.form.submit(); });
});
`;

function versioned(name: string, ext: string, body: string): { path: string; body: string } {
  const hash = createHash('sha256').update(body).digest('hex').slice(0, 10);
  return { path: `/${name}.${hash}.${ext}`, body };
}

/** Paths carry the content's hash, so a browser may cache them for good and never runs an old copy. */
const STYLE = versioned('console', 'css', CSS);
const SCRIPT = versioned('console', 'js', JS);

/** Where the pages link the assets from, under ASSETS_PATH. */
export const ASSET_FILES = { style: STYLE.path, script: SCRIPT.path } as const;

/** Serves the stylesheet and the script; mount at ASSETS_PATH. They hold nothing secret: no login needed. */
export function assetsRouter(): Router {
  const router = Router();
  const serve = (type: string, body: string): RequestHandler => (_req, res) => {
    res.set('Cache-Control', 'public, max-age=31536000, immutable').type(type).send(body);
  };
  router.get(STYLE.path, serve('text/css', STYLE.body));
  router.get(SCRIPT.path, serve('application/javascript', SCRIPT.body));
  return router;
}
