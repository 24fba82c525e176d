"""The backtest report: one offline HTML page with the summary metrics, one section and chart per
labelled event (detected or missed), and the table of false alerts.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from jinja2 import Environment
from markupsafe import Markup

from hotline.core.html import fmt, page, table
from hotline.core.reference import Reference
from hotline.core.series import series_id
from hotline.core.svg import series_chart

EVENT_TYPES = {"spike": "突增", "drop": "骤降", "level_shift": "持续上升", "emerging": "新问题",
               "surge": "全市同步上升", "spread": "多区扩散"}
METRICS = {"profile": "配置", "period": "期间", "precision": "精确率", "recall": "召回率", "f1": "F1",
           "false_alerts_per_district_month": "每区每月误报", "median_delay_days": "中位检出延迟(天)",
           "events": "事件数", "alerts": "告警数"}

_ENV = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_BODY = _ENV.from_string("""<h1>回测报告 Backtest report{% if profile %} · {{ profile }}{% endif %}</h1>
{% if period %}<p class="meta">期间 period: {{ period }}</p>{% endif %}
<h2>汇总 Summary</h2>
{{ summary }}
<h2>事件 Events ({{ sections|length }})</h2>
{{ overview }}
{% for s in sections %}
<section class="event" id="{{ s.id }}">
<h2>{{ s.heading }} · <span class="{{ s.status_class }}">{{ s.status }}</span></h2>
<p class="meta">区域 region {{ s.region }} · 类别 category {{ s.category }} · \
首次告警 first alert {{ s.first_alert }}</p>
{{ s.chart }}
</section>
{% endfor %}
<h2>误报 False alerts ({{ n_false }})</h2>
{{ false_alerts }}
""")


def event_type(kind: str) -> str:
    """'突增 spike' for a known event type, the type itself otherwise."""
    return f"{EVENT_TYPES[kind]} {kind}" if kind in EVENT_TYPES else kind


def _metric_label(key: str) -> str:
    zh = METRICS.get(key)
    return key if zh is None else zh if zh.lower() == key else f"{zh} {key}"


def _metric_value(key: str, value: Any) -> str:
    if key == "period" and isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2:
        return f"{fmt(value[0])} 至 {fmt(value[1])}"
    if isinstance(value, Mapping):
        return " · ".join(f"{event_type(str(k))}: {fmt(v)}" for k, v in value.items())
    return fmt(value)


def _status(e: Mapping[str, Any]) -> str:
    if not e["detected"]:
        return "未检出 missed"
    return "已检出" if e.get("delay_days") is None else f"已检出(延迟 {e['delay_days']} 天)"


def _section(i: int, e: Mapping[str, Any]) -> dict[str, Any]:
    place = " · ".join(str(p) for p in (e.get("region_name") or e.get("region"),
                                        e.get("category_name") or e.get("category")) if p)
    heading = " · ".join(p for p in (event_type(e["type"]), place, f"{fmt(e['start'])} 至 {fmt(e['end'])}") if p)
    c = e.get("chart")
    chart = "" if not c else Markup(series_chart(
        c["ds"], c["observed"], c.get("expected"), c.get("lower"), c.get("upper"), c.get("alert_days", ()),
        event_span=(e["start"], e["end"]), title=f"{place} 每日工单量 daily tickets", width=960, height=240))
    return {"id": f"event-{i}", "heading": heading, "status": _status(e),
            "status_class": "ok" if e["detected"] else "missed", "region": fmt(e.get("region")),
            "category": fmt(e.get("category")), "first_alert": fmt(e.get("first_alert")), "chart": chart}


def write_backtest_report(path: str | Path, summary: Mapping[str, Any], events: Sequence[Mapping[str, Any]],
                          false_alerts: Sequence[Mapping[str, Any]]) -> Path:
    """Write the backtest report to ``path`` (parents created) and return the path.

    ``summary``: metric -> value (known keys get Chinese labels, see ``METRICS``). ``events``: dicts
    with type, start, end, region, region_name, category, category_name, detected, delay_days,
    first_alert and chart = dict(ds, observed, expected, lower, upper, alert_days) for
    ``series_chart``. ``false_alerts``: dicts with ds, series, kind, severity, score, explanation.
    """
    sections = [_section(i, e) for i, e in enumerate(events, 1)]
    summary_rows = [{"metric": _metric_label(k), "value": _metric_value(k, v)} for k, v in summary.items()]
    overview_rows = [{"n": Markup('<a href="#{}">{}</a>').format(s["id"], i), "type": event_type(e["type"]),
                      "place": e.get("region_name") or e.get("region"),
                      "category": e.get("category_name") or e.get("category"), "start": e["start"], "end": e["end"],
                      "status": s["status"], "first_alert": e.get("first_alert")}
                     for i, (e, s) in enumerate(zip(events, sections), 1)]
    false_rows = [{**a, "kind": event_type(a["kind"])} for a in false_alerts]
    body = _BODY.render(
        profile=summary.get("profile"),
        period=_metric_value("period", summary["period"]) if "period" in summary else None,
        summary=Markup(table(summary_rows, [("metric", "指标 metric"), ("value", "值 value")])),
        overview=Markup(table(overview_rows, [
            ("n", "#"), ("type", "类型 type"), ("place", "区域 region"), ("category", "类别 category"),
            ("start", "开始 start"), ("end", "结束 end"), ("status", "检出 detection"),
            ("first_alert", "首次告警 first alert")])),
        sections=sections, n_false=len(false_alerts),
        false_alerts=Markup(table(false_rows, [
            ("ds", "日期 date"), ("series", "序列 series"), ("kind", "类型 kind"), ("severity", "级别 severity"),
            ("score", "分数 score"), ("explanation", "说明 explanation")])))
    title = "回测报告 Backtest report" + (f" · {summary['profile']}" if summary.get("profile") else "")
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(title, body), encoding="utf-8")
    return out


def backtest_report(path: str | Path, result: dict, point: dict, labels: pd.DataFrame, ref: Reference,
                    chart_days: int = 28) -> Path:
    """The backtest's HTML page for the chosen grid ``point``: a chart per labelled event and the
    false alerts."""
    alerts = result["alerts"][point["setting"]]
    events = []
    for (_, ev), hits, delay in zip(labels.iterrows(), point["_per_event"], point["_delays"]):
        sid = series_id(ev['region_level'], ev['region'], ev['category_level'], ev['category'])
        b = result["bands"].get(sid)
        chart = None
        if b:
            lo, hi = ev["start"] - dt.timedelta(days=chart_days), ev["end"] + dt.timedelta(days=chart_days // 2)
            keep = [j for j, d in enumerate(b["ds"]) if lo <= d <= hi]
            chart = {k: [v[j] for j in keep] for k, v in b.items()}
            chart["alert_days"] = sorted({pd.Timestamp(d).date() for d in hits["ds"]})
        events.append({"type": ev["type"], "start": ev["start"], "end": ev["end"], "region": ev["region"],
                       "region_name": ref.regions.name(ev["region"]), "category": ev["category"],
                       "category_name": ref.taxonomy.name(ev["category"]) if ev["category"] != "*" else "全部",
                       "detected": len(hits) > 0, "delay_days": delay,
                       "first_alert": pd.Timestamp(hits["ds"].min()).date() if len(hits) else None,
                       "chart": chart})
    false = alerts[~point["_matched"]] if len(alerts) else alerts
    summary = {"profile": result["profile"], "period": tuple(result["period"]),
               **{k: point[k] for k in ("events", "alerts", "precision", "recall", "f1", "median_delay_days",
                                        "false_alerts_per_district_month")}, "setting": point["setting"]}
    rows = [{"ds": pd.Timestamp(r.ds).date(), "series": r.series_id, "kind": r.kind, "severity": r.severity,
             "score": r.score, "explanation": r.explanation} for r in false.itertuples()]
    return write_backtest_report(path, summary, events, rows)
