"""The served site's pages as markup: the office's workbench (alerts, the district map, the red and
yellow list), the alert page's forms, the silence preview, the sign-in page. Every value from the
warehouse goes through escaping (markupsafe, ``hotline.core.html.table``); citizen text is masked
and inert (``alerts.render.inert_html``); the pages carry no script.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup, escape

from hotline.core.html import SEVERITY, page, table
from hotline.core.reference import Reference
from hotline.core.severity import SEVERITY_RANK
from reports.board import BOARD_CSS

SITE_CSS = """
header.site { display: flex; justify-content: space-between; align-items: center; border-bottom: 1px solid #d0d7de;
  margin-bottom: .6em; padding-bottom: .3em; }
header.site nav a { margin-right: 1em; }
header.site form { display: inline; }
form.act { border: 1px solid #d0d7de; border-radius: 4px; padding: .5em 1em; margin: .6em 0; max-width: 46em; }
form.act label { margin-right: 1em; }
form.act textarea, form.act input[type=text], form.act input[type=password] { width: 100%; box-sizing: border-box; }
button { padding: .25em 1em; }
.tiles { display: grid; grid-template-columns: 7em repeat(var(--cols), 5.2em); gap: 3px; margin: .4em 0 1em; }
.tile { border: 1px solid #ccc; border-radius: 3px; padding: 2px 3px; font-size: .8em; min-height: 2.6em;
  background: #f6f8fa; overflow: hidden; }
.tile.red { background: #c0392b; color: #fff; } .tile.orange { background: #e67e22; color: #fff; }
.tile.yellow { background: #f1c40f; } .tile .n { font-weight: bold; }
.rowhead { font-size: .85em; padding-top: .5em; }
.notice { background: #fff8c5; border: 1px solid #d4a72c; padding: .4em .8em; }
.error { background: #ffebe9; border: 1px solid #cf222e; padding: .4em .8em; }
"""


def site_page(title: str, body: str, user: Mapping[str, Any] | None, office_label: str, csrf: str | None) -> str:
    """A page of the site: the header (navigation, who is signed in, sign out) and ``body``
    (trusted markup)."""
    if user:
        who = Markup('{0} · {1} <form method="post" action="/logout"><input type="hidden" name="csrf" value="{2}">'
                     '<button type="submit">退出 sign out</button></form>').format(
            user["display_name"] or user["username"], office_label, csrf or "")
        kind = str(user["office"]).split(":")[0]
        board = '<a href="/board/">看板 board</a>' if kind in ("city", "province", "operator") else ""
        nav = Markup('<nav><a href="/">工作台 workbench</a>' + board
                     + '<a href="/proposal">每月一题 issue of the month</a>'
                     '<a href="/ranking">赛马 horse race</a><a href="/silences">静默 silences</a>'
                     '<a href="/export/alerts.xlsx">导出预警 alerts.xlsx</a></nav>')
    else:
        who, nav = Markup(""), Markup("<nav><a href=\"/login\">登录 sign in</a></nav>")
    head = Markup('<header class="site">{0}<span class="meta">{1}</span></header>').format(nav, who)
    return page(title, f"<style>{BOARD_CSS}{SITE_CSS}</style>{head}{body}")


def login_body(form_token: str, next_url: str, message: str | None) -> str:
    msg = Markup('<p class="error">{0}</p>').format(message) if message else ""
    return str(Markup(
        '<h1>12345热线预警 · 登录 Sign in</h1>{0}'
        '<form class="act" method="post" action="/login">'
        '<input type="hidden" name="csrf" value="{1}"><input type="hidden" name="next" value="{2}">'
        '<p><label for="u">用户名 username</label><input type="text" id="u" name="username" autocomplete="username" '
        'required maxlength="64"></p>'
        '<p><label for="p">密码 password</label><input type="password" id="p" name="password" '
        'autocomplete="current-password" required maxlength="200"></p>'
        '<button type="submit">登录 sign in</button></form>'
        '<p class="meta">账户由运维人员用 <code>hotline users add</code> 开设。Accounts are made by the operators '
        '(<code>hotline users add</code>).</p>').format(msg, form_token, next_url))


def tile_map(ref: Reference, cities: Sequence[str], items: Sequence[Mapping[str, Any]]) -> str:
    """The districts as tiles, a row per city, each coloured by its worst alert of the day (a
    city-wide alert colours the city's label). A tile grid needs no boundary data."""
    worst: dict[str, str] = {}
    count: dict[str, int] = {}
    for a in items:
        code = a["region_code"]
        count[code] = count.get(code, 0) + 1
        if SEVERITY_RANK.get(a["severity"], 0) > SEVERITY_RANK.get(worst.get(code, ""), 0):
            worst[code] = a["severity"]
    rows, cols = [], 1
    for c in cities:
        kids = [d for d, p in ref.regions.district_parent().items() if p == c]
        cols = max(cols, len(kids))
        cls = worst.get(c, "")
        rows.append(Markup('<div class="tile rowhead {0}" title="{1}">{2}{3}</div>').format(
            cls, ref.regions.name(c), ref.regions.name(c), Markup(f' <span class="n">{count[c]}</span>')
            if c in count else ""))
        for d in sorted(kids):
            rows.append(Markup('<div class="tile {0}" data-region="{1}" title="{2}">{2}{3}</div>').format(
                worst.get(d, ""), d, ref.regions.name(d), Markup(f'<br><span class="n">{count[d]}</span>')
                if d in count else ""))
            # pad the row so that each city starts a new one
        rows.extend(Markup('<div></div>') for _ in range(max(0, cols - len(kids))))
    legend = " ".join(f'<span class="sev {s}">{SEVERITY[s]} {s}</span>' for s in SEVERITY)
    return (f'<div class="tiles" style="--cols:{cols}">{"".join(rows)}</div>'
            f'<p class="meta">区县方格图：每格一个区县，颜色为当日最重的预警，数字为预警条数。{legend}</p>')


def ack_form(fp: str, csrf: str, acked: Mapping[str, Any] | None) -> str:
    done = ""
    if acked and acked.get("ack_by"):
        done = Markup('<p class="notice">已确认 acknowledged by {0} · {1} · {2}</p>').format(
            acked["ack_by"], acked.get("ack_verdict") or "—", acked.get("ack_comment") or "")
    return str(Markup(
        '<h2>确认与反馈 Acknowledge</h2>{0}<form class="act" id="ack" method="post" action="/alerts/{1}/ack">'
        '<input type="hidden" name="csrf" value="{2}">'
        '<p><label><input type="radio" name="verdict" value="useful" required> 有用 useful</label>'
        '<label><input type="radio" name="verdict" value="not_useful"> 无用 not useful</label></p>'
        '<p><label for="c">说明 comment</label><textarea id="c" name="comment" maxlength="500" rows="2"></textarea></p>'
        '<button type="submit">确认 acknowledge</button></form>').format(done, fp, csrf))


def silence_form(fp: str, csrf: str) -> str:
    return str(Markup(
        '<h2>静默 Silence</h2><form class="act" id="silence" method="post" action="/alerts/{0}/silence/preview">'
        '<input type="hidden" name="csrf" value="{1}">'
        '<p><label><input type="radio" name="what" value="series" checked> 本序列 this series</label>'
        '<label><input type="radio" name="what" value="category"> 本地区本类别（全部类型）'
        'this category here</label></p>'
        '<p><label for="h">时长 for</label><select id="h" name="hours"><option value="24">24 小时</option>'
        '<option value="72" selected>3 天</option><option value="168">7 天</option></select></p>'
        '<p><label for="r">原因 reason</label><input type="text" id="r" name="reason" required maxlength="300"></p>'
        '<button type="submit">预览 preview</button></form>').format(fp, csrf))


def silence_preview(fp: str, csrf: str, matchers: Sequence[str], hours: int, reason: str, what: str,
                    hits: Sequence[Mapping[str, Any]], ends_at: dt.datetime) -> str:
    rows = [{"severity": a["severity"], "place": (a.get("labels") or {}).get("region_name", a["region_code"]),
             "category": (a.get("labels") or {}).get("category_name", a["category_code"]), "kind": a["kind"],
             "status": a["status"]} for a in hits]
    return str(Markup(
        '<h1>静默预览 Silence preview</h1><p>匹配条件 matchers: <code>{0}</code></p>'
        '<p>至 until {1}（北京时间）· 原因 reason: {2}</p>'
        '<p>当前匹配的预警 alerts it matches now: <b>{3}</b>（之后新出现的同类预警也会被静默）</p>{4}'
        '<form class="act" id="confirm" method="post" action="/alerts/{5}/silence">'
        '<input type="hidden" name="csrf" value="{6}"><input type="hidden" name="what" value="{7}">'
        '<input type="hidden" name="hours" value="{8}"><input type="hidden" name="reason" value="{2}">'
        '<button type="submit">确认静默 create the silence</button> '
        '<a href="/alerts/{5}">取消 cancel</a></form>').format(
        " ".join(matchers), f"{ends_at.astimezone(dt.timezone(dt.timedelta(hours=8))):%Y-%m-%d %H:%M}", reason,
        len(hits), Markup(table(rows, [("severity", "级别 severity"), ("place", "地区 region"),
                                       ("category", "类别 category"), ("kind", "类型 kind"),
                                       ("status", "状态 status")])), fp, csrf, what, hours))


def silences_body(rows: Sequence[Mapping[str, Any]], csrf: str, can_end: Sequence[bool]) -> str:
    out = []
    for r, ok in zip(rows, can_end):
        end = Markup('<form method="post" action="/silences/{0}/end"><input type="hidden" name="csrf" value="{1}">'
                     '<button type="submit">解除 unsilence</button></form>').format(r["id"], csrf) if ok else ""
        out.append({"id": r["id"], "matchers": " ".join(r["matchers"]), "until": r["ends_at"],
                    "by": r["created_by"], "reason": r["reason"], "state": r["state"], "end": end})
    return "<h1>静默 Silences</h1>" + table(out, [("id", "编号 id"), ("matchers", "条件 matchers"),
                                                ("until", "至 until (UTC)"), ("by", "设置人 by"),
                                                ("reason", "原因 reason"), ("state", "状态 state"), ("end", "")])


def list_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], limit: int) -> str:
    keys = [f"c{i}" for i in range(len(headers))]
    shown = [dict(zip(keys, r)) for r in rows[:limit]]
    more = (f'<p class="meta">仅显示前 {limit} 条，共 {len(rows)} 条；完整名单请导出。'
            f'First {limit} of {len(rows)}: export for the whole list.</p>' if len(rows) > limit else "")
    return table(shown, list(zip(keys, headers))) + more


def esc(text: Any) -> Markup:
    return escape(text)
