"""Hostile-but-honest input (issue 20): one bad row never costs the batch, on either database.

Each case is a 20-row CSV export with one or a few rows broken the way a tester broke them; the
rest must load and the broken rows land in quarantine with a reason naming the field.
"""
import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import select

from ingestion.canonical import LIMITS
from ingestion.pipeline import ingest
from ingestion.sources import CsvSource
from warehouse.schema import quarantine, tickets


@pytest.fixture(scope="module")
def clean_rows():
    from generator.province import ProvinceGenerator

    f = next(ProvinceGenerator("440000", seed=7, scale=0.002).tickets(dt.date(2024, 5, 8), dt.date(2024, 5, 8)))
    f = f.head(20).reset_index(drop=True)
    for c in ("受理时间", "办理时限", "办结时间", "更新时间"):
        f[c] = f[c].map(lambda v: "" if pd.isna(v) else v.isoformat())
    return f.astype("object")


def _csv(path, frame):
    frame.to_csv(path, index=False, encoding="utf-8")
    return path


def _ingest(engine, path, mapper_factory):
    return ingest(engine, CsvSource(path), mapper_factory())


def _quarantined(engine):
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(quarantine).order_by(quarantine.c.source_row)).mappings()]


def _ticket_ids(engine):
    with engine.connect() as conn:
        return set(conn.execute(select(tickets.c.ticket_id)).scalars())


@pytest.mark.parametrize("column, value, field, code", [
    ("承办单位", "某" * 10_000, "department", "too_long"),
    ("工单编号", "X" * 70, "ticket_id", "too_long"),
    ("诉求内容", "噪音扰民\x00夜间施工", "诉求内容", "control_char"),
    ("工单编号", "44202405080000003\x00", "工单编号", "control_char"),
    ("承办单位", "城管\x07局", "承办单位", "control_char"),
])
def test_one_bad_row_is_quarantined_and_the_other_19_load(engine, tmp_path, clean_rows, mapper_factory,
                                                          column, value, field, code):
    frame = clean_rows.copy()
    frame.loc[3, column] = value
    s = _ingest(engine, _csv(tmp_path / "export.csv", frame), mapper_factory)
    assert (s.read, s.loaded, s.quarantined) == (20, 19, 1)
    q = _quarantined(engine)
    assert len(q) == 1 and q[0]["reason_code"] == code and q[0]["field"] == field
    assert q[0]["source_row"] == 5  # line 5 of the file: the header, then rows 0..3
    assert len(q[0]["reason"]) < 300  # the reason says what is wrong, it does not repeat 10,000 characters
    assert set(clean_rows["工单编号"]) - {clean_rows.loc[3, "工单编号"]} == _ticket_ids(engine)


def test_column_limits_come_from_the_schema():
    assert LIMITS["ticket_id"] == tickets.c.ticket_id.type.length == 64
    assert LIMITS["department"] == tickets.c.department.type.length


def test_a_nul_byte_id_never_loads_as_a_second_ticket_beside_the_clean_one(engine, tmp_path, clean_rows,
                                                                          mapper_factory):
    # SQLite stored "X\x00" as a separate key: reloading the clean row gave two tickets that look alike
    frame = clean_rows.copy()
    frame.loc[3, "工单编号"] = frame.loc[3, "工单编号"] + "\x00"
    _ingest(engine, _csv(tmp_path / "a.csv", frame), mapper_factory)
    _ingest(engine, _csv(tmp_path / "b.csv", clean_rows), mapper_factory)
    ids = _ticket_ids(engine)
    assert len(ids) == 20 and not any("\x00" in i for i in ids)


def test_one_naive_timestamp_among_offset_ones_is_read_in_the_regions_zone(engine, tmp_path, clean_rows,
                                                                           mapper_factory):
    frame = clean_rows.copy()
    aware = frame.loc[5, "受理时间"]  # "2024-05-08T01:23:45+08:00"
    frame.loc[5, "受理时间"] = aware[:19]  # the same wall-clock time, no offset
    _ingest(engine, _csv(tmp_path / "ts.csv", frame), mapper_factory)
    with engine.connect() as conn:
        got = conn.execute(select(tickets.c.received_at).where(
            tickets.c.ticket_id == frame.loc[5, "工单编号"])).scalar_one()
    assert got == pd.Timestamp(aware).tz_convert("UTC").to_pydatetime()  # not 8 hours off


def test_pii_in_a_rejected_field_and_in_the_department_never_reaches_a_row(engine, tmp_path, clean_rows,
                                                                          mapper_factory):
    frame = clean_rows.copy()
    frame.loc[2, "受理渠道"] = "回电13812345678"  # not a channel: quarantined, its value quoted in the reason
    frame.loc[4, "承办单位"] = "街道办 联系人手机13912345678"
    s = _ingest(engine, _csv(tmp_path / "pii.csv", frame), mapper_factory)
    assert (s.loaded, s.quarantined) == (19, 1)
    q = _quarantined(engine)[0]
    assert q["reason_code"] == "bad_enum" and "13812345678" not in q["reason"] and "13812345678" not in q["raw"]
    assert "[手机号]" in q["reason"]
    with engine.connect() as conn:
        dept = conn.execute(select(tickets.c.department).where(
            tickets.c.ticket_id == frame.loc[4, "工单编号"])).scalar_one()
    assert "13912345678" not in dept and "[手机号]" in dept


def test_reingesting_a_file_keeps_one_quarantine_row_per_problem(engine, tmp_path, clean_rows, mapper_factory):
    frame = pd.concat([clean_rows, clean_rows.iloc[[7]]], ignore_index=True)  # a duplicate id
    frame.loc[9, "受理渠道"] = "信鸽"
    path = _csv(tmp_path / "again.csv", frame)
    first = _ingest(engine, path, mapper_factory)
    second = _ingest(engine, path, mapper_factory)
    assert first.quarantined == second.quarantined == 2  # each run says what it met ...
    q = _quarantined(engine)
    assert len(q) == 2  # ... the quarantine keeps one row per problem
    assert {r["reason_code"] for r in q} == {"duplicate_id", "bad_enum"}
    assert len({r["run_id"] for r in q}) == 1


def test_quarantine_reasons_keep_the_ticket_id_and_old_unmasked_reasons_show_masked(engine, tmp_path, clean_rows,
                                                                                     mapper_factory):
    from sqlalchemy import insert

    from warehouse.quarantine import quarantine_report

    frame = pd.concat([clean_rows, clean_rows.iloc[[7]]], ignore_index=True)
    _ingest(engine, _csv(tmp_path / "dup.csv", frame), mapper_factory)
    tid = clean_rows.loc[7, "工单编号"]  # 17 digits: not a card number to the operator who needs it
    assert tid in _quarantined(engine)[0]["reason"]
    with engine.begin() as conn:  # a row written before reasons were masked at ingest
        conn.execute(insert(quarantine).values(
            run_id="old", source="generator", source_file="old.csv", source_row=2, reason_code="bad_enum",
            field="channel", reason="channel: value '回电13812345678' in column '受理渠道' is not in the mapping",
            quarantined_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)))
    rep = quarantine_report(engine, run_id="old")
    assert rep["reasons"][0]["examples"][0]["reason"] == (
        "channel: value '回电[手机号]' in column '受理渠道' is not in the mapping")
