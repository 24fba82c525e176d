"""`make bench`: throughput of the foundation's hot paths, each beside a naive baseline measured
in the same run (these machines are noisy: compare within a run, not across runs).

    python -m bench.run [--only NAME ...] [--pg URL] [--history-years 3]

Prints a Markdown table and writes var/bench/results.json. PostgreSQL benchmarks use a scratch
database (hotline_bench) on the server named by --pg / HOTLINE_BENCH_PG_URL.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, insert, text

from generator.province import ProvinceGenerator
from hotline.core.config import DEFAULT_PROVINCE
from hotline.core.reference import DEFAULT_TIMEZONE, load_mapping, load_reference
from ingestion.canonical import Batch, TicketMapper
from ingestion.pipeline import ingest
from ingestion.sources import GeneratorSource
from warehouse.aggregate import aggregate_days
from warehouse.db import connect, migrate
from warehouse.load import upsert_tickets
from warehouse.schema import tickets

PROVINCE = DEFAULT_PROVINCE  # the demo's province (Guangdong): the benchmarks' data

ROOT = Path(__file__).resolve().parent.parent
RESULTS: list[dict] = []


def record(name: str, value: float, unit: str, baseline: float | None = None, note: str = "") -> None:
    row = {"benchmark": name, "value": round(value, 2), "unit": unit,
           "baseline": None if baseline is None else round(baseline, 2), "note": note}
    if baseline:
        row["speedup"] = round(value / baseline, 1) if unit.endswith("/s") else round(baseline / value, 1)
    RESULTS.append(row)
    print(f"  {name}: {row['value']} {unit}"
          + (f" (baseline {row['baseline']}, x{row.get('speedup')})" if baseline else ""),
          flush=True)


def fresh_pg(server_url: str, name: str = "hotline_bench") -> str:
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                          f"AND pid <> pg_backend_pid()"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def kept_pg(server_url: str, name: str) -> str:
    """A scratch database kept between runs (created when missing): for warehouses slow to build."""
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def fresh_sqlite(name: str) -> str:
    d = ROOT / "var" / "bench"
    d.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (d / f"{name}.db{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{d / name}.db"


# ---------------------------------------------------------------- generator
def naive_generate(n: int, gen: ProvinceGenerator) -> list[dict]:
    """The obvious way: one ticket at a time, Python's random module, string formatting."""
    rnd = random.Random(1)
    s = gen.series
    codes, weights = s.index.tolist(), s["base"].tolist()
    out = []
    for i in range(n):
        k = rnd.choices(codes, weights)[0]
        row = s.loc[k]
        out.append({"工单编号": f"X{i:09d}", "受理时间": dt.datetime(2024, 5, 8, rnd.randrange(24), rnd.randrange(60)),
                    "来电号码": f"1{rnd.randrange(3, 10)}{rnd.randrange(10**9):09d}", "区划代码": row["district_code"],
                    "问题分类": row["category_l2"], "诉求内容": f"市民反映：{row['district_zh']}{row['phrase']}"})
    return out


def bench_generator() -> None:
    print("generator")
    gen = ProvinceGenerator(scale=0.1, seed=1)
    t = time.perf_counter()
    n = sum(len(f) for f in gen.tickets(dt.date(2024, 5, 1), dt.date(2024, 5, 14)))
    fast = n / (time.perf_counter() - t)
    t = time.perf_counter()
    m = len(naive_generate(20_000, gen))
    naive = m / (time.perf_counter() - t)
    record("generator throughput", fast, "tickets/s", naive, f"{n} tickets, 14 days at scale 0.1; baseline: row-by-row")


# ---------------------------------------------------------------- ingest
def _day_frames(scale: float, day: dt.date) -> list[pd.DataFrame]:
    return list(ProvinceGenerator(scale=scale, seed=2).tickets(day, day))


def _mapper() -> TicketMapper:
    return TicketMapper(load_mapping("generator"), load_reference(), "bench-salt")


def bench_ingest(url: str, label: str) -> None:
    print(f"ingest into {label}")
    frames = _day_frames(0.45, dt.date(2024, 5, 8))  # a ~50,000-ticket weekday
    n = sum(len(f) for f in frames)
    engine = connect(url)
    migrate(engine)
    mapper = _mapper()
    t = time.perf_counter()
    goods = [mapper.map(Batch(f)).good for f in frames]
    t_map = time.perf_counter() - t
    t = time.perf_counter()
    days: set = set()
    for g in goods:
        days |= upsert_tickets(engine, g, "bench").touched_dates
    t_load = time.perf_counter() - t
    t = time.perf_counter()
    aggregate_days(engine, days)
    t_agg = time.perf_counter() - t
    # baseline: the same canonical rows inserted one statement per row (first 3,000, extrapolated)
    sample = pd.concat(goods).head(3000)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM tickets"))
    rows = sample.assign(ingest_run_id="naive").astype(object).where(sample.notna(), None).to_dict("records")
    for r in rows:
        r["received_at"], r["updated_at"] = r["received_at"].to_pydatetime(), r["updated_at"].to_pydatetime()
        for c in ("deadline_at", "closed_at"):
            r[c] = r[c].to_pydatetime() if r[c] is not None else None
    t = time.perf_counter()
    with engine.begin() as conn:
        for r in rows:
            conn.execute(insert(tickets).values(**r))
    naive = len(rows) / (time.perf_counter() - t)
    record(f"load into {label} (COPY/executemany + upsert)", n / t_load, "tickets/s", naive,
           f"{n} canonical tickets; baseline: one INSERT per row")
    record(f"ingest into {label}, end to end (map + mask + load)", n / (t_map + t_load), "tickets/s")
    record(f"ingest + aggregate of a {n:,}-ticket day on {label} (map, load, aggregate in turn)",
           t_map + t_load + t_agg, "s")
    engine.dispose()


def bench_rerun_vs_history(url: str, label: str, years: int) -> None:
    print(f"re-running one day on top of {years} years of history ({label})")
    gen = ProvinceGenerator(scale=0.01, seed=4)
    day = dt.date(2024, 11, 20)
    mapper = _mapper()
    engine = connect(url)
    migrate(engine)

    def one_day() -> float:
        z = pd.Timestamp(day + dt.timedelta(days=1), tz=DEFAULT_TIMEZONE)
        since = pd.Timestamp(day - dt.timedelta(days=7), tz=DEFAULT_TIMEZONE)
        src = GeneratorSource(gen, day - dt.timedelta(days=7), day, as_of=z, updated_since=since)
        frames = list(src.batches())  # generation is not what is measured
        t = time.perf_counter()
        ingest(engine, _Frames(frames), _mapper())
        return time.perf_counter() - t

    # Baseline: the same day on a warehouse holding only the previous 90 days. A day's run touches
    # the days of every ticket updated in its look-back window (closures reach back ~45 days), so
    # the baseline holds all of those; what differs is only the length of the history behind them.
    recent = day - dt.timedelta(days=90)
    ingest(engine, GeneratorSource(gen, recent, day - dt.timedelta(days=1)), mapper)
    one_day()
    small = min(one_day() for _ in range(3))
    start = day - dt.timedelta(days=365 * years)
    t = time.perf_counter()
    hist = ingest(engine, GeneratorSource(gen, start, recent - dt.timedelta(days=1)), _mapper())
    t_hist = time.perf_counter() - t
    big = min(one_day() for _ in range(3))
    record(f"re-run one day's ingest + aggregate on {years}y history ({label})", big, "s", small,
           f"history {hist.loaded:,} more tickets loaded in {t_hist:.0f} s; baseline: same day on 90 days of history")
    engine.dispose()


def bench_quality(url: str, label: str) -> None:
    """The data-quality gate on a ~58,000-ticket day (50 days of history behind it)."""

    from data_quality import gate

    print(f"data-quality gate on {label}")
    gen = ProvinceGenerator(scale=0.45, seed=2)
    ref = load_reference()
    day = dt.date(2024, 5, 15)
    engine = connect(url)
    migrate(engine)
    # history: the six same weekdays the feed-health band learns from, and the week before the day
    days = sorted({day - dt.timedelta(days=7 * k) for k in range(1, 7)}
                  | {day - dt.timedelta(days=k) for k in range(1, 8)})
    for d in days:
        ingest(engine, GeneratorSource(gen, d, d), _mapper())
    frames = list(gen.tickets(day, day))
    n = sum(len(f) for f in frames)
    t = time.perf_counter()
    s = ingest(engine, _Frames([Batch(f) for f in frames]), _mapper(), logical_date=day, publish=False)
    t_ingest = time.perf_counter() - t
    var = ROOT / "var" / "bench"
    t = time.perf_counter()
    v = gate.validate_staged(engine, ref, var, s.run_id, day, 7)
    t_batch = time.perf_counter() - t
    t = time.perf_counter()
    gate.publish_and_aggregate(engine, s.run_id, day)
    t_pub = time.perf_counter() - t
    t = time.perf_counter()
    f = gate.check_feed(engine, ref, var, s.run_id, day)
    t_feed = time.perf_counter() - t
    record(f"tickets-batch suite on a {n:,}-ticket day ({label})", t_batch, "s", t_ingest,
           f"action {v.action}; baseline: staging the same batch (ingest, same run)")
    record(f"feed-health suite after aggregation ({label})", t_feed, "s", t_pub,
           f"action {f.action}, {f.metrics.get('checked')} checks; baseline: publish + aggregate, same run")
    engine.dispose()


def bench_forecast() -> None:
    """Province scale: every district x level-2 series of the generated province (~5,000), three
    years of daily history, a 30-day horizon with both interval levels."""
    import resource

    from forecasting import forecast
    from forecasting.evaluate import evaluate

    print("forecasting")
    gen = ProvinceGenerator(scale=0.01, seed=3)
    s, days, lam = gen.expected(dt.date(2023, 11, 1), dt.date(2026, 10, 31))
    r = 25.0
    y = np.random.default_rng(3).negative_binomial(r, r / (r + lam))
    sid = (s["district_code"] + "|" + s["category_l2"]).to_numpy()
    hist = pd.DataFrame({"series_id": np.repeat(sid, len(days)), "ds": np.tile(days, len(sid)), "y": y.reshape(-1)})
    t = time.perf_counter()
    fc = forecast(hist, 30, levels=(80, 95), model="auto", candidates=("fast", "seasonal_naive"))
    t_all = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Prophet, one series at a time, on a sample, extrapolated to all series
    from forecasting.api import run_model, to_matrix

    sample = hist[hist["series_id"].isin(sid[:: max(1, len(sid) // 20)][:20])]
    m = to_matrix(sample, 30)
    t = time.perf_counter()
    run_model("prophet", m.Y, m, 30)
    per = (time.perf_counter() - t) / m.Y.shape[0]
    record(f"forecast {len(sid):,} series x {len(days)} days, h=30, 80/95% intervals (auto: fast + naive)",
           t_all, "s", per * len(sid), f"baseline: Prophet per series, {m.Y.shape[0]} timed, extrapolated; "
           f"peak RSS {rss:,.0f} MB; models {fc.drop_duplicates('series_id')['model'].value_counts().to_dict()}")
    # accuracy at city x level-1 (165 series), 14-day horizon, 4 rolling origins
    g = pd.DataFrame(y, index=pd.MultiIndex.from_frame(s[["city_code", "category_l1"]])).groupby(level=[0, 1]).sum()
    city = g.stack().reset_index()
    city.columns = ["city", "cat", "i", "y"]
    city = city.assign(series_id=city["city"] + "|" + city["cat"], ds=days[city["i"]])[["series_id", "ds", "y"]]
    rep = evaluate(city, 14, 4, ("fast", "seasonal_naive", "auto"))
    for row in rep.to_dict("records"):
        record(f"city x level-1 backtest MASE, {row['model']}", row["mase"], "MASE", None,
               f"80% coverage {row['coverage_80']:.3f}, 95% {row['coverage_95']:.3f}, {row['seconds']} s")
    ids = city["series_id"].unique()[::8]
    rep_p = pd.concat([evaluate(city, 14, 4, ("fast",), score_ids=ids),  # fitted with every series, as run
                       evaluate(city[city["series_id"].isin(ids)], 14, 4, ("prophet",))])
    for row in rep_p.to_dict("records"):
        record(f"sample of {len(ids)} city x level-1 series, MASE, {row['model']}", row["mase"], "MASE", None,
               f"80% coverage {row['coverage_80']:.3f}, {row['seconds']} s")


def bench_detect(url: str, label: str) -> None:
    """Detection at province scale: the generated Guangdong at its published volumes (scale 1,
    ~5,000 district x level-2 series, every level rolled up), written as daily counts; one day's
    detection over every scope as the DAG runs it, and a one-year day-by-day backtest."""
    from detectors.backtest import read_labels, run_backtest
    from detectors.job import PANEL_DAYS, detect_scope, load_panel
    from generator.province import write_labels
    from hotline.core.reference import DEFAULT_CONFIG_DIR
    from warehouse.aggregate import load_counts

    print(f"detection ({label})")
    ref = load_reference()
    engine = connect(url)
    migrate(engine)
    gen = ProvinceGenerator(scale=1.0, seed=2027)
    end = dt.date(2026, 10, 31)
    start = end - dt.timedelta(days=364)
    first = start - dt.timedelta(days=PANEL_DAYS)
    t = time.perf_counter()
    series, days, counts = gen.counts(first, end)
    with engine.connect() as conn:  # the warehouse is kept between runs while it covers the days needed
        have, last = conn.execute(text("SELECT min(ds), max(ds) FROM daily_counts")).one()
    if have is None or pd.Timestamp(have).date() > first or pd.Timestamp(last).date() < end:  # or a load cut short
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM daily_counts"))
        rows = load_counts(engine, series, days, counts)
        record(f"province counts, scale 1, {len(days)} days -> daily_counts ({label})", time.perf_counter() - t,
               "s", None, f"{rows:,} rows, {len(series):,} district x level-2 series")
    scopes = [c.code for c in gen.province.cities] + [gen.province.code]
    t = time.perf_counter()
    n = sum(len(load_panel(engine, end - dt.timedelta(days=PANEL_DAYS), end, sc,
                           "province" if sc == gen.province.code else "city")) for sc in scopes)
    read = time.perf_counter() - t
    t = time.perf_counter()
    found = sum(detect_scope(engine, end, sc, DEFAULT_CONFIG_DIR).anomalies for sc in scopes)
    one_day = time.perf_counter() - t
    record(f"detect one day, every scope ({len(scopes)}), province scale ({label})", one_day, "s", None,
           f"{n:,} series in the panels ({len(series):,} district x l2); of which reading {PANEL_DAYS} days per "
           f"scope from the warehouse {read:.1f} s; {found} anomalies")
    labels_path = write_labels(gen.labels(start, end), ROOT / "var" / "bench" / "labels_2027.csv")
    labels = read_labels(labels_path, ref)
    labels = labels[(labels["end"] >= start) & (labels["start"] <= end)].reset_index(drop=True)
    t = time.perf_counter()
    res = run_backtest(engine, labels, start, end, DEFAULT_CONFIG_DIR, ref, gen.province.code)
    year = time.perf_counter() - t
    g = res["grid"][0]
    record(f"backtest one year day by day, province scale ({label})", year, "s", one_day * 365,
           f"baseline: the daily job run for each day (one day's time x 365); F1 {g['f1']}, precision "
           f"{g['precision']}, recall {g['recall']}, "
           f"false alerts/district/month {g['false_alerts_per_district_month']}, "
           f"median delay {g['median_delay_days']} (seed 2027, not used for tuning)")


def bench_score_csv() -> None:
    """score-csv on a 20,000-row 5-minute series: one online update per row, against refitting the
    same baseline on every prefix (what a non-streaming scorer must do to stay causal)."""
    import tempfile

    from detectors.online import RobustOnlineDetector, make_demo_series, score_csv

    print("score-csv")
    df = make_demo_series(n=20000, freq="5min")
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "in.csv"
        df.to_csv(src, index=False)
        t = time.perf_counter()
        score_csv(src, Path(d) / "out.csv")
        online = time.perf_counter() - t
    vals = df["value"].to_numpy()
    n = 300
    t = time.perf_counter()
    for i in range(len(vals) - n, len(vals)):  # the last rows: each refit replays its whole prefix
        det = RobustOnlineDetector(period=288)
        for j, v in enumerate(vals[:i + 1]):
            det.update(v, j)
    per_row = (time.perf_counter() - t) / n
    record("score-csv 20,000 rows, 5-minute, robust", online, "s", per_row * len(vals) / 2,
           f"baseline: refit on each row's prefix, {n} rows timed, extrapolated (mean prefix n/2)")


def _bench_anomalies(n: int, seed: int = 5) -> list[dict]:
    """``n`` anomalies spread over the generated province's districts and cities and the taxonomy."""
    ref = load_reference()
    prov = ref.regions.province(PROVINCE)
    rng = np.random.default_rng(seed)
    districts = ([(d.code, "district") for c in prov.cities for d in c.districts]
                 + [(c.code, "city") for c in prov.cities])
    cats = ref.taxonomy.l2_codes()
    out, seen = [], set()
    while len(out) < n:
        code, level = districts[rng.integers(len(districts))]
        cat = cats[rng.integers(len(cats))]
        kind = ["spike", "drop", "level_shift", "emerging", "spread"][rng.integers(5)]
        sid = f"{level}:{code}|l2:{cat}"
        if (sid, kind) in seen:
            continue
        seen.add((sid, kind))
        out.append({"ds": dt.date(2026, 3, 10), "series_id": sid, "detector": f"bench_{kind}", "kind": kind,
                    "region_level": level, "region_code": code, "category_level": "l2", "category_code": cat,
                    "observed": 30.0, "expected": 10.0, "lower": 5.0, "upper": 16.0, "score": 0.9999999,
                    "severity": ["red", "orange", "yellow"][rng.integers(3)], "explanation": "当日突增",
                    "run_id": "bench"})
    return out


def bench_alerts() -> None:
    """Routing, inhibition and grouping of 10,000 anomalies into rendered notices (the pure part
    of the notify stage), against the obvious pairwise inhibition check; then the whole stage on
    SQLite (alerts stored, history, outbox, delivery to the file channel)."""
    import tempfile

    from alerts.channels import Secrets
    from alerts.config import AlertsConfig, matches_all
    from alerts.model import fingerprint, labels_for
    from alerts.notify import notify_day
    from alerts.render import compose
    from alerts.routing import group_alerts, inhibited

    print("alerts")
    ref = load_reference()
    cfg = AlertsConfig.load(ROOT / "config")
    rows = _bench_anomalies(10000)
    t = time.perf_counter()
    alerts = [{"fingerprint": fingerprint(a["series_id"], a["kind"]), "labels": labels_for(a, ref), "state": "firing",
               "starts_on": a["ds"], **a, "detectors": "consensus"} for a in rows]
    inh = inhibited(alerts, cfg.inhibit_rules)
    groups = group_alerts([a for a in alerts if a["fingerprint"] not in inh], cfg)
    msgs = [compose(g.receiver, a0["ds"], g.firing, [], "zh", {}) for g in groups for a0 in g.alerts[:1]]
    fast = time.perf_counter() - t
    t = time.perf_counter()
    naive = set()
    for rule in cfg.inhibit_rules:  # every target against every source
        for x in alerts:
            if matches_all(rule.target, x["labels"]) and any(
                    y is not x and matches_all(rule.source, y["labels"])
                    and all(y["labels"].get(k) == x["labels"].get(k) for k in rule.equal) for y in alerts):
                naive.add(x["fingerprint"])
    slow = time.perf_counter() - t
    assert naive == set(inh)
    record("alerts: route, inhibit, group and render 10,000 anomalies", fast, "s", slow,
           f"{len(inh)} inhibited, {len(groups)} notices ({len(msgs)} rendered); baseline: pairwise inhibition alone")
    with tempfile.TemporaryDirectory() as d:
        eng = connect(f"sqlite:///{d}/alerts.db")
        migrate(eng)
        from warehouse.schema import anomalies

        with eng.begin() as conn:
            conn.execute(insert(anomalies), rows)
        t = time.perf_counter()
        res = notify_day(eng, dt.date(2026, 3, 10), ref, cfg, Path(d), Secrets({}), pages=False)
        record("alerts: the notify stage on SQLite, 10,000 anomalies", time.perf_counter() - t, "s", None,
               f"{res.fired} alerts fired, {res.notices} notices delivered to the file channel")


def bench_proposals() -> None:
    """每月一题 for the province and its 11 cities (ranking, choice, reports in two languages) on a
    25-month counts-only warehouse at 5% of published volumes (SQLite); the baseline reads the
    month once per scope instead of once for all. Then the warning board for the month's last day."""
    import tempfile

    from proposals.config import ProposalsConfig
    from proposals.job import propose, rank_one, read_month, scopes_of
    from reports.board import build_board
    from warehouse.aggregate import load_counts

    print("proposals")
    ref = load_reference()
    cfg = ProposalsConfig.load(ROOT / "config")
    gen = ProvinceGenerator(PROVINCE, seed=11, scale=0.05)
    s, days, counts = gen.counts(dt.date(2024, 10, 1), dt.date(2026, 10, 31))
    url = fresh_sqlite("proposals")
    eng = connect(url)
    migrate(eng)
    t = time.perf_counter()
    load_counts(eng, s, days, counts)
    print(f"  (warehouse: {len(s)} series x {len(days)} days loaded in {time.perf_counter() - t:.0f} s)")
    month = pd.Period("2026-10", freq="M")
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        res = propose(eng, month, ref, cfg, PROVINCE, Path(d))
        fast = time.perf_counter() - t
        t = time.perf_counter()
        for scope in scopes_of(ref, PROVINCE):
            rank_one(read_month(eng, month, ref, PROVINCE, cfg, scope.level == "province"), scope, cfg, ref, eng)
        slow = time.perf_counter() - t
        n = sum(len(r.ranked) for r in res)
        record("proposals: rank, choose and write zh/en reports, province + 11 cities", fast, "s", slow,
               f"{n} candidates scored; baseline: ranking alone, reading the month once per scope")
        t = time.perf_counter()
        build_board(eng, dt.date(2026, 10, 31), ref, PROVINCE, Path(d) / "site")
        record("board: index and 11 city pages", time.perf_counter() - t, "s", None,
               "no alerts or forecasts stored in this warehouse: the proposal blocks and tables")


def bench_lights() -> None:
    """Red/yellow lights and the day's changes for 1,000,000 open tickets (arrays in memory, the
    stage's pure part), against the same rules applied ticket by ticket in Python (timed on
    50,000 tickets and scaled to a million)."""
    from sla.lights import SlaConfig, lights_at, transitions

    print("lights")
    cfg = SlaConfig()
    rng = np.random.default_rng(3)
    n = 1_000_000
    now = pd.Timestamp("2026-11-25 16:00", tz="UTC")
    rec = now - pd.to_timedelta(rng.uniform(0, 30 * 24, n), unit="h")
    dl = rec + pd.to_timedelta(rng.choice([2, 24, 72, 120, 312, 360], n), unit="h")
    closed = pd.Series([pd.NaT] * n, dtype="datetime64[ns, UTC]")
    ids = np.array([f"T{i}" for i in range(n)], dtype=object)
    t = time.perf_counter()
    cur = lights_at(rec, dl, closed, now, cfg)
    ev = transitions(ids, rec, dl, closed, now - pd.Timedelta(days=1), now, cfg)
    fast = time.perf_counter() - t

    def one(r, d, c, at):
        if c is not None and c <= at:
            return "closed", 0
        if at >= d:
            return "red", min(1 + int((at - d).total_seconds() // (cfg.escalate_again_hours * 3600)),
                              len(cfg.levels) - 1)
        return ("yellow" if at >= d - (d - r) * cfg.yellow_share else "green"), 0

    k = 50_000
    rs, ds = rec[:k].to_pydatetime(), dl[:k].to_pydatetime()
    t = time.perf_counter()
    naive = [one(r, d, None, now.to_pydatetime()) for r, d in zip(rs, ds)]
    slow = (time.perf_counter() - t) * n / k
    assert [x[0] for x in naive] == cur["light"].iloc[:k].tolist()
    record("lights: 1,000,000 open tickets' lights and the day's changes", fast, "s", slow,
           f"{(cur['light'] == 'red').sum():,} red, {(cur['light'] == 'yellow').sum():,} yellow, {len(ev):,} changes; "
           "baseline: per ticket in Python, 50,000 timed and scaled")


def bench_lights_stage(url: str, label: str, n: int = 1_000_000) -> None:
    """The lights stage end to end on PostgreSQL: a million open tickets in the warehouse (loaded
    with COPY, not timed), the day's changes found and recorded and the lights counted
    (``sla.job.lights_day``); a rerun of the day records nothing new."""
    import io

    from sla.job import lights_day
    from sla.lights import SlaConfig

    print(f"lights stage, {n:,} open tickets ({label})")
    ref = load_reference()
    engine = connect(url)
    migrate(engine)
    rng = np.random.default_rng(4)
    day = dt.date(2026, 11, 25)
    end = pd.Timestamp("2026-11-25 16:00", tz="UTC")  # the day's end in Asia/Shanghai
    rec = end - pd.to_timedelta(rng.uniform(0, 30 * 24, n), unit="h")
    dl = rec + pd.to_timedelta(rng.choice([2, 24, 72, 120, 312, 360], n), unit="h")
    districts = [(d.code, c.code) for c in ref.regions.province(PROVINCE).cities for d in c.districts]
    pick = rng.integers(0, len(districts), n)
    df = pd.DataFrame({"ticket_id": [f"B{i:09d}" for i in range(n)], "source": "bench", "received_at": rec,
                       "received_date": rec.tz_convert(DEFAULT_TIMEZONE).date, "channel": "phone",
                       "province_code": PROVINCE, "city_code": [districts[i][1] for i in pick],
                       "district_code": [districts[i][0] for i in pick], "category_l1": "housing",
                       "category_l2": "housing.property_service", "department": "住房和建设局",
                       "deadline_at": dl, "status": "processing", "is_repeat": False, "updated_at": rec})
    buf = io.StringIO()
    df.to_csv(buf, index=False, header=False)
    buf.seek(0)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:
            cur.copy_expert(f"COPY tickets ({', '.join(df.columns)}) FROM STDIN WITH (FORMAT csv)", buf)
        raw.commit()
    finally:
        raw.close()
    with engine.begin() as conn:
        conn.execute(text("ANALYZE tickets"))
    cfg = SlaConfig()
    t = time.perf_counter()
    res = lights_day(engine, day, ref, cfg, PROVINCE)
    first = time.perf_counter() - t
    t = time.perf_counter()
    again = lights_day(engine, day, ref, cfg, PROVINCE)
    rerun = time.perf_counter() - t
    assert again["events_recorded"] == 0
    record(f"lights stage: {n:,} open tickets in the warehouse, the day's changes recorded ({label})", first, "s",
           None, f"{res['red']:,} red, {res['yellow']:,} yellow, {res['events_recorded']:,} changes recorded; "
           f"a rerun of the day {rerun:.1f} s, nothing recorded twice")
    from sqlalchemy import or_, select

    from sla.job import COLS, day_bounds, read_live

    start, stop = day_bounds(day, DEFAULT_TIMEZONE)
    t = time.perf_counter()
    fast = read_live(engine, start, stop, PROVINCE)
    t_fast = time.perf_counter() - t
    tc = tickets.c
    q = select(*[getattr(tc, c) for c in COLS]).where(tc.province_code == PROVINCE, tc.received_at < stop,
                                                      or_(tc.closed_at.is_(None), tc.closed_at > start))
    t = time.perf_counter()
    with engine.connect() as conn:
        slow = pd.DataFrame(conn.execute(q).all(), columns=COLS)
    t_slow = time.perf_counter() - t
    assert len(slow) == len(fast) == n
    record(f"lights stage: reading the {n:,} open tickets ({label})", t_fast, "s", t_slow,
           "timestamps as epoch seconds into a column-wise frame; baseline: SQLAlchemy rows (datetime objects) "
           "handed to pandas' constructor")
    engine.dispose()


def _ranking_in_memory(engine, month: pd.Period, tz: str) -> pd.DataFrame:
    """The baseline: the month's tickets read into pandas (closed, due and the repeat window) and
    aggregated there, as a first version would."""
    from sqlalchemy import or_, select

    from sla.job import month_bounds_utc
    from sla.race import KEYS
    from sla.repeats import COLS, find_repeats

    lo, hi = month_bounds_utc(month, tz)
    t = tickets.c
    cols = [t.ticket_id, t.caller_key, t.received_at, t.category_l2, t.city_code, t.district_code, t.deadline_at,
            t.closed_at, t.satisfaction, t.resolved]
    with engine.connect() as conn:
        df = pd.DataFrame(conn.execute(select(*cols).where(or_(
            (t.closed_at >= lo) & (t.closed_at < hi), (t.deadline_at >= lo) & (t.deadline_at < hi),
            (t.received_at >= lo - dt.timedelta(days=30)) & (t.received_at < hi)))).all(),
            columns=[c.name for c in cols])
    for c in ("received_at", "deadline_at", "closed_at"):
        df[c] = pd.to_datetime(df[c], utc=True)
    df["district_code"] = df["district_code"].fillna("")
    closed = df[(df["closed_at"] >= lo) & (df["closed_at"] < hi)]
    h = (closed["closed_at"] - closed["received_at"]).dt.total_seconds() / 3600
    a = closed.assign(h=h, h2=h * h, dl=closed["deadline_at"].notna(), ot=closed["closed_at"] <= closed["deadline_at"],
                      sn=closed["satisfaction"].notna(),
                      sx=closed["satisfaction"].isin(["satisfied", "basically_satisfied"]),
                      rn=closed["resolved"].notna(), rx=closed["resolved"].eq(True)).groupby(KEYS).agg(
        handling_hours_n=("ticket_id", "size"), handling_hours_x=("h", "sum"), handling_hours_x2=("h2", "sum"),
        on_time_n=("dl", "sum"), on_time_x=("ot", "sum"), satisfaction_n=("sn", "sum"), satisfaction_x=("sx", "sum"),
        resolution_n=("rn", "sum"), resolution_x=("rx", "sum"))
    due = df[(df["deadline_at"] >= lo) & (df["deadline_at"] < hi)]
    b = due.assign(late=due["closed_at"].isna() | (due["closed_at"] > due["deadline_at"])).groupby(KEYS).agg(
        overdue_n=("ticket_id", "size"), overdue_x=("late", "sum"))
    win = df[df["received_at"] < hi].copy()
    win["district_code"] = win["district_code"].replace("", None)
    win["rep"] = find_repeats(win[COLS], 30).notna()
    win = win[win["received_at"] >= lo]
    win["district_code"] = win["district_code"].fillna("")
    c = win.assign(cn=win["caller_key"].notna()).groupby(KEYS).agg(repeat_n=("cn", "sum"), repeat_x=("rep", "sum"))
    return pd.concat([a, b, c], axis=1).fillna(0)


def bench_ranking(url: str, label: str, years: int, scale: float) -> None:
    """The monthly horse race (both levels, the trend view and the report) for a province with
    ``years`` of tickets, against reading the month's tickets into pandas."""
    from sla.lights import SlaConfig
    from sla.monthly import horse_race
    from sla.race import read_aggregates
    from sla.repeats import month_rates

    print(f"ranking on {years} years of tickets, scale {scale} ({label})")
    ref = load_reference()
    engine = connect(url)
    migrate(engine)
    end = dt.date(2026, 10, 31)
    start = end - dt.timedelta(days=365 * years)
    t = time.perf_counter()
    loaded = ingest(engine, GeneratorSource(ProvinceGenerator(scale=scale, seed=6), start, end), _mapper()).loaded
    t_load = time.perf_counter() - t
    aggregate_days(engine, {start + dt.timedelta(days=i) for i in range((end - start).days + 1)})
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    month = pd.Period("2026-10", freq="M")
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        horse_race(engine, month - 1, ref, ref.config_dir, Path(d), PROVINCE)  # last month ranked: the movement
        t = time.perf_counter()
        res = horse_race(engine, month, ref, ref.config_dir, Path(d), PROVINCE)
        fast = time.perf_counter() - t
    t = time.perf_counter()
    base = _ranking_in_memory(engine, month, DEFAULT_TIMEZONE)
    slow = time.perf_counter() - t
    t = time.perf_counter()
    month_rates(engine, month, PROVINCE, SlaConfig())
    sql = read_aggregates(engine, month, PROVINCE, DEFAULT_TIMEZONE)
    t_sql = time.perf_counter() - t
    sql["district_code"] = sql["district_code"].fillna("")
    sql = sql.set_index(["city_code", "district_code", "category_l2"]).sort_index()
    base = base.reindex(sql.index).fillna(0)
    for col in ("on_time_x", "overdue_x", "repeat_x", "satisfaction_x", "resolution_x"):
        assert (sql[col].astype(int) == base[col].astype(int)).all(), col
    with engine.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM tickets")).scalar()
    record(f"ranking: the monthly horse race, {years} years of tickets ({label})", fast, "s", None,
           f"{n:,} tickets in the warehouse ({loaded:,} loaded in {t_load:.0f} s), {res['tickets_closed']:,} closed in "
           f"the month; repeats and aggregates of two months, both levels ranked and stored, trends, zh/en report")
    record(f"ranking: the month's figures per city, district and category ({label})", t_sql, "s", slow,
           "repeats (window function) and aggregates in SQL; baseline: the month's tickets read into pandas and "
           "aggregated there (checked equal)")
    engine.dispose()


class _Frames:
    def __init__(self, batches):
        self._b = batches

    def batches(self):
        yield from self._b


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=None,
                    help="generator, ingest_sqlite, ingest_pg, quality_sqlite, quality_pg, forecast, rerun_sqlite, "
                         "rerun_pg, detect_sqlite, detect_pg, score_csv, alerts, proposals, lights, lights_pg, "
                         "ranking_pg, web")
    ap.add_argument("--pg", default=os.environ.get("HOTLINE_BENCH_PG_URL",
                                                   "postgresql+psycopg2://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--history-years", type=int, default=3)
    ap.add_argument("--ranking-scale", type=float, default=0.01,
                    help="generator scale of the ranking benchmark's province (1 = published volumes)")
    args = ap.parse_args()
    todo = args.only or ["generator", "ingest_sqlite", "ingest_pg", "quality_sqlite", "quality_pg", "forecast",
                         "rerun_sqlite", "rerun_pg", "detect_sqlite", "detect_pg", "score_csv", "alerts", "proposals",
                         "lights", "lights_pg", "ranking_pg", "web"]
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    if "generator" in todo:
        bench_generator()
    if "ingest_sqlite" in todo:
        bench_ingest(fresh_sqlite("ingest"), "SQLite")
    if "ingest_pg" in todo:
        bench_ingest(fresh_pg(args.pg), "PostgreSQL")
    if "quality_sqlite" in todo:
        bench_quality(fresh_sqlite("quality"), "SQLite")
    if "quality_pg" in todo:
        bench_quality(fresh_pg(args.pg, "hotline_bench_dq"), "PostgreSQL")
    if "forecast" in todo:
        bench_forecast()
    if "rerun_sqlite" in todo:
        bench_rerun_vs_history(fresh_sqlite("rerun"), "SQLite", args.history_years)
    if "rerun_pg" in todo:
        bench_rerun_vs_history(fresh_pg(args.pg), "PostgreSQL", args.history_years)
    if "detect_sqlite" in todo:
        (ROOT / "var" / "bench").mkdir(parents=True, exist_ok=True)
        bench_detect(f"sqlite:///{ROOT / 'var' / 'bench' / 'detect_scale1_seed2027.db'}", "SQLite")
    if "detect_pg" in todo:
        bench_detect(kept_pg(args.pg, "hotline_bench_detect"), "PostgreSQL")
    if "score_csv" in todo:
        bench_score_csv()
    if "alerts" in todo:
        bench_alerts()
    if "proposals" in todo:
        bench_proposals()
    if "lights" in todo:
        bench_lights()
    if "lights_pg" in todo:
        bench_lights_stage(fresh_pg(args.pg, "hotline_bench_lights"), "PostgreSQL")
    if "ranking_pg" in todo:
        bench_ranking(fresh_pg(args.pg, "hotline_bench_rank"), "PostgreSQL", args.history_years, args.ranking_scale)
    if "web" in todo:
        from bench.web import run as bench_web

        for workers in (1, 2):
            for r in bench_web(workers=workers):
                record(f"site, {workers} process(es), 20 sessions: {r['page']} p95", r["p95_ms"], "ms",
                       r["alone_p50_ms"], f"p50 {r['p50_ms']} ms; baseline: the page alone (p50)")
    out = ROOT / "var" / "bench" / "results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(RESULTS, ensure_ascii=False, indent=2))
    print("\n| benchmark | value | unit | naive baseline | ratio | note |\n|---|---|---|---|---|---|")
    for r in RESULTS:
        print(f"| {r['benchmark']} | {r['value']:,} | {r['unit']} | "
              f"{r['baseline'] if r['baseline'] is not None else '-'} "
              f"| {('x' + str(r['speedup'])) if r.get('speedup') else '-'} | {r['note']} |")


if __name__ == "__main__":
    main()
