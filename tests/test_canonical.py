"""Mapping source rows to canonical tickets: bad rows go to quarantine with a reason, the rest load."""
import datetime as dt

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hotline.core.pii import contains_pii
from ingestion.canonical import CANONICAL_COLUMNS, Batch, SourceFormatError


def _rows(small_generator, day=dt.date(2024, 5, 8), n=40):
    f = next(small_generator.tickets(day, day))
    return f.head(n).reset_index(drop=True)


def test_clean_generator_rows_all_load(small_generator, mapper_factory):
    raw = _rows(small_generator)
    out = mapper_factory().map(Batch(raw))
    assert len(out.good) == len(raw) and out.bad.empty
    assert list(out.good.columns) == CANONICAL_COLUMNS
    g = out.good
    assert str(g["received_at"].dt.tz) == "UTC"
    assert g["received_date"].eq(dt.date(2024, 5, 8)).all()
    assert g["city_code"].str.len().eq(6).all() and g["province_code"].eq("440000").all()
    assert all(l2.startswith(l1 + ".") for l1, l2 in zip(g["category_l1"], g["category_l2"]))
    assert g["channel"].isin(["phone", "app", "wechat", "web", "sms"]).all()
    assert g["caller_key"].str.fullmatch(r"[0-9a-f]{32}").all()


def test_phone_numbers_in_text_are_masked_and_never_stored(small_generator, mapper_factory):
    raw = next(small_generator.tickets(dt.date(2024, 5, 8), dt.date(2024, 5, 9)))
    with_pii = raw[raw["诉求内容"].str.contains(r"联系电话|身份证号")]
    assert len(with_pii) > 0
    out = mapper_factory().map(Batch(with_pii))
    assert not out.good["content"].map(contains_pii).any()
    for phone in with_pii["来电号码"]:
        assert not out.good.astype(str).apply(lambda c: c.str.contains(phone, regex=False)).any().any()


@pytest.mark.parametrize("column, value, reason, field", [
    ("受理时间", None, "missing_field", "received_at"),
    ("受理时间", "2024-13-45 25:00", "bad_timestamp", "received_at"),
    ("区划代码", "449999", "unknown_region", "district_code"),
    ("受理时间", "2031-01-01 10:00:00", "future_date", "received_at"),
    ("办结时间", "2024-01-01 00:00:00", "closed_before_received", "closed_at"),
    ("受理渠道", "信鸽", "bad_enum", "channel"),
    ("工单编号", "", "missing_field", "ticket_id"),
])
def test_each_kind_of_bad_row_is_quarantined_with_its_reason(small_generator, mapper_factory, column, value,
                                                               reason, field):
    raw = _rows(small_generator, n=10).astype({column: "object"})
    raw.loc[3, column] = value
    out = mapper_factory().map(Batch(raw, "export.csv", first_row=1))
    assert len(out.good) == 9 and len(out.bad) == 1
    bad = out.bad.iloc[0]
    assert bad["reason_code"] == reason and bad["field"] == field
    assert bad["source_row"] == 4 and bad["source_file"] == "export.csv"
    assert bad["reason"]


def test_unmapped_category_is_kept_as_unmapped_or_quarantined_as_the_mapping_says(small_generator, mapper_factory):
    raw = _rows(small_generator, n=4)
    raw.loc[1, "问题分类"] = "城管/油烟"  # a renamed upstream value
    kept = mapper_factory().map(Batch(raw))
    assert kept.bad.empty and kept.good.loc[1, "category_l2"] == "other.unmapped"
    assert kept.good.loc[1, "category_raw"] == "城管/油烟"
    strict = mapper_factory()
    strict.fields = {**strict.fields, "category": {**strict.fields["category"], "unmapped": "quarantine"}}
    out = strict.map(Batch(raw, "x.csv", 1))
    assert len(out.good) == 3 and out.bad.iloc[0]["reason_code"] == "unknown_category"
    assert "城管/油烟" in out.bad.iloc[0]["reason"] and out.bad.iloc[0]["source_row"] == 2


def test_duplicate_ids_keep_the_latest_version(small_generator, mapper_factory):
    raw = _rows(small_generator, n=5)
    dup = raw.iloc[[2]].copy()
    dup["更新时间"] = dup["更新时间"] + pd.Timedelta(hours=1)
    dup["工单状态"] = "已办结"
    out = mapper_factory().map(Batch(pd.concat([raw, dup], ignore_index=True)))
    assert len(out.good) == 5 and len(out.bad) == 1
    assert out.bad.iloc[0]["reason_code"] == "duplicate_id" and out.bad.iloc[0]["source_row"] == 3
    kept = out.good[out.good["ticket_id"] == raw.loc[2, "工单编号"]]
    assert kept["updated_at"].iloc[0] == dup["更新时间"].iloc[0].tz_convert("UTC")


def test_a_duplicate_in_a_later_chunk_of_the_same_run_is_quarantined(small_generator, mapper_factory):
    raw = _rows(small_generator, n=6)
    m = mapper_factory()
    first = m.map(Batch(raw.iloc[:4], "f.csv", 1))
    second = m.map(Batch(raw.iloc[[1, 4, 5]], "f.csv", 5))
    assert len(first.good) == 4 and len(second.good) == 2
    assert "already read at row 2" in second.bad.iloc[0]["reason"]


def test_a_missing_required_column_is_one_clear_error(small_generator, mapper_factory):
    raw = _rows(small_generator, n=3).drop(columns=["受理时间"])
    with pytest.raises(SourceFormatError, match=r"export\.csv: line 1 \(header\).*'受理时间'"):
        mapper_factory().map(Batch(raw, "export.csv"))


def test_a_missing_optional_column_is_a_note_not_an_error(small_generator, mapper_factory):
    raw = _rows(small_generator, n=3).drop(columns=["满意度评价"])
    out = mapper_factory().map(Batch(raw, "export.csv"))
    assert len(out.good) == 3 and any("满意度评价" in n for n in out.notes)


def test_nyc_row_without_borough_counts_at_city_level(mapper_factory):
    raw = pd.DataFrame({
        "unique_key": ["A1", "A2"], "account": ["NYCC01", "NYCC01"], "opendate": ["2020-03-02", "2020-03-02"],
        "closedate": ["2020-03-05", ""], "complaint_type": ["COVID-19", "Please choose an issue..."],
        "descriptor": ["Health", ""], "zip": ["", ""], "borough": ["Brooklyn", ""], "city": ["", ""],
        "council_dist": ["", ""], "community_board": ["05 Brooklyn", ""]})
    out = mapper_factory("nyc_council").map(Batch(raw, "nyc.csv"))
    g = out.good.set_index("ticket_id")
    assert out.bad.empty
    assert g.loc["A1", "district_code"] == "900103" and g.loc["A1", "category_l2"] == "health.epidemic"
    assert g.loc["A2", "district_code"] is None and g.loc["A2", "city_code"] == "900100"
    assert g.loc["A2", "category_l2"] == "other.unmapped" and g.loc["A2", "status"] == "processing"
    assert g.loc["A1", "received_at"] == pd.Timestamp("2020-03-02 05:00", tz="UTC")  # midnight in New York
    assert g.loc["A1", "received_date"] == dt.date(2020, 3, 2)


corruptions = st.sampled_from(["ok", "no_time", "bad_time", "bad_region", "bad_category", "future",
                               "closed_early", "dup", "bad_channel", "no_id"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(corruptions, min_size=1, max_size=25))
def test_every_row_is_either_loaded_or_quarantined(small_generator, mapper_factory, plan):
    base = _rows(small_generator, n=len(plan)).astype(object)
    for i, how in enumerate(plan):
        if how == "no_time":
            base.at[i, "受理时间"] = None
        elif how == "bad_time":
            base.at[i, "受理时间"] = "yesterday"
        elif how == "bad_region":
            base.at[i, "区划代码"] = "000000"
        elif how == "bad_category":
            base.at[i, "问题分类"] = "??"
        elif how == "future":
            base.at[i, "受理时间"] = "2031-06-01 09:00:00"
        elif how == "closed_early":
            base.at[i, "办结时间"] = "2000-01-01 00:00:00"
        elif how == "dup" and i > 0:
            base.at[i, "工单编号"] = base.at[0, "工单编号"]
        elif how == "bad_channel":
            base.at[i, "受理渠道"] = "???"
        elif how == "no_id":
            base.at[i, "工单编号"] = None
    out = mapper_factory().map(Batch(base, "p.csv", 1))
    assert len(out.good) + len(out.bad) == len(plan)
    assert out.good["ticket_id"].is_unique
    assert out.bad["reason"].str.len().gt(0).all() and out.bad["source_row"].between(1, len(plan)).all()
    loaded = set(out.good["ticket_id"])
    first_id = base.at[0, "工单编号"]
    for i, how in enumerate(plan):
        rid = base.at[i, "工单编号"]
        if i == 0 or rid == first_id:
            continue  # row 0's id may legitimately load from a clean duplicate
        if how == "ok":
            assert rid in loaded
        elif how not in ("dup", "no_id", "bad_category"):  # an unmapped category loads as other.unmapped
            assert rid not in loaded, how
    assert not out.good["content"].map(contains_pii).any()


def test_an_urgent_ticket_gets_the_urgent_deadline_when_the_source_gives_none(small_generator, mapper_factory, ref):
    """Deadline from the taxonomy (a source without 办理时限): an urgent ticket (紧急) gets
    config/sla.yaml urgent_class (24 hours) when that is sooner than its category's class."""
    from hotline.core.calendar import deadlines_for
    from hotline.core.reference import load_mapping

    fields = dict(load_mapping("generator")["fields"])
    fields["deadline_at"] = {"from_taxonomy": True}
    raw = _rows(small_generator).drop(columns=["办理时限"])
    raw["紧急程度"] = ["紧急" if i % 2 == 0 else "一般" for i in range(len(raw))]
    out = mapper_factory(fields=fields).map(Batch(raw)).good.reset_index(drop=True)
    assert len(out) == len(raw)
    local = pd.DatetimeIndex(out["received_at"]).tz_convert("Asia/Shanghai")
    own = deadlines_for(local, [ref.taxonomy.categories[c].deadline or "general" for c in out["category_l2"]],
                        ref.deadlines).tz_convert("UTC")
    day = pd.Timedelta(hours=24)
    urgent = out["urgency"] == "urgent"
    assert urgent.sum() == (len(raw) + 1) // 2
    for i in range(len(out)):
        want = min(own[i], out["received_at"][i] + day) if urgent[i] else own[i]
        assert out["deadline_at"][i] == want, (i, out["category_l2"][i])
    assert (out.loc[urgent, "deadline_at"] < pd.Series(own, index=out.index)[urgent]).sum() >= 5  # it made a difference
