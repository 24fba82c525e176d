"""The Airflow DAGs: they parse cleanly and cheaply, follow the house policy, and really run."""
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import jinja2
import pytest
import yaml
from sqlalchemy import func, select

DAGS = Path(__file__).resolve().parent.parent / "dags"


@pytest.fixture(scope="module")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dags_import_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"hotline_daily", "hotline_monthly"} <= set(dagbag.dags)


@pytest.mark.parametrize("dag_id", ["hotline_daily", "hotline_monthly"])
def test_dag_policy_tags_owner_retries_docs(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    assert "hotline" in dag.tags and dag.doc_md
    for t in dag.tasks:
        assert t.owner == "hotline" and t.retries >= 1, t.task_id


@pytest.mark.parametrize("name", ["hotline_daily.py", "hotline_monthly.py"])
def test_parsing_a_dag_file_imports_no_heavy_library(name):
    code = ("import sys, runpy; runpy.run_path(sys.argv[1]); "
            "print('heavy:' + ','.join(m for m in ('pandas', 'great_expectations', 'prophet', 'statsmodels', "
            "'ingestion', "
            "'generator', 'proposals') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(DAGS / name)], capture_output=True,
                         text=True, env={**os.environ}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "heavy:"


def test_the_daily_dag_has_its_deadline_pool_and_per_city_task_names(dagbag):
    """The configured operations (config/hotline.yaml): a deadline 30 h after the logical date
    (06:00 the next morning), model-heavy tasks in their pool, mapped tasks named by city."""
    from hotline.callbacks import on_daily_deadline_missed

    dag = dagbag.dags["hotline_daily"]
    [alert] = dag.deadline if isinstance(dag.deadline, list) else [dag.deadline]
    assert alert.interval == dt.timedelta(hours=30)
    assert alert.callback.path.endswith("on_daily_deadline_missed") and on_daily_deadline_missed
    for task_id in ("forecast", "detect"):
        t = dag.get_task(task_id)
        assert t.pool == "hotline_models"
        # rendered as Airflow does (StrictUndefined); runs from before the name was added still render
        tpl = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(t.map_index_template)
        task = SimpleNamespace(op_kwargs={"item": {"scope": "440300", "name": "深圳市"}})
        assert tpl.render(task=task) == "440300 深圳市"
        assert tpl.render(task=SimpleNamespace(op_kwargs={"item": {"scope": "440300"}})).strip() == "440300"
    assert dag.get_task("ingest").pool == "default_pool"
    assert dag.get_task("ingest").retry_exponential_backoff
    pools = json.loads((DAGS.parent / "config" / "airflow_pools.json").read_text(encoding="utf-8"))
    assert pools["hotline_models"]["slots"] >= 1


def test_the_gate_sits_between_ingest_and_publication(dagbag):
    dag = dagbag.dags["hotline_daily"]
    assert dag.get_task("validate").upstream_task_ids == {"ingest"}
    assert dag.get_task("publish").upstream_task_ids == {"validate"}
    assert dag.get_task("feed_health").upstream_task_ids == {"publish"}
    assert dag.get_task("lights").upstream_task_ids == {"publish"}


def test_both_dags_tell_the_operators_when_a_task_fails_for_good(dagbag):
    from hotline.callbacks import on_task_failure

    for dag_id in ("hotline_daily", "hotline_monthly"):
        for t in dagbag.dags[dag_id].tasks:
            assert t.on_failure_callback in (on_task_failure, [on_task_failure]), (dag_id, t.task_id)


def test_a_failing_task_under_dag_test_notifies_the_operators_once(airflow_db, tmp_path, monkeypatch):
    """A task that raises (no retries left) fires on_task_failure under dag.test(): one notice for
    operators:440000 with the task and the error, in the outbox and the file channel."""
    from warehouse.db import connect, migrate
    from warehouse.schema import notifications

    db, var = _demo_settings(tmp_path, monkeypatch, {})
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "probe.py").write_text('''
import pendulum
from airflow.sdk import dag, task

from hotline.callbacks import on_task_failure


@dag(dag_id="ops_callback_probe", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="Asia/Shanghai"),
     default_args={"owner": "hotline", "retries": 0, "on_failure_callback": on_task_failure})
def probe():
    @task
    def breaks():
        raise RuntimeError("warehouse unreachable: connection refused")

    breaks()


probe()
''', encoding="utf-8")
    # dag.test() needs the DAG serialized in the metadata DB: write the probe's folder there
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")
    sync_bag_to_db(bag, "dags-folder", None)
    probe_dag = bag.dags["ops_callback_probe"]
    dr = probe_dag.test(logical_date=dt.datetime(2026, 11, 25, 16, tzinfo=dt.timezone.utc))
    assert dr.state == "failed"
    eng = connect(db)
    migrate(eng)
    with eng.connect() as conn:
        sent = conn.execute(select(notifications.c.receiver, notifications.c.subject, notifications.c.body,
                                   notifications.c.status)).all()
    assert len(sent) == 1
    receiver, subject, body, status = sent[0]
    assert receiver == "operators:440000" and status == "delivered"
    assert subject.startswith("【运维告警】ops_callback_probe.breaks 运行失败（2026-11-26）")
    assert "RuntimeError: warehouse unreachable: connection refused" in body
    assert "【运维告警】" in (var / "notices" / "2026-11-26.md").read_text(encoding="utf-8")
    eng.dispose()


def _demo_settings(tmp_path, monkeypatch, source: dict) -> tuple[str, Path]:
    """Settings for a DAG test: the generator as the source (``source`` overrides), a SQLite
    warehouse and a var directory under tmp_path; returns (database URL, var directory)."""
    src = {"kind": "generator", "mapping": "generator", "province": "440000", "seed": 9, **source}
    settings = tmp_path / "hotline.yaml"
    settings.write_text(yaml.safe_dump({"lookback_days": 3, "caller_salt": "t", "source": src}, allow_unicode=True))
    db, var = f"sqlite:///{tmp_path / 'w.db'}", tmp_path / "var"
    monkeypatch.setenv("HOTLINE_SETTINGS", str(settings))
    # dag.test() has no scheduler to watch the deadline, and fails on one (hotline/app/operations.py)
    monkeypatch.setenv("HOTLINE_DAILY_DEADLINE", "off")
    monkeypatch.setenv("HOTLINE_DB_URL", db)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(var))
    return db, var


def _demo_dag(tmp_path, monkeypatch, source: dict, end: str, days: int):
    """A demo warehouse (``hotline demo``: ``days`` of history before ``end``) from the generator
    settings ``source``, and the daily DAG parsed from dags/: (database URL, var dir, engine, DAG)."""
    from airflow.dag_processing.dagbag import DagBag
    from click.testing import CliRunner

    from hotline.cli import main
    from warehouse.db import connect

    db, var = _demo_settings(tmp_path, monkeypatch, source)
    built = CliRunner().invoke(main, ["demo", "--end", end, "--days", str(days), "--detect-days", "0"])
    assert built.exit_code == 0, built.output
    return db, var, connect(db), DagBag(dag_folder=str(DAGS)).dags["hotline_daily"]


@pytest.mark.slow
def test_daily_dag_runs_and_a_rerun_changes_nothing(airflow_db, tmp_path, monkeypatch):
    """The whole daily DAG under dag.test(), twice for the same date: the second run changes no
    ticket, no count and sends no notice. A planted city-wide spike on the day (70 days of history
    before it) gives the run something to detect and notify."""
    from warehouse.schema import alerts, daily_counts, light_events, notifications, tickets

    monkeypatch.setenv("HOTLINE_DEMO_DAY", "2024-05-08")
    db, var, eng, dag = _demo_dag(tmp_path, monkeypatch, {
        "scale": 0.002, "planted_events": [{"kind": "spike", "days_before": 0, "days": 1, "region": "440300",
                                            "category": "utilities.water_supply", "magnitude": 25.0}]},
        "2024-05-08", 70)
    day = "2024-05-08"

    def run_and_count():
        dr = dag.test(logical_date=dt.datetime(2024, 5, 8, 16, tzinfo=dt.timezone.utc), run_conf={"day": day})
        assert dr.state == "success"
        with eng.connect() as conn:
            n = conn.execute(select(func.count()).select_from(tickets)).scalar_one()
            n_day = conn.execute(select(func.count()).select_from(tickets).where(
                tickets.c.received_date == dt.date(2024, 5, 8))).scalar_one()
            rows = conn.execute(select(func.count(), func.sum(daily_counts.c.n_tickets),
                                       func.sum(daily_counts.c.n_closed))).one()
            sent = conn.execute(select(notifications.c.receiver, notifications.c.status)
                                .order_by(notifications.c.id)).all()
            n_alerts = conn.execute(select(func.count()).select_from(alerts)).scalar_one()
            n_lights = conn.execute(select(func.count()).select_from(light_events)).scalar_one()
        lines = (var / "notices" / f"{day}.jsonl").read_text(encoding="utf-8").splitlines()
        return n, n_day, tuple(rows), tuple(sent), n_alerts, lines, n_lights

    first = run_and_count()
    board = (var / "site" / "index.html").read_text(encoding="utf-8")  # the board task rebuilt the site
    assert "2024-05-08" in board and "深圳市" in board and (var / "site" / "city-440300.html").is_file()
    assert first[1] > 0 and first[2][0] > 0
    assert ("city:440300", "delivered") in first[3] and first[4] >= 1  # the planted spike reached Shenzhen
    assert len(first[5]) == len(first[3])
    assert first[6] > 0  # the lights task recorded the day's light changes (a rerun adds none)
    assert run_and_count() == first
    eng.dispose()


def test_the_monthly_dag_waits_for_the_month_then_proposes_delivers_and_rebuilds_the_board(dagbag):
    dag = dagbag.dags["hotline_monthly"]
    assert dag.get_task("propose").upstream_task_ids == {"wait_for_month"}
    assert dag.get_task("deliver").upstream_task_ids == {"propose"}
    assert dag.get_task("ranking").upstream_task_ids == {"wait_for_month"}
    assert dag.get_task("brief").upstream_task_ids == {"ranking", "deliver"}  # the brief cites the proposal
    assert dag.get_task("board").upstream_task_ids == {"brief"}
    wait = dag.get_task("wait_for_month")
    assert wait.mode == "reschedule" and wait.poke_interval == 600


@pytest.mark.slow
def test_the_monthly_dag_ranks_briefs_and_a_rerun_changes_nothing(airflow_db, tmp_path, monkeypatch):
    """The monthly DAG under dag.test() for April 2024 on a demo warehouse with tickets from
    March: proposals, the horse race at both levels, the report and the province's brief in the
    outbox; run again, the same ranking and nothing sent twice."""
    from sqlalchemy import insert

    from warehouse.db import connect
    from warehouse.schema import notifications, pipeline_runs, rankings

    db, var = _demo_settings(tmp_path, monkeypatch, {"scale": 0.003})
    from click.testing import CliRunner

    from hotline.cli import main

    built = CliRunner().invoke(main, ["demo", "--end", "2024-05-02", "--days", "430", "--ticket-days", "62",
                                      "--detect-days", "0"])
    assert built.exit_code == 0, built.output
    eng = connect(db)
    now = dt.datetime.now(dt.timezone.utc)
    with eng.begin() as conn:  # the month's last daily run has notified: the sensor lets the month through
        conn.execute(insert(pipeline_runs).values(run_id="notify-test", stage="notify", status="success",
                                                  logical_date=dt.date(2024, 4, 30), started_at=now, finished_at=now))
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).dags["hotline_monthly"]

    def run():
        dr = dag.test(logical_date=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc), run_conf={"month": "2024-04"})
        assert dr.state == "success"
        with eng.connect() as conn:
            ranks = conn.execute(select(rankings.c.level, rankings.c.unit_code, rankings.c.rank, rankings.c.composite,
                                        rankings.c.flagged).order_by(rankings.c.level, rankings.c.unit_code)).all()
            sent = conn.execute(select(notifications.c.receiver, notifications.c.group_key, notifications.c.status)
                                .order_by(notifications.c.id)).all()
        return ranks, sent

    ranks, sent = run()
    assert {r.level for r in ranks} == {"city", "district"} and len([r for r in ranks if r.level == "city"]) == 11
    assert sum(r.flagged for r in ranks if r.level == "city") == 4  # the bottom of each of the 4 tiers
    assert ("province:440000", "ranking:2024-04", "delivered") in sent
    report = var / "reports" / "ranking" / "2024-04" / "province-440000.zh.html"
    assert "赛马排名与趋势" in report.read_text(encoding="utf-8")
    assert "赛马" in (var / "site" / "index.html").read_text(encoding="utf-8")  # the board links the ranking
    assert run() == (ranks, sent)
    eng.dispose()


# What a rerun may change: bookkeeping (which run wrote a row, when), never the data.
_BOOKKEEPING = {"tickets": {"ingest_run_id"}, "quarantine": {"id", "run_id", "quarantined_at"},
                "daily_counts": {"aggregated_at"}, "dq_day_flags": {"run_id"}, "forecasts": {"run_id"},
                "anomalies": {"run_id"}, "alerts": {"updated_at"}, "alert_events": {"id", "at"},
                "notifications": {"id", "created_at", "delivered_at", "next_attempt_at", "run_id"},
                "light_events": {"run_id"}, "repeat_rates": {"run_id"}, "rankings": {"run_id", "created_at"},
                "staged_tickets": set()}


def _warehouse(eng) -> dict[str, list[tuple]]:
    """Every data table's rows without their bookkeeping columns, sorted (run logs such as
    pipeline_runs and dq_verdicts grow with each run by design and are left out)."""
    from warehouse.schema import metadata

    out = {}
    with eng.connect() as conn:
        for name, skip in _BOOKKEEPING.items():
            table = metadata.tables[name]
            cols = [c for c in table.columns if c.name not in skip]
            out[name] = sorted((tuple(map(str, r)) for r in conn.execute(select(*cols))), key=repr)
    return out


@pytest.mark.slow
def test_a_backfill_of_a_week_run_twice_gives_the_same_warehouse(airflow_db, tmp_path, monkeypatch):
    """The backfill procedure (README, Operations): each day of a week through the daily DAG, in
    order. A week loaded day by day (as it happened, late tickets arriving with the next days'
    feeds), then backfilled, then backfilled again: the second backfill changes no data row and
    nothing is ever sent twice. The first backfill may only change forecasts: a rerun forecasts a
    day from its history as known now, late tickets included."""
    monkeypatch.setenv("HOTLINE_DEMO_DAY", "2024-05-08")
    db, var, eng, dag = _demo_dag(tmp_path, monkeypatch, {
        "province": "370000", "scale": 0.004,
        "planted_events": [{"kind": "spike", "days_before": 3, "days": 2, "region": "370200",
                            "category": "utilities.water_supply", "magnitude": 20.0}]}, "2024-05-02", 70)
    week = [dt.date(2024, 5, 2) + dt.timedelta(days=i) for i in range(7)]

    def run_week():
        for day in week:
            start = dt.datetime.combine(day, dt.time(0), dt.timezone(dt.timedelta(hours=8)))
            dr = dag.test(logical_date=start.astimezone(dt.timezone.utc), run_conf={"day": str(day)})
            assert dr.state == "success", day
        notices = sorted(p.name + ":" + str(len(p.read_text(encoding="utf-8").splitlines()))
                         for p in (var / "notices").glob("*.jsonl"))
        return _warehouse(eng), notices

    loaded, notices = run_week()
    assert {str(d) for d in week} <= {r[0] for r in loaded["daily_counts"]}
    assert loaded["anomalies"] and any("city:370200" in r for r in loaded["notifications"])
    backfilled, notices_1 = run_week()
    again, notices_2 = run_week()
    changed = [name for name in backfilled if backfilled[name] != again[name]]
    assert changed == [], {name: (len(backfilled[name]), len(again[name])) for name in changed}
    assert [name for name in loaded if loaded[name] != backfilled[name]] in ([], ["forecasts"])
    assert notices_2 == notices_1 == notices  # nothing delivered twice to the file channel
    eng.dispose()


def test_a_data_quality_halt_under_dag_test_tells_the_operators(airflow_db, tmp_path, monkeypatch):
    """An export whose category field changed (the mapping now reads department names where the
    categories were, so nearly every ticket is unmapped) halts the gate under dag.test(); the
    operators get a 数据质量 notice that says the day is held back from forecasts and alerts, and
    the run stops before forecasting."""
    from warehouse.schema import notifications

    db, var, eng, dag = _demo_dag(tmp_path, monkeypatch, {"scale": 0.002, "province": "370000"}, "2024-05-08", 40)
    mapping = yaml.safe_load((DAGS.parent / "config" / "mappings" / "generator.yaml").read_text(encoding="utf-8"))
    mapping["fields"]["category"] = {**mapping["fields"]["category"], "column": "承办单位"}
    (tmp_path / "renamed.yaml").write_text(yaml.safe_dump(mapping, allow_unicode=True), encoding="utf-8")
    _demo_settings(tmp_path, monkeypatch, {"scale": 0.002, "province": "370000",
                                           "mapping": str(tmp_path / "renamed.yaml")})
    dr = dag.test(logical_date=dt.datetime(2024, 5, 7, 16, tzinfo=dt.timezone.utc), run_conf={"day": "2024-05-08"})
    assert dr.state == "failed"
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    assert states["feed_health"] == "failed" and states["forecast_province"] == "upstream_failed"
    with eng.connect() as conn:
        ops = conn.execute(select(notifications.c.receiver, notifications.c.subject, notifications.c.body)
                           .where(notifications.c.receiver.like("operators:%"))).all()
    [(receiver, subject, body)] = ops
    assert receiver == "operators:370000" and "数据质量" in subject and "2024-05-08" in subject
    assert "unmapped" in body and "不会使用这一天" in body
    eng.dispose()


def test_a_production_stack_without_a_source_stops_at_ingest_and_tells_the_operators(airflow_db, tmp_path,
                                                                                   monkeypatch):
    """HOTLINE_LOAD_DEMO=false (the production compose's default) and the source still the demo
    generator: the ingest task fails with no retry, nothing synthetic is loaded, and the operators
    get a notice that says what to configure."""
    from airflow.dag_processing.dagbag import DagBag

    from warehouse.db import connect
    from warehouse.schema import notifications, tickets

    db, var = _demo_settings(tmp_path, monkeypatch, {"scale": 0.002, "province": "370000"})
    monkeypatch.setenv("HOTLINE_LOAD_DEMO", "false")
    dag = DagBag(dag_folder=str(DAGS)).dags["hotline_daily"]
    dr = dag.test(logical_date=dt.datetime(2024, 5, 7, 16, tzinfo=dt.timezone.utc), run_conf={"day": "2024-05-08"})
    assert dr.state == "failed"
    [ingest] = [ti for ti in dr.get_task_instances() if ti.task_id == "ingest"]
    assert ingest.state == "failed" and ingest.try_number == 1  # AirflowFailException: no retry
    eng = connect(db)
    with eng.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tickets)).scalar_one() == 0
        ops = conn.execute(select(notifications.c.receiver, notifications.c.body)
                           .where(notifications.c.receiver.like("operators:%"))).all()
    [(receiver, body)] = ops
    text = body.replace("\\", "")  # the body is Markdown, its underscores escaped
    assert receiver == "operators:370000" and "未配置工单数据源" in text and "HOTLINE_LOAD_DEMO is false" in text
    eng.dispose()
