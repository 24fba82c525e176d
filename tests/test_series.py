"""Series ids are made and read in one place (hotline/core/series.py): scalar and column-wise forms
agree, parsing inverts making, and a string that is not an id is refused by name."""
import pandas as pd
import pytest

from hotline.core.series import SeriesKey, category_part, parse, series_id, series_ids

KEYS = [("district", "440306", "l2", "utilities.water_supply"), ("city", "440300", "all", "*"),
        ("province", "440000", "l1", "housing"), ("district", "900103", "l2", "government.tax_fees")]


@pytest.mark.parametrize("key", KEYS)
def test_parse_inverts_series_id(key):
    sid = series_id(*key)
    assert parse(sid) == SeriesKey(*key) and parse(sid).id == sid
    assert category_part(sid) == f"{key[2]}:{key[3]}" and parse(sid).region == f"{key[0]}:{key[1]}"


def test_the_column_form_gives_the_same_ids():
    frame = pd.DataFrame(KEYS, columns=["region_level", "region_code", "category_level", "category_code"])
    assert series_ids(frame).tolist() == [series_id(*k) for k in KEYS]
    other = frame.set_axis(["rl", "rc", "cl", "cc"], axis=1)
    assert series_ids(other, ("rl", "rc", "cl", "cc")).tolist() == [series_id(*k) for k in KEYS]


@pytest.mark.parametrize("bad", ["440300", "city:440300", "city|l2:x", "city:440300|l2", ":|:", ""])
def test_a_string_that_is_not_an_id_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="is not a series id"):
        parse(bad)
    assert category_part("standalone") == ""
