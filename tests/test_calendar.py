"""The Chinese working calendar, 调休 included, and its fallback beyond chinese-calendar's years."""
import datetime as dt

import pandas as pd
import pytest

from hotline.core.calendar import add_working_days, calendar_frame, deadlines_for, is_workday, year_calendar


def test_a_makeup_saturday_is_a_workday():
    assert dt.date(2026, 2, 14).weekday() == 5
    assert is_workday(dt.date(2026, 2, 14))


def test_spring_festival_days_are_holidays_even_on_weekdays():
    assert dt.date(2026, 2, 17).weekday() == 1
    assert not is_workday(dt.date(2026, 2, 17))


def test_years_past_the_package_fall_back_to_computed_lunar_holidays():
    cal = year_calendar(2027)
    assert cal.source == "holidays"
    assert cal.spring_festival == dt.date(2027, 2, 6)
    assert not is_workday(dt.date(2027, 2, 8))  # a Monday in the Spring Festival holiday
    assert is_workday(dt.date(2027, 3, 1))


def test_frame_flags_holidays_makeup_days_and_distance_to_spring_festival():
    f = calendar_frame(dt.date(2026, 2, 10), dt.date(2026, 2, 25)).set_index("ds")
    assert f.loc["2026-02-14", "is_makeup_workday"] and f.loc["2026-02-14", "is_workday"]
    assert f.loc["2026-02-17", "is_holiday"] and not f.loc["2026-02-17", "is_workday"]
    assert f.loc["2026-02-17", "days_from_spring_festival"] == 0
    assert f.loc["2026-02-10", "days_from_spring_festival"] == -7


def test_working_days_skip_the_spring_festival_holiday():
    # Friday 13 Feb 2026 + 5 working days: Sat 14 (调休 workday), then the holiday to Mon 23,
    # which is a rest day too; Tue 24, Wed 25, Thu 26, Fri 27.
    start = dt.datetime(2026, 2, 13, 10, 0)
    assert add_working_days(start, 5) == dt.datetime(2026, 2, 27, 10, 0)


def test_vectorised_deadlines_match_the_scalar_rule():
    classes = {"general": {"working_days": 5}, "utility": {"hours": 24}}
    rec = pd.DatetimeIndex(["2026-02-13 10:00", "2026-02-13 10:00"], tz="Asia/Shanghai")
    out = deadlines_for(rec, ["general", "utility"], classes)
    assert out[0] == pd.Timestamp("2026-02-27 10:00", tz="Asia/Shanghai")
    assert out[1] == pd.Timestamp("2026-02-14 10:00", tz="Asia/Shanghai")


def test_a_foreign_region_uses_its_own_holidays_without_tiaoxiu():
    f = calendar_frame(dt.date(2019, 11, 25), dt.date(2019, 12, 1), country="US").set_index("ds")
    assert f.loc["2019-11-28", "is_holiday"] and "Thanksgiving" in f.loc["2019-11-28", "holiday_name"]
    assert not f["is_makeup_workday"].any() and (f["days_from_spring_festival"] == 999).all()
    assert f.loc["2019-11-29", "is_workday"] and not f.loc["2019-11-30", "is_workday"]  # Friday; Saturday
    with pytest.raises(ValueError, match="'XX'"):
        calendar_frame(dt.date(2019, 1, 1), dt.date(2019, 1, 2), country="XX")


def _overrides_dir(tmp_path, text: str) -> str:
    (tmp_path / "calendar_overrides.yaml").write_text(text, encoding="utf-8")
    return str(tmp_path)


def test_an_announced_year_in_calendar_overrides_replaces_the_packages_calendar(tmp_path):
    folder = _overrides_dir(tmp_path, "years:\n  2027:\n    holidays: {2027-02-06: 春节, 2027-02-07: 春节}\n"
                                      "    makeup_workdays: [2027-02-14]\n")
    cal = year_calendar(2027, folder)
    assert cal.source == "config" and cal.holidays[dt.date(2027, 2, 6)] == "春节"
    assert is_workday(dt.date(2027, 2, 14), folder) and not is_workday(dt.date(2027, 2, 6), folder)


@pytest.mark.parametrize("text, message", [
    # the typo used to drop the 调休 days without a word: 2027-02-14 would stay a day off
    ("years:\n  2027:\n    makeup_workday: [2027-02-14]\n", r"years\.2027\.makeup_workday: unknown key"),
    ("years:\n  2027:\n    makeup_workdays: [2026-02-14]\n", r"years\.2027\.makeup_workdays: 2026-02-14 not in 2027"),
    ("years:\n  2027:\n    holidays: {2027-02-30: 春节}\n", r"not valid YAML: day is out of range for month"),
])
def test_a_calendar_overrides_mistake_names_the_file_and_the_key(tmp_path, text, message):
    from hotline.core.reference import ConfigError

    folder = _overrides_dir(tmp_path, text)
    with pytest.raises(ConfigError, match=f"calendar_overrides.yaml: {message}"):
        year_calendar(2027, folder)
