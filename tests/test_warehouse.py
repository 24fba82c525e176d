"""The warehouse on SQLite and PostgreSQL: migrations, idempotent upserts, aggregation at all levels."""
import datetime as dt
import json

import pandas as pd
from sqlalchemy import func, select

from ingestion.canonical import Batch
from ingestion.pipeline import ingest
from ingestion.sources import GeneratorSource
from warehouse.aggregate import aggregate_days, read_series
from warehouse.load import upsert_tickets
from warehouse.schema import daily_counts, metadata, pipeline_runs, quarantine, tickets

DAY = dt.date(2024, 5, 8)


def _count(engine, table, *where):
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def _ingest_window(engine, gen, mapper, start, end, **kw):
    return ingest(engine, GeneratorSource(gen, start, end, **kw), mapper)


def test_migrations_create_exactly_the_declared_schema(engine):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_rerunning_an_ingest_leaves_the_same_rows(engine, small_generator, mapper_factory):
    first = _ingest_window(engine, small_generator, mapper_factory(), DAY, DAY + dt.timedelta(days=2))
    counts = (_count(engine, tickets), _count(engine, daily_counts))
    second = _ingest_window(engine, small_generator, mapper_factory(), DAY, DAY + dt.timedelta(days=2))
    assert first.inserted == first.read > 0
    assert second.inserted == 0 and second.unchanged == second.read == first.read
    assert (_count(engine, tickets), _count(engine, daily_counts)) == counts


def test_a_newer_version_replaces_and_an_older_one_is_ignored(engine, small_generator, mapper_factory):
    raw = next(small_generator.tickets(DAY, DAY)).head(3)
    good = mapper_factory().map(Batch(raw)).good
    upsert_tickets(engine, good, "r1")
    newer = good.copy()
    newer["status"] = "returned"
    newer["updated_at"] = newer["updated_at"] + pd.Timedelta(hours=2)
    res = upsert_tickets(engine, newer.head(1), "r2")
    older = good.copy()
    older["status"] = "received"
    older["updated_at"] = older["updated_at"] - pd.Timedelta(days=1)
    res_old = upsert_tickets(engine, older, "r3")
    with engine.connect() as conn:
        st = dict(conn.execute(select(tickets.c.ticket_id, tickets.c.status)).all())
    assert res.updated == 1 and res_old.updated == 0 and res_old.unchanged == 3
    assert st[good.loc[0, "ticket_id"]] == "returned"
    assert sorted(st.values()).count("received") == 0


def test_timestamps_round_trip_tz_aware(engine, small_generator, mapper_factory):
    raw = next(small_generator.tickets(DAY, DAY)).head(1)
    good = mapper_factory().map(Batch(raw)).good
    upsert_tickets(engine, good, "r1")
    with engine.connect() as conn:
        got = conn.execute(select(tickets.c.received_at, tickets.c.received_date)).one()
    assert got.received_at == good.loc[0, "received_at"].to_pydatetime()
    assert got.received_at.tzinfo is not None and got.received_date == DAY


def test_counts_add_up_across_both_hierarchies(engine, small_generator, mapper_factory):
    _ingest_window(engine, small_generator, mapper_factory(), DAY, DAY)
    with engine.connect() as conn:
        dc = pd.DataFrame(conn.execute(select(daily_counts).where(daily_counts.c.ds == DAY)).mappings().all())
        n = conn.execute(select(func.count()).select_from(tickets).where(tickets.c.received_date == DAY)).scalar_one()
    tot = dc.set_index(["region_level", "category_level"])
    assert tot.loc[("province", "all"), "n_tickets"].sum() == n
    for rlevel in ("province", "city", "district"):
        for clevel in ("all", "l1", "l2"):
            assert tot.loc[(rlevel, clevel), "n_tickets"].sum() == n, (rlevel, clevel)
    city = dc[(dc.region_level == "city") & (dc.category_level == "all")].set_index("region_code")["n_tickets"]
    dist = dc[(dc.region_level == "district") & (dc.category_level == "all")].groupby("city_code")["n_tickets"].sum()
    pd.testing.assert_series_equal(city.sort_index(), dist.sort_index(), check_names=False)
    for col in ("n_closed", "n_overdue", "n_repeat", "n_rated", "n_unsatisfied", "n_resolved"):
        assert (dc[col] <= dc["n_tickets"]).all()
    assert dc["n_closed"].sum() > 0 and dc["n_repeat"].sum() > 0


def test_tickets_without_a_district_count_at_city_level_only(engine, mapper_factory):
    raw = pd.DataFrame({
        "unique_key": ["A1", "A2", "A3"], "account": ["X"] * 3, "opendate": ["2020-03-02"] * 3,
        "closedate": ["", "", "2020-03-03"], "complaint_type": ["Parks"] * 3, "descriptor": [""] * 3,
        "zip": [""] * 3, "borough": ["Queens", "", ""], "city": [""] * 3, "council_dist": [""] * 3,
        "community_board": [""] * 3})
    out = mapper_factory("nyc_council").map(Batch(raw))
    res = upsert_tickets(engine, out.good, "r")
    aggregate_days(engine, res.touched_dates)
    s_city = read_series(engine, "city", "all")
    s_dist = read_series(engine, "district", "all")
    assert s_city["y"].sum() == 3 and s_dist["y"].sum() == 1


def test_daily_run_picks_up_closures_within_the_lookback(engine, small_generator, mapper_factory):
    start = dt.date(2024, 5, 1)
    _ingest_window(engine, small_generator, mapper_factory(), start, DAY)
    open_before = _count(engine, tickets, tickets.c.closed_at.is_(None))
    nxt = DAY + dt.timedelta(days=1)
    as_of = pd.Timestamp(nxt + dt.timedelta(days=1), tz="Asia/Shanghai")
    since = pd.Timestamp(nxt - dt.timedelta(days=7), tz="Asia/Shanghai")
    res = ingest(engine, GeneratorSource(small_generator, nxt - dt.timedelta(days=7), nxt, as_of=as_of,
                                         updated_since=since), mapper_factory(), logical_date=nxt)
    assert res.updated > 0 and res.inserted > 0
    assert _count(engine, tickets, tickets.c.closed_at.is_(None)) < open_before + res.inserted
    assert min(res.touched_dates) < (nxt - dt.timedelta(days=7)).isoformat()  # older tickets closed this week


def test_reaggregating_one_day_leaves_other_days_alone(engine, small_generator, mapper_factory):
    _ingest_window(engine, small_generator, mapper_factory(), DAY, DAY + dt.timedelta(days=1))
    with engine.connect() as conn:
        before = conn.execute(select(daily_counts.c.aggregated_at).where(daily_counts.c.ds == DAY)).scalars().all()
    aggregate_days(engine, [DAY + dt.timedelta(days=1)], now=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))
    with engine.connect() as conn:
        after = conn.execute(select(daily_counts.c.aggregated_at).where(daily_counts.c.ds == DAY)).scalars().all()
        other = conn.execute(select(func.min(daily_counts.c.aggregated_at)).where(
            daily_counts.c.ds == DAY + dt.timedelta(days=1))).scalar_one()
    assert before == after and other.year == 2030


def test_quarantine_keeps_the_row_and_reason_with_pii_masked(engine, small_generator, mapper_factory):
    raw = next(small_generator.tickets(DAY, DAY)).head(4).astype({"区划代码": object})
    raw.loc[1, "区划代码"] = "123456"
    raw.loc[1, "诉求内容"] = "我的电话13912345678"
    class OneBatch:
        def batches(self):
            yield Batch(raw, "export.csv", 1)

    res = ingest(engine, OneBatch(), mapper_factory())
    assert (res.read, res.loaded, res.quarantined) == (4, 3, 1)
    with engine.connect() as conn:
        q = conn.execute(select(quarantine)).mappings().one()
    assert q["reason_code"] == "unknown_region" and q["source_row"] == 2 and q["source_file"] == "export.csv"
    assert "13912345678" not in q["raw"] and "[手机号]" in q["raw"]
    assert json.loads(q["raw"])["区划代码"] == "123456"


def test_runs_are_logged_with_their_metrics(engine, small_generator, mapper_factory):
    res = _ingest_window(engine, small_generator, mapper_factory(), DAY, DAY)
    with engine.connect() as conn:
        run = conn.execute(select(pipeline_runs).where(pipeline_runs.c.run_id == res.run_id)).mappings().one()
    assert run["status"] == "success" and run["metrics"]["read"] == res.read
    assert run["finished_at"] >= run["started_at"]


def test_series_frame_fills_missing_days_with_zeros(engine, mapper_factory):
    raw = pd.DataFrame({
        "unique_key": ["B1", "B2"], "account": ["X"] * 2, "opendate": ["2021-01-04", "2021-01-07"],
        "closedate": ["", ""], "complaint_type": ["Parks", "Sanitation"], "descriptor": [""] * 2, "zip": [""] * 2,
        "borough": ["Bronx", "Bronx"], "city": [""] * 2, "council_dist": [""] * 2, "community_board": [""] * 2})
    res = upsert_tickets(engine, mapper_factory("nyc_council").map(Batch(raw)).good, "r")
    aggregate_days(engine, res.touched_dates)
    s = read_series(engine, "district", "l2")
    parks = s[s["category_code"] == "public_services.parks"]
    assert list(parks["y"]) == [1, 0, 0, 0] and parks["ds"].is_monotonic_increasing
    assert set(s.columns) >= {"series_id", "ds", "y", "region_level", "region_code", "category_level", "category_code"}
