"""Self-contained HTML5 pages and tables: inline CSS, no network resource, Chinese first.

Rendering goes through Jinja2 with autoescaping, so every value is HTML-escaped unless it is
``markupsafe.Markup`` (trusted markup such as a chart from ``hotline.core.svg``).
"""
from __future__ import annotations

import datetime as dt
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from hotline.core.svg import FONT_STACK

SEVERITY = {"red": "红", "orange": "橙", "yellow": "黄"}

CSS = f"""
body {{ font-family: {FONT_STACK}; color: #222; line-height: 1.55; font-size: 15px;
       max-width: 1040px; margin: 24px auto; padding: 0 16px; }}
h1 {{ font-size: 1.5em; border-bottom: 2px solid #1f4e79; padding-bottom: .3em; }}
h2 {{ font-size: 1.12em; margin: 1.6em 0 .4em; }}
table {{ border-collapse: collapse; margin: .5em 0 1.2em; font-size: .92em; }}
th, td {{ border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; vertical-align: top; }}
th {{ background: #eef3f8; }}
tbody tr:nth-child(even) {{ background: #f8fafc; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
td.empty {{ color: #888; text-align: center; }}
.sev {{ display: inline-block; padding: 0 .5em; border-radius: 3px; font-weight: bold; white-space: nowrap; }}
.red {{ background: #d62728; color: #fff; }}
.orange {{ background: #f28e2b; color: #fff; }}
.yellow {{ background: #f7d13d; color: #222; }}
.ok {{ color: #1a7f37; }}
.missed {{ color: #b42318; }}
.meta {{ color: #555; font-size: .9em; margin: .2em 0 .5em; }}
svg.chart {{ display: block; max-width: 100%; height: auto; }}
@media print {{
  body {{ max-width: none; margin: 0; font-size: 10.5pt; }}
  section, tr, svg {{ break-inside: avoid; }}
  .sev, svg {{ -webkit-print-color-adjust: exact; print-color-adjust: exact; }}
  a {{ color: inherit; text-decoration: none; }}
}}
"""

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_PAGE = _ENV.from_string("""<!DOCTYPE html>
<html lang="{{ lang }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css }}</style>
</head>
<body>
{{ body }}
</body>
</html>
""")
_TABLE = _ENV.from_string("""<table>
<thead><tr>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in rows %}
<tr{% for k, v in attrs[loop.index0] %} data-{{ k }}="{{ v }}"{% endfor %}>
{%- for cls, value in row %}<td{% if cls %} class="{{ cls }}"{% endif %}>{{ value }}</td>{% endfor %}</tr>
{% else %}
<tr><td class="empty" colspan="{{ headers|length }}">无数据 no data</td></tr>
{% endfor %}
</tbody>
</table>""")


def fmt(value: Any) -> str:
    """Display text for a cell: dates as YYYY-MM-DD, 4 significant digits, — for missing."""
    if isinstance(value, Markup):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool):
        return "是 yes" if value else "否 no"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{float(value):.4g}"
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d}" if value.time() == dt.time() else f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return " · ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def severity_badge(level: str) -> Markup:
    """红/橙/黄 badge for a severity level (red, orange, yellow); other text is escaped as is."""
    if level in SEVERITY:
        return Markup('<span class="sev {0}">{1} {0}</span>').format(level, SEVERITY[level])
    return Markup.escape(fmt(level))


def _cell(key: str, value: Any) -> tuple[str, str]:
    if key == "severity":
        return "", severity_badge(value)
    numeric = isinstance(value, numbers.Real) and not isinstance(value, bool)
    return ("num" if numeric else ""), fmt(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str]],
          row_data: Sequence[Mapping[str, str]] | None = None) -> str:
    """An HTML table of ``rows`` (dicts) showing ``columns`` as (key, header) pairs, in order.

    Values are escaped (``Markup`` passes through); a ``severity`` column shows 红/橙/黄 badges;
    a missing key shows —; no rows shows 无数据 no data. ``row_data`` gives each row's
    ``data-*`` attributes (escaped), for :func:`filters`.
    """
    body = [[_cell(key, row.get(key)) for key, _ in columns] for row in rows]
    attrs = [sorted(d.items()) for d in row_data] if row_data is not None else [[] for _ in rows]
    return _TABLE.render(headers=[h for _, h in columns], rows=body, attrs=attrs)


_CODE = re.compile(r"[A-Za-z0-9_.:*-]+")
_FILTERS = _ENV.from_string("""<div class="filtered" id="{{ fid }}">
<style>{{ css }}</style>
{% for g in groups %}{% for o in g.options %}
<input type="radio" class="f" name="{{ fid }}-{{ g.key }}" id="{{ o.id }}"{% if o.all %} checked{% endif %}>
{% endfor %}{% endfor %}
<div class="filter-bar">
{% for g in groups %}
<div class="filter"><span class="meta">{{ g.title }}</span>
{%- for o in g.options %}<label for="{{ o.id }}">{{ o.label }}</label>{% endfor %}</div>
{% endfor %}
</div>
{{ table }}
</div>""")


def filters(fid: str, table_html: str, groups: Sequence[tuple[str, str, Sequence[tuple[str, str]]]]) -> str:
    """``table_html`` (from :func:`table` with ``row_data``) with a bar of filters above it, one
    group per (data key, title, [(value, label), ...]): choosing a value shows only the rows whose
    ``data-<key>`` is that value; the groups combine. Pure CSS (hidden radio buttons and sibling
    selectors): no script, so the page still works opened from disk anywhere."""
    css, out = [".filtered input.f{position:absolute;opacity:0;pointer-events:none}",
                ".filter{margin:.2em 0}.filter label{display:inline-block;margin:0 .3em;padding:0 .4em;"
                "border:1px solid #ccc;border-radius:3px;cursor:pointer}"], []
    for gi, (key, title, values) in enumerate(groups):
        options = [{"id": f"{fid}-{gi}-all", "label": "全部 all", "all": True}]
        for vi, (value, label) in enumerate(values):
            oid = f"{fid}-{gi}-{vi}"
            options.append({"id": oid, "label": label, "all": False})
            if not _CODE.fullmatch(str(value)):  # codes only: the value goes into a style sheet
                raise ValueError(f"filter value {value!r} is not a code")
            css.append(f'#{oid}:checked~table tbody tr:not([data-{key}="{value}"]){{display:none}}')
        for o in options:
            css.append(f'#{o["id"]}:checked~.filter-bar label[for="{o["id"]}"]{{background:#333;color:#fff}}')
        out.append({"key": key, "title": title, "options": options})
    return _FILTERS.render(fid=fid, css=Markup("".join(css)), groups=out, table=Markup(table_html))


def page(title: str, body_html: str, lang: str = "zh-CN") -> str:
    """A full HTML5 document (utf-8, inline CSS) around ``body_html``, which is trusted markup."""
    return _PAGE.render(title=title, lang=lang, css=Markup(CSS), body=Markup(body_html))
