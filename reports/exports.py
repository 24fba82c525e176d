"""Tables offices take to their meetings, as CSV (UTF-8 with a byte-order mark, so Excel reads the
Chinese) or Excel (.xlsx): a district's red and yellow tickets by department, the day's alerts,
the month's horse race and the 每月一题 watch lists. Chinese headers first (``lang="en"`` for
English). No ticket text and no caller in any of them: ids, categories, places, times and counts.

Every text cell is inert: a value that a spreadsheet would run as a formula (``=``, ``+``, ``-``,
``@``, a tab or a carriage return first: a department name in a source export, say) is written
with a leading apostrophe in CSV and as a plain string in Excel.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, or_, select

from alerts.render import KIND
from hotline.core.html import SEVERITY as SEVERITY_ZH
from hotline.core.reference import Reference
from hotline.core.severity import SEVERITY_RANK
from hotline.core.sla import SlaConfig
from sla.notice import LEVEL_ZH
from warehouse.schema import alerts, proposals, rankings

SEVERITY = {"zh": SEVERITY_ZH, "en": {}}  # an alert's severity and a ticket's light (红/黄) alike
LEVEL = {"zh": LEVEL_ZH, "en": {}}
STATUS = {"zh": {"firing": "预警中", "acknowledged": "已确认", "silenced": "已静默", "inhibited": "已抑制",
                  "resolved": "已解除"}, "en": {}}
ROLE = {"zh": {"chosen": "本月一题", "watch": "观察名单", "sprout": "苗头"}, "en": {"chosen": "issue of the month"}}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Table:
    """One sheet: its name, its columns' headers and its rows (plain values)."""

    name: str
    headers: list[str]
    rows: list[list[Any]]


def _cities(ref: Reference, province: str) -> set[str]:
    return {c.code for c in ref.regions.province(province).cities}


def _h(lang: str, *pairs: tuple[str, str]) -> list[str]:
    return [zh if lang == "zh" else en for zh, en in pairs]


def _word(table: dict[str, dict[str, str]], lang: str, key: str) -> str:
    return table.get(lang, {}).get(key, key)


def lights_table(engine: Engine, day: dt.date, ref: Reference, cfg: SlaConfig, province: str, region: str,
                 lang: str = "zh", department: str | None = None) -> Table:
    """The red and yellow tickets of a district (or a city) at the end of ``day``, by department:
    red first, then by deadline. ``department``: only the tickets assigned to it, or, unassigned,
    of a category it leads (taxonomy.yaml)."""
    from sla.job import lights_list

    tz = ref.regions.province(province).timezone
    cur = lights_list(engine, day, ref, cfg, province, region)
    if department is not None:
        cats = ref.taxonomy.categories
        lead = cur["category_l2"].map(lambda c: cats[c].department if c in cats else None)
        cur = cur[(cur["department"] == department) | (cur["department"].isna() & (lead == department))]
    end = pd.Timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()), tz=tz)
    unassigned = "（未指定）" if lang == "zh" else "(unassigned)"
    cur = cur.assign(dep=cur["department"].fillna(unassigned), red_first=(cur["light"] != "red").astype(int))
    rows = []
    for r in cur.sort_values(["dep", "red_first", "deadline_at"]).itertuples():
        hours = (end - pd.Timestamp(r.deadline_at)).total_seconds() / 3600
        level = cfg.levels[int(r.level)]
        rows.append([r.dep, _word(SEVERITY, lang, r.light), r.ticket_id, ref.taxonomy.name(r.category_l2, lang),
                     ref.regions.name(r.district_code or r.city_code, lang),
                     pd.Timestamp(r.received_at).tz_convert(tz).strftime("%Y-%m-%d %H:%M"),
                     pd.Timestamp(r.deadline_at).tz_convert(tz).strftime("%Y-%m-%d %H:%M"),
                     round(hours, 1), _word(LEVEL, lang, level)])
    headers = _h(lang, ("承办单位", "department"), ("灯", "light"), ("工单编号", "ticket id"),
                 ("问题分类", "category"), ("地区", "place"), ("受理时间", "received"), ("办理时限", "deadline"),
                 ("超期小时（负数为剩余）", "hours past the deadline (negative: left)"), ("已升级至", "escalated to"))
    name = f"{ref.regions.name(region, lang)} {day}"
    return Table(f"红黄灯 {name}" if lang == "zh" else f"lights {name}", headers, rows)


def alerts_table(engine: Engine, day: dt.date, ref: Reference, province: str, city: str | None = None,
                 lang: str = "zh", fingerprints: set[str] | None = None) -> Table:
    """The alerts in play on ``day`` (begun by then, not ended before it), most severe first;
    ``fingerprints``: only these (an office's own, on the served site)."""
    a = alerts.c
    q = select(a.fingerprint, a.severity, a.kind, a.region_code, a.category_code, a.starts_on, a.last_seen,
               a.ends_on, a.status, a.observed, a.expected, a.ack_by, a.ack_verdict).where(
        a.starts_on <= day, or_(a.ends_on.is_(None), a.ends_on >= day))
    q = q.where(a.city_code == city) if city else q.where(
        or_(a.city_code.in_(_cities(ref, province)), a.region_code == province))
    with engine.connect() as conn:
        found = conn.execute(q).all()
    if fingerprints is not None:
        found = [r for r in found if r.fingerprint in fingerprints]
    found.sort(key=lambda r: (-SEVERITY_RANK.get(r.severity, 0), str(r.region_code), str(r.fingerprint)))
    rows = [[r.fingerprint[:8], _word(SEVERITY, lang, r.severity), _word(KIND, lang, r.kind),
             ref.regions.name(r.region_code, lang), ref.taxonomy.name(r.category_code, lang) if r.category_code != "*"
             else ("全部" if lang == "zh" else "all"), str(r.starts_on), str(r.last_seen),
             str(r.ends_on) if r.ends_on else "", _word(STATUS, lang, r.status),
             None if r.observed is None else round(float(r.observed), 1),
             None if r.expected is None else round(float(r.expected), 1), r.ack_by or "", r.ack_verdict or ""]
            for r in found]
    headers = _h(lang, ("编号", "id"), ("级别", "severity"), ("类型", "kind"), ("地区", "place"),
                 ("问题分类", "category"), ("开始", "since"), ("最近", "last seen"), ("结束", "ended"),
                 ("状态", "status"), ("实际件数", "observed"), ("预期件数", "expected"), ("确认人", "acknowledged by"),
                 ("评价", "verdict"))
    return Table(f"预警 {day}" if lang == "zh" else f"alerts {day}", headers, rows)


def ranking_table(engine: Engine, month: pd.Period, ref: Reference, province: str, level: str = "city",
                  lang: str = "zh") -> Table:
    """The month's horse race at one level, by group and rank."""
    r = rankings.c
    with engine.connect() as conn:
        found = conn.execute(select(r.scope, r.unit_code, r.group_key, r.rank, r.group_size, r.composite, r.rank_prev,
                                    r.flagged).where(r.month == month.start_time.date(), r.level == level)
                             .order_by(r.scope, r.group_key, r.rank)).all()
    scopes = {province} | _cities(ref, province)
    rows = [[ref.regions.name(x.unit_code, lang), x.unit_code, x.group_key, x.rank, x.group_size,
             None if x.composite is None else round(float(x.composite), 3), x.rank_prev,
             ("是" if lang == "zh" else "yes") if x.flagged else ""] for x in found if x.scope in scopes]
    headers = _h(lang, ("单位", "unit"), ("代码", "code"), ("组", "group"), ("组内排名", "rank"),
                 ("组内单位数", "of"), ("综合得分", "composite"), ("上月排名", "last month"), ("需关注", "flagged"))
    return Table(f"赛马 {month}" if lang == "zh" else f"ranking {month}", headers, rows)


def watchlist_table(engine: Engine, month: pd.Period, ref: Reference, province: str, lang: str = "zh",
                    scope: str | None = None) -> Table:
    """Each scope's 每月一题, watch list and sprouts (苗头) for the month after ``month``;
    ``scope``: that city's (or the province's) only."""
    from proposals.report import label

    p = proposals.c
    with engine.connect() as conn:
        found = conn.execute(select(p.scope, p.status, p.candidates).where(p.month == month.start_time.date())
                             .order_by(p.scope)).all()
    scopes = {province} | _cities(ref, province) if scope is None else {scope}
    rows = []
    for rec in found:
        if rec.scope not in scopes:
            continue
        for c in rec.candidates or []:
            if c.get("role") in ("chosen", "watch", "sprout"):
                score = c.get("score")
                rows.append([ref.regions.name(rec.scope, lang), _word(ROLE, lang, c["role"]),
                             label(c["candidate"], ref, lang),
                             None if score is None else round(float(score), 3)])
    order = {"chosen": 0, "watch": 1, "sprout": 2}
    back = {v: k for k, v in ROLE.get(lang, {}).items()}
    rows.sort(key=lambda x: (x[0], order.get(back.get(x[1], x[1]), 3), -(x[3] or 0)))
    headers = _h(lang, ("范围", "scope"), ("角色", "role"), ("问题", "issue"), ("得分", "score"))
    return Table(f"观察名单 {month}" if lang == "zh" else f"watch list {month}", headers, rows)


def inert(value: Any) -> Any:
    """A text cell a spreadsheet will not run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def to_csv(table: Table) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(table.headers)
    w.writerows([[inert(v) for v in row] for row in table.rows])
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(table: Table) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    wb = Workbook()
    ws = wb.active
    ws.title = "".join(ch for ch in table.name if ch not in "[]:*?/\\")[:31] or "sheet"
    ws.append(table.headers)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in table.rows:
        ws.append([None if v is None else v for v in row])
    for row in ws.iter_rows(min_row=2):
        for cell in row:
            if isinstance(cell.value, str) and cell.data_type == "f":  # text, never a formula
                cell.data_type = "s"
    ws.freeze_panes = "A2"
    for i, h in enumerate(table.headers, start=1):
        width = max([len(str(h))] + [len(str(r[i - 1])) for r in table.rows[:200] if r[i - 1] is not None])
        ws.column_dimensions[get_column_letter(i)].width = min(max(width * 1.6, 8), 60)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def write(table: Table, path: Path) -> Path:
    """``path`` by its suffix: .csv or .xlsx."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ValueError(f"{path}: .csv or .xlsx")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_csv(table) if suffix == ".csv" else to_xlsx(table))
    return path


__all__ = ["Table", "alerts_table", "lights_table", "ranking_table", "watchlist_table", "to_csv", "to_xlsx", "write"]
