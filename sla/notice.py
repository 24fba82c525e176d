"""The district's daily list of yellow and red tickets (红黄灯日报), by department, through the
alerts outbox: one notice per office and day (``district:<code>``; tickets without a district go
to ``city:<code>``), on the office's channels in config/alerts.yaml. It carries ticket ids,
categories, deadlines and escalation levels: no ticket text, no caller."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd

from hotline.core.reference import Reference
from sla.lights import SlaConfig

LEVEL_ZH = {"district": "区", "city": "市", "province": "省"}
PER_DEPARTMENT = 10  # tickets listed per department and light (the counts are always complete)


def _lines(g: pd.DataFrame, ref: Reference, cfg: SlaConfig, lang: str, end: pd.Timestamp, tz: str) -> list[str]:
    out = []
    for dep, d in g.groupby(g["department"].fillna("（未指定）" if lang == "zh" else "(unassigned)"), sort=True):
        red, yellow = d[d["light"] == "red"], d[d["light"] == "yellow"]
        head = (f"{dep}：红 {len(red)} 黄 {len(yellow)}" if lang == "zh" else
                f"{dep}: red {len(red)}, yellow {len(yellow)}")
        out.append(head)
        for r in red.sort_values("deadline_at").head(PER_DEPARTMENT).itertuples():
            late_h = (end - pd.Timestamp(r.deadline_at)).total_seconds() / 3600
            lv = cfg.levels[int(r.level)]
            out.append(f"  红 {r.ticket_id} {ref.taxonomy.name(r.category_l2, lang)} 超期 {late_h:.0f} 小时，"
                       f"已升级至{LEVEL_ZH.get(lv, lv)}级"
                       if lang == "zh" else
                       f"  red {r.ticket_id} {ref.taxonomy.name(r.category_l2, lang)} {late_h:.0f} h overdue, "
                       f"escalated to {lv}")
        for r in yellow.sort_values("deadline_at").head(PER_DEPARTMENT).itertuples():
            due = pd.Timestamp(r.deadline_at).tz_convert(tz)
            out.append(f"  黄 {r.ticket_id} {ref.taxonomy.name(r.category_l2, lang)} 时限 {due:%m-%d %H:%M}"
                       if lang == "zh" else f"  yellow {r.ticket_id} {ref.taxonomy.name(r.category_l2, lang)} "
                                            f"due {due:%m-%d %H:%M}")
        more = len(red) + len(yellow) - min(len(red), PER_DEPARTMENT) - min(len(yellow), PER_DEPARTMENT)
        if more > 0:
            out.append(f"  …另有 {more} 件" if lang == "zh" else f"  … {more} more")
    return out


def light_items(cur: pd.DataFrame, day: dt.date, ref: Reference, cfg: SlaConfig, tz: str,
                end: dt.datetime) -> list[dict[str, Any]]:
    """One outbox item per office with yellow or red tickets at the day's end (``cur``: the
    tickets with ``light`` yellow/red, their ``level``, deadline, department and category)."""
    from alerts.render import Message, report_message

    items = []
    office = cur["district_code"].where(cur["district_code"].notna(), None)
    receivers = [f"district:{d}" if isinstance(d, str) else f"city:{c}" for d, c in zip(office, cur["city_code"])]
    cur = cur.assign(receiver=receivers)
    end_ts = pd.Timestamp(end)
    for receiver, g in cur.groupby("receiver", sort=True):
        def build(lang: str, rname: str, g=g) -> Message:
            red, yellow = int((g["light"] == "red").sum()), int((g["light"] == "yellow").sum())
            subject = (f"【红黄灯日报】{rname}：红灯 {red} 件，黄灯 {yellow} 件（{day}）" if lang == "zh" else
                       f"[Overdue lights] {rname}: {red} red, {yellow} yellow ({day})")
            # ids, category names, hours and deadlines only: nothing to mask, and masking would
            # take a 17-digit ticket id for a bank card number
            return report_message(subject, _lines(g, ref, cfg, lang, end_ts, tz), mask=False)

        items.append({"receiver": receiver, "ds": day, "group": f"lights:{day}", "keys": [f"lights:{day}"],
                      "labels": {"lights": str(day)}, "build": build})
    return items
