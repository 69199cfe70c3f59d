"""Page assembly: one self-contained HTML file, every string escaped.

Text goes through :func:`esc` (``html.escape``). Figures travel as JSON inside a
``<script type="application/json">`` element, made safe for that context by :func:`script_json`
(``<``, ``>``, ``&`` and the JavaScript line separators as ``\\uXXXX``), so a layer named
``</script><script>alert(1)</script>`` stays data. The plotting library's JavaScript is inlined:
the page fetches nothing.

The header's ``<p id="run-end" class="end end-<state>">`` says how the run ended.

When every figure has been drawn the page sets ``data-tw-rendered="<count>"`` on ``<body>``;
a script error anywhere sets ``data-tw-errors``. A headless browser's DOM dump checks both.

Example:
    >>> script_json('{"name": "</script><b>"}')
    '{"name": "\\\\u003c/script\\\\u003e\\\\u003cb\\\\u003e"}'
    >>> esc("<script>alert(1)</script>")
    '&lt;script&gt;alert(1)&lt;/script&gt;'
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

_SCRIPT_UNSAFE = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def esc(value: object) -> str:
    """Text for HTML content and attribute values."""
    return html.escape(str(value), quote=True)


def script_json(json_text: str) -> str:
    """JSON text that cannot end or alter the ``<script>`` element holding it.

    The replaced characters only occur inside JSON strings, where ``\\uXXXX`` means the same.
    """
    for char, code in _SCRIPT_UNSAFE.items():
        json_text = json_text.replace(char, code)
    return json_text


def inline_script(code: str) -> str:
    """A ``<script>`` element for trusted library code, guarded against an early end tag."""
    code = code.replace("</script", "<\\/script").replace("</SCRIPT", "<\\/SCRIPT").replace("<!--", "<\\!--")
    return f"<script>{code}</script>"


@dataclass
class Figure:
    """A plot placeholder and its figure JSON (plotly's ``{"data": ..., "layout": ...}``)."""

    id: str
    json: str
    caption: str = ""  # HTML, already escaped


@dataclass
class Section:
    """A titled part of the page; ``body`` is HTML built with :func:`esc`."""

    id: str
    title: str
    body: str
    figures: list[Figure] = field(default_factory=list)


def figure_div(fig: Figure) -> str:
    """The element a figure is drawn into, with its caption."""
    caption = f'<p class="caption">{fig.caption}</p>' if fig.caption else ""
    return f'<div class="plot" id="{esc(fig.id)}"></div>{caption}'


def table(headers: list[str], rows: list[list[str]], *, cls: str = "", numeric: set[int] = frozenset()) -> str:
    """An HTML table; cells are HTML (escape them first); ``numeric`` columns are right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="{esc(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


_BOOT = """
window.twErrors = [];
window.twFail = function (msg) {
  window.twErrors.push(String(msg));
  var mark = function () { document.body.setAttribute('data-tw-errors', window.twErrors.join(' | ')); };
  if (document.body) { mark(); } else { document.addEventListener('DOMContentLoaded', mark); }
};
window.addEventListener('error', function (e) { window.twFail(e.message || e); });
window.addEventListener('unhandledrejection', function (e) { window.twFail(e.reason); });
"""

_DRAW = """
(function () {
  var figures = JSON.parse(document.getElementById('tw-figures').textContent);
  var config = {responsive: true, displaylogo: false};
  var jobs = figures.map(function (f) {
    return Plotly.newPlot(document.getElementById(f.id), f.figure.data, f.figure.layout, config);
  });
  Promise.all(jobs).then(function () {
    document.body.setAttribute('data-tw-rendered', String(jobs.length));
  }, window.twFail);
})();
"""

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #222; }
header { background: #263238; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 6px; font-size: 22px; }
header .meta { color: #cfd8dc; font-size: 13px; }
header .meta span { margin-right: 18px; }
header .end { margin: 8px 0 0; font-size: 15px; padding: 4px 10px; border-radius: 4px; display: inline-block;
              background: #455a64; }
header .end-finished { background: #2e7d32; } header .end-stopped { background: #ef6c00; }
header .end-crashed, header .end-exited { background: #c62828; } header .end-in_progress { background: #1565c0; }
nav { padding: 8px 32px; background: #eceff1; font-size: 13px; }
nav a { margin-right: 16px; color: #37474f; }
main { padding: 8px 32px 40px; max-width: 1400px; }
h2 { border-bottom: 1px solid #cfd8dc; padding-bottom: 4px; margin-top: 32px; }
h3 { margin: 24px 0 4px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border-bottom: 1px solid #e0e0e0; padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #fafafa; white-space: nowrap; }
table.findings td:nth-child(8) { overflow-wrap: anywhere; min-width: 18em; }
table.findings .fix { color: #555; margin-top: 4px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td code, .subject { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px;
                    overflow-wrap: anywhere; }
table.findings td:nth-child(5) { min-width: 14em; }
@media (max-width: 1000px) {  /* a laptop half-screen: every column stays on the page */
  header, nav, main { padding-left: 12px; padding-right: 12px; }
  table.findings th, table.findings td { padding: 4px 5px; }
  table.findings th:nth-child(2), table.findings td:nth-child(2) { display: none; }  /* epoch */
  table.findings td:nth-child(5) { min-width: 6em; }
  table.findings td:nth-child(8) { min-width: 12em; }
}
.sev { display: inline-block; white-space: nowrap; padding: 1px 8px; border-radius: 10px; color: #fff;
       font-size: 12px; }
.sev-error { background: #c62828; } .sev-warning { background: #ef6c00; } .sev-info { background: #1565c0; }
.ok { background: #e8f5e9; border: 1px solid #a5d6a7; padding: 14px 18px; border-radius: 6px; font-size: 15px; }
.caption, .note { color: #555; font-size: 13px; margin: 4px 0 12px; }
.plot { width: 100%; min-height: 120px; }
pre { background: #f5f5f5; padding: 12px; overflow: auto; font-size: 12px; }
"""


def page(title: str, meta: list[tuple[str, str]], sections: list[Section], plotly_js: str,
         end: tuple[str, str] | None = None) -> str:
    """The whole document. ``meta`` is (label, value) text shown under the title; ``end`` is
    (state, sentence): how the run ended, shown below it."""
    import json

    figures = [f for s in sections for f in s.figures]
    data = script_json("[" + ",".join(f'{{"id": {json.dumps(f.id)}, "figure": {f.json}}}' for f in figures) + "]")
    meta_html = "".join(f"<span>{esc(k)}: <b>{esc(v)}</b></span>" for k, v in meta)
    end_html = f'<p id="run-end" class="end end-{esc(end[0])}">{esc(end[1])}</p>' if end is not None else ""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "".join(f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_CSS}</style>{inline_script(_BOOT)}</head>"
        f"<body><header><h1>{esc(title)}</h1><div class=\"meta\">{meta_html}</div>{end_html}</header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        f'<script type="application/json" id="tw-figures">{data}</script>'
        f"{inline_script(plotly_js)}{inline_script(_DRAW)}</body></html>\n"
    )
