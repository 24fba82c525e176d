"""One offline page per notified alert (the link in every notice): the series over the last
90 days with the alert days marked and the expected range on them, and the next 30 days'
forecast band, plus the alert's numbers and history. Written under
``var/reports/alerts/<day>/<fingerprint>.html``; no script, no network, Chinese in SVG text.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup
from sqlalchemy import Engine, and_, func, select

from alerts.config import AlertsConfig
from alerts.render import alert_view, inert_html
from hotline.core.html import page, table
from hotline.core.svg import series_chart
from warehouse.schema import alert_events, anomalies, daily_counts, forecasts

PAST_DAYS = 90
HISTORY_ROWS = 100  # the latest events on the page (the CLI's alerts show has them all)


def series_frame(engine: Engine, a: Mapping[str, Any], day: dt.date) -> tuple[pd.DataFrame, list[dt.date]]:
    c, an, f = daily_counts.c, anomalies.c, forecasts.c
    start = day - dt.timedelta(days=PAST_DAYS - 1)
    with engine.connect() as conn:
        obs = dict(conn.execute(select(c.ds, c.n_tickets).where(
            c.region_level == a["region_level"], c.region_code == a["region_code"],
            c.category_level == a["category_level"], c.category_code == a["category_code"],
            c.ds >= start, c.ds <= day)).all())
        marks = {r.ds: r for r in conn.execute(select(an.ds, an.expected, an.lower, an.upper).where(
            an.series_id == a["series_id"], an.ds >= start, an.ds <= day))}
        origin = conn.execute(select(func.max(f.origin)).where(f.series_id == a["series_id"], f.origin <= day)).scalar()
        ahead = {}
        if origin is not None:
            ahead = {r.ds: r for r in conn.execute(select(f.ds, f.yhat, f.yhat_lo_95, f.yhat_hi_95).where(
                and_(f.origin == origin, f.series_id == a["series_id"], f.ds > day)))}
    days = [start + dt.timedelta(days=i) for i in range(PAST_DAYS)] + sorted(ahead)
    rows = []
    for d in days:
        if d in ahead:
            r = ahead[d]
            rows.append((d, np.nan, r.yhat, r.yhat_lo_95, r.yhat_hi_95))
        else:
            m = marks.get(d)
            band = (m.expected, m.lower, m.upper) if m is not None else (None, None, None)
            rows.append((d, float(obs.get(d, 0)), *(np.nan if x is None else float(x) for x in band)))
    return pd.DataFrame(rows, columns=["ds", "observed", "expected", "lower", "upper"]), sorted(marks)


def alert_chart(engine: Engine, a: Mapping[str, Any], day: dt.date, title: str) -> str:
    """The alert's series: the last 90 days with its alert days and their expected range, and the
    next 30 days' forecast band (inline SVG)."""
    frame, alert_days = series_frame(engine, a, day)
    return series_chart(frame["ds"], frame["observed"], frame["expected"], frame["lower"], frame["upper"],
                        alert_days=alert_days, title=title)


def alert_body(engine: Engine, a: Mapping[str, Any], day: dt.date, cfg: AlertsConfig,
               actions: str = "", chart: str | None = None, history: bool = True) -> tuple[str, str]:
    """An alert's page: (title, body markup); ``actions`` (trusted markup: the served site's
    forms) goes between the chart and the history; ``chart``: the chart already drawn (the served
    site keeps it until the next pipeline run); ``history=False``: no history (who acknowledged,
    their comments), for a page opened from a signed link."""
    v = alert_view(a, cfg.language, day, None)
    chart = alert_chart(engine, a, day, v.title) if chart is None else chart
    head = f"<h1>{Markup.escape(v.title)}</h1><p class=\"meta\">{day} · 预警编号 alert id {a['fingerprint'][:8]}"
    lines = "".join(f"<li>{inert_html(x)}</li>" for x in v.lines)  # ticket texts: inert
    if not history:  # a page for whoever holds a link: not the offices' names and comments
        return v.title, f"{head}</p><ul>{lines}</ul>{chart}{actions}"
    e = alert_events.c
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).where(e.fingerprint == a["fingerprint"])).scalar()
        hist = [dict(r) for r in conn.execute(select(e.at, e.ds, e.action, e.actor, e.detail).where(
            e.fingerprint == a["fingerprint"]).order_by(e.id.desc()).limit(HISTORY_ROWS)).mappings()][::-1]
    for h in hist:  # who said what: the verdict and comment of an acknowledgement, a silence's reason
        d = h.pop("detail") or {}
        h["why"] = " · ".join(str(d[k]) for k in ("verdict", "comment", "reason") if d.get(k))
    body = (f"{head} · 状态 status {Markup.escape(a.get('status', a['state']))}</p>"
            f"<ul>{lines}</ul>{chart}<p class=\"meta\">蓝线：每日工单量；"
            f"红点：告警日（灰线为当日预期、阴影为正常范围）；"
            f"右侧阴影：未来 30 天预测区间（95%）。Blue: daily tickets; red: alert days with the expected range; "
            f"right: the next 30 days' forecast band.</p>{actions}<h2>历史 History</h2>"
            + (f'<p class="meta">共 {n} 条，显示最近 {HISTORY_ROWS} 条（完整记录：hotline alerts show '
               f'{a["fingerprint"][:8]}）。The latest {HISTORY_ROWS} of {n} events.</p>' if n > HISTORY_ROWS else "")
            + table(hist, [("at", "时间 at"), ("ds", "日期 day"), ("action", "事件 event"),
                           ("actor", "操作人 by"), ("why", "说明 note")]))
    return v.title, body


def write_alert_pages(engine: Engine, day: dt.date, items: Sequence[Mapping[str, Any]], var_dir: Path,
                      cfg: AlertsConfig) -> list[Path]:
    out_dir = var_dir / "reports" / "alerts" / str(day)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for a in {x["fingerprint"]: x for x in items}.values():
        title, body = alert_body(engine, a, day, cfg)
        path = out_dir / f"{a['fingerprint']}.html"
        path.write_text(page(title, body), encoding="utf-8")
        written.append(path)
    return written
