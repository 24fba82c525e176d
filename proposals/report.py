"""The proposal as offices read it, in HTML (with inline SVG charts) and Markdown, Chinese and
English: the issue, why now (the evidence), affected districts and streets, lead and cooperating
departments, suggested actions, measures to track, the watch list, and the follow-up of issues
chosen in earlier months. Written to var/reports/proposals/<month>/<scope>.<lang>.html|md."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup, escape
from sqlalchemy import Engine, select

from alerts.render import defang, inert_html, inert_md
from hotline.core.html import page, table
from hotline.core.pii import mask_outgoing
from hotline.core.reference import Reference
from hotline.core.svg import bar_chart, series_chart
from proposals import panel
from proposals.config import COMPONENTS, PRINCIPLES, ProposalsConfig
from proposals.rank import candidate_id, parse_id
from warehouse.schema import proposals

LANGS = ("zh", "en")
T = {
    "zh": {
        "doc": "每月一题建议", "data": "数据月份", "for": "建议专项治理月份", "issue": "建议选题", "score": "综合得分",
        "why": "为什么选它：四项原则", "basis": "依据", "charts": "图表", "districts": "涉及区域",
        "streets": "集中街道", "samples": "典型诉求（已脱敏）",
        "depts": "责任部门", "lead": "牵头部门", "coop": "配合部门", "actions": "建议举措", "measures": "跟踪指标",
        "watch": "备选问题（观察名单）", "components": "评分构成", "followup": "往期选题跟踪", "method": "方法说明",
        "override": "分析员改选", "model": "模型推荐", "blocked": "近期已选、未见恶化，本月不再推荐",
        "none": "无", "incomplete": "本月数据尚不完整，以下为截至目前的数据。",
        "weak": "本月没有特别突出的问题（综合得分低于阈值）：以下为得分最高的候选，建议结合观察名单和上月选题研判。",
        "no_streets": "数据源未提供街道信息。",
        "trend": "月度趋势与未来三个月预测", "bars_d": "各区本月诉求量", "bars_c": "相关子类本月诉求量",
        "candidate": "候选", "rank": "名次", "current": "本月", "target": "目标", "then": "选题当月", "now": "本月",
        "change": "变化", "improved": "有所下降，未达目标", "worse": "未改善", "met": "达到目标",
        "observed": "月诉求量", "band": "预测区间",
        "expected": "预测", "focus": "集中于",
        "sprouts": "苗头（观察名单：激增、新发与季节高峰）", "kind": "类型", "principles": "选题原则",
        "sprout_none": "本月没有需要单列的苗头。", "earlier": "往期同类专项",
        "sprout_note": "苗头由每日预警跟进；仅集中在单一区域的上升不作为本级每月一题候选，列于此处供所在地研判。",
    },
    "en": {
        "doc": "Issue of the month proposal", "data": "Data month", "for": "Governance month",
        "issue": "Proposed issue", "score": "Score", "why": "Why this issue: the four principles", "basis": "Evidence",
        "charts": "Charts", "districts": "Affected areas", "streets": "Streets",
        "samples": "Sample requests (personal data masked)", "depts": "Departments", "lead": "Lead department",
        "coop": "Cooperating departments", "actions": "Suggested actions", "measures": "Measures to track",
        "watch": "Runner-ups (watch list)", "components": "Score components", "followup": "Follow-up of earlier issues",
        "method": "Method", "override": "Chosen by an analyst", "model": "Model's pick",
        "blocked": "chosen recently and not worse: not proposed again this month", "none": "none",
        "incomplete": "The month is not over: figures are to date.",
        "weak": "No issue stands out this month (the best score is below the threshold): the best candidate "
                "follows; weigh it against the watch list and last month's issue.",
        "no_streets": "The source gives no streets.",
        "trend": "Monthly trend and the next three months' outlook", "bars_d": "Requests this month by area",
        "bars_c": "Related sub-categories this month", "candidate": "Candidate", "rank": "Rank",
        "current": "This month",
        "target": "Target", "then": "Month chosen", "now": "This month", "change": "Change",
        "improved": "down, short of the target",
        "worse": "not improved", "met": "target met", "observed": "Monthly requests", "band": "Outlook range",
        "expected": "Outlook",
        "focus": "concentrated in",
        "sprouts": "Sprouts to watch (surges, new issues, seasonal peaks ahead)", "kind": "Kind",
        "principles": "Principles", "sprout_none": "No sprout to list this month.", "earlier": "Earlier campaigns",
        "sprout_note": "Sprouts are followed by the daily warnings; a rise in one area only is not this scope's "
                       "candidate and is listed here for that area.",
    },
}
COMPONENT_NAMES = {
    "zh": {"share_year": "全年占比", "share_month": "本月占比", "breadth": "覆盖面", "months_high": "高位月数",
           "quarters_high": "高位季度", "returned": "专项后反弹", "repeat": "重复诉求", "unresolved": "未解决",
           "unsatisfied": "不满意", "overdue": "超期", "long_handling": "办理时长", "growth": "本月上升",
           "forecast": "前瞻高峰"},
    "en": {c: c for c in COMPONENTS},
}
PRINCIPLE_NAMES = {
    "zh": {"frequency": "高频", "continuity": "持续", "hard": "难点", "outlook": "趋势（未诉先办）",
           "balance": "均衡扣分"},
    "en": {"frequency": "frequency", "continuity": "continuity", "hard": "hard", "outlook": "outlook",
           "balance": "balance penalty"},
}
SPROUT_KINDS = {"zh": {"surge": "激增", "emerging": "新发", "peak_ahead": "高峰将至"},
                "en": {"surge": "surge", "emerging": "new", "peak_ahead": "peak ahead"}}
PRINCIPLES_TEXT = {
    "zh": ("选题遵循北京市公布的每月一题四项原则：高频（全年和本月占本级诉求的比重、在多少个下辖区域是突出问题）、"
           "持续（近 12 个月有几个月位居本级前列、几个季度处于高位、专项治理后是否反弹）、"
           "难点（重复诉求、未解决、不满意、超期和办理时长，与本级全部诉求的水平相比）、"
           "均衡（与近 6 次选题同一牵头部门或同一大类的候选扣分，避免同一部门月月牵头）。"
           "趋势（本月多地同时上升，或往年同期规律预示的高峰）体现未诉先办，但只有在高频或难点达到一定程度时才全额计入，"
           "单一区县的突发激增不能单独把候选推到首位，列入苗头由所在地跟进。"),
    "en": ("The choice follows Beijing's published principles for the issue of the month: high frequency (the "
           "problem's share of the scope's requests over the year and in the month, and in how many areas it is a "
           "notable problem), continuity (months of the last 12 among the scope's top problems, quarters at a high "
           "level, a return after an earlier campaign), hard problems (repeat, unresolved, unsatisfied, overdue and "
           "handling time against the level of all the scope's requests) and balance (a candidate sharing the lead "
           "department or family of the last 6 choices loses points). The outlook (a rise in several areas now, or a "
           "seasonal peak ahead) is acting before the requests come, but it counts in full only once frequency or "
           "hardness is high enough: one county's sudden surge cannot carry a candidate to the top and is listed "
           "among the sprouts for its own area."),
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
    contributions: list[dict[str, Any]] = field(default_factory=list)
    sprouts: list[dict[str, Any]] = field(default_factory=list)
    earlier: list[str] = field(default_factory=list)
    principles: str = ""


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


def _names(codes: Any, ref: Reference, lang: str, most: int = 6) -> str:
    codes = [c for c in str(codes or "").split(",") if c]
    sep = "、" if lang == "zh" else ", "
    shown = sep.join(_place(c, ref, lang) for c in codes[:most])
    return shown + (("等" if lang == "zh" else ", ...") if len(codes) > most else "")


def evidence_lines(row: Mapping[str, Any], scope_label: str, ref: Reference, lang: str, month: pd.Period) -> list[str]:
    """Why a candidate ranks where it does, in words, principle by principle, from a ranked row or
    a stored candidate: the month's volume first, then 高频, 持续, 难点, 趋势 and 均衡."""
    out = []
    zh = lang == "zh"
    P = PRINCIPLE_NAMES[lang]
    tag = (lambda p: f"【{P[p]}】") if zh else (lambda p: f"[{P[p]}] ")
    n, avg = _num(row, "tickets") or 0.0, _num(row, "daily_avg") or 0.0
    out.append(f"{month} 月共 {_n(n)} 件，日均 {_n(avg)} 件。" if zh else
               f"{_n(n)} requests in {month} ({_n(avg)} a day).")

    # 高频
    ny, sy, sm = _num(row, "tickets_year"), _num(row, "share_year"), _num(row, "share_month")
    if ny is not None and sy is not None:
        line = (f"{tag('frequency')}近 12 个月 {_n(ny)} 件，占{scope_label}诉求的 {_pct(sy)}；"
                f"本月占 {_pct(sm)}。" if zh else
                f"{tag('frequency')}{_n(ny)} requests over 12 months, {_pct(sy)} of {scope_label}'s; "
                f"{_pct(sm)} this month.")
        prev = _num(row, "tickets_prev_year")
        if prev:
            line += (f"较上一年同期 {(ny / prev - 1) * 100:+.0f}%。" if zh else
                     f" {(ny / prev - 1) * 100:+.0f}% on the year before.")
        out.append(line)
    bn, bt = _num(row, "breadth_n"), _num(row, "breadth_total")
    if bn is not None and bt and bt > 1:
        names = _names(row.get("breadth_regions"), ref, lang)
        out.append(f"在 {int(bn)}/{int(bt)} 个下辖区域是突出问题{'：' + names if names else ''}。" if zh else
                   f"A notable problem in {int(bn)} of {int(bt)} areas{': ' + names if names else ''}.")
    # 持续
    mh, qh = _num(row, "months_high"), _num(row, "quarters_high")
    if mh is not None:
        out.append(f"{tag('continuity')}近 12 个月中有 {int(mh)} 个月位居{scope_label}前列，"
                   f"{int(qh or 0)}/4 个季度处于高位。" if zh else
                   f"{tag('continuity')}Among {scope_label}'s top problems in {int(mh)} of the last 12 months; "
                   f"high in {int(qh or 0)} of 4 quarters.")
    back = _text(row, "returned_from")
    if back:
        out.append(f"曾于 {back} 列为每月一题，近 3 个月又有 2 个月以上处于高位：专项治理后反弹。" if zh else
                   f"Chosen in {back}; high again in 2 or more of the last 3 months: back after its campaign.")
    # 难点
    rate_names = {"repeat": ("重复诉求率", "repeat rate"), "unresolved": ("未解决率", "unresolved rate"),
                  "unsatisfied": ("不满意率", "unsatisfied rate"), "overdue": ("超期率", "overdue rate")}
    hard, fine, unknown = [], [], []
    for k, (z, e) in rate_names.items():
        r, p0 = _num(row, f"{k}_rate"), _num(row, f"{k}_scope_rate")
        if p0 is None:
            unknown.append(z if zh else e)
            continue
        if r is None:
            continue
        text = f"{z} {_pct(r)}（{scope_label} {_pct(p0)}）" if zh else f"{e} {_pct(r)} ({scope_label} {_pct(p0)})"
        (hard if p0 and r > p0 * 1.1 else fine).append(text)
    d, d0 = _num(row, "handling_days"), _num(row, "handling_scope_days")
    if d0 is None:
        unknown.append("办理时长" if zh else "handling time")
    elif d is not None:
        text = (f"平均办理 {d:.1f} 天（未办结的计至月末；{scope_label} {d0:.1f} 天）" if zh else
                f"{d:.1f} days to close on average (open ones counted to the month's end; {scope_label} {d0:.1f})")
        (hard if d > d0 * 1.1 else fine).append(text)
    sep = "；" if zh else "; "
    if hard:
        out.append(tag("hard") + (sep.join(hard) + "，均为近 12 个月。" if zh else
                                  sep.join(hard) + ", over 12 months."))
    elif fine:
        out.append(f"{tag('hard')}办理指标与{scope_label}整体水平相当或更好（高出不到一成，近 12 个月）："
                   f"{sep.join(fine)}。" if zh else
                   f"{tag('hard')}Handled about as well as {scope_label}'s requests overall or better "
                   f"(under 10% worse, 12 months): {sep.join(fine)}.")
    if unknown and (hard or fine):
        out.append(f"数据源未提供{'、'.join(unknown)}，不计入难点。" if zh else
                   f"The source does not give {', '.join(unknown)}: left out of hard problems.")
    elif unknown:
        out.append(f"{tag('hard')}数据源未提供办理结果，本项未计入。" if zh else
                   f"{tag('hard')}The source gives no handling outcomes: not scored.")
    # 趋势
    br, by, ex = _num(row, "base_recent"), _num(row, "base_last_year"), _num(row, "expected_daily")
    if br is not None and br < 0.2 and (by is None or by < 0.2):
        out.append(f"{tag('outlook')}此前几乎没有此类诉求（前三个月和去年同月日均不足 0.2 件）："
                   f"新出现的问题。" if zh else
                   f"{tag('outlook')}Almost none before (under 0.2 a day in the previous three months and "
                   f"a year ago): a new issue.")
    elif ex is not None and ex > 0:
        seasonal = row.get("expected_basis") == "seasonal"
        basis = (("去年同月按近三个月水平调整" if seasonal else "前三个月平均") if zh else
                 ("last year's same month at this year's level" if seasonal else "the previous three months"))
        out.append(f"{tag('outlook')}本月预期日均 {_n(ex)} 件（{basis}），实际为预期的 {avg / ex:.2f} 倍。" if zh else
                   f"{tag('outlook')}Expected {_n(ex)} a day ({basis}); actual {avg / ex:.2f}x that.")
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
    up, total = _num(row, "regions_up"), _num(row, "regions_total")
    if up and total and total > 1:
        out.append(f"{int(up)}/{int(total)} 个下辖区域显著上升。" if zh else
                   f"Significant rise in {int(up)} of {int(total)} sub-areas.")
    focus, share = _text(row, "focus"), _num(row, "focus_share")
    if focus and share is not None and share >= 0.5:
        out.append(f"增量的 {_pct(share)} 集中在{_place(focus, ref, lang)}。" if zh else
                   f"{_pct(share)} of the rise is in {_place(focus, ref, lang)}.")
    if g is not None and g > 1.2 and row.get("rise_broad") is False:
        out.append("上升集中在个别区域，不计入本级趋势分（见苗头）。" if zh else
                   "The rise is in one area only: not scored for this scope (see the sprouts).")
    days = _num(row, "anomalies")
    if days:
        out.append(f"本月有 {int(days)} 天检测到上升异常。" if zh else
                   f"Rising anomalies detected on {int(days)} day(s) this month.")
    o = _num(row, "outlook_ratio")
    if o is not None and o >= 1.15:
        when = month + int(_num(row, "outlook_month") or 1)
        out.append(f"按往年同期规律，预计 {when} 将达到本月的 {o:.1f} 倍："
                   f"宜在高峰到来前提前部署（未诉先办）。" if zh else
                   f"Past years' pattern puts {when} at {o:.1f}x this month: act before the peak.")
    gate = _num(row, "gate")
    if gate is not None and gate < 1.0 and (_num(row, "p_outlook") or 0) > 0.2:
        out.append(f"高频、难点程度不足，趋势分仅计入 {gate:.0%}。" if zh else
                   f"Neither frequent nor hard enough: the outlook counts at {gate:.0%}.")
    # 均衡
    pen, why = _num(row, "balance_penalty"), _text(row, "balance_reason")
    if pen and why:
        nd, nf = (int(x.split(":")[1]) for x in why.split("|"))
        out.append(f"{tag('balance')}近期选题中 {nd} 次同一牵头部门、{nf} 次同一大类，扣 {pen:.2f} 分。" if zh else
                   f"{tag('balance')}{nd} recent choice(s) with the same lead department and {nf} in the same "
                   f"family: {pen:.2f} off.")
    return out


def principle_rows(rows: Sequence[Mapping[str, Any]], ref: Reference, lang: str) -> list[dict[str, Any]]:
    """Each candidate's contribution per principle to its score (what ``--explain`` prints)."""
    P = PRINCIPLE_NAMES[lang]
    out = []
    for r in rows:
        rec = {"candidate": label(r["candidate"], ref, lang)}
        for p in PRINCIPLES:
            v = _num(r, f"contrib_{p}")
            rec[P[p]] = "—" if v is None else f"{v:.3f}"
        pen = _num(r, "balance_penalty") or 0.0
        rec[P["balance"]] = f"-{pen:.3f}" if pen else "0"
        rec["score" if lang == "en" else "综合得分"] = f"{_num(r, 'score') or 0:.3f}"
        out.append(rec)
    return out


def _trend(res_row: Mapping[str, Any], data: Any, lang: str, title: str) -> Markup:
    cid = res_row["candidate"]
    t = T[lang]
    m = data.monthly[data.monthly["series_id"] == cid].set_index("month")["n_tickets"]
    months = pd.period_range(data.month - 23, data.month, freq="M")
    cov = data.coverage.reindex(months)
    obs = (m.reindex(months).fillna(0) / cov
           * pd.Series([p.days_in_month for p in months], index=months)).where(cov > 0)
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


def _subcategories(res_row: Mapping[str, Any], data: Any, ref: Reference,
                   lang: str) -> tuple[list[str], list[float], set[str]]:
    rl, rc, cl, cc = parse_id(res_row["candidate"])
    l1 = cc.split(".")[0]
    cur = data.current
    mon = cur[(cur["region_code"] == rc) & (cur["category_level"] == "l2")
              & cur["category_code"].str.startswith(l1 + ".")]
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


def sprout_rows(sprouts: pd.DataFrame | None, scope: Any, ref: Reference, lang: str) -> list[dict[str, Any]]:
    """The 苗头 list as rows: where and what, the kind, this month against the expected, and why."""
    if sprouts is None or sprouts.empty:
        return []
    zh = lang == "zh"
    out = []
    for r in sprouts.to_dict("records"):
        kind = r.get("sprout_kind")
        ex = _num(r, "expected_daily")
        avg = _num(r, "daily_avg") or 0.0
        if kind == "peak_ahead":
            o = _num(r, "outlook_ratio") or 0.0
            note = (f"往年同期规律：{int(_num(r, 'outlook_month') or 1)} 个月后约为本月的 {o:.1f} 倍" if zh else
                    f"past years: {o:.1f}x this month in {int(_num(r, 'outlook_month') or 1)} month(s)")
        elif kind == "emerging":
            note = "此前一年几乎没有此类诉求" if zh else "almost none in the year before"
        else:
            g = _num(r, "growth_ratio") or 0.0
            note = (f"扣除波动后至少为预期的 {g:.1f} 倍" if zh else f"at least {g:.1f}x the expected beyond noise")
            if r.get("region_level") == scope.level:
                up, tot = _num(r, "regions_up"), _num(r, "regions_total")
                if up and tot:
                    note += (f"，{int(up)}/{int(tot)} 个下辖区域上升" if zh else
                             f", rising in {int(up)} of {int(tot)} areas")
        out.append({"candidate": label(r["candidate"], ref, lang), "kind": SPROUT_KINDS[lang].get(kind, kind),
                    "tickets": _n(_num(r, "tickets")),
                    "ratio": f"{avg / ex:.1f}x" if ex and ex > 0 and kind != "peak_ahead" else "—", "why": note})
    return out


def earlier_campaigns(chosen: str, history: Sequence[Mapping[str, Any]], row: Mapping[str, Any],
                      region_parent: Mapping[str, str], ref: Reference, lang: str) -> list[str]:
    """Earlier choices of the same problem in this scope, with the daily volume then and now."""
    from proposals.rank import overlaps

    out = []
    now = _num(row, "daily_avg")
    for h in history:
        if not h.get("chosen") or not overlaps(chosen, h["chosen"], region_parent):
            continue
        then = _num(h, "daily_avg")
        change = f"{(now / then - 1) * 100:+.0f}%" if now is not None and then else "—"
        out.append(f"{h['month']} 选题“{label(h['chosen'], ref, lang)}”：当时日均 {_n(then)} 件，"
                   f"本月 {_n(now)} 件（{change}）。"
                   if lang == "zh" else
                   f"{h['month']}: {label(h['chosen'], ref, lang)} chosen at {_n(then)} a day; "
                   f"{_n(now)} a day now ({change}).")
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
        v.notes.append(f"分析员 {lo.get('by')} 此前改选的“"
                       f"{label(lo['candidate'], ref, lang) if lo.get('candidate') else '—'}”"
                       f"已不在本月候选中（理由：{lo.get('reason')}），现为模型推荐。" if lang == "zh" else
                       f"The analyst's earlier choice ({lo.get('by')}: "
                       f"{label(lo['candidate'], ref, lang) if lo.get('candidate') else '—'}) is no longer a "
                       f"candidate; the model's pick stands.")
    v.charts.append(_trend(row, data, lang, f"{issue} · {t['trend']}"))
    dist = _districts(row, data, res.scope, ref, lang)
    v.districts = dist
    top = dist[:12]
    focus = (_place(row["focus"], ref, lang) if row.get("focus") and (row.get("focus_share") or 0) >= 0.5
             else (_place(rc, ref, lang) if rl == res.scope.child_level else ""))
    v.charts.append(Markup(bar_chart([d["name"] for d in top], [d["tickets"] for d in top],
                                     title=f"{ref.taxonomy.name(cc, lang)} · {t['bars_d']}",
                                     highlight={focus} if focus else (),
                                     notes=[("+" if d["change"] >= 0 else "") + _pct(d["change"])
                                            if np.isfinite(d["change"]) else "" for d in top])))
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
                                      else f"{tgt * 100:+.0f} 个百分点" if lang == "zh"
                                      else f"{tgt * 100:+.0f} points")})
    names_c = COMPONENT_NAMES[lang]
    shown = [chosen, *res.choice["watch"]]
    v.contributions = principle_rows([ranked.loc[c].to_dict() for c in shown], ref, lang)
    for i, cid in enumerate(shown):
        r = ranked.loc[cid]
        rec = {"candidate": label(cid, ref, lang),
               t["rank"]: int(res.ranked.index[res.ranked["candidate"] == cid][0]) + 1,
               t["score"]: f"{float(r['score']):.3f}", t["current"]: int(r["tickets"])}
        rec.update({names_c[c]: "—" if not np.isfinite(float(r[f"c_{c}"])) else f"{float(r[f'c_{c}']):.2f}"
                    for c in COMPONENTS})
        v.components.append(rec)
        if i:
            lines = evidence_lines(r.to_dict(), scope_label, ref, lang, month)[1:3]
            v.watch.append({"candidate": label(cid, ref, lang), "score": f"{float(r['score']):.3f}",
                            "tickets": float(r["tickets"]),
                            "why": "；".join(x.rstrip("。") for x in lines) + "。" if lang == "zh"
                            else " ".join(lines)})
    v.sprouts = sprout_rows(res.sprouts, res.scope, ref, lang)
    v.earlier = earlier_campaigns(chosen, getattr(res, "history", []), row, data.region_parent, ref, lang)
    for cid, when in res.choice["blocked"].items():
        v.notes.append(f"{label(cid, ref, lang)}：{when} {t['blocked']}" if lang == "zh" else
                       f"{label(cid, ref, lang)}: {when}, {t['blocked']}")
    vol_target = next((float(m.get("target", -0.2)) for m in cfg.measures if m.get("key") == "volume"), -0.2)
    v.followup = _followup(engine, res.scope.code, data, ref, lang, vol_target)
    v.principles = PRINCIPLES_TEXT[lang]
    P = PRINCIPLE_NAMES[lang]
    sep = "，" if lang == "zh" else ", "
    weights = sep.join(f"{P[p]} {w:g}" for p, w in cfg.principles.items())
    bal = cfg.balance
    v.notes.append((f"得分 = 各原则得分（0-1）按权重（{weights}）加权平均，"
                    f"减去均衡扣分（同一牵头部门每次 {bal['same_department']:g}、"
                    f"同一大类每次 {bal['same_family']:g}，看近 {int(bal['last_choices'])} 次选题）；"
                    "数据源未提供的分项不计入。"
                    "权重与分项见 config/proposals.yaml 和 docs/PROPOSALS.md。前瞻预测按往年同期月度比例推算。")
                   if lang == "zh" else
                   (f"Score = the principles (0-1) weighted ({weights}), less the balance penalty "
                    f"({bal['same_department']:g} per recent choice with the same lead department, "
                    f"{bal['same_family']:g} per one in the same family, over the last {int(bal['last_choices'])}); "
                    "a component the source cannot give is left out. Weights and components: config/proposals.yaml "
                    "and docs/PROPOSALS.md. The outlook applies past years' month-to-month ratios to this month."))
    return v


def render_markdown(v: View) -> str:
    """The proposal in Markdown. Text we did not write (ticket texts, street names, an analyst's
    name and reason in the head and notes) is placed through :func:`alerts.render.inert_md`."""
    t = T[v.lang]
    md = inert_md
    lines = [f"# {v.title}", ""]
    lines += [f"- **{k}**：{md(val)}" if v.lang == "zh" else f"- **{k}**: {md(val)}" for k, val in v.head.items()]
    lines += ["", f"## {t['why']}", *[f"- {x}" for x in v.why]]
    if v.earlier:
        lines += ["", f"**{t['earlier']}**", *[f"- {x}" for x in v.earlier]]
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
    lines += ["", f"## {t['sprouts']}", ""]
    if v.sprouts:
        lines += [f"| {t['candidate']} | {t['kind']} | {t['current']} | × | {t['basis']} |", "|---|---|---:|---:|---|"]
        lines += [f"| {r['candidate']} | {r['kind']} | {r['tickets']} | {r['ratio']} | {r['why']} |" for r in v.sprouts]
        lines += ["", t["sprout_note"]]
    else:
        lines += [t["sprout_none"]]
    def candidate_table(rows: list[dict[str, Any]]) -> list[str]:
        keys = [k for k in rows[0] if k != "candidate"]
        return (["| " + " | ".join([t["candidate"], *keys]) + " |", "|" + "---|" * (len(keys) + 1)]
                + ["| " + " | ".join([c["candidate"], *[str(c[k]) for k in keys]]) + " |" for c in rows])

    if v.contributions:
        lines += ["", f"## {t['components']}", "", *candidate_table(v.contributions)]
    if v.components:
        lines += ["", "", *candidate_table(v.components)]
    if v.followup:
        lines += ["", f"## {t['followup']}", "", f"| | {t['then']} | {t['now']} | {t['change']} |", "|---|---|---|---|"]
        lines += [f"| {f['month']} {f['issue']} | {_n(f['then_avg'])}/d · {_pct(f['then_repeat'])} · "
                  f"{_pct(f['then_sat'])} "
                  f"| {_n(f['now_avg'])}/d · {_pct(f['now_repeat'])} · {_pct(f['now_sat'])} | "
                  f"{_pct(f['change'])} {f['verdict']} |"
                  for f in v.followup]
    if v.notes or v.principles:
        lines += ["", f"## {t['method']}", *([f"- **{t['principles']}**：{v.principles}" if v.lang == "zh" else
                                              f"- **{t['principles']}**: {v.principles}"] if v.principles else []),
                  *[f"- {md(n)}" for n in v.notes]]
    return mask_outgoing("\n".join(lines) + "\n")


def render_html(v: View, other_lang_href: str | None = None) -> str:
    """The proposal as a page; text we did not write is escaped and its URLs defanged
    (:mod:`alerts.render`), as in the notices."""
    t = T[v.lang]
    e = escape
    parts = [f"<h1>{e(v.title)}</h1>"]
    if other_lang_href:
        parts.append(f'<p class="meta"><a href="{e(other_lang_href)}">'
                     f'{"English" if v.lang == "zh" else "中文"}</a></p>')
    parts.append(table([{"k": k, "v": defang(val)} for k, val in v.head.items()], [("k", ""), ("v", "")]))
    parts.append(f"<h2>{e(t['why'])}</h2><ul class=\"why\">" + "".join(f"<li>{e(x)}</li>" for x in v.why) + "</ul>")
    if v.earlier:
        parts.append(f"<p><b>{e(t['earlier'])}</b></p><ul>" + "".join(f"<li>{e(x)}</li>" for x in v.earlier) + "</ul>")
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
        parts.append(f"<h2>{e(t['samples'])}</h2><ul>"
                     + "".join(f"<li>{inert_html(s)}</li>" for s in v.samples) + "</ul>")
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
                                                                   ("tickets", t["current"]), ("why", t["basis"])]))
    parts.append(f"<h2>{e(t['sprouts'])}</h2>" + (table(v.sprouts, [("candidate", t["candidate"]), ("kind", t["kind"]),
                                                                   ("tickets", t["current"]), ("ratio", "×"),
                                                                   ("why", t["basis"])])
                                                    + f"<p class=\"meta\">{e(t['sprout_note'])}</p>" if v.sprouts
                                                    else f"<p>{e(t['sprout_none'])}</p>"))
    if v.contributions:
        parts.append(f"<h2>{e(t['components'])}</h2>"
                     + table(v.contributions, [(k, k if k != "candidate" else t["candidate"])
                                               for k in v.contributions[0]]))
    if v.components:
        keys = list(v.components[0])
        parts.append(table(v.components, [(k, k if k != "candidate" else t["candidate"])
                                                                             for k in keys]))
    if v.followup:
        parts.append(f"<h2>{e(t['followup'])}</h2>" + table(
            [{"issue": f"{f['month']} {f['issue']}", "then": f"{_n(f['then_avg'])}/d · {_pct(f['then_repeat'])} · "
              f"{_pct(f['then_sat'])}", "now": f"{_n(f['now_avg'])}/d · {_pct(f['now_repeat'])} · {_pct(f['now_sat'])}",
              "verdict": f"{_pct(f['change'])} {f['verdict']}"} for f in v.followup],
            [("issue", ""), ("then", t["then"]), ("now", t["now"]), ("verdict", t["change"])]))
    if v.notes or v.principles:
        parts.append(f"<h2>{e(t['method'])}</h2><ul>"
                     + (f"<li><b>{e(t['principles'])}</b>{'：' if v.lang == 'zh' else ': '}{e(v.principles)}</li>"
                        if v.principles else "")
                     + "".join(f"<li>{inert_html(n)}</li>" for n in v.notes) + "</ul>")
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
