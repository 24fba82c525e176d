"""The horse race and trend report (赛马排名与趋势), Chinese first: the province's monthly brief,
the cities ranked within their tier with every metric, the districts of each city, the hotspots
and cross-city issues, and how the comparison is made fair. Offline HTML with inline SVG charts,
plus the brief as Markdown for the outbox."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup, escape

from hotline.core import html, svg
from hotline.core.reference import Reference
from sla.ranking import METRICS

LANGS = ("zh", "en")
T = {
    "zh": {"title": "{p}12345热线 {m} 赛马排名与趋势", "brief": "月度简报", "cities": "各市排名（同规模档内比较）",
           "districts": "各区排名（市内比较）", "trends": "热点迁移与跨市问题", "method": "比较方法",
           "rank": "名次", "unit": "地区", "composite": "综合得分", "move": "较上月", "closed": "办结量",
           "follow": "跟进", "flag": "末位·需跟进", "not_ranked": "样本不足，不排名", "cat": "诉求类别",
           "rising": "上升的市", "new": "新增（热点迁入）", "cooled": "回落", "seasonal": "去年同期亦上升",
           "change": "全省环比", "cross": "跨市", "anom": "有异常的市", "chart_comp": "综合得分（50 = 全省同结构水平）",
           "chart_metric": "{n}：优于(+)/差于(−)全省同结构水平（{u}）", "chart_trend": "上升城市数（前10类）",
           "none": "无",
           "partial": "注意：仓库中最早的工单为 {d}，早于本月受理、本月办结的工单不全，办理类指标仅供参考。",
           "other": "English version", "prev_computed": "上月名次由工单重算（上月未存排名）。",
           "worse": "显著差于全省同结构水平：{x}"},
    "en": {"title": "{p} 12345 hotline {m}: horse race and trends", "brief": "Monthly brief",
           "cities": "Cities (ranked within their size tier)", "districts": "Districts (ranked within their city)",
           "trends": "Hotspot migration and cross-city issues", "method": "How the comparison is made fair",
           "rank": "Rank", "unit": "Region", "composite": "Composite", "move": "vs last month", "closed": "Closed",
           "follow": "Follow-up", "flag": "bottom: follow up", "not_ranked": "too few tickets, not ranked",
           "cat": "Category", "rising": "Rising in", "new": "New (hotspot moved in)", "cooled": "Cooled",
           "seasonal": "Rose last year too", "change": "Province change", "cross": "Cross-city",
           "anom": "Cities with anomalies", "chart_comp": "Composite (50 = the province's level for the mix)",
           "chart_metric": "{n}: better (+) / worse (-) than the province for the mix ({u})",
           "chart_trend": "Cities rising (top 10 categories)", "none": "none",
           "partial": "Note: the warehouse's first ticket is from {d}; tickets received before it and closed this "
                      "month are missing, so the handling metrics are indicative.",
           "other": "中文版", "prev_computed": "Last month's ranks were computed from the tickets (none stored).",
           "worse": "significantly worse than its mix predicts: {x}"},
}
METHOD = {
    "zh": ["六项指标：按时办结率、平均办理时长、超期率、重复诉求率（同人同事，{w}天内）、满意率、解决率；"
           "权重见 config/sla.yaml。",
           "结构调整：每项指标先按全省本月各二级类别的水平，算出该地区按其自身类别结构“应有”的水平；"
           "调整值 = 全省水平 +（实际 − 应有）。"
           "疑难类别多的地区不因结构吃亏。",
           "得分：调整后差距除以全省各地区差距的标准差（封顶±3），按权重合成综合得分"
           "（50 为全省同结构水平，每 10 分为一个标准差）。",
           "市在同规模档（超大、大、中等、小城市）内排名，区在本市内排名；办结量少于 {n} 件的不排名；各组末位标记跟进，"
           "并列出显著差于全省同结构水平（z < −{z}）的指标。"],
    "en": ["Six metrics: on-time completion, mean handling time, overdue rate, repeat complaints (same caller, "
           "category and place within {w} days), satisfaction, resolution; weights in config/sla.yaml.",
           "Category mix: each metric's province-wide level per level-2 category this month gives what a region "
           "would score on its own mix (expected); adjusted = province level + (observed - expected).",
           "Scores: the adjusted gap over the spread of gaps across the province's regions (capped at +/-3), "
           "weighted into a composite T-score (50 = the province's level for the mix, 10 = one spread).",
           "Cities are ranked within their size tier, districts within their city; fewer than {n} closed tickets: "
           "not ranked; the bottom of each group is flagged, with the metrics significantly worse than its mix "
           "predicts (z < -{z})."],
}


STYLE = ("<style>.race td, .race th { white-space: nowrap; } .race td:last-child { white-space: normal; "
         "min-width: 12em; } .charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr)); "
         "gap: 6px 16px; }</style>")


def _fmt_metric(m: str, v: Any) -> str:
    if v is None:
        return "—"
    return f"{v:.1f}h" if METRICS[m][4] == "h" else f"{100 * v:.1f}%"


def movement(mv: int | None) -> str:
    """Places gained (↑) or lost (↓) against last month; — when last month has no rank."""
    if mv is None:
        return "—"
    return "→ 0" if mv == 0 else (f"↑ {mv}" if mv > 0 else f"↓ {-mv}")


def _move(u: dict[str, Any]) -> str:
    return movement(u["movement"])


def _names(codes: list[str], ref: Reference, lang: str) -> str:
    sep = "、" if lang == "zh" else ", "
    return sep.join(ref.regions.name(c, lang) for c in codes) or T[lang]["none"]


def brief_lines(doc: dict[str, Any], trends: dict[str, Any], ref: Reference, lang: str,
                proposal: dict[str, Any] | None = None) -> list[str]:
    """The monthly brief for the province's data hub: a few sentences, Chinese or English."""
    t, zh = T[lang], lang == "zh"
    out = []
    tot = trends.get("totals", {})
    cur = tot.get(doc["month"])
    m = pd.Period(doc["month"], freq="M")
    prev, ly = tot.get(str(m - 1)), tot.get(str(m - 12))
    if cur is not None:
        parts = [f"{cur:,} 件" if zh else f"{cur:,}"]
        if prev:
            parts.append((f"环比 {cur / prev - 1:+.1%}" if zh else f"{cur / prev - 1:+.1%} on last month"))
        if ly:
            parts.append((f"同比 {cur / ly - 1:+.1%}" if zh else f"{cur / ly - 1:+.1%} on a year ago"))
        out.append(("全省受理 " + "，".join(parts) + f"；本月办结 {doc['tickets_closed']:,} 件。") if zh else
                   (f"Tickets received: {', '.join(parts)}; closed this month: {doc['tickets_closed']:,}."))
    for g in doc["levels"].get("city", {}).get("groups", []):
        ranked = [u for u in g["units"] if u["rank"] is not None]
        if not ranked:
            continue
        top, bottom = ranked[0], [u for u in ranked if u["flagged"]]
        s = (f"{g['name']}：第一 {top['name']}（{top['composite']:.1f}）" if zh else
             f"{g['name']}: first {top['name']} ({top['composite']:.1f})")
        for b in bottom:
            worse = "、".join(METRICS[x][2] for x in b["significantly_worse"]) if zh else \
                ", ".join(METRICS[x][3] for x in b["significantly_worse"])
            s += (f"，末位 {b['name']}（{b['composite']:.1f}）" + (f"，{worse}显著差于全省同结构水平" if worse else "")
                  if zh else f", bottom {b['name']} ({b['composite']:.1f})"
                  + (f", {worse} significantly worse than its mix predicts" if worse else ""))
        out.append(s + ("。" if zh else "."))
    rising = [c for c in trends.get("categories", []) if c["rising"]][:3]
    for c in rising:
        name = ref.taxonomy.name(c["category"], lang)
        seas = (("（去年同期亦上升，属季节性）" if zh else " (rose last year too: seasonal)")
                if c["seasonal"] and set(c["seasonal"]) >= set(c["rising"]) else "")
        new = _names(c["new"], ref, lang)
        out.append(f"热点：{name}在 {len(c['rising'])} 个市上升（{_names(c['rising'], ref, lang)}；新增 {new}）{seas}。"
                   if zh else f"Hotspot: {name} rising in {len(c['rising'])} cities ({_names(c['rising'], ref, lang)}; "
                              f"new: {new}){seas}.")
    cross = trends.get("cross_city", [])
    if cross:
        names = ("、" if zh else ", ").join(ref.taxonomy.name(c["category"], lang) for c in cross[:5])
        out.append(f"跨市问题：{names}，建议省级统筹。" if zh else
                   f"Cross-city issues: {names}; coordinate at province level.")
    else:
        out.append("本月无跨市上升问题。" if zh else "No issue rose in several cities this month.")
    if proposal and proposal.get("chosen"):
        from proposals.report import label
        out.append(f"省级每月一题建议：{label(proposal['chosen'], ref, lang)}。" if zh else
                   f"The province's issue of the month: {label(proposal['chosen'], ref, lang)}.")
    cov = doc.get("coverage", {})
    if not doc.get("tickets_closed"):
        out.insert(0, "本月仓库中没有办结工单的明细（只有日计数或尚无数据），不排名。" if zh else
                   "No closed tickets in the warehouse for the month (counts only, or no data): no ranking.")
    elif not cov.get("complete", True) and cov.get("first_ticket_day"):
        out.append(t["partial"].format(d=cov["first_ticket_day"]))
    return out


def _level_section(level: dict[str, Any], level_name: str, ref: Reference, lang: str, charts: bool) -> str:
    t = T[lang]
    cols = [("rank", t["rank"]), ("name", t["unit"]), ("composite", t["composite"]), ("move", t["move"])]
    cols += [(m, METRICS[m][2] if lang == "zh" else METRICS[m][3]) for m in METRICS]
    cols += [("closed", t["closed"]), ("follow", t["follow"])]
    parts = []
    if level.get("previous") == "computed":
        parts.append(f'<p class="meta">{escape(t["prev_computed"])}</p>')
    for g in level["groups"]:
        rows = []
        for u in g["units"]:
            row = {"rank": u["rank"] if u["rank"] is not None else t["not_ranked"], "name": u["name"],
                   "composite": u["composite"], "move": _move(u), "closed": u["closed"]}
            for m in METRICS:
                mm = u["metrics"][m]
                rk = f"（{int(mm['rank'])}）" if mm.get("rank") is not None else ""
                row[m] = f"{_fmt_metric(m, mm['adjusted'])}{rk}"
            follow = []
            if u["flagged"]:
                follow.append(t["flag"])
            if u["significantly_worse"]:
                sep = "、" if lang == "zh" else ", "
                follow.append(t["worse"].format(x=sep.join(METRICS[x][2 if lang == "zh" else 3]
                                                           for x in u["significantly_worse"])))
            row["follow"] = Markup('<span class="missed">{}</span>').format("；".join(follow)) if follow else ""
            rows.append(row)
        parts.append(f"<h3>{escape(g['name'])}</h3><div class=\"race\">" + html.table(rows, cols) + "</div>")
        if charts:
            ranked = [u for u in g["units"] if u["composite"] is not None]
            parts.append(svg.bar_chart([u["name"] for u in ranked], [u["composite"] for u in ranked],
                                       title=f"{g['name']} · {t['chart_comp']}",
                                       highlight=[u["name"] for u in ranked if u["flagged"]],
                                       notes=[_move(u) for u in ranked]))
    return f"<section id=\"{level_name}\">" + "".join(parts) + "</section>"


def _metric_charts(level: dict[str, Any], lang: str) -> str:
    """One chart per metric: every ranked city's gap to the province's level for its mix (adjusted
    minus province), better to the right; red where significantly worse."""
    units = [(g, u) for g in level["groups"] for u in g["units"] if u["rank"] is not None]
    out = []
    for m, (_kind, higher, zh, en, unit) in METRICS.items():
        scale = 1.0 if unit == "h" else 100.0
        vals = []
        for _, u in units:
            mm = u["metrics"][m]
            gap = None if mm["adjusted"] is None or mm["benchmark"] is None else mm["adjusted"] - mm["benchmark"]
            vals.append(float("nan") if gap is None else (1 if higher else -1) * gap * scale)
        title = T[lang]["chart_metric"].format(n=zh if lang == "zh" else en,
                                               u=("小时" if lang == "zh" else "hours") if unit == "h"
                                               else ("百分点" if lang == "zh" else "points"))
        out.append(svg.bar_chart([u["name"] for _, u in units], vals, title=title, signed=True, width=520,
                                 highlight=[u["name"] for _, u in units if m in u["significantly_worse"]]))
    return '<div class="charts">' + "".join(out) + "</div>"


def _trend_section(trends: dict[str, Any], ref: Reference, lang: str) -> str:
    t = T[lang]
    rows = []
    for c in trends["categories"][:20]:
        rows.append({"cat": ref.taxonomy.name(c["category"], lang), "rising": _names(c["rising"], ref, lang),
                     "new": _names(c["new"], ref, lang), "cooled": _names(c["cooled"], ref, lang),
                     "seasonal": _names(c["seasonal"], ref, lang) if c["seasonal"] else "—",
                     "change": "—" if c["change"] is None else f"{c['change']:+.1%}",
                     "anom": _names(c["anomaly_cities"], ref, lang) if c["anomaly_cities"] else "—",
                     "cross": ("是" if lang == "zh" else "yes") if c["cross_city"] else ""})
    cols = [("cat", t["cat"]), ("rising", t["rising"]), ("new", t["new"]), ("cooled", t["cooled"]),
            ("seasonal", t["seasonal"]), ("change", t["change"]), ("anom", t["anom"]), ("cross", t["cross"])]
    top = [c for c in trends["categories"] if c["rising"]][:10]
    chart = svg.bar_chart([ref.taxonomy.name(c["category"], lang) for c in top], [len(c["rising"]) for c in top],
                          title=t["chart_trend"], highlight=[ref.taxonomy.name(c["category"], lang)
                                                             for c in top if c["cross_city"]])
    return html.table(rows, cols) + chart


def render(doc: dict[str, Any], trends: dict[str, Any], ref: Reference, lang: str, brief: list[str],
           method_args: dict[str, Any]) -> str:
    t = T[lang]
    pname = ref.regions.name(doc["province"], lang)
    title = t["title"].format(p=pname, m=doc["month"])
    other = f"province-{doc['province']}.{'en' if lang == 'zh' else 'zh'}.html"
    body = [STYLE, f"<h1>{escape(title)}</h1>", f'<p class="meta"><a href="{other}">{t["other"]}</a></p>',
            f'<section id="brief"><h2>{t["brief"]}</h2><ul>' + "".join(f"<li>{escape(x)}</li>" for x in brief)
            + "</ul></section>"]
    if "city" in doc["levels"]:
        body.append(f"<h2>{t['cities']}</h2>" + _level_section(doc["levels"]["city"], "cities", ref, lang, True))
        body.append(_metric_charts(doc["levels"]["city"], lang))
    body.append(f'<section id="trends"><h2>{t["trends"]}</h2>' + _trend_section(trends, ref, lang) + "</section>")
    if "district" in doc["levels"]:
        body.append(f"<h2>{t['districts']}</h2>" + _level_section(doc["levels"]["district"], "districts", ref, lang,
                                                                  True))
    body.append(f'<section id="method"><h2>{t["method"]}</h2><ul>'
                + "".join(f"<li>{escape(x.format(**method_args))}</li>" for x in METHOD[lang]) + "</ul></section>")
    return html.page(title, "\n".join(body), "zh-CN" if lang == "zh" else "en")


def write(doc_by_lang: dict[str, dict[str, Any]], trends: dict[str, Any], ref: Reference, var_dir: Path,
          briefs: dict[str, list[str]], method_args: dict[str, Any]) -> dict[str, str]:
    """Write ``var/reports/ranking/<month>/province-<code>.<lang>.html`` and the brief as Markdown."""
    any_doc = doc_by_lang["zh"]
    out_dir = Path(var_dir) / "reports" / "ranking" / any_doc["month"]
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for lang in LANGS:
        p = out_dir / f"province-{any_doc['province']}.{lang}.html"
        p.write_text(render(doc_by_lang[lang], trends, ref, lang, briefs[lang], method_args), encoding="utf-8")
        md = out_dir / f"brief-{any_doc['province']}.{lang}.md"
        md.write_text(f"# {T[lang]['brief']} {any_doc['month']}\n\n" + "\n".join(f"- {x}" for x in briefs[lang])
                      + "\n", encoding="utf-8")
        paths[lang] = str(p)
        paths[f"brief_{lang}"] = str(md)
    return paths
