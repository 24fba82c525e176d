"""The warning board: a static site an office opens in a browser with no server (file://).

``index.html``: the day's open alerts by severity and region, each with its chart (observed, the
expected range on the alert days, the next 30 days' forecast band), the province's next 30 days,
the latest issue-of-the-month proposal and watch list, the cities, and the data-quality pages.
``city-<code>.html``: the same for one city, with the next 30 days of the city and its top
categories. Every style is inline, charts are inline SVG with the text drawn by the browser, and
proposals and data-quality pages are copied in, so the folder can be zipped and mailed.
"""
from __future__ import annotations

import datetime as dt
import math
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape
from sqlalchemy import Engine, and_, func, select

from alerts.pages import series_frame
from alerts.render import KIND, place_name
from hotline.core.html import SEVERITY, filters, page, severity_badge, table
from hotline.core.rarity import frequency, p_of
from hotline.core.reference import Reference
from hotline.core.severity import SEVERITY_RANK
from hotline.core.svg import series_chart
from proposals.job import latest
from proposals.report import label
from warehouse.schema import alerts, daily_counts, dq_verdicts, forecasts

MAX_CHARTS = 40
PAST_DAYS = 60
TOP_CATEGORIES = 5
BOARD_CSS = """
nav a { margin-right: .8em; }
.kpi { display: inline-block; margin: 0 1.2em .6em 0; padding: .3em .8em; \
border: 1px solid #d0d7de; border-radius: 4px; }
.kpi b { font-size: 1.4em; }
section.alert { border-top: 1px solid #e1e4e8; padding-top: .4em; }
.proposal { background: #f6f8fa; border-left: 4px solid #1f4e79; padding: .4em 1em; }
"""


def open_alerts(engine: Engine, day: dt.date, city: str | None = None) -> list[dict[str, Any]]:
    """Alerts firing on ``day`` (started on or before it, not resolved by it), the worst first."""
    a = alerts.c
    q = select(alerts).where(a.starts_on <= day, (a.state == "firing") | (a.ends_on > day))
    if city:
        q = q.where(a.city_code == city)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(q).mappings()]
    return sorted(rows, key=lambda r: (-SEVERITY_RANK.get(r["severity"], 0), r["status"] != "firing", r["region_code"],
                                       -(p_surprise(r))))


def p_surprise(r: Mapping[str, Any]) -> float:
    """An alert's surprise (-log10 p), from its score where an older row has none."""
    p = p_of(r.get("surprise"), r.get("score"))
    return 0.0 if p is None else -math.log10(max(p, 1e-300))


def _anchor(fp: str) -> str:
    return f"#a-{fp[:12]}"


def _alert_rows(items: Sequence[Mapping[str, Any]], ref: Reference, day: dt.date,
                href: Callable[[str], str] = _anchor) -> list[dict[str, Any]]:
    out = []
    for r in items:
        cat = "全部类别" if r["category_code"] == "*" else ref.taxonomy.name(r["category_code"])
        out.append({"severity": r["severity"], "place": place_name(r["labels"]),
                    "category": Markup('<a href="{0}">{1}</a>').format(href(r["fingerprint"]), cat),
                    "kind": KIND["zh"].get(r["kind"], r["kind"]), "observed": r["observed"], "expected": r["expected"],
                    "rarity": frequency(p_of(r.get("surprise"), r.get("score")), r.get("history_days")),
                    "since": r["starts_on"], "new": "今日新增" if r["starts_on"] == day else "",
                    "status": r["status"]})
    return out


def alert_table(items: Sequence[Mapping[str, Any]], ref: Reference, day: dt.date, fid: str,
                place: str, href: Callable[[str], str] = _anchor) -> str:
    """The alerts table with filters by severity, ``place`` (city on the province's board,
    district on a city's) and category."""
    data = [{"severity": r["severity"], "city": r.get("city_code") or "",
             "district": r["region_code"] if r["region_level"] == "district" else "",
             "category": "*" if r["category_code"] == "*" else ref.taxonomy.parent(r["category_code"])}
            for r in items]
    html = table(_alert_rows(items, ref, day, href), ALERT_COLUMNS, data)
    if not items:
        return html

    def values(key, name):
        return [(v, name(v)) for v in sorted({d[key] for d in data if d[key]})]

    present = {d["severity"] for d in data}
    groups = [("severity", "级别 severity", [(s, f"{SEVERITY[s]} {s}") for s in SEVERITY if s in present]),
              (place, "城市 city" if place == "city" else "区县 district", values(place, ref.regions.name)),
              ("category", "类别 category",
               values("category", lambda c: "全部类别" if c == "*" else ref.taxonomy.name(c)))]
    return filters(fid, html, groups)


ALERT_COLUMNS = [("severity", "级别 severity"), ("place", "地区 region"), ("category", "类别 category"),
                 ("kind", "类型 kind"), ("observed", "实际 observed"), ("expected", "预期 expected"),
                 ("rarity", "罕见程度 how unusual (本序列)"), ("since", "起始 since"), ("new", ""),
                 ("status", "状态 status")]


def _alert_sections(engine: Engine, items: Sequence[Mapping[str, Any]], ref: Reference, day: dt.date) -> str:
    parts = []
    for r in items[:MAX_CHARTS]:
        frame, alert_days = series_frame(engine, r, day)
        frame = frame[frame["ds"] >= day - dt.timedelta(days=PAST_DAYS)]
        cat = "全部类别" if r["category_code"] == "*" else ref.taxonomy.name(r["category_code"])
        title = f"{place_name(r['labels'])} · {cat} · {KIND['zh'].get(r['kind'], r['kind'])}"
        chart = series_chart(frame["ds"], frame["observed"], frame["expected"], frame["lower"], frame["upper"],
                             alert_days=alert_days, title=title)
        parts.append(f'<section class="alert" id="a-{r["fingerprint"][:12]}"><h3>{severity_badge(r["severity"])} '
                     f'{escape(title)}</h3><p class="meta">{escape(r.get("explanation") or "")}</p>{chart}</section>')
    if len(items) > MAX_CHARTS:
        parts.append(f'<p class="meta">另有 {len(items) - MAX_CHARTS} 条预警未绘图 (more alerts without a chart).</p>')
    return "".join(parts)


def _forecast_charts(engine: Engine, day: dt.date, region_level: str, region_code: str, ref: Reference,
                     top: int) -> str:
    """The region's total and its top level-1 categories: the last 60 days and the next 30."""
    f, c = forecasts.c, daily_counts.c
    with engine.connect() as conn:
        origin = conn.execute(select(func.max(f.origin)).where(
            f.region_level == region_level, f.region_code == region_code, f.origin <= day)).scalar()
        if origin is None:
            return '<p class="meta">暂无预测 (no forecast stored yet).</p>'
        fc = pd.DataFrame(conn.execute(select(f.category_level, f.category_code, f.ds, f.yhat, f.yhat_lo_95,
                                              f.yhat_hi_95).where(
            f.origin == origin, f.region_level == region_level, f.region_code == region_code,
            f.category_level.in_(["all", "l1"]))).mappings().all())
        obs = pd.DataFrame(conn.execute(select(c.category_code, c.ds, c.n_tickets).where(
            c.region_level == region_level, c.region_code == region_code, c.category_level.in_(["all", "l1"]),
            c.ds > day - dt.timedelta(days=PAST_DAYS), c.ds <= day)).mappings().all())
    if fc.empty:
        return '<p class="meta">暂无预测 (no forecast stored yet).</p>'
    fc["ds"] = pd.to_datetime(fc["ds"])
    if not obs.empty:
        obs["ds"] = pd.to_datetime(obs["ds"])
    sums = fc[fc["category_level"] == "l1"].groupby("category_code")["yhat"].sum().sort_values(ascending=False)
    codes = ["*", *sums.index[:top]]
    days = pd.date_range(pd.Timestamp(day) - pd.Timedelta(days=PAST_DAYS - 1), fc["ds"].max(), freq="D")
    parts = []
    for code in codes:
        g = fc[fc["category_code"] == code].set_index("ds").reindex(days)
        o = (obs[obs["category_code"] == code].set_index("ds")["n_tickets"].reindex(days)
             if not obs.empty else pd.Series(np.nan, index=days))
        o = o.where(days <= pd.Timestamp(day)).fillna(0).where(days <= pd.Timestamp(day))
        name = "全部诉求" if code == "*" else ref.taxonomy.name(code)
        nxt = float(g["yhat"].sum())
        title = f"{ref.regions.name(region_code)} · {name} · 未来30天预测约 {nxt:,.0f} 件"
        parts.append(series_chart(days, o, g["yhat"], g["yhat_lo_95"], g["yhat_hi_95"], title=title,
                                  labels={"expected": "预测 forecast", "band": "95% 区间 band"}))
    return "".join(f'<div class="chart">{p}</div>' for p in parts)


def _copy_proposal(rec: Mapping[str, Any] | None, out: Path) -> tuple[str | None, str | None]:
    """Copy the proposal's pages into the site; returns (zh href, en href) relative to the site."""
    if not rec or not rec.get("reports"):
        return None, None
    hrefs = []
    for lang in ("zh", "en"):
        src = Path((rec["reports"].get(lang) or {}).get("html", ""))
        if not src.is_file():
            hrefs.append(None)
            continue
        rel = Path("proposals") / src.parent.name / src.name
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out / rel)
        hrefs.append(rel.as_posix())
    return hrefs[0], hrefs[1]


def _proposal_block(rec: Mapping[str, Any] | None, ref: Reference, out: Path) -> str:
    if not rec:
        return ('<p class="meta">尚无每月一题建议：每月初由 hotline_monthly 生成，'
                '或运行 hotline propose --month YYYY-MM。</p>')
    zh, en = _copy_proposal(rec, out)
    month = pd.Timestamp(rec["month"]).to_period("M")
    ranked = {c["candidate"]: c for c in rec["candidates"]}
    links = " ".join(f'<a href="{escape(h)}">{t}</a>' for h, t in ((zh, "完整建议"), (en, "English")) if h)
    watch = [c for c in rec["candidates"] if c.get("role") == "watch"]
    rows = [{"candidate": label(c["candidate"], ref, "zh"), "score": round(c["score"], 3), "tickets": c["tickets"]}
            for c in watch]
    chosen = label(rec["chosen"], ref, "zh") if rec["chosen"] else "无候选"
    score = ranked.get(rec["chosen"], {}).get("score")
    who = f"（分析员改选：{escape(rec['override_by'])}）" if rec["status"] == "overridden" else ""
    return (f'<div class="proposal"><p><b>{month} 数据 → {month + 1} 每月一题建议：{escape(chosen)}</b>{who} '
            f'得分 {round(score, 3) if score is not None else "—"} {links}</p>'
            f'<p>观察名单 watch list</p>'
            f'{table(rows, [("candidate", "候选 candidate"), ("score", "得分 score"), ("tickets", "件数 tickets")])}'
            f'</div>')


def _latest_ranking(engine: Engine, ref: Reference, province_code: str, before: dt.date, out: Path,
                    var_dir: Path) -> tuple[dict[str, Any], str] | None:
    """The latest horse race before ``before`` (its Chinese JSON) and the links to its report,
    copied into the site; read once for the index and every city page."""
    from sla.race import as_json, latest_month, load_stored

    month = latest_month(engine, province_code, before)
    stored = load_stored(engine, month, ref, province_code) if month else None
    if not stored:
        return None
    links = []
    for lang, text in (("zh", "完整排名与趋势"), ("en", "English")):
        src = Path(var_dir) / "reports" / "ranking" / str(month) / f"province-{province_code}.{lang}.html"
        if src.is_file():
            rel = Path("ranking") / str(month) / src.name
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / rel)
            links.append(f'<a href="{escape(rel.as_posix())}">{text}</a>')
    return as_json(stored, ref, "zh"), " ".join(links)


def _ranking_block(latest: tuple[dict[str, Any], str] | None, ref: Reference, province_code: str,
                   city: str | None = None) -> str:
    """Each tier's first and bottom (for a city: its own rank in its tier and its districts)."""
    from sla.report import movement

    if not latest:
        return ('<p class="meta">尚无赛马排名：每月初由 hotline_monthly 生成，'
                '或运行 hotline ranking --month YYYY-MM。</p>')
    doc, links = latest
    levels = doc["levels"]
    picked = []  # (group, unit)
    if city:
        tier = ref.regions.province(province_code).city(city).tier
        picked += [(g, u) for g in levels.get("city", {}).get("groups", []) if g["group"] == tier
                   for u in g["units"] if u["code"] == city]
        picked += [(g, u) for g in levels.get("district", {}).get("groups", []) if g["group"] == city
                   for u in g["units"]]
    else:
        picked += [(g, u) for g in levels.get("city", {}).get("groups", []) for u in g["units"]
                   if u["rank"] == 1 or u["flagged"]]
    rows = [{"group": g["name"], "unit": u["name"], "rank": f"{u['rank'] or '—'}/{g['ranked']}",
             "composite": u["composite"], "move": movement(u["movement"]),
             "flag": "末位·需跟进" if u["flagged"] else ""} for g, u in picked]
    cols = [("group", "组 group"), ("unit", "地区 region"), ("rank", "名次 rank"), ("composite", "综合 composite"),
            ("move", "较上月 vs last month"), ("flag", "跟进 follow-up")]
    return f'<p><b>{doc["month"]} 赛马排名 horse race</b> {links}</p>' + table(rows, cols)


def _dq_links(engine: Engine, day: dt.date, out: Path) -> str:
    d = dq_verdicts.c
    with engine.connect() as conn:
        rows = conn.execute(select(d.suite, d.action, d.docs_path, d.logical_date).where(
            d.logical_date == day).order_by(d.created_at)).mappings().all()
    items = []
    for r in rows:
        src = Path(r["docs_path"] or "")
        href = None
        if src.is_file():
            rel = Path("dq") / str(day) / f"{r['suite']}-{src.name}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / rel)
            href = rel.as_posix()
        text = f"{r['suite']}: {r['action']}"
        items.append(f'<li><a href="{escape(href)}">{escape(text)}</a></li>' if href else f"<li>{escape(text)}</li>")
    return ("<ul>" + "".join(items) + "</ul>" if items
            else '<p class="meta">当日无数据质量记录 (no data-quality verdict for the day).</p>')


def kpis(items: Sequence[Mapping[str, Any]], tickets: int | None) -> str:
    counts = {s: sum(1 for a in items if a["severity"] == s) for s in SEVERITY}
    parts = [f'<span class="kpi">当日诉求 tickets <b>{tickets if tickets is not None else "—"}</b></span>']
    parts += [f'<span class="kpi">{severity_badge(s)} <b>{n}</b></span>' for s, n in counts.items()]
    return "<p>" + "".join(parts) + "</p>"


def day_tickets(engine: Engine, day: dt.date, level: str, code: str) -> int | None:
    c = daily_counts.c
    with engine.connect() as conn:
        return conn.execute(select(c.n_tickets).where(and_(c.ds == day, c.region_level == level, c.region_code == code,
                                                            c.category_level == "all"))).scalar()


def _section(sid: str, heading: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{escape(heading)}</h2>{body}</section>'


def _write(path: Path, title: str, body: str) -> Path:
    html = page(title, f"<style>{BOARD_CSS}</style>" + body)
    path.write_text(html, encoding="utf-8")
    return path


def build_board(engine: Engine, day: dt.date, ref: Reference, province_code: str, out: Path,
                var_dir: Path | None = None) -> Path:
    """Write the board for ``day`` into ``out`` (created); returns the index page. The reports it
    links are read from ``var_dir`` (default: the folder above ``out``)."""
    out = Path(out)
    var_dir = Path(var_dir) if var_dir else out.parent
    out.mkdir(parents=True, exist_ok=True)
    prov = ref.regions.province(province_code)
    items = [a for a in open_alerts(engine, day) if a["region_code"][:2] == province_code[:2]]
    by_city: dict[str, list[dict[str, Any]]] = {}
    for a in items:
        by_city.setdefault(a.get("city_code") or "", []).append(a)
    this_month = pd.Timestamp(day).to_period("M").start_time.date()  # proposals from months before it
    ranking = _latest_ranking(engine, ref, province_code, this_month, out, var_dir)
    nav = '<nav><a href="index.html">全省 province</a>' + "".join(
        f'<a href="city-{c.code}.html">{escape(c.zh)}</a>' for c in prov.cities) + "</nav>"
    city_rows = [{"city": Markup('<a href="city-{0}.html">{1}</a>').format(c.code, c.zh),
                  **{s: sum(1 for a in by_city.get(c.code, []) if a["severity"] == s) for s in SEVERITY}}
                 for c in prov.cities]
    title = f"{prov.zh}12345热线预警看板 · {day}"
    body = (f"<h1>{escape(title)}</h1>{nav}<p class=\"meta\">Early-warning board · 生成于 generated "
            f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC · 离线页面，无需服务器 (offline, no server)</p>"
            + kpis(items, day_tickets(engine, day, "province", province_code))
            + _section("proposal", "每月一题 Issue of the month",
                       _proposal_block(latest(engine, province_code, this_month), ref, out))
            + _section("alerts", f"今日预警 Alerts ({len(items)})", alert_table(items, ref, day, "fa", "city"))
            + _section("ranking", "赛马排名 Horse race", _ranking_block(ranking, ref, province_code))
            + _section("cities", "各市 Cities",
                       table(city_rows, [("city", "城市 city")] + [(s, SEVERITY[s]) for s in SEVERITY]))
            + _section("forecast", "未来30天预测 Next 30 days",
                       _forecast_charts(engine, day, "province", province_code, ref, 3))
            + _section("alert-charts", "预警图表 Alert charts", _alert_sections(engine, items, ref, day))
            + _section("dq", "数据质量 Data quality", _dq_links(engine, day, out)))
    index = _write(out / "index.html", title, body)
    for c in prov.cities:
        mine = by_city.get(c.code, [])
        ctitle = f"{c.zh}12345热线预警看板 · {day}"
        cbody = (f"<h1>{escape(ctitle)}</h1>{nav}"
                 + kpis(mine, day_tickets(engine, day, "city", c.code))
                 + _section("proposal", "每月一题 Issue of the month",
                            _proposal_block(latest(engine, c.code, this_month), ref, out))
                 + _section("alerts", f"今日预警 Alerts ({len(mine)})", alert_table(mine, ref, day, "fa", "district"))
                 + _section("ranking", "赛马排名 Horse race",
                            _ranking_block(ranking, ref, province_code, c.code))
                 + _section("forecast", "未来30天预测 Next 30 days",
                            _forecast_charts(engine, day, "city", c.code, ref, TOP_CATEGORIES))
                 + _section("alert-charts", "预警图表 Alert charts", _alert_sections(engine, mine, ref, day)))
        _write(out / f"city-{c.code}.html", ctitle, cbody)
    return index
