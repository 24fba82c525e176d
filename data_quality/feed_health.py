"""The feed-health suite: is today's feed plausible against its own history?

Run after aggregation. One row per (check, region or channel) with the observed value and the
band it must fall in, validated by Great Expectations; the band comes from the same weekday in
recent weeks (calendar-aware: holidays are compared with a holiday's level, a 调休 workday with
workdays), and thresholds from the city's tier in config/data_quality.yaml.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import poisson
from sqlalchemy import Engine, and_, delete, func, insert, select

from data_quality.gx import run_suite
from data_quality.policy import load_policy, policy_for, worst
from data_quality.verdict import Verdict
from hotline.core.calendar import calendar_frame
from hotline.core.reference import DEFAULT_TIMEZONE, UNMAPPED, Reference
from warehouse.schema import daily_counts, dq_day_flags, dq_verdicts, tickets

SUITE = "feed_health"
CHECK_TEXT = {
    "city_volume": "城市日工单量在历史同期区间内 (city volume within its band)",
    "district_volume": "区县日工单量在历史同期区间内 (district volume within its band)",
    "channel_volume": "各渠道日工单量在历史同期区间内 (channel volume within its band)",
    "silent_city": "通常有工单的城市今日无数据 (a city that normally reports sent nothing)",
    "silent_district": "通常有工单的区县今日无数据 (a district that normally reports sent nothing)",
    "silent_channel": "通常有工单的渠道今日无数据 (a channel that normally reports sent nothing)",
    "unmapped_share_warn": "未映射类别占比 (share of unmapped categories, warn level)",
    "unmapped_share_halt": "未映射类别占比 (share of unmapped categories, halt level)",
    "duplicate_share_warn": "疑似重复加载的工单占比 (tickets loaded twice under other ids, warn level)",
    "duplicate_share_halt": "疑似重复加载的工单占比：同一天被加载两次 (day loaded twice, halt level)",
    "late_share_warn": "迟到工单占比 (late-arriving tickets, warn level)",
    "late_share_halt": "迟到工单占比 (late-arriving tickets, halt level)",
    "hour_profile": "受理时段分布与近期一致（时区错误会使其整体偏移）"
                    "(hour-of-day profile; a time-zone error shifts it)",
}


def reference_days(day: dt.date, weeks: int, config_dir: str) -> tuple[list[dt.date], float]:
    """Days to learn the band from, and the factor for today's kind of day.

    An ordinary day: the same weekday in the previous ``weeks`` weeks, holidays left out. A 调休
    workday: ordinary weekdays. A holiday: ordinary days of the same weekday, scaled down to a
    holiday's level.
    """
    cal = calendar_frame(day - dt.timedelta(days=7 * weeks + 7), day, config_dir).set_index("ds")
    today = cal.loc[pd.Timestamp(day)]
    past = cal.iloc[:-1]
    ordinary = past[~past["is_holiday"] & ~past["is_makeup_workday"]]
    if today["is_makeup_workday"]:
        ref = ordinary[ordinary["weekday"] < 5].tail(weeks)
        factor = 1.0
    else:
        ref = ordinary[ordinary["weekday"] == today["weekday"]].tail(weeks)
        factor = (0.45 if abs(today["days_from_spring_festival"]) <= 8 else 0.6) if today["is_holiday"] else 1.0
    return [d.date() for d in ref.index], factor


def _counts(engine: Engine, level: str, days: list[dt.date]) -> pd.DataFrame:
    dc = daily_counts.c
    with engine.connect() as conn:
        rows = conn.execute(select(dc.ds, dc.region_code, dc.city_code, dc.n_tickets).where(
            dc.region_level == level, dc.category_level == "all", dc.ds.in_(days))).all()
    return pd.DataFrame(rows, columns=["ds", "key", "city_code", "n"])


def _flagged(engine: Engine, days: list[dt.date]) -> set[tuple[dt.date, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(dq_day_flags.c.ds, dq_day_flags.c.region_code).where(
            dq_day_flags.c.ds.in_(days), dq_day_flags.c.action == "halt")).all()
    return {(r[0], r[1]) for r in rows}


def _band_rows(obs: pd.DataFrame, hist: pd.DataFrame, ref_days: list[dt.date], factor: float, level: str,
               tiers: dict[str, str], policies: dict[str, dict]) -> list[dict[str, Any]]:
    """Volume and silence rows for one level; ``obs`` and ``hist`` have key, city_code, n (hist: ds)."""
    out = []
    if hist.empty:
        return out
    full = hist.pivot_table(index="key", columns="ds", values="n", aggfunc="sum").reindex(columns=ref_days).fillna(0)
    expected = full.median(axis=1) * factor
    city_of = pd.concat([hist, obs]).drop_duplicates("key").set_index("key")["city_code"]
    observed = obs.groupby("key")["n"].sum()
    for key, exp in expected.items():
        city = city_of.get(key)
        pol = policies[city]["feed_health"]
        band = pol[f"{level}_volume"]
        o = float(observed.get(key, 0))
        if exp < band["min_expected"]:
            continue
        if o == 0:
            out.append(dict(check=f"silent_{level}", level=level, key=key, city_code=city, tier=tiers[city],
                            observed=0.0, expected=round(exp, 1), value=0.0, low=1.0, high=np.inf,
                            action=pol["silent"][level]))
        else:
            # The band in counts: the tier's ratio band, widened to the Poisson tails for small
            # volumes (a district expecting 6 sees 1 about one day in sixty by chance alone).
            tail = band.get("tail", 0.001)
            low = min(band["low"] * exp, float(poisson.ppf(tail, exp)))
            high = max(band["high"] * exp, float(poisson.isf(tail, exp)))
            out.append(dict(check=f"{level}_volume", level=level, key=key, city_code=city, tier=tiers[city],
                            observed=o, expected=round(exp, 1), value=o, low=round(low, 1), high=round(high, 1),
                            action=band["action"]))
    return out


def _local_hours(ts: pd.Series, tz: str) -> pd.Series:
    return pd.to_datetime(ts, utc=True).dt.tz_convert(zoneinfo.ZoneInfo(tz)).dt.hour


def feed_metrics(engine: Engine, day: dt.date, ref: Reference, run_id: str | None = None,
                 tz: str = DEFAULT_TIMEZONE) -> pd.DataFrame:
    """The metrics frame; ``.attrs["reference_days"]`` holds the days the bands came from."""
    """The metrics frame the suite validates: one row per check and region (or channel)."""
    raw_policy = load_policy(ref.config_dir)
    cities = {c.code: c for p in ref.regions.provinces for c in p.cities}
    tiers = {code: c.tier for code, c in cities.items()}
    policies = {code: policy_for(raw_policy, c.tier, code) for code, c in cities.items()}
    weeks = policy_for(raw_policy)["feed_health"]["history_weeks"]
    ref_days, factor = reference_days(day, weeks, str(ref.config_dir))
    flagged = _flagged(engine, ref_days)
    rows: list[dict[str, Any]] = []

    for level in ("city", "district"):
        hist = _counts(engine, level, ref_days)
        if flagged:
            hist = hist[[(d, c) not in flagged and (d, k) not in flagged
                         for d, c, k in zip(hist["ds"], hist["city_code"], hist["key"])]]
        obs = _counts(engine, level, [day])
        if level == "city":
            hist["city_code"] = hist["key"]
            obs["city_code"] = obs["key"]
        rows += _band_rows(obs, hist, ref_days, factor, level, tiers, policies)

    t = tickets.c
    with engine.connect() as conn:
        ch = pd.DataFrame(conn.execute(
            select(t.received_date, t.city_code, t.channel, func.count()).where(t.received_date.in_([*ref_days, day]))
            .group_by(t.received_date, t.city_code, t.channel)).all(), columns=["ds", "city_code", "channel", "n"])
    if not ch.empty:
        ch["key"] = ch["city_code"] + ":" + ch["channel"]
        rows += _band_rows(ch[ch["ds"] == day][["key", "city_code", "n"]],
                           ch[ch["ds"] != day][["ds", "key", "city_code", "n"]],
                           ref_days, factor, "channel", tiers, policies)

    # shares per city on the day: unmapped categories, tickets loaded twice
    dc = daily_counts.c
    with engine.connect() as conn:
        tot = dict(conn.execute(select(dc.region_code, dc.n_tickets).where(
            dc.ds == day, dc.region_level == "city", dc.category_level == "all")).all())
        unm = dict(conn.execute(select(dc.region_code, dc.n_tickets).where(
            dc.ds == day, dc.region_level == "city", dc.category_level == "l2", dc.category_code == UNMAPPED)).all())
        sig = (select(t.city_code, func.count().label("c")).where(t.received_date == day, t.caller_key.is_not(None))
               .group_by(t.city_code, t.caller_key, t.received_at, t.category_l2, t.content).subquery())
        dup = dict(conn.execute(select(sig.c.city_code, func.sum(sig.c.c - 1)).group_by(sig.c.city_code)).all())
    for city, n in tot.items():
        if not n or city not in policies:
            continue
        pol = policies[city]["feed_health"]
        for name, value in (("unmapped_share", float(unm.get(city, 0)) / n),
                            ("duplicate_share", float(dup.get(city) or 0) / n)):
            for lvl in ("warn", "halt"):
                if lvl in pol[name]:
                    rows.append(dict(check=f"{name}_{lvl}", level="city", key=city, city_code=city, tier=tiers[city],
                                     observed=round(value, 4), expected=None, value=round(value, 4), low=0.0,
                                     high=pol[name][lvl], action=lvl))

    # late arrivals among the run's new tickets (from the batch step's metrics)
    if run_id:
        with engine.connect() as conn:
            m = conn.execute(select(dq_verdicts.c.metrics).where(
                dq_verdicts.c.run_id == run_id, dq_verdicts.c.suite == "tickets_batch")).scalar_one_or_none()
        if m and m.get("new") and m.get("has_history", True):  # on a first run every ticket is "late"
            share = m["late_new"] / m["new"]
            pol = policy_for(raw_policy)["feed_health"]["late_share"]
            for lvl in ("warn", "halt"):
                rows.append(dict(check=f"late_share_{lvl}", level="province", key="*", city_code=None, tier="*",
                                 observed=round(share, 4), expected=None, value=round(share, 4), low=0.0,
                                 high=pol[lvl], action=lvl))

    # the hour-of-day profile against the two latest reference days
    recent = ref_days[-2:]
    with engine.connect() as conn:
        hrs = pd.DataFrame(conn.execute(select(t.city_code, t.received_date, t.received_at).where(
            t.received_date.in_([*recent, day]))).all(), columns=["city_code", "ds", "received_at"])
    if not hrs.empty:
        hrs["hour"] = _local_hours(hrs["received_at"], tz)
        for city, g in hrs.groupby("city_code"):
            pol = policies.get(city, {}).get("feed_health", {}).get("hour_profile")
            today, past = g[g["ds"] == day], g[g["ds"] != day]
            if pol is None or len(today) < pol["min_tickets"] or len(past) < pol["min_tickets"]:
                continue
            p = np.bincount(today["hour"], minlength=24) / len(today)
            q = np.bincount(past["hour"], minlength=24) / len(past)
            dist = 0.5 * float(np.abs(p - q).sum())
            rows.append(dict(check="hour_profile", level="city", key=city, city_code=city, tier=tiers[city],
                             observed=round(dist, 3), expected=0.0, value=round(dist, 3), low=0.0,
                             high=pol["max_distance"], action=pol["action"]))
    cols = ["check", "level", "key", "city_code", "tier", "observed", "expected", "value", "low", "high", "action"]
    out = pd.DataFrame(rows, columns=cols)
    out.attrs["reference_days"] = [d.isoformat() for d in ref_days]
    return out


def _expectations(metrics: pd.DataFrame) -> list:
    import great_expectations.expectations as gxe

    ex = []
    for check, g in metrics.groupby("check", sort=True):
        action = g["action"].iloc[0] if g["action"].nunique() == 1 else "warn"
        for (a, b, words) in (("value", "low", "不低于下限 (not below the band)"),
                              ("high", "value", "不高于上限 (not above the band)")):
            ex.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=a, column_B=b, or_equal=True, row_condition=f'check=="{check}"', condition_parser="pandas",
                meta={"check": check, "action": action, "description": f"{CHECK_TEXT.get(check, check)}：{words}"}))
    return ex


CHANNEL_ZH = {"phone": "电话", "app": "APP", "wechat": "微信", "web": "网站", "sms": "短信", "email": "邮件",
              "other": "其他"}


def _where(key: str, ref: Reference) -> str:
    if key == "*":
        return "全省 (all)"
    region, _, channel = key.partition(":")
    name = f"{ref.regions.name(region)} ({region})"
    return f"{name} {CHANNEL_ZH.get(channel, channel)}渠道" if channel else name


def _reason(row: pd.Series, ref: Reference) -> str:
    share = "share" in row["check"] or row["check"] == "hour_profile"
    fmt = (lambda x: f"{x:.1%}") if "share" in row["check"] else (lambda x: f"{x:g}")
    high = "∞" if row["high"] >= 1e17 else fmt(row["high"])
    exp = "" if share or pd.isna(row["expected"]) else f"，历史同期约 {row['expected']:g} (expected)"
    return (f"{CHECK_TEXT.get(row['check'], row['check'])}：{_where(row['key'], ref)} 实际 {fmt(row['observed'])}"
            f"{exp}，允许范围 [{fmt(row['low'])}, {high}] → {row['action']}")


def feed_health(engine: Engine, day: dt.date, ref: Reference, run_id: str, tz: str = DEFAULT_TIMEZONE) -> Verdict:
    """Validate the day's feed against history; record flags for the regions that failed."""
    metrics = feed_metrics(engine, day, ref, run_id, tz)
    if metrics.empty:
        return Verdict(SUITE, run_id, day, [], metrics={"checked": 0, "note": "no history to compare with"})
    ref_days = metrics.attrs.get("reference_days", [])
    metrics = metrics.replace([np.inf], 1e18)
    outcomes = run_suite(SUITE, metrics.assign(row_key=metrics["check"] + "|" + metrics["key"]), _expectations(metrics),
                         ["row_key", "key", "observed", "expected", "value", "low", "high"])
    failed_rows = []
    for o in outcomes:
        if not o.success:
            for r in o.unexpected_rows:
                failed_rows.append({**r, "check": o.check})
    # the per-row action (a silent district warns, a silent city halts) decides; a row failing at
    # halt level is not repeated at warn level
    by_key = metrics.set_index(metrics["check"] + "|" + metrics["key"])
    failed_keys = {r["row_key"] for r in failed_rows}
    actions, reasons, flags = [], [], []
    for row_key in sorted(failed_keys):
        row = by_key.loc[row_key]
        base = row["check"].removesuffix("_warn").removesuffix("_halt")
        if row["check"].endswith("_warn") and f"{base}_halt|{row['key']}" in failed_keys:
            continue
        actions.append(row["action"])
        reasons.append(_reason(row, ref))
        region = row["key"].split(":")[0] if row["key"] != "*" else "*"
        flags.append({"ds": day, "region_code": region[:6], "check_name": row["check"], "action": row["action"],
                      "run_id": run_id, "detail": reasons[-1]})
    with engine.begin() as conn:
        conn.execute(delete(dq_day_flags).where(and_(dq_day_flags.c.ds == day, dq_day_flags.c.run_id == run_id)))
        seen = set()
        for f in flags:
            k = (f["region_code"], f["check_name"])
            if k in seen:
                continue
            seen.add(k)
            conn.execute(delete(dq_day_flags).where(dq_day_flags.c.ds == day, dq_day_flags.c.region_code == k[0],
                                                    dq_day_flags.c.check_name == k[1]))
            conn.execute(insert(dq_day_flags).values(**f))
    return Verdict(SUITE, run_id, day, outcomes, action=worst(actions), metrics={
        "checked": int(len(metrics)), "failed_rows": len({r['row_key'] for r in failed_rows}),
        "reference_days": ref_days},
        reasons=reasons)
