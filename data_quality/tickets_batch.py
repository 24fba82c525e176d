"""The tickets-batch suite: row-level expectations on a run's staged batch.

Required fields present; ids unique within the batch and not colliding with another ticket in
the warehouse; region and category codes valid against the reference data; a new ticket's
received_at inside the run's data interval plus the look-back window; closed_at not before
received_at; enumerations valid; content masked (no phone or ID number left); no text garbled by
a wrong encoding. Rows that fail are moved from the batch to quarantine with the expectation as
the reason; if too many fail, the feed itself is broken and the run halts.
"""
from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, select

from data_quality.gx import run_suite
from data_quality.policy import load_policy, policy_for, worst
from data_quality.verdict import Verdict
from hotline.core.pii import PII_PATTERNS, mask_text
from hotline.core.reference import DEFAULT_TIMEZONE, Reference
from hotline.core.tickets import CHANNELS, REQUEST_TYPES, SATISFACTION, STATUSES, URGENCY
from warehouse.load import insert_quarantine
from warehouse.schema import staged_tickets, tickets

SUITE = "tickets_batch"
MOJIBAKE = r"锟斤拷|烫烫烫|\ufffd|Ã[\u0080-\u00bf]|â€|ï¿½"
REQUIRED = ("ticket_id", "received_at", "received_date", "province_code", "city_code", "category_l1",
            "category_l2", "channel", "status", "updated_at")


def _expectations(ref: Reference, window: tuple[pd.Timestamp, pd.Timestamp]) -> list:
    import great_expectations.expectations as gxe

    def m(check: str, description: str, action: str = "quarantine", threshold: str = "") -> dict[str, Any]:
        return {"check": check, "action": action, "description": description, "threshold": threshold}

    regions = ref.regions
    ex = [gxe.ExpectColumnValuesToNotBeNull(column=c, meta=m("required", f"必填字段 {c} 不能为空 (required field)"))
          for c in REQUIRED]
    ex += [
        gxe.ExpectColumnValuesToBeUnique(column="ticket_id",
                                         meta=m("unique_id", "工单编号在批次内唯一 (id unique in batch)")),
        gxe.ExpectColumnValuesToBeInSet(column="id_collision", value_set=[False], meta=m(
            "id_collision", "工单编号不与库中其他工单冲突 (id does not collide with another stored ticket)")),
        gxe.ExpectColumnValuesToBeInSet(column="province_code", value_set=sorted(p.code for p in regions.provinces),
                                        meta=m("region_code", "省级区划代码有效 (province code valid)")),
        gxe.ExpectColumnValuesToBeInSet(column="city_code", value_set=sorted(regions.city_codes()),
                                        meta=m("region_code", "市级区划代码有效 (city code valid)")),
        gxe.ExpectColumnValuesToBeInSet(column="district_code", value_set=sorted(regions.district_codes()),
                                        meta=m("region_code", "区县区划代码有效 (district code valid)")),
        gxe.ExpectColumnValuesToBeInSet(column="category_l2", value_set=sorted(ref.taxonomy.l2_codes()),
                                        meta=m("category_code", "二级分类代码有效 (category code valid)")),
        gxe.ExpectColumnValuesToBeInSet(column="in_window", value_set=[True], meta=m(
            "received_window", "新工单受理时间在本次数据区间及回看窗口内 (new ticket received inside the run's window)",
            threshold=f"{window[0]:%Y-%m-%d %H:%M} .. {window[1]:%Y-%m-%d %H:%M} UTC")),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="closed_at", column_B="received_at", or_equal=True, ignore_row_if="either_value_is_missing",
            meta=m("closed_after_received", "办结时间不早于受理时间 (closed_at not before received_at)")),
        gxe.ExpectColumnValuesToBeInSet(column="channel", value_set=list(CHANNELS),
                                        meta=m("enum", "受理渠道取值有效 (channel)")),
        gxe.ExpectColumnValuesToBeInSet(column="status", value_set=list(STATUSES),
                                        meta=m("enum", "工单状态取值有效 (status)")),
        gxe.ExpectColumnValuesToBeInSet(column="satisfaction", value_set=list(SATISFACTION),
                                        meta=m("enum", "满意度取值有效 (satisfaction)")),
        gxe.ExpectColumnValuesToBeInSet(column="request_type", value_set=list(REQUEST_TYPES),
                                        meta=m("enum", "诉求类型取值有效 (request type)")),
        gxe.ExpectColumnValuesToBeInSet(column="urgency", value_set=list(URGENCY),
                                        meta=m("enum", "紧急程度取值有效 (urgency)")),
        gxe.ExpectColumnValuesToNotBeNull(column="district_code", mostly=0.95, meta=m(
            "district_present", "区县代码齐全（缺失时仅计入市级）(district present; else counted at city level only)",
            action="warn", threshold=">= 95%")),
        gxe.ExpectColumnValuesToBeInSet(column="stale_open", value_set=[False], mostly=0.95, meta=m(
            "closure_backlog", "受理超过30天仍未办结的工单占比 (tickets open more than 30 days)", action="warn",
            threshold="<= 5%")),
        gxe.ExpectColumnValuesToNotMatchRegex(column="content", regex=MOJIBAKE, meta=m(
            "mojibake", "诉求内容无乱码 (text not garbled by a wrong encoding)")),
        gxe.ExpectColumnValuesToNotMatchRegex(column="category_raw", regex=MOJIBAKE, meta=m(
            "mojibake", "原始分类无乱码 (raw category not garbled)")),
    ]
    for name, pattern, _ in PII_PATTERNS:
        if name in ("mobile", "id_number"):
            ex.append(gxe.ExpectColumnValuesToNotMatchRegex(column="content", regex=pattern.pattern, meta=m(
                "pii_masked",
                f"诉求内容已脱敏：无{'手机号' if name == 'mobile' else '身份证号'} (content masked: no {name})")))
    return ex


def load_staged(engine: Engine, run_id: str) -> pd.DataFrame:
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(select(staged_tickets).where(staged_tickets.c.ingest_run_id == run_id))
                          .mappings().all())
    for c in ("received_at", "closed_at", "deadline_at", "updated_at"):
        if c in df.columns:
            df[c] = pd.to_datetime(df[c], utc=True)
    return df


def _existing(engine: Engine, ids: list[str]) -> pd.DataFrame:
    """Stored tickets with these ids (chunked IN lists: a batch is one day, not the history)."""
    out = []
    with engine.connect() as conn:
        for i in range(0, len(ids), 5000):
            chunk = ids[i:i + 5000]
            out.extend(conn.execute(select(tickets.c.ticket_id, tickets.c.received_date, tickets.c.city_code)
                                    .where(tickets.c.ticket_id.in_(chunk))).all())
    return pd.DataFrame(out, columns=["ticket_id", "stored_date", "stored_city"])


def run_window(day: dt.date, lookback_days: int, tz: str = DEFAULT_TIMEZONE) -> tuple[pd.Timestamp, pd.Timestamp]:
    z = zoneinfo.ZoneInfo(tz)
    start = pd.Timestamp(dt.datetime.combine(day - dt.timedelta(days=lookback_days), dt.time(), z)).tz_convert("UTC")
    end = pd.Timestamp(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), z)).tz_convert("UTC")
    return start, end


def validate_frame(frame: pd.DataFrame, engine: Engine, ref: Reference, day: dt.date, lookback_days: int,
                   tz: str = DEFAULT_TIMEZONE, as_of_day: dt.date | None = None):
    """Run the suite on a canonical frame; returns (outcomes, ids of failing rows, helper frame).

    ``as_of_day`` is the day the closure backlog is judged at (default: the run's day).
    """
    df = frame.copy()
    stored = _existing(engine, df["ticket_id"].dropna().astype(str).tolist())
    df = df.merge(stored, on="ticket_id", how="left")
    is_new = df["stored_date"].isna()
    stored_date = pd.to_datetime(df["stored_date"])
    # the same id on another day or in another city is another ticket, not an update
    df["id_collision"] = ~is_new & (((stored_date - pd.to_datetime(df["received_date"])).dt.days.abs() > 1)
                                    | (df["stored_city"] != df["city_code"]))
    window = run_window(day, lookback_days, tz)
    # A new ticket from before the look-back window is a late arrival the feed should not have
    # held back; on a warehouse with no history yet (a first run) there is no "before" to keep.
    with engine.connect() as conn:
        has_history = conn.execute(select(tickets.c.ticket_id).where(
            tickets.c.received_at < window[0].to_pydatetime()).limit(1)).first() is not None
    early = (df["received_at"] < window[0]) if has_history else pd.Series(False, index=df.index)
    df["in_window"] = ~is_new | (~early & (df["received_at"] < window[1]))
    df.attrs["has_history"] = has_history
    df["is_new"] = is_new
    as_of = pd.Timestamp(as_of_day or day, tz="UTC")
    df["stale_open"] = df["closed_at"].isna() & (df["received_at"] < as_of - pd.Timedelta(days=30))
    outcomes = run_suite(SUITE, df, _expectations(ref, window), ["ticket_id"])
    bad: dict[str, list[str]] = {}
    for o in outcomes:
        if not o.success and o.action == "quarantine":
            for row in o.unexpected_rows:
                bad.setdefault(str(row["ticket_id"]), []).append(o.description)
    return outcomes, bad, df


def validate_batch(engine: Engine, run_id: str, day: dt.date, ref: Reference, lookback_days: int,
                   read: int, mapping_quarantined: int, tz: str = DEFAULT_TIMEZONE,
                   apply: bool = True) -> Verdict:
    """The gate's first step on a staged batch; with ``apply`` failing rows go to quarantine."""
    policy = policy_for(load_policy(ref.config_dir))["tickets_batch"]
    df = load_staged(engine, run_id)
    if df.empty:
        v = Verdict(SUITE, run_id, day, [], metrics={"rows": 0, "read": read})
        v.action = "halt" if read and mapping_quarantined == read else "continue"
        if v.action == "halt":
            v.reasons.append(f"全部 {read} 行被隔离 (all {read} rows quarantined)")
        return v
    outcomes, bad, helper = validate_frame(df, engine, ref, day, lookback_days, tz)
    n_bad = len(bad)
    if apply and bad:
        _quarantine_rows(engine, df, bad, run_id)
    rejected = (mapping_quarantined + n_bad) / max(read, 1)
    mojibake = sum(o.unexpected_count for o in outcomes if o.check == "mojibake" and not o.success) / max(len(df), 1)
    late_new = int((helper["is_new"] & (pd.to_datetime(helper["received_date"]) < pd.Timestamp(day))).sum())
    metrics = {"rows": int(len(df)), "read": read, "mapping_quarantined": mapping_quarantined, "dq_quarantined": n_bad,
               "rejected_share": round(rejected, 4), "mojibake_share": round(mojibake, 4),
               "new": int(helper["is_new"].sum()), "late_new": late_new,
               "has_history": bool(helper.attrs.get("has_history", True))}
    actions, reasons = [], []
    fs = policy["failed_share"]
    if rejected > fs["halt"]:
        actions.append("halt")
        reasons.append(f"被拒行占比 {rejected:.1%} 超过暂停阈值 {fs['halt']:.0%} "
                       "(rejected share above the halt threshold)")
    elif rejected > fs["warn"]:
        actions.append("warn")
        reasons.append(f"被拒行占比 {rejected:.1%} 超过警告阈值 {fs['warn']:.0%} "
                       "(rejected share above the warn threshold)")
    if mojibake > policy["mojibake_share"]["halt"]:
        actions.append("halt")
        reasons.append(f"乱码占比 {mojibake:.1%}：疑似编码错误 (garbled text: wrong encoding)")
    if n_bad:
        checks = sorted({o.check for o in outcomes if not o.success and o.action == "quarantine"})
        reasons.append(f"{n_bad} 行未通过行级期望，已隔离 (rows failing row expectations quarantined): "
                       f"{', '.join(checks)}")
    for o in outcomes:
        if not o.success and o.action == "warn":
            actions.append("warn")
            reasons.append(f"{o.description}：{o.unexpected_count}/{o.element_count} 行不符 (rows)")
    v = Verdict(SUITE, run_id, day, outcomes, action=worst(actions), quarantined=n_bad, metrics=metrics,
                reasons=reasons)
    return v


def _quarantine_rows(engine: Engine, df: pd.DataFrame, bad: dict[str, list[str]], run_id: str) -> None:
    rows = df[df["ticket_id"].isin(bad.keys())]
    recs = []
    for r in rows.itertuples(index=False):
        reasons = bad[r.ticket_id]
        raw = {k: (v.isoformat() if hasattr(v, "isoformat")
                   else (mask_text(v) if isinstance(v, str) and k != "ticket_id" else v))
               for k, v in r._asdict().items() if k != "ingest_run_id" and not (isinstance(v, float) and v != v)}
        recs.append({"source_file": "staged_tickets", "source_row": None, "ticket_id": r.ticket_id,
                     "field": "dq", "reason_code": "dq_expectation", "reason": "; ".join(dict.fromkeys(reasons)),
                     "raw": json.dumps(raw, ensure_ascii=False, default=str)})
    insert_quarantine(engine, pd.DataFrame(recs), run_id, "data_quality")
    with engine.begin() as conn:
        ids = list(bad.keys())
        for i in range(0, len(ids), 5000):
            conn.execute(delete(staged_tickets).where(staged_tickets.c.ingest_run_id == run_id,
                                                      staged_tickets.c.ticket_id.in_(ids[i:i + 5000])))
