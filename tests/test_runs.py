"""`hotline runs`: how the daily pipeline's runs went, from pipeline_runs (SQLite and PostgreSQL)."""
import datetime as dt
import json

import pytest
from sqlalchemy import insert, select

from warehouse.runs import daily_runs
from warehouse.schema import pipeline_runs

T0 = dt.datetime(2026, 11, 25, 16, 30, tzinfo=dt.timezone.utc)


def _run(rid, stage, day, start_s, secs, status="success", scope=None, metrics=None, message=None):
    started = T0 + dt.timedelta(days=(day - dt.date(2026, 11, 24)).days, seconds=start_s)
    return {"run_id": rid, "stage": stage, "logical_date": day, "started_at": started,
            "finished_at": None if secs is None else started + dt.timedelta(seconds=secs), "status": status,
            "params": {"scope": scope} if scope else {}, "metrics": metrics, "message": message}


def _history(engine):
    d1, d2 = dt.date(2026, 11, 24), dt.date(2026, 11, 25)
    rows = [
        _run("i1", "ingest", d1, 0, 3, metrics={"read": 100, "loaded": 98, "quarantined": 2}),
        _run("f1a", "forecast", d1, 10, 20, scope="440300", metrics={"series": 200}),
        _run("f1b", "forecast", d1, 30, 10, scope="440100", metrics={"series": 100}),
        _run("d1a", "detect", d1, 40, 5, scope="440300", metrics={"anomalies": 2}),
        _run("n1", "notify", d1, 50, 1, metrics={"notices": 2}),
        _run("l1", "lights", d1, 5, 1, metrics={"red": 7, "yellow": 3, "lists_queued": 4}),
        # the 25th: ingest failed once and was retried; detection of 440100 failed
        _run("i2a", "ingest", d2, 0, 2, status="failed", message="OperationalError: server closed the connection"),
        _run("i2b", "ingest", d2, 60, 4, metrics={"read": 120, "loaded": 120, "quarantined": 0}),
        _run("f2a", "forecast", d2, 70, 20, scope="440300", metrics={"series": 210}),
        _run("d2a", "detect", d2, 95, 5, scope="440300", metrics={"anomalies": 1}),
        _run("d2b", "detect", d2, 100, 3, scope="440100", status="failed", message="ValueError: no history"),
        _run("p1", "propose", dt.date(2026, 10, 31), 0, 9),  # monthly: not a daily run
    ]
    with engine.begin() as conn:
        conn.execute(insert(pipeline_runs), rows)


def test_daily_runs_summarise_each_day_newest_first_with_retries_and_failures(engine):
    _history(engine)
    runs = daily_runs(engine, last=7)
    assert [r["day"] for r in runs] == ["2026-11-25", "2026-11-24"]
    new, old = runs
    assert old["status"] == "success" and old["wall_seconds"] == 51.0
    assert old["tickets"] == {"read": 100, "loaded": 98, "quarantined": 2}
    assert (old["series_forecast"], old["anomalies"], old["notices"], old["lists"], old["red"], old["yellow"]) == (
        300, 2, 2, 4, 7, 3)
    assert old["stages"]["forecast"] == {"status": "success", "scopes": 2, "runs": 2, "seconds": 30.0}
    assert new["status"] == "failed"
    assert new["stages"]["ingest"] == {"status": "success", "scopes": 1, "runs": 2, "seconds": 4.0}  # the retry won
    assert new["tickets"]["read"] == 120
    assert new["failures"] == [{"stage": "detect", "scope": "440100", "status": "failed",
                                "message": "ValueError: no history"}]
    assert "propose" not in new["stages"]
    assert [r["day"] for r in daily_runs(engine, last=1)] == ["2026-11-25"]


def test_a_citys_view_keeps_its_own_forecast_and_detection(engine):
    _history(engine)
    new = daily_runs(engine, last=1, city="440300")[0]
    assert new["status"] == "success"  # 440100's failed detection is not this city's
    assert new["stages"]["detect"]["scopes"] == 1 and new["anomalies"] == 1 and new["series_forecast"] == 210
    assert new["tickets"]["read"] == 120  # ingest is the province's


def test_a_stage_still_running_shows(engine):
    with engine.begin() as conn:
        conn.execute(insert(pipeline_runs), [_run("x", "ingest", dt.date(2026, 11, 26), 0, None, status="running")])
    r = daily_runs(engine)[0]
    assert r["status"] == "running" and r["wall_seconds"] is None


def test_cli_runs_json_and_text(tmp_path):
    from click.testing import CliRunner

    from hotline.cli import main
    from warehouse.db import connect, migrate

    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng = connect(url)
    migrate(eng)
    _history(eng)
    eng.dispose()
    r = CliRunner().invoke(main, ["runs", "--db", url, "--json", "--last", "5"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output.strip().splitlines()[-1])
    assert [x["day"] for x in doc["runs"]] == ["2026-11-25", "2026-11-24"]
    assert "2026-11-25 failed" in r.output and "ingest 4.0s x2" in r.output and "detect 8.0s FAILED" in r.output
    assert "failed: detect 440100 ValueError: no history" in r.output
    bad = CliRunner().invoke(main, ["runs", "--db", url, "--last", "0"])
    assert bad.exit_code != 0 and "--last must be at least 1" in bad.output


def _start_in_a_process(url, run_id, stage="ingest"):
    """A process that records a run as started and then works (sleeps) until it is killed."""
    import subprocess
    import sys

    code = ("import datetime, time\nfrom warehouse.db import connect\nfrom warehouse.runs import start_run\n"
            f"start_run(connect({url!r}), {run_id!r}, {stage!r}, datetime.date(2026, 11, 25), {{}})\n"
            "print('started', flush=True)\ntime.sleep(120)\n")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert p.stdout.readline().strip() == b"started"
    return p


def _status(engine, run_id):
    from sqlalchemy import select

    with engine.connect() as conn:
        return conn.execute(select(pipeline_runs.c.status, pipeline_runs.c.message).where(
            pipeline_runs.c.run_id == run_id)).one()


def test_a_run_left_running_by_a_killed_process_is_marked_abandoned_by_the_next_run(engine):
    from warehouse.runs import abandoned_runs, start_run

    url = engine.url.render_as_string(hide_password=False)
    killed = _start_in_a_process(url, "ingest-killed")
    alive = _start_in_a_process(url, "ingest-alive")
    other = _start_in_a_process(url, "forecast-killed", stage="forecast")
    try:
        killed.kill(), killed.wait(), other.kill(), other.wait()
        assert _status(engine, "ingest-killed").status == "running"  # what the log said forever before
        gone = start_run(engine, "ingest-next", "ingest", dt.date(2026, 11, 26), {})
        assert [r["run_id"] for r in gone] == ["ingest-killed"]
        status, message = _status(engine, "ingest-killed")
        assert status == "abandoned" and f"process {killed.pid}" in message and "ingest-next" in message
        assert _status(engine, "ingest-alive").status == "running"  # its process is at work: left alone
        assert _status(engine, "forecast-killed").status == "running"  # another stage's next run will see it
        found = abandoned_runs(engine, dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
        assert [r["run_id"] for r in found] == ["ingest-killed"]
    finally:
        alive.kill(), alive.wait()


def test_an_abandoned_run_shows_in_hotline_runs_and_is_reported_to_the_operators_once(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from sqlalchemy import select

    from hotline.callbacks import report_abandoned_runs
    from hotline.cli import main
    from warehouse.db import connect, migrate
    from warehouse.runs import start_run
    from warehouse.schema import notifications

    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng = connect(url)
    migrate(eng)
    p = _start_in_a_process(url, "ingest-killed")
    p.kill(), p.wait()
    start_run(eng, "ingest-next", "ingest", dt.date(2026, 11, 25), {})
    r = CliRunner().invoke(main, ["runs", "--db", url])
    assert r.exit_code == 0 and "ingest 0.0s x2 RUNNING" in r.output, r.output
    assert "abandoned: ingest  abandoned: process" in r.output
    monkeypatch.setenv("HOTLINE_DB_URL", url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path / "var"))
    assert report_abandoned_runs() == 1 and report_abandoned_runs() == 1
    with eng.connect() as conn:
        rows = conn.execute(select(notifications.c.receiver, notifications.c.subject)).all()
    assert len(rows) == 1 and rows[0].receiver.startswith("operators:") and "运行中断" in rows[0].subject


def test_stage_run_records_success_early_returns_status_and_failures(engine):
    """The one bookkeeping block every stage uses (warehouse/runs.py stage_run): started before
    the work, finished with the block's metrics (an early return included), a status and message
    the block sets, or failed with the exception's type and message, which goes on."""
    from warehouse.runs import stage_run

    def work(early: bool) -> str:
        with stage_run(engine, "probe", dt.date(2026, 3, 1), {"k": 1}) as run:
            if early:
                run.metrics = {"rows": 0}
                return run.id
            run.metrics, run.status, run.message = {"rows": 5}, "halted", "gate said no"
            return run.id

    def read(rid):
        with engine.connect() as conn:
            return conn.execute(select(pipeline_runs).where(pipeline_runs.c.run_id == rid)).mappings().one()

    early, halted = read(work(True)), read(work(False))
    assert (early["status"], early["metrics"], early["params"]) == ("success", {"rows": 0}, {"k": 1})
    assert (halted["status"], halted["metrics"], halted["message"]) == ("halted", {"rows": 5}, "gate said no")
    assert early["started_at"] <= early["finished_at"]
    with pytest.raises(ZeroDivisionError):
        with stage_run(engine, "probe", dt.date(2026, 3, 1), {}, run_id="probe-failing") as run:
            run.metrics = {"rows": 1}
            1 / 0
    failed = read("probe-failing")
    assert (failed["status"], failed["metrics"]) == ("failed", {"rows": 1})
    assert failed["message"].startswith("ZeroDivisionError: division by zero")
