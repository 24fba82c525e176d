"""Red/yellow overdue lights (红黄灯): deadline arithmetic on the Chinese calendar, a ticket's
lights over its life with escalation, the day's recorded changes (a rerun records nothing), the
CLI; on SQLite and PostgreSQL."""
import datetime as dt
import json

import pandas as pd
import pytest
from sqlalchemy import func, insert, select

from hotline.core.calendar import deadlines_for
from sla.lights import SlaConfig, lights_at, transitions

CN = dt.timezone(dt.timedelta(hours=8))
CFG = SlaConfig(yellow_share=0.2, levels=("district", "city", "province"), escalate_again_hours=24)


def test_deadlines_skip_the_spring_festival_and_count_the_tiaoxiu_saturdays(ref):
    # 2026: Spring Festival holiday 15-23 Feb; Saturdays 14 and 28 Feb are working days (调休)
    received = pd.DatetimeIndex([pd.Timestamp("2026-02-13 10:00"), pd.Timestamp("2026-02-27 16:00"),
                                 pd.Timestamp("2026-02-13 10:00")])
    got = deadlines_for(received, ["general", "consult", "utility"], ref.deadlines)
    assert list(got) == [pd.Timestamp("2026-02-27 10:00"),  # Sat 14, then 24, 25, 26, 27 Feb
                         pd.Timestamp("2026-03-03 16:00"),  # Sat 28 Feb, Mon 2, Tue 3 Mar
                         pd.Timestamp("2026-02-14 10:00")]  # 24 hours on the clock


def test_a_tickets_lights_over_its_life_with_escalation():
    rec = dt.datetime(2026, 3, 2, 9, 0, tzinfo=CN)
    deadline = dt.datetime(2026, 3, 7, 9, 0, tzinfo=CN)  # 120 hours: yellow from 24 hours before
    closed = dt.datetime(2026, 3, 9, 12, 0, tzinfo=CN)

    def at(when, closed_at=None):
        r = lights_at([rec], [deadline], [closed_at], when, CFG).iloc[0]
        return r["light"], CFG.levels[r["level"]] if r["light"] == "red" else None

    assert at(dt.datetime(2026, 3, 6, 8, 59, tzinfo=CN)) == ("green", None)
    assert at(dt.datetime(2026, 3, 6, 9, 0, tzinfo=CN)) == ("yellow", None)
    assert at(dt.datetime(2026, 3, 7, 9, 0, tzinfo=CN)) == ("red", "city")  # overdue: up to the city
    assert at(dt.datetime(2026, 3, 8, 8, 59, tzinfo=CN)) == ("red", "city")
    assert at(dt.datetime(2026, 3, 8, 9, 0, tzinfo=CN)) == ("red", "province")  # red 24 h more: up again
    assert at(dt.datetime(2026, 3, 20, tzinfo=CN)) == ("red", "province")  # no level above the last
    assert at(dt.datetime(2026, 3, 20, tzinfo=CN), closed) == ("closed", None)

    ev = transitions(["T1"], [rec], [deadline], [closed], dt.datetime(2026, 3, 1, tzinfo=CN),
                     dt.datetime(2026, 3, 31, tzinfo=CN), CFG)
    got = [(r.event, r.level, r.at.tz_convert(CN).strftime("%m-%d %H:%M"), r.detail) for r in ev.itertuples()]
    assert got == [("yellow", 0, "03-06 09:00", ""), ("red", 1, "03-07 09:00", ""),
                   ("escalated", 2, "03-08 09:00", ""), ("closed", 2, "03-09 12:00", "late")]
    # a window sees only its own changes; one closed in time never turns red
    day = transitions(["T1"], [rec], [deadline], [closed], dt.datetime(2026, 3, 7, tzinfo=CN),
                      dt.datetime(2026, 3, 8, tzinfo=CN), CFG)
    assert list(day["event"]) == ["red"]
    early = transitions(["T2"], [rec], [deadline], [dt.datetime(2026, 3, 6, 12, tzinfo=CN)],
                        dt.datetime(2026, 3, 1, tzinfo=CN), dt.datetime(2026, 3, 31, tzinfo=CN), CFG)
    assert [(r.event, r.detail) for r in early.itertuples()] == [("yellow", ""), ("closed", "on_time")]


def test_lights_are_vectorised_and_tickets_without_deadline_have_none():
    n = 1000
    rec = pd.Timestamp("2026-03-01", tz="UTC") + pd.to_timedelta(range(n), unit="h")
    dl = rec + pd.Timedelta(hours=100)
    dl = pd.DatetimeIndex([pd.NaT, *dl[1:]])  # the first ticket has no deadline
    out = lights_at(rec, dl, [None] * n, pd.Timestamp("2026-03-20", tz="UTC"), CFG)
    assert out["light"].iloc[0] == "none"
    assert set(out["light"].iloc[1:]) <= {"green", "yellow", "red"}
    assert (out["light"] == "red").sum() == ((dl[1:] <= pd.Timestamp("2026-03-20", tz="UTC")).sum())


def _ticket(tid, received, deadline, closed=None, district="440306", department="宝安区住房和建设局"):
    return {"ticket_id": tid, "source": "test", "received_at": received,
            "received_date": received.astimezone(CN).date(),
            "channel": "phone", "province_code": "440000", "city_code": "440300", "district_code": district,
            "category_l1": "housing", "category_l2": "housing.property_service", "department": department,
            "deadline_at": deadline, "closed_at": closed, "status": "closed" if closed else "processing",
            "is_repeat": False, "updated_at": received}


def test_a_ticket_loaded_late_gets_its_changes_from_the_next_run_and_a_backfill_adds_nothing(engine, ref):
    """A ticket that turned yellow on 7 Mar but reached the warehouse on 8 Mar (a late arrival,
    loaded through the ingest's look-back) has that change recorded by the 8 Mar run, so that a
    backfill of 7 Mar afterwards finds nothing new; the 8 Mar summary counts only its own day."""
    from sla.job import lights_day
    from warehouse.schema import light_events, tickets

    t0 = dt.datetime(2026, 3, 2, 9, tzinfo=CN)
    with engine.begin() as conn:
        conn.execute(insert(tickets), [_ticket("A", t0, t0 + dt.timedelta(days=6))])  # yellow 7 Mar 04:12
    first = lights_day(engine, dt.date(2026, 3, 7), ref, CFG, "440000", lookback_days=3)
    assert first["events_recorded"] == 1
    with engine.begin() as conn:  # B arrives late, with the same times as A
        conn.execute(insert(tickets), [_ticket("B", t0, t0 + dt.timedelta(days=6))])
    nxt = lights_day(engine, dt.date(2026, 3, 8), ref, CFG, "440000", lookback_days=3)
    assert nxt["events_recorded"] == 3  # B's yellow on 7 Mar, A's and B's red on 8 Mar 09:00
    assert nxt["events_today"] == 2 and nxt["red"] == 2
    backfill = lights_day(engine, dt.date(2026, 3, 7), ref, CFG, "440000", lookback_days=3)
    assert backfill["events_recorded"] == 0 and backfill["yellow"] == 2
    with engine.connect() as conn:
        got = sorted((r.ticket_id, r.event, str(r.ds)) for r in conn.execute(select(light_events)))
    assert got == [("A", "red", "2026-03-08"), ("A", "yellow", "2026-03-07"), ("B", "red", "2026-03-08"),
                   ("B", "yellow", "2026-03-07")]
    # without the look-back the 8 Mar run would have missed B's yellow
    with engine.begin() as conn:
        conn.execute(light_events.delete())
    lights_day(engine, dt.date(2026, 3, 7), ref, CFG, "440000")
    with engine.begin() as conn:
        conn.execute(insert(tickets), [_ticket("C", t0, t0 + dt.timedelta(days=6))])
    lights_day(engine, dt.date(2026, 3, 8), ref, CFG, "440000")
    with engine.connect() as conn:
        c_events = {r.event for r in conn.execute(select(light_events).where(light_events.c.ticket_id == "C"))}
    assert c_events == {"red"}


def test_the_day_records_changes_once_and_counts_lights(engine, ref):
    from sla.job import lights_day
    from warehouse.schema import light_events, tickets

    t0 = dt.datetime(2026, 3, 2, 9, tzinfo=CN)
    rows = [_ticket("A", t0, t0 + dt.timedelta(days=5)),  # red on 7 Mar 09:00, province on 8 Mar 09:00
            _ticket("B", t0, t0 + dt.timedelta(days=6)),  # yellow from 7 Mar 04:12 (20% of 144 h = 28.8 h left)
            _ticket("C", t0, t0 + dt.timedelta(days=5), closed=t0 + dt.timedelta(days=4)),  # closed on time
            _ticket("D", t0, t0 + dt.timedelta(days=20), district="440307", department="龙岗区城管局")]
    with engine.begin() as conn:
        conn.execute(insert(tickets), rows)
    res = lights_day(engine, dt.date(2026, 3, 7), ref, CFG, "440000")
    assert (res["red"], res["yellow"]) == (1, 1)
    assert res["by_level"] == {"red@city": 1, "yellow@district": 1}
    assert res["by_district"][0] == {"region": "440306", "name": "宝安区", "red": 1, "yellow": 1}
    assert [e["ticket_id"] for e in res["escalations"]] == ["A"] and res["escalations"][0]["to"] == "city"
    again = lights_day(engine, dt.date(2026, 3, 7), ref, CFG, "440000")
    assert again["events_recorded"] == 0 and again["red"] == 1  # a rerun records nothing new
    nxt = lights_day(engine, dt.date(2026, 3, 8), ref, CFG, "440000")
    assert nxt["by_level"].get("red@province") == 1 and nxt["escalations"][0]["to"] == "province"
    with engine.connect() as conn:
        got = {(r.ticket_id, r.event, r.level) for r in conn.execute(select(light_events))}
        assert conn.execute(select(func.count()).select_from(light_events)).scalar_one() == len(got)
    assert {("A", "red", 1), ("A", "escalated", 2), ("B", "yellow", 0)} <= got
    assert not any(t == "C" and e in ("red", "yellow") for t, e, _ in got)


def test_each_district_gets_its_list_of_yellow_and_red_tickets_by_department_once_a_day(engine, ref, tmp_path):
    from alerts.config import AlertsConfig
    from sla.job import lights_day
    from warehouse.schema import notifications, tickets

    t0 = dt.datetime(2026, 3, 2, 9, tzinfo=CN)
    a, b = "44202603020000101", "44202603020000102"  # ids as the generator writes them: 17 digits
    rows = [_ticket(a, t0, t0 + dt.timedelta(days=5)),  # red, escalated to the city on 7 Mar
            _ticket(b, t0, t0 + dt.timedelta(days=6), department="宝安区水务局"),  # yellow
            _ticket("C", t0, t0 + dt.timedelta(days=5), closed=t0 + dt.timedelta(days=4)),  # closed: not listed
            _ticket("D", t0, t0 + dt.timedelta(days=20), district="440307"),  # green: 龙岗区 gets nothing
            _ticket("E", t0, t0 + dt.timedelta(days=5), district=None)]  # no district: the city's desk
    for r in rows:
        r["content"] = "我叫王小明，电话13812345678"  # ticket text never travels in the list
    with engine.begin() as conn:
        conn.execute(insert(tickets), rows)
    cfg = AlertsConfig.load(ref.config_dir)  # the demo's file channel for every office
    res = lights_day(engine, dt.date(2026, 3, 7), ref, CFG, "440000", outbox=(cfg, tmp_path))
    assert res["lists"]["offices"] == 2 and res["lists"]["queued"] == 2 and res["lists"]["delivered"] == 2
    with engine.connect() as conn:
        sent = {r.receiver: r for r in conn.execute(select(notifications))}
    assert set(sent) == {"district:440306", "city:440300"}
    body = sent["district:440306"].body
    assert "红灯 1 件，黄灯 1 件" in sent["district:440306"].subject
    assert "宝安区住房和建设局：红 1 黄 0" in body and "宝安区水务局：红 0 黄 1" in body
    # the ids arrive whole (PII masking would take 17 digits for a bank card and hide them)
    assert f"红 {a} 物业服务 超期 15 小时，已升级至市级" in body and f"黄 {b} 物业服务 时限 03-08 09:00" in body
    assert "王小明" not in body and "13812345678" not in body
    assert " C " not in body and " D " not in body  # closed and green tickets are not listed
    written = (tmp_path / "notices" / "2026-03-07.md").read_text(encoding="utf-8")
    assert "【红黄灯日报】" in written
    again = lights_day(engine, dt.date(2026, 3, 7), ref, CFG, "440000", outbox=(cfg, tmp_path))
    assert again["lists"]["queued"] == 0  # a rerun of the day sends nothing twice
    from warehouse.runs import daily_runs

    assert daily_runs(engine, last=1)[0]["lists"] == 0  # the rerun's record: nothing queued this time


def test_cli_lights_prints_counts_and_escalations(tmp_path, ref):
    from click.testing import CliRunner

    from hotline.cli import main
    from warehouse.db import connect, migrate
    from warehouse.schema import daily_counts, tickets

    db = f"sqlite:///{tmp_path / 'w.db'}"
    eng = connect(db)
    migrate(eng)
    t0 = dt.datetime(2026, 3, 2, 9, tzinfo=CN)
    with eng.begin() as conn:
        conn.execute(insert(tickets), [_ticket("A", t0, t0 + dt.timedelta(days=5))])
        conn.execute(insert(daily_counts), [{"ds": dt.date(2026, 3, 7), "region_level": "province",
                                             "region_code": "440000",
                                             "category_level": "all", "category_code": "*", "province_code": "440000",
                                             "city_code": None, "n_tickets": 1, "n_closed": 0, "n_overdue": 0,
                                             "n_repeat": 0, "n_rated": 0, "n_unsatisfied": 0, "n_resolved": 0,
                                             "aggregated_at": dt.datetime(2026, 3, 8, tzinfo=dt.timezone.utc)}])
    r = CliRunner().invoke(main, ["lights", "--db", db, "--json"])  # the warehouse's last day: 7 Mar
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert out["day"] == "2026-03-07" and out["red"] == 1 and out["escalations"][0]["ticket_id"] == "A"
    assert "红 red 1" in r.output and "escalated A -> city" in r.output
    sent = CliRunner(env={"HOTLINE_VAR_DIR": str(tmp_path / "var")}).invoke(main, ["lights", "--db", db, "--send"])
    assert sent.exit_code == 0, sent.output
    assert "lists (红黄灯日报) for 1 office(s): queued 1, delivered 1" in sent.output
    assert "【红黄灯日报】" in (tmp_path / "var" / "notices" / "2026-03-07.md").read_text(encoding="utf-8")
    rep = CliRunner().invoke(main, ["repeats", "--db", db, "--month", "2026-03", "--json"])
    assert rep.exit_code == 0, rep.output
    got = json.loads(rep.output.strip().splitlines()[-1])
    assert (got["tickets"], got["repeats"]) == (1, 0) and {r["region_code"] for r in got["rates"]} == {"440306"}
    bad = CliRunner().invoke(main, ["repeats", "--db", db, "--month", "March"])
    assert bad.exit_code == 2 and "YYYY-MM" in bad.output


@pytest.mark.parametrize("bad, key", [({"yellow_share": 1.5}, "yellow_share"), ({"levels": ["district"]}, "levels"),
                                      ({"repeat_window": 30}, "repeat_window: unknown key"),
                                      ({"escalate_again_hours": "a day"}, "escalate_again_hours")])
def test_bad_sla_config_names_the_file_and_the_key(tmp_path, bad, key):
    import yaml

    (tmp_path / "sla.yaml").write_text(yaml.safe_dump(bad), encoding="utf-8")
    with pytest.raises(ValueError, match=f"sla.yaml: {key}"):
        SlaConfig.load(tmp_path)


def test_repeats_same_caller_category_and_place_within_the_window():
    from sla.repeats import find_repeats

    t = pd.Timestamp("2026-03-01 09:00", tz="Asia/Shanghai")
    rows = [("A1", "k1", t, "housing.property_service", "440300", "440306"),
            ("A2", "k1", t + pd.Timedelta(days=10), "housing.property_service", "440300", "440306"),  # repeats A1
            ("A3", "k1", t + pd.Timedelta(days=39), "housing.property_service", "440300", "440306"),  # 29 d after A2
            ("A4", "k1", t + pd.Timedelta(days=80), "housing.property_service", "440300", "440306"),  # 41 d: new
            ("B1", "k1", t + pd.Timedelta(days=11), "utilities.water_supply", "440300", "440306"),  # other category
            ("C1", "k1", t + pd.Timedelta(days=12), "housing.property_service", "440300", "440307"),  # other district
            ("D1", None, t, "housing.property_service", "440300", "440306"),  # no caller: never a repeat
            ("D2", None, t + pd.Timedelta(days=1), "housing.property_service", "440300", "440306"),
            ("E1", "k2", t, "transport.parking", "440300", None),  # no district: the city is the place
            ("E2", "k2", t + pd.Timedelta(days=3), "transport.parking", "440300", None)]
    df = pd.DataFrame(rows, columns=["ticket_id", "caller_key", "received_at", "category_l2", "city_code",
                                     "district_code"]).sample(frac=1, random_state=1)  # order does not matter
    got = dict(zip(df["ticket_id"], find_repeats(df, 30)))
    assert got == {"A1": None, "A2": "A1", "A3": "A2", "A4": None, "B1": None, "C1": None, "D1": None, "D2": None,
                   "E1": None, "E2": "E1"}


def test_month_repeat_rates_are_stored_and_a_rerun_replaces_them(engine):
    from sla.repeats import month_rates, read_rates
    from warehouse.schema import repeat_rates, tickets

    def tk(tid, caller, when, district="440306", cat="housing.property_service"):
        row = _ticket(tid, when, when + dt.timedelta(days=5), district=district)
        row.update({"caller_key": caller, "category_l2": cat, "category_l1": cat.split(".")[0]})
        return row

    base = dt.datetime(2026, 3, 5, 10, tzinfo=CN)
    with engine.begin() as conn:
        conn.execute(insert(tickets), [
            tk("P0", "c1", dt.datetime(2026, 2, 20, 10, tzinfo=CN)),  # February: the look-back finds it
            tk("P1", "c1", base), tk("P2", "c1", base + dt.timedelta(days=2)),
            tk("P3", "c2", base), tk("P4", None, base), tk("Q1", "c3", base, district="440307")])
    cfg = SlaConfig(repeat_window_days=30)
    res = month_rates(engine, pd.Period("2026-03", freq="M"), "440000", cfg)
    assert (res["tickets"], res["repeats"]) == (5, 2)  # P1 repeats P0 (February), P2 repeats P1
    df = read_rates(engine, pd.Period("2026-03", freq="M")).set_index(["region_code", "category_code"])
    baoan = df.loc[("440306", "*")]
    assert (baoan["n_tickets"], baoan["n_with_caller"], baoan["n_repeat"]) == (4, 3, 2)
    assert baoan["rate"] == pytest.approx(2 / 3)
    assert df.loc[("440307", "*"), "n_repeat"] == 0
    month_rates(engine, pd.Period("2026-03", freq="M"), "440000", cfg)  # a rerun: the same rows, not twice
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(repeat_rates)).scalar_one() == len(df)


def test_month_rates_in_the_database_follow_the_rule_of_find_repeats(engine):
    """The SQL (a window function) and the in-memory rule agree ticket for ticket's count, with
    gaps of exactly the window, a minute over, callers without a key and tickets from before the
    month."""
    import numpy as np

    from sla.repeats import find_repeats, month_rates, read_rates
    from warehouse.schema import tickets

    rng = np.random.default_rng(11)
    start = dt.datetime(2026, 2, 10, 8, tzinfo=CN)
    rows, when = [], {}
    for k in range(400):
        caller = None if k % 13 == 0 else f"c{rng.integers(0, 40)}"
        at = start + dt.timedelta(minutes=int(rng.integers(0, 49 * 24 * 60)))
        if k % 17 == 0 and when:  # exactly the window after an earlier ticket of the same caller, or a minute over
            prev_caller, prev_at = list(when.items())[int(rng.integers(0, len(when)))]
            caller, at = prev_caller, prev_at + dt.timedelta(days=30, minutes=int(k % 2))
        if caller:
            when[caller] = at
        r = _ticket(f"T{k:04d}", at, at + dt.timedelta(days=5), district=["440306", "440307"][k % 2])
        cat = ["housing.property_service", "utilities.water_supply"][int(rng.integers(0, 2)) if k % 17 else 0]
        r.update({"caller_key": caller, "category_l2": cat, "category_l1": cat.split(".")[0]})
        if k % 17 == 0:
            r["district_code"] = "440306"
        rows.append(r)
    for tid, caller, at in [("E1", "edge", dt.datetime(2026, 3, 1, 10, tzinfo=CN)),
                            ("E2", "edge", dt.datetime(2026, 3, 31, 10, tzinfo=CN)),  # exactly 30 days: a repeat
                            ("O1", "over", dt.datetime(2026, 3, 1, 10, tzinfo=CN)),
                            ("O2", "over", dt.datetime(2026, 3, 31, 10, 0, 1, tzinfo=CN))]:  # a second over: not
        r = _ticket(tid, at, at + dt.timedelta(days=5), district="440308")
        r.update({"caller_key": caller})
        rows.append(r)
    with engine.begin() as conn:
        conn.execute(insert(tickets), rows)
    df = pd.DataFrame(rows)
    df["repeat_of"] = find_repeats(df[["ticket_id", "caller_key", "received_at", "category_l2", "city_code",
                                       "district_code"]], 30)
    march = df[df["received_at"].map(lambda t: t.astimezone(CN).month == 3)]
    month_rates(engine, pd.Period("2026-03", freq="M"), "440000", SlaConfig(repeat_window_days=30))
    got = read_rates(engine, pd.Period("2026-03", freq="M")).set_index(["region_code", "category_code"])
    want = march.groupby(["district_code", "category_l2"])["repeat_of"].apply(lambda s: int(s.notna().sum()))
    assert want.sum() >= 20  # the data has repeats to find
    for (district, cat), n in want.items():
        assert got.loc[(district, cat), "n_repeat"] == n, (district, cat)
    assert got.loc[("440306", "*"), "n_tickets"] == int((march["district_code"] == "440306").sum())
    assert got.loc[("440308", "*"), "n_repeat"] == 1  # E2, not O2
