"""The proposal as offices read it, in HTML (with inline SVG charts) and Markdown, Chinese and
English: the issue, why now (the evidence), affected districts and streets, lead and cooperating
departments, suggested actions, measures to track, the watch list, and the follow-up of issues
chosen in earlier months. Written to var/reports/proposals/<month>/<scope>.<lang>.html|md."""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape
from sqlalchemy import Engine, select

from alerts.render import defang, inert_html, inert_md
from hotline.pii import mask_outgoing
from hotline.reference import Reference
from proposals import panel
from proposals.config import COMPONENTS, ProposalsConfig
from proposals.rank import candidate_id, parse_id
from reports.html import page, table
from reports.svg import bar_chart, series_chart
from warehouse.schema import proposals

LANGS = ("zh", "en")
T = {
    "zh": {
        "doc": "每月一题建议", "data": "数据月份", "for": "建议专项治理月份", "issue": "建议选题", "score": "综合得分",
        "why": "为什么是现在", "charts": "图表", "districts": "涉及区域", "streets": "集中街道", "samples": "典型诉求（已脱敏）",
        "depts": "责任部门", "lead": "牵头部门", "coop": "配合部门", "actions": "建议举措", "measures": "跟踪指标",
        "watch": "备选问题（观察名单）", "components": "评分构成", "followup": "往期选题跟踪", "method": "方法说明",
        "override": "分析员改选", "model": "模型推荐", "blocked": "近期已选、未见恶化，本月不再推荐",
        "none": "无", "incomplete": "本月数据尚不完整，以下为截至目前的数据。",
        "weak": "本月没有特别突出的问题（综合得分低于阈值）：以下为得分最高的候选，建议结合观察名单和上月选题研判。", "no_streets": "数据源未提供街道信息。",
        "trend": "月度趋势与未来三个月预测", "bars_d": "各区本月诉求量", "bars_c": "相关子类本月诉求量",
        "candidate": "候选", "rank": "名次", "current": "本月", "target": "目标", "then": "选题当月", "now": "本月",
        "change": "变化", "improved": "有所下降，未达目标", "worse": "未改善", "met": "达到目标", "observed": "月诉求量", "band": "预测区间",
        "expected": "预测", "focus": "集中于",
    },
    "en": {
        "doc": "Issue of the month proposal", "data": "Data month", "for": "Governance month", "issue": "Proposed issue",
        "score": "Score", "why": "Why now", "charts": "Charts", "districts": "Affected areas", "streets": "Streets",
        "samples": "Sample requests (personal data masked)", "depts": "Departments", "lead": "Lead department",
        "coop": "Cooperating departments", "actions": "Suggested actions", "measures": "Measures to track",
        "watch": "Runner-ups (watch list)", "components": "Score components", "followup": "Follow-up of earlier issues",
        "method": "Method", "override": "Chosen by an analyst", "model": "Model's pick",
        "blocked": "chosen recently and not worse: not proposed again this month", "none": "none",
        "incomplete": "The month is not over: figures are to date.",
        "weak": "No issue stands out this month (the best score is below the threshold): the best candidate "
                "follows; weigh it against the watch list and last month's issue.", "no_streets": "The source gives no streets.",
        "trend": "Monthly trend and the next three months' outlook", "bars_d": "Requests this month by area",
        "bars_c": "Related sub-categories this month", "candidate": "Candidate", "rank": "Rank", "current": "This month",
        "target": "Target", "then": "Month chosen", "now": "This month", "change": "Change",
        "improved": "down, short of the target",
        "worse": "not improved", "met": "target met", "observed": "Monthly requests", "band": "Outlook range", "expected": "Outlook",
        "focus": "concentrated in",
    },
}
COMPONENT_NAMES = {
    "zh": {"volume": "体量", "growth": "增长", "persistence": "持续性", "spread": "扩散", "repeat": "重复诉求",
           "unresolved": "未解决", "unsatisfied": "不满意", "overdue": "超期", "anomalies": "异常预警", "forecast": "前瞻预测"},
    "en": {c: c for c in COMPONENTS},
}


def _pct(x: Any) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * float(x):.1f}%"


def _n(x: Any) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    return f"{float(x):,.0f}" if abs(float(x)) >= 100 else f"{float(x):.1f}".removesuffix(".0")


@dataclass
class View:
    lang: str
    title: str
    head: dict[str, str]
    why: list[str]
    charts: list[Markup] = field(default_factory=list)
    districts: list[dict[str, Any]] = field(default_factory=list)
    streets: list[tuple[str, int]] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)
    lead: str = ""
    cooperating: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)
    measures: list[dict[str, Any]] = field(default_factory=list)
    watch: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    followup: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _place(code: str, ref: Reference, lang: str) -> str:
    return ref.regions.name(code, lang)


def label(cid: str, ref: Reference, lang: str) -> str:
    rl, rc, cl, cc = parse_id(cid)
    return f"{_place(rc, ref, lang)}{'·' if lang == 'zh' else ' · '}{ref.taxonomy.name(cc, lang)}"


def _num(row: Mapping[str, Any], key: str) -> float | None:
    """A finite number from a ranked row or a stored candidate (None, NaN and text are absent)."""
    v = row.get(key)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _text(row: Mapping[str, Any], key: str) -> str | None:
    v = row.get(key)
    return str(v) if isinstance(v, str) or hasattr(v, "isoformat") else None


def evidence_lines(row: Mapping[str, Any], scope_label: str, ref: Reference, lang: str, month: pd.Period) -> list[str]:
    """Why a candidate ranks where it does, in words, from a ranked row or a stored candidate."""
    out = []
    zh = lang == "zh"
    n, avg = _num(row, "tickets") or 0.0, _num(row, "daily_avg") or 0.0
    out.append(f"{month} 月共 {_n(n)} 件，日均 {_n(avg)} 件。" if zh else f"{_n(n)} requests in {month} ({_n(avg)} a day).")
    br, by, ex = _num(row, "base_recent"), _num(row, "base_last_year"), _num(row, "expected_daily")
    if br is not None and br < 0.2 and (by is None or by < 0.2):
        out.append("此前几乎没有此类诉求（前三个月和去年同月日均不足 0.2 件）：新出现的问题。" if zh else
                   "Almost none before (under 0.2 a day in the previous three months and a year ago): a new issue.")
    elif ex is not None and ex > 0:
        seasonal = row.get("expected_basis") == "seasonal"
        basis = (("去年同月按近三个月水平调整" if seasonal else "前三个月平均") if zh else
                 ("last year's same month at this year's level" if seasonal else "the previous three months"))
        out.append(f"本月预期日均 {_n(ex)} 件（{basis}），实际为预期的 {avg / ex:.2f} 倍。" if zh else
                   f"Expected {_n(ex)} a day ({basis}); actual {avg / ex:.2f}x that.")
    g = _num(row, "growth_ratio")
    if g is not None and g > 1.0:
        peak = _text(row, "peak_start")
        peak_ratio = _num(row, "growth_peak") or 0.0
        if peak and peak_ratio >= (_num(row, "growth_month") or 0.0):
            out.append(f"高峰两周自 {peak} 起；扣除随机波动后，仍为预期的 {g:.2f} 倍以上。" if zh else
                       f"Peak fortnight from {peak}: at least {g:.2f}x the expected once noise is allowed for.")
        else:
            out.append(f"扣除随机波动后，本月仍为预期的 {g:.2f} 倍以上。" if zh else
                       f"At least {g:.2f}x the expected once noise is allowed for.")
    mh = _num(row, "months_high")
    if mh:
        out.append(f"近 6 个月中有 {int(mh)} 个月高于常态水平。" if zh else f"Above its usual level in {int(mh)} of the last 6 months.")
    up, total = _num(row, "regions_up"), _num(row, "regions_total")
    if up and total and total > 1:
        out.append(f"{int(up)}/{int(total)} 个下辖区域显著上升。" if zh else
                   f"Significant rise in {int(up)} of {int(total)} sub-areas.")
    focus, share = _text(row, "focus"), _num(row, "focus_share")
    if focus and share is not None and share >= 0.5:
        out.append(f"增量的 {_pct(share)} 集中在{_place(focus, ref, lang)}。" if zh else
                   f"{_pct(share)} of the rise is in {_place(focus, ref, lang)}.")
    rate_names = {"repeat": ("重复诉求率", "repeat rate"), "unresolved": ("未解决率", "unresolved rate"),
                  "unsatisfied": ("不满意率", "unsatisfied rate"), "overdue": ("超期率", "overdue rate")}
    for k, (z, e) in rate_names.items():
        r, p0 = _num(row, f"{k}_rate"), _num(row, f"{k}_scope_rate")
        if r is not None and p0 and r > p0 * 1.1:
            out.append(f"{z} {_pct(r)}，高于{scope_label}平均 {_pct(p0)}。" if zh else f"{e} {_pct(r)} against {_pct(p0)} in {scope_label}.")
    days = _num(row, "anomalies")
    if days:
        out.append(f"本月有 {int(days)} 天检测到上升异常。" if zh else
                   f"Rising anomalies detected on {int(days)} day(s) this month.")
    o = _num(row, "outlook_ratio")
    if o is not None and o >= 1.15:
        when = month + int(_num(row, "outlook_month") or 1)
        out.append(f"按往年同期规律，预计 {when} 将达到本月的 {o:.1f} 倍：宜在高峰到来前提前部署（未诉先办）。" if zh else
                   f"Past years' pattern puts {when} at {o:.1f}x this month: act before the peak.")
    return out


def _trend(res_row: Mapping[str, Any], data: Any, lang: str, title: str) -> Markup:
    cid = res_row["candidate"]
    t = T[lang]
    m = data.monthly[data.monthly["series_id"] == cid].set_index("month")["n_tickets"]
    months = pd.period_range(data.month - 23, data.month, freq="M")
    cov = data.coverage.reindex(months)
    obs = (m.reindex(months).fillna(0) / cov * pd.Series([p.days_in_month for p in months], index=months)).where(cov > 0)
    base = float(obs.iloc[-1]) if np.isfinite(obs.iloc[-1]) else np.nan
    ahead = [data.month + h for h in (1, 2, 3)]
    exp = [res_row.get(f"outlook_{h}") for h in (1, 2, 3)]
    lo = [res_row.get(f"outlook_{h}_lo") for h in (1, 2, 3)]
    hi = [res_row.get(f"outlook_{h}_hi") for h in (1, 2, 3)]
    def f(xs: list[Any], z: float = 0.0) -> list[float]:
        """Outlook ratios times this month; z widens by Poisson noise (the range over past years
        alone is a single line when only one year is known)."""
        vals = [base * x if x is not None and np.isfinite(x) else np.nan for x in xs]
        return [max(v + z * math.sqrt(max(v, 0.0)), 0.0) if np.isfinite(v) else np.nan for v in vals]

    ds = [p.start_time for p in months] + [p.start_time for p in ahead]
    nan = [np.nan] * len(months)
    exp_all, lo_all, hi_all = nan[:-1] + [base] + f(exp), nan[:-1] + [base] + f(lo, -2), nan[:-1] + [base] + f(hi, 2)
    return Markup(series_chart(ds, list(obs.to_numpy()) + [np.nan] * 3, exp_all, lo_all, hi_all, title=title,
                               labels={"observed": t["observed"], "expected": t["expected"], "band": t["band"]},
                               monthly=True))


def _districts(res_row: Mapping[str, Any], data: Any, scope: Any, ref: Reference, lang: str) -> list[dict[str, Any]]:
    """The candidate's category in each sub-area: the scope's, or for a city candidate of the
    province, that city's districts."""
    rl, rc, cl, cc = parse_id(res_row["candidate"])
    children, level = scope.children, scope.child_level
    if scope.level == "province" and rl == "city":
        children, level = tuple(d.code for d in ref.regions.province(scope.code).city(rc).districts), "district"
    rows = []
    mon = data.monthly
    for child in children:
        sid = candidate_id(level, child, cl, cc)
        s = mon[mon["series_id"] == sid].set_index("month")["n_tickets"]
        now = float(s.get(data.month, 0.0))
        prev = [float(s.get(data.month - k, 0.0)) for k in (1, 2, 3)]  # no row: no ticket that month
        cov = [float(data.coverage.get(data.month - k, 0) or 0) for k in (1, 2, 3)]
        per_day = [p / c for p, c in zip(prev, cov) if c > 0 and np.isfinite(p)]
        base = float(np.mean(per_day)) * float(data.coverage.get(data.month, 0) or 0) if per_day else np.nan
        rows.append({"code": child, "name": _place(child, ref, lang), "tickets": now, "base": base,
                     "change": now / base - 1 if base and np.isfinite(base) and base >= 3 else np.nan})
    return sorted(rows, key=lambda r: -r["tickets"])


def _subcategories(res_row: Mapping[str, Any], data: Any, ref: Reference, lang: str) -> tuple[list[str], list[float], set[str]]:
    rl, rc, cl, cc = parse_id(res_row["candidate"])
    l1 = cc.split(".")[0]
    cur = data.current
    mon = cur[(cur["region_code"] == rc) & (cur["category_level"] == "l2") & cur["category_code"].str.startswith(l1 + ".")]
    mon = mon.sort_values("n_tickets", ascending=False).head(8)
    names = [ref.taxonomy.name(c, lang) for c in mon["category_code"]]
    marked = {ref.taxonomy.name(cc, lang)} if cl == "l2" else set()
    return names, mon["n_tickets"].tolist(), marked


def _followup(engine: Engine, scope: str, data: Any, ref: Reference, lang: str,
              target: float = -0.2) -> list[dict[str, Any]]:
    p = proposals.c
    with engine.connect() as conn:
        rows = conn.execute(select(p.month, p.chosen, p.candidates).where(
            p.scope == scope, p.month < data.month.start_time.date(),
            p.month >= (data.month - 12).start_time.date(), p.chosen.is_not(None)).order_by(p.month)).mappings().all()
    out = []
    cur = data.current.set_index("series_id")
    days_now = float(data.coverage.get(data.month, 0) or 0)
    for r in rows:
        then = next((c for c in r["candidates"] or [] if c.get("candidate") == r["chosen"]), None)
        if not then or days_now == 0:
            continue
        zero = {"n_tickets": 0.0, "n_repeat": 0.0, "n_unsatisfied": 0.0, "n_rated": 0.0}
        c = cur.loc[r["chosen"]] if r["chosen"] in cur.index else zero  # no row: no ticket this month
        now_avg = float(c["n_tickets"]) / days_now
        now_rep = float(c["n_repeat"]) / float(c["n_tickets"]) if c["n_tickets"] else np.nan
        now_sat = 1 - float(c["n_unsatisfied"]) / float(c["n_rated"]) if c["n_rated"] else np.nan
        then_sat = (1 - then["unsatisfied_rate"]) if then.get("unsatisfied_rate") is not None else np.nan
        change = now_avg / float(then["daily_avg"]) - 1 if then.get("daily_avg") else np.nan
        verdict = (T[lang]["met"] if change <= target else T[lang]["improved"] if change < 0 else T[lang]["worse"]) \
            if np.isfinite(change) else "—"
        out.append({"month": str(pd.Timestamp(r["month"]).to_period("M")), "issue": label(r["chosen"], ref, lang),
                    "then_avg": then["daily_avg"], "now_avg": now_avg,
                    "then_repeat": then.get("repeat_rate"), "now_repeat": now_rep,
                    "then_sat": then_sat, "now_sat": now_sat,
                    "change": change, "verdict": verdict})
    return out


def build_view(engine: Engine, res: Any, data: Any, cfg: ProposalsConfig, ref: Reference, lang: str,
               complete: bool = True) -> View:
    t = T[lang]
    scope_label = _place(res.scope.code, ref, lang)
    month = res.month
    chosen = res.choice["chosen"]
    head = {t["data"]: str(month), t["for"]: str(month + 1)}
    if not chosen:
        return View(lang, f"{t['doc']} · {scope_label} · {month}", head, [t["none"]])
    ranked = res.ranked.set_index("candidate", drop=False)
    row = ranked.loc[chosen].to_dict()
    rl, rc, cl, cc = parse_id(chosen)
    issue = label(chosen, ref, lang)
    head[t["issue"]] = issue
    head[t["score"]] = f"{row['score']:.3f}"
    if res.override:
        head[t["override"]] = f"{res.override.get('by')}: {res.override.get('reason')}"
        head[t["model"]] = label(res.choice["model_choice"], ref, lang) if res.choice["model_choice"] else t["none"]
    v = View(lang, f"{t['doc']} · {scope_label} · {month}：{issue}" if lang == "zh" else
             f"{t['doc']} · {scope_label} · {month}: {issue}", head, evidence_lines(row, scope_label, ref, lang, month))
    if row["score"] < float(cfg.scoring["weak_score"]):
        v.why.insert(0, t["weak"])
    if not complete:
        v.notes.append(t["incomplete"])
    if res.lost_override:
        lo = res.lost_override
        v.notes.append(f"分析员 {lo.get('by')} 此前改选的“{label(lo['candidate'], ref, lang) if lo.get('candidate') else '—'}”"
                       f"已不在本月候选中（理由：{lo.get('reason')}），现为模型推荐。" if lang == "zh" else
                       f"The analyst's earlier choice ({lo.get('by')}: "
                       f"{label(lo['candidate'], ref, lang) if lo.get('candidate') else '—'}) is no longer a "
                       f"candidate; the model's pick stands.")
    v.charts.append(_trend(row, data, lang, f"{issue} · {t['trend']}"))
    dist = _districts(row, data, res.scope, ref, lang)
    v.districts = dist
    top = dist[:12]
    focus = _place(row["focus"], ref, lang) if row.get("focus") and (row.get("focus_share") or 0) >= 0.5 else (_place(rc, ref, lang) if rl == res.scope.child_level else "")
    v.charts.append(Markup(bar_chart([d["name"] for d in top], [d["tickets"] for d in top],
                                     title=f"{ref.taxonomy.name(cc, lang)} · {t['bars_d']}", highlight={focus} if focus else (),
                                     notes=[("+" if d["change"] >= 0 else "") + _pct(d["change"]) if np.isfinite(d["change"])
                                            else "" for d in top])))
    names, vals, marked = _subcategories(row, data, ref, lang)
    v.charts.append(Markup(bar_chart(names, vals, title=f"{_place(rc, ref, lang)} · {t['bars_c']}", highlight=marked)))
    cid4 = parse_id(chosen)
    v.samples = panel.sample_titles(engine, cid4, month)
    v.streets = panel.top_streets(engine, cid4, month)
    v.lead = ref.taxonomy.categories[cc].department
    v.cooperating = list(cfg.by_category(cfg.cooperating, cc, []))
    tmpl = cfg.by_category(cfg.actions, cc) or cfg.actions.get("default") or {}
    place_text = focus or _place(rc, ref, lang)
    v.actions = [a.format(place=place_text, category=ref.taxonomy.name(cc, lang)) for a in tmpl.get(lang, [])]
    current = {"volume": row["tickets"], "repeat_rate": row.get("repeat_rate"),
               "satisfaction": (1 - row["unsatisfied_rate"]) if row.get("unsatisfied_rate") is not None
               and np.isfinite(row["unsatisfied_rate"]) else None, "overdue_rate": row.get("overdue_rate")}
    for mdef in cfg.measures:
        cur = current.get(mdef["key"])
        shown = _n(cur) if mdef["key"] == "volume" else _pct(cur)
        tgt = float(mdef.get("target", 0))
        v.measures.append({"name": mdef[lang], "current": shown,
                           "target": (f"{tgt:+.0%}" if mdef["key"] in ("volume", "repeat_rate", "overdue_rate")
                                      else f"{tgt * 100:+.0f} 个百分点" if lang == "zh" else f"{tgt * 100:+.0f} points")})
    names_c = COMPONENT_NAMES[lang]
    for i, cid in enumerate([chosen, *res.choice["watch"]]):
        r = ranked.loc[cid]
        rec = {"candidate": label(cid, ref, lang), t["rank"]: int(res.ranked.index[res.ranked["candidate"] == cid][0]) + 1,
               t["score"]: round(float(r["score"]), 3), t["current"]: int(r["tickets"])}
        rec.update({names_c[c]: round(float(r[f"c_{c}"]), 2) for c in COMPONENTS})
        v.components.append(rec)
        if i:
            v.watch.append({"candidate": label(cid, ref, lang), "score": round(float(r["score"]), 3),
                            "tickets": float(r["tickets"]),
                            "why": "；".join(x.rstrip("。") for x in evidence_lines(r.to_dict(), scope_label, ref, lang, month)[1:3])
                            + "。" if lang == "zh" else " ".join(evidence_lines(r.to_dict(), scope_label, ref, lang, month)[1:3])})
    for cid, when in res.choice["blocked"].items():
        v.notes.append(f"{label(cid, ref, lang)}：{when} {t['blocked']}" if lang == "zh" else
                       f"{label(cid, ref, lang)}: {when}, {t['blocked']}")
    vol_target = next((float(m.get("target", -0.2)) for m in cfg.measures if m.get("key") == "volume"), -0.2)
    v.followup = _followup(engine, res.scope.code, data, ref, lang, vol_target)
    weights = "，".join(f"{names_c[c]} {w:g}" for c, w in cfg.weights.items() if w) if lang == "zh" else \
        ", ".join(f"{c} {w:g}" for c, w in cfg.weights.items() if w)
    v.notes.append(("得分为各分项（0-1）的加权平均，权重见 config/proposals.yaml：" + weights + "。前瞻预测按往年同期月度比例推算。")
                   if lang == "zh" else ("The score is the weighted mean of the components (0-1), weights in "
                                         "config/proposals.yaml: " + weights + ". The outlook applies past years' "
                                         "month-to-month ratios to this month."))
    return v


def render_markdown(v: View) -> str:
    """The proposal in Markdown. Text we did not write (ticket texts, street names, an analyst's
    name and reason in the head and notes) is placed through :func:`alerts.render.inert_md`."""
    t = T[v.lang]
    md = inert_md
    lines = [f"# {v.title}", ""]
    lines += [f"- **{k}**：{md(val)}" if v.lang == "zh" else f"- **{k}**: {md(val)}" for k, val in v.head.items()]
    lines += ["", f"## {t['why']}", *[f"- {x}" for x in v.why]]
    if v.districts:
        lines += ["", f"## {t['districts']}", "", "| | " + t["current"] + " | " + t["change"] + " |", "|---|---:|---:|"]
        lines += [f"| {d['name']} | {_n(d['tickets'])} | {_pct(d['change'])} |" for d in v.districts[:12]]
        colon, sep = ("：", "、") if v.lang == "zh" else (": ", ", ")
        lines += ["", f"**{t['streets']}**{colon}" + (sep.join(f"{md(s)} ({n})" for s, n in v.streets) if v.streets
                                                      else t["no_streets"])]
    if v.samples:
        lines += ["", f"## {t['samples']}", *[f"- {md(s)}" for s in v.samples]]
    if v.lead:
        colon, sep = ("：", "、") if v.lang == "zh" else (": ", ", ")
        lines += ["", f"## {t['depts']}", f"- {t['lead']}{colon}{v.lead}",
                  f"- {t['coop']}{colon}{sep.join(v.cooperating) or t['none']}"]
    if v.actions:
        lines += ["", f"## {t['actions']}", *[f"{i}. {a}" for i, a in enumerate(v.actions, 1)]]
    if v.measures:
        lines += ["", f"## {t['measures']}", "", f"| | {t['current']} | {t['target']} |", "|---|---:|---:|"]
        lines += [f"| {m['name']} | {m['current']} | {m['target']} |" for m in v.measures]
    if v.watch:
        lines += ["", f"## {t['watch']}", *[f"- {w['candidate']}（{w['score']}）：{w['why']}" if v.lang == "zh" else
                                              f"- {w['candidate']} ({w['score']}): {w['why']}" for w in v.watch]]
    if v.components:
        keys = [k for k in v.components[0] if k not in ("candidate",)]
        lines += ["", f"## {t['components']}", "", "| " + " | ".join([t["candidate"], *keys]) + " |",
                  "|" + "---|" * (len(keys) + 1)]
        lines += ["| " + " | ".join([c["candidate"], *[str(c[k]) for k in keys]]) + " |" for c in v.components]
    if v.followup:
        lines += ["", f"## {t['followup']}", "", f"| | {t['then']} | {t['now']} | {t['change']} |", "|---|---|---|---|"]
        lines += [f"| {f['month']} {f['issue']} | {_n(f['then_avg'])}/d · {_pct(f['then_repeat'])} · {_pct(f['then_sat'])} "
                  f"| {_n(f['now_avg'])}/d · {_pct(f['now_repeat'])} · {_pct(f['now_sat'])} | {_pct(f['change'])} {f['verdict']} |"
                  for f in v.followup]
    if v.notes:
        lines += ["", f"## {t['method']}", *[f"- {md(n)}" for n in v.notes]]
    return mask_outgoing("\n".join(lines) + "\n")


def render_html(v: View, other_lang_href: str | None = None) -> str:
    """The proposal as a page; text we did not write is escaped and its URLs defanged
    (:mod:`alerts.render`), as in the notices."""
    t = T[v.lang]
    e = escape
    parts = [f"<h1>{e(v.title)}</h1>"]
    if other_lang_href:
        parts.append(f'<p class="meta"><a href="{e(other_lang_href)}">{"English" if v.lang == "zh" else "中文"}</a></p>')
    parts.append(table([{"k": k, "v": defang(val)} for k, val in v.head.items()], [("k", ""), ("v", "")]))
    parts.append(f"<h2>{e(t['why'])}</h2><ul class=\"why\">" + "".join(f"<li>{e(x)}</li>" for x in v.why) + "</ul>")
    if v.charts:
        parts.append(f"<h2>{e(t['charts'])}</h2>" + "".join(f'<div class="chart">{c}</div>' for c in v.charts))
    if v.districts:
        parts.append(f"<h2>{e(t['districts'])}</h2>" + table(
            [{"name": d["name"], "tickets": d["tickets"], "change": _pct(d["change"])} for d in v.districts],
            [("name", ""), ("tickets", t["current"]), ("change", t["change"])]))
        colon, sep = ("：", "、") if v.lang == "zh" else (": ", ", ")
        streets = sep.join(f"{defang(s)} ({n})" for s, n in v.streets) if v.streets else t["no_streets"]
        parts.append(Markup("<p><b>{0}</b>{1}{2}</p>").format(t["streets"], colon, streets))
    if v.samples:
        parts.append(f"<h2>{e(t['samples'])}</h2><ul>" + "".join(f"<li>{inert_html(s)}</li>" for s in v.samples) + "</ul>")
    if v.lead:
        colon, sep = ("：", "、") if v.lang == "zh" else (": ", ", ")
        parts.append(f"<h2>{e(t['depts'])}</h2><ul><li>{e(t['lead'])}{colon}{e(v.lead)}</li><li>{e(t['coop'])}{colon}"
                     f"{e(sep.join(v.cooperating) or t['none'])}</li></ul>")
    if v.actions:
        parts.append(f"<h2>{e(t['actions'])}</h2><ol>" + "".join(f"<li>{e(a)}</li>" for a in v.actions) + "</ol>")
    if v.measures:
        parts.append(f"<h2>{e(t['measures'])}</h2>" + table(v.measures, [("name", ""), ("current", t["current"]),
                                                                         ("target", t["target"])]))
    if v.watch:
        parts.append(f"<h2>{e(t['watch'])}</h2>" + table(v.watch, [("candidate", t["candidate"]), ("score", t["score"]),
                                                                   ("tickets", t["current"]), ("why", t["why"])]))
    if v.components:
        keys = list(v.components[0])
        parts.append(f"<h2>{e(t['components'])}</h2>" + table(v.components, [(k, k if k != "candidate" else t["candidate"])
                                                                             for k in keys]))
    if v.followup:
        parts.append(f"<h2>{e(t['followup'])}</h2>" + table(
            [{"issue": f"{f['month']} {f['issue']}", "then": f"{_n(f['then_avg'])}/d · {_pct(f['then_repeat'])} · "
              f"{_pct(f['then_sat'])}", "now": f"{_n(f['now_avg'])}/d · {_pct(f['now_repeat'])} · {_pct(f['now_sat'])}",
              "verdict": f"{_pct(f['change'])} {f['verdict']}"} for f in v.followup],
            [("issue", ""), ("then", t["then"]), ("now", t["now"]), ("verdict", t["change"])]))
    if v.notes:
        parts.append(f"<h2>{e(t['method'])}</h2><ul>" + "".join(f"<li>{inert_html(n)}</li>" for n in v.notes) + "</ul>")
    return page(v.title, "".join(str(p) for p in parts), lang="zh-CN" if v.lang == "zh" else "en")


def report_dir(var_dir: Path, month: pd.Period) -> Path:
    return Path(var_dir) / "reports" / "proposals" / str(month)


def write_reports(engine: Engine, res: Any, data: Any, cfg: ProposalsConfig, ref: Reference, var_dir: Path,
                  complete: bool = True) -> dict[str, dict[str, str]]:
    out_dir = report_dir(var_dir, res.month)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, dict[str, str]] = {}
    for lang in LANGS:
        v = build_view(engine, res, data, cfg, ref, lang, complete)
        other = f"{res.scope.code}.{'en' if lang == 'zh' else 'zh'}.html"
        html_path, md_path = out_dir / f"{res.scope.code}.{lang}.html", out_dir / f"{res.scope.code}.{lang}.md"
        html_path.write_text(render_html(v, other), encoding="utf-8")
        md_path.write_text(render_markdown(v), encoding="utf-8")
        paths[lang] = {"html": str(html_path), "md": str(md_path)}
    paths["default"] = paths[cfg.language]
    return paths
