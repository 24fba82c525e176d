"""How the DAGs run (hotline/app/operations.py) and what the deadline tells the operators
(hotline/callbacks.py), without a scheduler; tests/test_topology.py runs both for real."""
import asyncio
import datetime as dt

import pytest
import yaml

from hotline.app.operations import Operations, load_operations


def _ops(tmp_path, section, **env):
    path = tmp_path / "hotline.yaml"
    path.write_text(yaml.safe_dump({"operations": section}), encoding="utf-8")
    return load_operations({"HOTLINE_SETTINGS": str(path), **env})


def test_defaults_and_the_config_section(tmp_path):
    assert _ops(tmp_path, {}) == Operations()
    ops = _ops(tmp_path, {"retries": 4, "retry_delay_seconds": 60, "max_retry_delay_seconds": 600,
                          "model_pool": "models", "daily_deadline": "07:30"})
    assert (ops.retries, ops.retry_delay, ops.max_retry_delay, ops.model_pool) == (
        4, dt.timedelta(minutes=1), dt.timedelta(minutes=10), "models")
    assert ops.deadline_after_logical_date == dt.timedelta(days=1, hours=7, minutes=30)
    args = ops.default_args(print)
    assert args["retry_exponential_backoff"] is True and args["on_failure_callback"] is print


def test_the_environment_overrides_the_deadline_and_can_turn_it_off(tmp_path):
    assert _ops(tmp_path, {"daily_deadline": "07:30"}, HOTLINE_DAILY_DEADLINE="05:15").daily_deadline == dt.time(5, 15)
    ops = _ops(tmp_path, {}, HOTLINE_DAILY_DEADLINE="off")
    assert ops.daily_deadline is None
    with pytest.raises(ValueError, match="off"):
        ops.deadline_after_logical_date


def test_an_unquoted_yaml_time_gets_a_hint(tmp_path):
    (tmp_path / "hotline.yaml").write_text("operations:\n  daily_deadline: 6:00\n", encoding="utf-8")
    with pytest.raises(ValueError, match="quote it"):
        load_operations({"HOTLINE_SETTINGS": str(tmp_path / "hotline.yaml")})
    with pytest.raises(ValueError, match="HOTLINE_DAILY_DEADLINE"):
        _ops(tmp_path, {}, HOTLINE_DAILY_DEADLINE="soon")


@pytest.mark.parametrize("section, key", [({"retries": -1}, "operations.retries"),
                                          ({"daily_deadline": "25:00"}, "operations.daily_deadline"),
                                          ({"retry_delay_seconds": "soon"}, "operations.retry_delay_seconds"),
                                          ({"retry": 3}, "unknown key")])
def test_a_bad_value_names_the_file_and_the_key(tmp_path, section, key):
    with pytest.raises(ValueError, match=key) as err:
        _ops(tmp_path, section)
    assert str(tmp_path / "hotline.yaml") in str(err.value)


def _context(queued: str, run_type: str = "scheduled", conf=None, state: str = "running"):
    # the shape Airflow's scheduler hands the triggerer (models/deadline.py get_simple_context)
    return {"dag_run": {"dag_id": "hotline_daily", "dag_run_id": "scheduled__2026-11-24T16:00:00+00:00",
                        "logical_date": "2026-11-24T16:00:00Z", "data_interval_start": "2026-11-24T16:00:00Z",
                        "queued_at": queued, "run_type": run_type, "state": state, "conf": conf or {}},
            "deadline": {"id": "x", "deadline_time": dt.datetime(2026, 11, 25, 22, 0, tzinfo=dt.timezone.utc)}}


def test_the_deadline_notice_says_which_day_and_when_and_skips_backfills():
    from hotline.callbacks import deadline_notice

    labels, build = deadline_notice(_context("2026-11-24T16:00:05Z"))
    assert labels["day"] == "2026-11-25" and labels["kind"] == "deadline"
    zh = build("zh", "运维")
    assert "2026-11-25" in zh.subject and "11-26 06:00" in zh.subject and "未在" in zh.subject
    assert "Asia/Shanghai" in build("en", "ops").text
    assert deadline_notice(_context("2026-11-24T16:00:05Z", run_type="backfill")) is None
    assert deadline_notice(_context("2026-11-26T01:00:00Z", run_type="manual")) is None  # queued after it
    # a scheduled run created after its deadline (the scheduler was down) is what the alert is for
    assert deadline_notice(_context("2026-11-26T01:00:00Z"))[0]["day"] == "2026-11-25"
    # a manual run triggered on the 26th covers its data interval's day, the 25th
    manual = _context("2026-11-26T02:00:00Z", run_type="manual")
    manual["dag_run"]["logical_date"] = "2026-11-26T02:00:00Z"
    manual["deadline"]["deadline_time"] = "2026-11-27T08:00:00Z"
    assert deadline_notice(manual)[0]["day"] == "2026-11-25"
    failed = deadline_notice(_context("2026-11-24T16:00:05Z", state="failed"))[1]("zh", "运维")
    assert "已失败" in failed.subject
    assert deadline_notice(_context("2026-11-24T16:00:05Z", conf={"day": "2026-11-20"}))[0]["day"] == "2026-11-20"


def test_the_deadline_callback_queues_one_operators_notice(tmp_path, monkeypatch):
    """The coroutine the triggerer awaits, on a real warehouse: one notice, and a second call for
    the same run sends nothing more (the outbox's dedup key)."""
    from sqlalchemy import select

    from hotline.callbacks import on_daily_deadline_missed
    from warehouse.db import connect
    from warehouse.schema import notifications

    db = f"sqlite:///{tmp_path / 'w.db'}"
    monkeypatch.setenv("HOTLINE_DB_URL", db)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HOTLINE_CALLER_SALT", "t")
    for _ in range(2):
        asyncio.run(on_daily_deadline_missed(context=_context("2026-11-24T16:00:05Z")))
    with connect(db).connect() as conn:
        rows = conn.execute(select(notifications.c.receiver, notifications.c.status, notifications.c.subject)).all()
    assert [(r.receiver, r.status) for r in rows] == [("operators:440000", "delivered")]
    assert "hotline_daily" in rows[0].subject
    lines = (tmp_path / "var" / "notices" / "2026-11-25.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
