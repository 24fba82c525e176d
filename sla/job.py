"""The day's lights: record every light change of the day (with its exact time) in
``light_events`` and summarise the open tickets' lights at the end of the day."""
from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, or_, select

from hotline.core.reference import Reference
from sla.lights import SlaConfig, lights_at, transitions
from warehouse.db import epoch_seconds, read_frame
from warehouse.load import insert_new, ts_strings
from warehouse.runs import new_run_id, stage_run
from warehouse.schema import tickets

COLS = ["ticket_id", "received_at", "deadline_at", "closed_at", "city_code", "district_code", "department",
        "category_l2"]


def day_bounds(day: dt.date, tz: str) -> tuple[dt.datetime, dt.datetime]:
    z = zoneinfo.ZoneInfo(tz)
    start = dt.datetime.combine(day, dt.time(), z).astimezone(dt.timezone.utc)
    return start, start + dt.timedelta(days=1)


def month_bounds_utc(month: pd.Period, tz: str) -> tuple[dt.datetime, dt.datetime]:
    """The month's first instant and the next month's, local midnight in ``tz``, as UTC."""
    return day_bounds(month.start_time.date(), tz)[0], day_bounds((month + 1).start_time.date(), tz)[0]


def read_live(engine: Engine, start: dt.datetime, end: dt.datetime, province_code: str,
              city: str | None = None) -> pd.DataFrame:
    """Tickets received by ``end`` and not closed before ``start`` (open at some point of the day)."""
    t = tickets.c
    times = ("received_at", "deadline_at", "closed_at")  # read as epoch seconds: no datetime objects
    q = select(*[epoch_seconds(engine, getattr(t, c)).label(c) if c in times else getattr(t, c) for c in COLS]).where(
        t.province_code == province_code, t.received_at < end, or_(t.closed_at.is_(None), t.closed_at > start))
    if city:
        q = q.where(t.city_code == city)
    with engine.connect() as conn:
        df = read_frame(conn, q, COLS)
    for c in times:  # to the millisecond (SQLite's julianday carries ~1 ms)
        df[c] = pd.to_datetime((pd.to_numeric(df[c], errors="coerce") * 1000).round(), unit="ms", utc=True)
    return df


def lights_day(engine: Engine, day: dt.date, ref: Reference, cfg: SlaConfig, province_code: str,
               city: str | None = None, outbox: tuple | None = None,
               lookback_days: int = 0) -> dict[str, Any]:
    """Record the day's light changes (idempotent) and summarise the lights at the day's end.
    ``lookback_days``: also record the changes of that many days before, which tickets loaded
    late (the ingest's look-back window) bring, so that a run records, the first time, what a
    later rerun of those days would (a backfill run twice records nothing new).
    ``outbox`` (alerts config, var dir[, channel secrets]): also send each district its list of yellow and red
    tickets by department (once per office and day)."""
    tz = ref.regions.province(province_code).timezone
    start, end = day_bounds(day, tz)
    since = day_bounds(day - dt.timedelta(days=lookback_days), tz)[0]
    run_id = new_run_id("lights")
    with stage_run(engine, "lights", day, {"city": city, "lookback_days": lookback_days}, run_id) as run:
        live = read_live(engine, since, end, province_code, city)
        ev = transitions(live["ticket_id"], live["received_at"], live["deadline_at"], live["closed_at"],
                         since, end, cfg)
        written = _store(engine, ev, live, run_id, tz)
        ev = ev[ev["at"] > start] if since < start else ev  # the day's own changes (start, end], for the summary
        if since < start:  # the lights at the day's end: tickets still open at the day's start
            live = live[live["closed_at"].isna() | (live["closed_at"] > start)].reset_index(drop=True)
        cur = _lit_at(live, end, cfg)
        summary = _summary(cur, ev, live, cfg, ref, tz)
        summary.update({"day": str(day), "events_recorded": written, "events_today": int(len(ev))})
        if outbox is not None and len(cur):
            from alerts.outbox import queue_reports
            from sla.notice import light_items

            alerts_cfg, var_dir, *secrets = outbox  # (alerts config, var dir[, channel secrets])
            items = light_items(cur, day, ref, cfg, tz, end)
            summary["lists"] = {"offices": len(items), **queue_reports(engine, items, alerts_cfg, ref, Path(var_dir),
                                                                          secrets=secrets[0] if secrets else None)}
        run.metrics = {**{k: summary[k] for k in ("red", "yellow", "events_recorded")},
                       "lists_queued": (summary.get("lists") or {}).get("queued", 0)}
        return summary


def _lit_at(live: pd.DataFrame, end: dt.datetime, cfg: SlaConfig) -> pd.DataFrame:
    """The tickets of ``live`` whose light is yellow or red at ``end``, with ``light`` and ``level``."""
    now = lights_at(live["received_at"], live["deadline_at"], live["closed_at"], end, cfg)
    cur = pd.concat([live.reset_index(drop=True), now], axis=1)
    return cur[cur["light"].isin(["yellow", "red"])].reset_index(drop=True)


def lights_list(engine: Engine, day: dt.date, ref: Reference, cfg: SlaConfig, province_code: str,
                region: str | None = None) -> pd.DataFrame:
    """The yellow and red tickets at the end of ``day`` (of one city or district), read only:
    what the district's 红黄灯日报 lists, every ticket of it."""
    tz = ref.regions.province(province_code).timezone
    start, end = day_bounds(day, tz)
    level = ref.regions.level_of(region) if region else None
    city = region if level == "city" else ref.regions.parent_of(region) if level == "district" else None
    cur = _lit_at(read_live(engine, start, end, province_code, city), end, cfg)  # closed ones have no light
    return cur[cur["district_code"] == region].reset_index(drop=True) if level == "district" else cur


def _store(engine: Engine, ev: pd.DataFrame, live: pd.DataFrame, run_id: str, tz: str) -> int:
    """Record the changes not recorded yet (one row per ticket, event and level); returns how many."""
    if ev.empty:
        return 0
    keys = live.set_index("ticket_id")[["city_code", "district_code", "department", "category_l2"]]
    rows = ev.join(keys, on="ticket_id")
    with engine.begin() as conn:
        dialect = conn.dialect.name
        cols = {"ticket_id": rows["ticket_id"], "event": rows["event"], "level": rows["level"].astype(int),
                "at": ts_strings(rows["at"], dialect),
                "ds": rows["at"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d"), "detail": rows["detail"],
                "city_code": rows["city_code"], "district_code": rows["district_code"],
                "department": rows["department"], "category_l2": rows["category_l2"], "run_id": run_id}
        series = [pd.Series(v, index=rows.index) for v in cols.values()]
        values = [np.asarray(x.astype(object).where(x.notna(), None)) for x in series]
        return insert_new(conn, "light_events", list(cols), values, escape=("department",))


def _summary(cur: pd.DataFrame, ev: pd.DataFrame, live: pd.DataFrame, cfg: SlaConfig, ref: Reference,
             tz: str) -> dict[str, Any]:
    lv = cur["level"].map(lambda i: cfg.levels[int(i)])
    by_level = {f"{light}@{name}": int(n) for (light, name), n in
                cur.assign(level_name=lv).groupby(["light", "level_name"]).size().items()}
    by_district = []
    for code, g in cur.groupby(cur["district_code"].fillna(cur["city_code"])):
        by_district.append({"region": code, "name": ref.regions.name(code), "red": int((g["light"] == "red").sum()),
                            "yellow": int((g["light"] == "yellow").sum())})
    by_department = []
    for dep, g in cur.groupby(cur["department"].fillna("（未指定）")):
        by_department.append({"department": dep, "red": int((g["light"] == "red").sum()),
                              "yellow": int((g["light"] == "yellow").sum())})
    esc = ev[ev["event"].isin(["red", "escalated"])].join(live.set_index("ticket_id")[["district_code", "city_code"]],
                                                         on="ticket_id")
    escalations = pd.DataFrame({
        "ticket_id": esc["ticket_id"], "to": esc["level"].map(lambda i: cfg.levels[int(i)]),
        "at": (esc["at"].dt.tz_convert(tz).dt.strftime("%Y-%m-%dT%H:%M:%S%z")
               .str.replace(r"(\d\d)$", r":\1", regex=True)),
        "region": esc["district_code"].fillna(esc["city_code"])}).to_dict("records") if len(esc) else []
    key = lambda d: (-d["red"], -d["yellow"])  # noqa: E731
    return {"red": int((cur["light"] == "red").sum()), "yellow": int((cur["light"] == "yellow").sum()),
            "open": int(live["closed_at"].isna().sum()), "by_level": by_level,
            "by_district": sorted(by_district, key=key), "by_department": sorted(by_department, key=key),
            "escalations": escalations}
