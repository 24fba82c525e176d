"""Anomalies become alerts: labels, a stable fingerprint and a lifecycle stored in the warehouse.

An alert is one series and one kind of problem (``spike`` in 宝安区 · 物业服务), whichever
detectors raised it: its fingerprint hashes the series and the kind, so the same problem seen
again tomorrow, or by a second detector, is the same alert. It fires on the first day an anomaly
raises it, stays firing while anomalies keep raising it, and resolves once none has for
``resolve_after_days`` of its kind. Every change is an ``alert_events`` row (the history).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, insert, select, update

from alerts.config import AlertsConfig
from hotline.core.pii import mask_outgoing
from hotline.core.reference import ALL_CATEGORIES, Reference
from hotline.core.severity import SEVERITY_RANK
from warehouse.schema import alert_events, alerts, anomalies, tickets


def fingerprint(series_id: str, kind: str) -> str:
    """16 bytes of sha256 over the alert's identity: stable across days, runs and detectors."""
    return hashlib.sha256(f"{series_id}|{kind}".encode()).hexdigest()[:32]


def labels_for(a: Mapping[str, Any], ref: Reference) -> dict[str, str]:
    """The routing labels of an anomaly row (anomalies table columns)."""
    regions, tax = ref.regions, ref.taxonomy
    level, code = str(a["region_level"]), str(a["region_code"])
    province = regions.province_of(code)
    city = code if level == "city" else (regions.district_parent().get(code) if level == "district" else None)
    cat_level, cat = str(a["category_level"]), str(a["category_code"])
    l1 = "" if cat_level == "all" else (cat if cat_level == "l1" else tax.parent(cat))
    if cat_level == "all":
        department = ""
    else:
        c = tax.categories.get(cat)
        department = c.department if c else ""
    tier = "province"
    if city:
        try:
            tier = regions.province(province).city(city).tier
        except KeyError:
            tier = ""
    return {
        "alertname": str(a["kind"]), "kind": str(a["kind"]), "severity": str(a["severity"]),
        "series_id": str(a["series_id"]),
        "region_level": level, "region_code": code, "region_name": regions.name(code),
        "province_code": province, "province_name": regions.name(province),
        "city_code": city or "", "city_name": regions.name(city) if city else "",
        "district_code": code if level == "district" else "",
        "tier": tier,
        "category_level": cat_level, "category_code": cat,
        "category_name": "全部类别" if cat == ALL_CATEGORIES else tax.name(cat),
        "category_l1": l1, "department": department,
    }


def sync_alerts(engine: Engine, day: dt.date, ref: Reference, cfg: AlertsConfig,
                now: dt.datetime | None = None) -> dict[str, int]:
    """Bring the alerts up to ``day``: fire or update from the day's anomalies, resolve the quiet
    ones. Idempotent: running a day twice records nothing new the second time. A day older than
    an alert's last sighting does not move the alert back."""
    now = utc(now)
    a = anomalies.c
    with engine.connect() as conn:
        rows = conn.execute(select(anomalies).where(a.ds == day)).mappings().all()
        current = {r["fingerprint"]: dict(r) for r in conn.execute(select(alerts)).mappings()}
        seen_today = recorded_on(conn, day)
    merged = merge_anomalies(rows)
    counts = {"fired": 0, "updated": 0, "reopened": 0, "resolved": 0}
    samples = ticket_samples(engine, day, merged.values(), cfg.samples_per_alert)
    new_rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for fp, m in merged.items():
            lab = labels_for(m, ref)
            values = {"severity": m["severity"], "observed": m["observed"], "expected": m["expected"],
                      "lower": m["lower"], "upper": m["upper"], "score": m["score"],
                      "surprise": m.get("surprise"), "history_days": m.get("history_days"),
                      "detectors": ",".join(m["detectors"]), "explanation": mask_outgoing(m["explanation"]),
                      "samples": samples.get(fp, []), "labels": lab, "updated_at": now}
            old = current.get(fp)
            fresh = {"state": "firing", "status": "firing", "starts_on": day, "last_seen": day, "ends_on": None,
                     "silenced_by": None, "inhibited_by": None, "ack_by": None, "ack_at": None, "ack_verdict": None,
                     "ack_comment": None}
            if old is None:
                new_rows.append({"fingerprint": fp, "series_id": m["series_id"], "kind": m["kind"],
                                 **{k: m[k] for k in ("region_level", "region_code", "category_level",
                                                      "category_code")},
                                 "city_code": lab["city_code"] or None, **values, **fresh})
                action = "fired"
            elif old["state"] == "resolved" and day > old["ends_on"]:
                # a new episode: the acknowledgement was for the old one
                conn.execute(update(alerts).where(alerts.c.fingerprint == fp).values(**values, **fresh))
                action = "fired"
            elif old["state"] == "resolved" and day == old["ends_on"]:
                # a rerun of the day that resolved it now raises it: the same episode goes on
                conn.execute(update(alerts).where(alerts.c.fingerprint == fp).values(
                    **values, state="firing", status="firing", last_seen=day, ends_on=None))
                action = "reopened"
            elif old["state"] == "firing" and day >= old["last_seen"]:
                conn.execute(update(alerts).where(alerts.c.fingerprint == fp).values(**values, last_seen=day))
                action = "updated" if old["starts_on"] < day else "fired"
            else:
                continue  # a backfill of a day before the alert's latest state: the alert has moved on
            if (fp, action) not in seen_today:
                events.append(event_row(now, day, fp, action, "detectors", {
                    "severity": m["severity"], "score": m["score"], "observed": m["observed"],
                    "expected": m["expected"], "detectors": m["detectors"]}))
                counts[action] += 1
        if new_rows:
            conn.execute(insert(alerts), new_rows)
        for fp, old in current.items():
            if old["state"] != "firing" or fp in merged or old["last_seen"] >= day:
                continue
            quiet = (day - old["last_seen"]).days
            if quiet >= cfg.resolve_after_days.get(old["kind"], 2):
                conn.execute(update(alerts).where(alerts.c.fingerprint == fp).values(
                    state="resolved", status="resolved", ends_on=day, updated_at=now))
                if (fp, "resolved") not in seen_today:
                    events.append(event_row(now, day, fp, "resolved", "pipeline", {"quiet_days": quiet}))
                    counts["resolved"] += 1
        if events:
            conn.execute(insert(alert_events), events)
    return counts


def utc(now: dt.datetime | None) -> dt.datetime:
    """The given time, or now (UTC): the stage takes its clock from the caller in tests."""
    return now or dt.datetime.now(dt.timezone.utc)


def recorded_on(conn, day: dt.date) -> set[tuple[str, str]]:
    """(fingerprint, action) of the history rows recorded by the runs of ``day``: what a rerun
    must not record again."""
    e = alert_events.c
    return {(r.fingerprint, r.action) for r in conn.execute(select(e.fingerprint, e.action).where(e.ds == day))}


def merge_anomalies(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The day's anomalies by fingerprint: the most severe (then highest-scoring) detector's row
    speaks for the alert, and every detector that agreed is listed."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        fp = fingerprint(r["series_id"], r["kind"])
        key = (SEVERITY_RANK.get(r["severity"], 0), _surprise(r))
        cur = out.get(fp)
        if cur is None:
            out[fp] = {**dict(r), "detectors": [r["detector"]], "_key": key}
            continue
        cur["detectors"] = sorted({*cur["detectors"], r["detector"]})
        if key > cur["_key"]:
            out[fp] = {**dict(r), "detectors": cur["detectors"], "_key": key}
    return out


def _surprise(row: Mapping[str, Any]) -> float:
    """-log10 p of an anomaly row (from its score where an older row has no surprise)."""
    s = row.get("surprise")
    if s is not None:
        return float(s)
    return float(-np.log10(max(1.0 - float(row["score"]), 1e-300)))


def ticket_samples(engine: Engine, day: dt.date, merged: Iterable[Mapping[str, Any]], k: int) -> dict[str, list[str]]:
    """Up to ``k`` ticket texts of the day behind each alert (what citizens actually said), masked
    again on the way out: one read of the day's texts, shared out to every level and category.
    Counts-only warehouses have no tickets: no samples."""
    merged = list(merged)
    if k <= 0 or not merged:
        return {}
    t = tickets.c
    wanted = {(m["region_level"], m["region_code"], m["category_level"], m["category_code"]):
              fingerprint(m["series_id"], m["kind"]) for m in merged}
    want_keys: dict[tuple, list[str]] = {}
    for key, fp in wanted.items():
        want_keys.setdefault(key, []).append(fp)
    found: dict[tuple, list[str]] = {}
    with engine.connect() as conn:
        res = conn.execute(select(t.province_code, t.city_code, t.district_code, t.category_l1, t.category_l2,
                                  t.content).where(t.received_date == day, t.content.is_not(None))
                           .order_by(t.ticket_id))
        for prov, city, district, c1, c2, text in res:
            for level, code in (("province", prov), ("city", city), ("district", district)):
                for clevel, ccode in (("all", ALL_CATEGORIES), ("l1", c1), ("l2", c2)):
                    key = (level, code, clevel, ccode)
                    if key in want_keys:
                        got = found.setdefault(key, [])
                        if len(got) < k:
                            got.append(text)
    out: dict[str, list[str]] = {}
    for key, texts in found.items():
        for fp in want_keys[key]:
            out[fp] = [mask_outgoing(x)[:120] for x in texts]
    return out


def event_row(now: dt.datetime, day: dt.date | None, fp: str | None, action: str, actor: str,
              detail: dict[str, Any] | None = None, silence_id: int | None = None) -> dict[str, Any]:
    return {"at": now, "ds": day, "fingerprint": fp, "silence_id": silence_id, "action": action, "actor": actor,
            "detail": jsonable(detail)}


def history_event(conn, now: dt.datetime, day: dt.date | None, fp: str | None, action: str, actor: str,
           detail: dict[str, Any] | None = None, silence_id: int | None = None) -> None:
    conn.execute(insert(alert_events).values(**event_row(now, day, fp, action, actor, detail, silence_id)))


def jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if hasattr(v, "item"):
        return v.item()
    return v


def read_alerts(engine: Engine, states: Iterable[str] | None = None, day: dt.date | None = None,
                fingerprint: str | None = None) -> pd.DataFrame:
    """Alerts, newest first; ``day`` keeps those firing on it or resolved on it."""
    q = select(alerts)
    if fingerprint:
        q = q.where(alerts.c.fingerprint == fingerprint)
    if states:
        q = q.where(alerts.c.state.in_(list(states)))
    if day is not None:
        q = q.where(alerts.c.starts_on <= day, (alerts.c.ends_on.is_(None)) | (alerts.c.ends_on >= day))
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(q.order_by(alerts.c.last_seen.desc(), alerts.c.score.desc())).mappings().all(),
                          columns=[c.name for c in alerts.columns])
    return df
