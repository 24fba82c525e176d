"""The command line as an operator scripts it: with --json, stdout is exactly one JSON document
(the words go to stderr), for every command that has the option; an unknown city or province is
a usage error (exit 2) naming the known ones; a missing file is a one-line error; `--version`.

One small warehouse (SQLite, 60 days of Guangdong at 0.3% of published volumes, built by
`hotline demo --json`, itself checked) serves every command, in the order an operator would run
them."""
import datetime as dt
import json

import pandas as pd
import pytest
from click.testing import CliRunner

from hotline.cli import main

DAY, MONTH = "2026-03-04", "2026-02"
PASSWORD = "contract password 1"  # an account's, read from the environment: never printed


def _json_commands(group=main, prefix=()):
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):
            yield from _json_commands(cmd, prefix + (name,))
        elif any(p.name == "as_json" for p in cmd.params):
            yield prefix + (name,)


def _stdout_json(res, codes=(0,)):
    assert res.exit_code in codes, (res.stdout, res.stderr)
    try:
        return json.loads(res.stdout)
    except json.JSONDecodeError as exc:  # the pipe `hotline ... --json | jq` would break
        raise AssertionError(f"stdout is not one JSON document ({exc}):\n{res.stdout[:2000]}") from None


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """The warehouse, a runner bound to it, and the files the commands read."""
    tmp = tmp_path_factory.mktemp("cli")
    db = f"sqlite:///{tmp / 'w.db'}"
    env = {"HOTLINE_DB_URL": db, "HOTLINE_VAR_DIR": str(tmp / "var"), "HOTLINE_CALLER_SALT": "cli-contract-salt",
           "HL_TEST_PW": PASSWORD}
    runner = CliRunner(env=env)
    demo = runner.invoke(main, ["demo", "--end", "2026-03-05", "--days", "60", "--scale", "0.003",
                                "--detect-days", "1", "--json"])
    built = _stdout_json(demo)
    assert built["ingest"]["loaded"] > 10_000 and built["detection"]["anomalies"] >= 0
    assert "demo: generating" in demo.stderr  # the words are still there, on stderr
    # a series for the csv tools, and a source table for `ingest sql`
    days = pd.date_range("2025-01-01", "2026-02-28", freq="D")
    y = (20 + 5 * (days.dayofweek < 5)).astype(int)
    pd.DataFrame({"ds": days.strftime("%Y-%m-%d"), "y": y}).to_csv(tmp / "series.csv", index=False)
    pd.DataFrame({"timestamp": days.strftime("%Y-%m-%d"), "value": y}).to_csv(tmp / "points.csv", index=False)
    gen = runner.invoke(main, ["generate", "--start", "2026-01-02", "--end", "2026-01-02", "--scale", "0.001",
                               "--out", str(tmp / "export.csv"), "--json"])
    assert _stdout_json(gen)["tickets"] > 0
    from sqlalchemy import create_engine

    src = create_engine(f"sqlite:///{tmp / 'source.db'}")
    pd.read_csv(tmp / "export.csv", dtype=str).to_sql("ticket_export", src, index=False)
    src.dispose()
    return runner, tmp, db


def _args(tmp, ids):
    """The arguments each --json command is tried with ({alert} and {silence} filled in as found)."""
    return {
        ("init",): [],
        ("generate",): ["--start", "2026-01-03", "--end", "2026-01-03", "--scale", "0.001",
                        "--out", str(tmp / "more.csv")],
        ("ingest", "csv"): [str(tmp / "export.csv"), "--mapping", "generator", "--db", f"sqlite:///{tmp / 'csv.db'}"],
        ("ingest", "sql"): ["--url", f"sqlite:///{tmp / 'source.db'}", "--table", "ticket_export",
                            "--mapping", "generator", "--db", f"sqlite:///{tmp / 'sql.db'}"],
        ("ingest", "generator"): ["--date", "2026-03-05", "--scale", "0.003"],
        ("aggregate",): ["--date", DAY],
        ("quarantine",): [],
        ("validate",): ["--date", DAY],
        ("forecast-backtest",): ["--csv", str(tmp / "series.csv"), "--horizon", "7", "--folds", "1",
                                 "--models", "fast,seasonal_naive"],
        ("demo",): None,  # the fixture's own call
        ("summary",): ["--date", DAY],
        ("backtest",): ["--labels", str(tmp / "var" / "labels.csv"), "--start", DAY, "--end", DAY],
        ("calibrate",): ["--csv", str(tmp / "series.csv"), "--start", "2026-02-01", "--end", "2026-02-28"],
        ("score-csv",): [str(tmp / "points.csv"), str(tmp / "scored.csv")],
        ("alerts", "notify"): ["--date", DAY],
        ("alerts", "list"): [],
        ("alerts", "show"): [ids.get("alert", "")],
        ("alerts", "ack"): [ids.get("alert", ""), "--author", "深圳市12345热线中心", "--verdict", "useful"],
        ("alerts", "silence"): ["--match", 'region_code="440300"', "--until", "3d", "--author", "值班长",
                                "--reason", "停水已知，抢修中"],
        ("alerts", "silences"): [],
        ("alerts", "unsilence"): [ids.get("silence", ""), "--author", "值班长"],
        ("alerts", "outbox"): [],
        ("propose",): ["--month", MONTH, "--city", "440300"],
        ("board",): ["--date", DAY, "--out", str(tmp / "site")],
        ("lights",): ["--date", DAY],
        ("repeats",): ["--month", MONTH],
        ("ranking",): ["--month", MONTH],
        ("runs",): [],
        ("doctor",): ["--today", "2026-12-03"],  # exits 1: report_base_url unset, 2027's 调休 unknown
        ("export", "lights"): ["--date", DAY, "--region", "440306", "--out", str(tmp / "x" / "lights.xlsx")],
        ("export", "alerts"): ["--date", DAY, "--out", str(tmp / "x" / "alerts.csv")],
        ("export", "ranking"): ["--month", MONTH, "--out", str(tmp / "x" / "ranking.xlsx")],
        ("export", "watchlist"): ["--month", MONTH, "--out", str(tmp / "x" / "watch.csv")],
        ("users", "add"): ["ops-zhang", "--office", "district:440306", "--name", "张三",
                           "--password-env", "HL_TEST_PW"],
        ("users", "list"): [],
        ("users", "disable"): ["ops-zhang"],
    }


def test_every_json_command_prints_exactly_one_json_document_on_stdout(shop):
    runner, tmp, _ = shop
    ids: dict[str, str] = {}
    table = _args(tmp, ids)
    assert set(table) == set(_json_commands()), "a --json command without a case here"
    done = []
    for path in table:
        if table[path] is None:
            continue
        if path == ("alerts", "show"):  # ids from the commands before
            listed = _stdout_json(runner.invoke(main, ["alerts", "list", "--json"]))
            assert listed["alerts"], "the day's detection raised no alert to show"
            ids["alert"] = listed["alerts"][0]["fingerprint"][:8]
        args = _args(tmp, ids)[path]
        res = runner.invoke(main, [*path, *args, "--json"])
        assert PASSWORD not in res.output
        doc = _stdout_json(res, (0, 1) if path == ("doctor",) else (0,))
        assert isinstance(doc, dict) and doc, path
        if path == ("alerts", "silence"):
            ids["silence"] = str(doc["silence"])
        done.append(" ".join(path))
    assert len(done) == len(table) - 1


@pytest.mark.parametrize("args", [
    ["lights", "--city", "110100"],
    ["repeats", "--month", MONTH, "--city", "110100"],
    ["ranking", "--month", MONTH, "--city", "110100"],
    ["runs", "--city", "110100"],
    ["propose", "--month", MONTH, "--city", "110100"],
], ids=lambda a: a[0])
def test_an_unknown_city_is_a_usage_error_naming_the_known_ones(shop, args):
    runner, _, _ = shop
    res = runner.invoke(main, [*args, "--json"])
    assert res.exit_code == 2 and res.stdout == ""
    assert "110100 is not a city of 广东省 (440000)" in res.stderr and "440300 深圳市" in res.stderr


@pytest.mark.parametrize("args", [
    ["generate", "--province", "110000", "--start", DAY, "--end", DAY, "--out", "x.csv"],
    ["ingest", "generator", "--province", "110000", "--date", DAY],
    ["backtest", "--province", "110000", "--labels", "x.csv"],
    ["calibrate", "--province", "110000", "--level", "city:l1"],
], ids=lambda a: " ".join(a[:2]))
def test_an_unknown_province_is_a_usage_error(shop, args):
    runner, _, _ = shop
    res = runner.invoke(main, args)
    assert res.exit_code == 2 and "110000 is not a configured province" in res.stderr
    assert "440000 广东省" in res.stderr and "Traceback" not in res.output


@pytest.mark.parametrize("args", [
    ["score-csv", "{missing}", "{tmp}/out.csv"],
    ["ingest", "csv", "{missing}", "--mapping", "generator"],
    ["forecast-backtest", "--csv", "{missing}"],
    ["calibrate", "--csv", "{missing}"],
    ["backtest", "--labels", "{missing}", "--start", DAY, "--end", DAY],
], ids=lambda a: a[0])
def test_a_missing_file_is_a_short_error_naming_it(shop, args):
    runner, tmp, _ = shop
    missing = str(tmp / "no-such-file.csv")
    res = runner.invoke(main, [a.format(missing=missing, tmp=tmp) for a in args])
    errors = [line for line in res.stderr.splitlines() if line.lower().startswith("error")]
    assert res.exit_code == 2 and res.stdout == "" and "Traceback" not in res.output
    assert len(errors) == 1 and "no-such-file.csv" in errors[0], res.stderr


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert res.exit_code == 0 and res.stdout.startswith("hotline, version ")


def test_data_quality_stages_are_timed_from_before_their_checks(shop):
    """`hotline runs` used to show 0.0 s for the data-quality stages: their start was recorded
    after the checks had run. Now the stage's window holds the checks: its page, written once the
    checks are done, is stamped between the stage's start and finish."""
    runner, _, _ = shop
    _stdout_json(runner.invoke(main, ["validate", "--date", DAY, "--json"]))
    from pathlib import Path

    from sqlalchemy import select

    from warehouse.db import connect
    from warehouse.schema import pipeline_runs

    eng = connect(runner.env["HOTLINE_DB_URL"])
    p = pipeline_runs.c
    with eng.connect() as conn:
        rows = conn.execute(select(p.stage, p.started_at, p.finished_at, p.metrics)
                            .where(p.stage.like("dq_%"), p.logical_date == dt.date.fromisoformat(DAY))).all()
    eng.dispose()
    assert {r.stage for r in rows} == {"dq_tickets_batch", "dq_feed_health"}
    latest = {}  # each validate rewrites the day's page: the last run of each stage wrote it
    for r in sorted(rows, key=lambda r: r.started_at):
        latest[r.stage] = r
    for r in latest.values():
        page = dt.datetime.fromtimestamp(Path(r.metrics["docs"]).stat().st_mtime, dt.timezone.utc)
        assert r.started_at <= page <= r.finished_at, (r.stage, r.started_at, page, r.finished_at)


# --- configuration typos: an error naming the file and the key, never a setting silently dropped ---

def _alerts_doc():
    import yaml

    from hotline.core.settings import PROJECT_ROOT

    return yaml.safe_load((PROJECT_ROOT / "config" / "alerts.yaml").read_text(encoding="utf-8"))


def test_an_alerts_typo_names_the_key():
    """`inhibit_rule:` (for inhibit_rules) used to turn inhibition off without a word."""
    from alerts.config import AlertsConfig
    from hotline.core.reference import ConfigError

    doc = _alerts_doc()
    AlertsConfig.from_dict(doc, "config/alerts.yaml")  # the shipped file loads
    doc["inhibit_rule"] = doc.pop("inhibit_rules")
    with pytest.raises(ConfigError,
                       match=r"config/alerts.yaml: unknown key\(s\) inhibit_rule \(known: .*inhibit_rules"):
        AlertsConfig.from_dict(doc, "config/alerts.yaml")
    doc = _alerts_doc()
    doc["delivery"] = {**(doc.get("delivery") or {}), "timeout_second": 5}
    with pytest.raises(ConfigError, match=r"delivery: unknown key\(s\) timeout_second"):
        AlertsConfig.from_dict(doc, "config/alerts.yaml")


def test_group_by_must_be_a_list_not_letters():
    """`group_by: office` used to become ('o', 'f', 'f', 'i', 'c', 'e')."""
    from alerts.config import AlertsConfig
    from hotline.core.reference import ConfigError

    doc = _alerts_doc()
    doc["route"]["group_by"] = "office"
    with pytest.raises(ConfigError, match=r"route.group_by: a list of label names is expected.*'office'"):
        AlertsConfig.from_dict(doc, "config/alerts.yaml")
    doc["route"]["group_by"] = ["office"]
    assert AlertsConfig.from_dict(doc, "config/alerts.yaml").route.group_by == ("office",)


def test_a_settings_typo_names_the_key_and_the_cli_says_so(tmp_path):
    """`databse:` in hotline.yaml used to be ignored: the pipeline ran on the demo database."""
    from hotline.core.reference import ConfigError
    from hotline.core.settings import load_settings

    bad = tmp_path / "hotline.yaml"
    bad.write_text("databse: postgresql+psycopg2://hotline@db/hotline\nlookback_days: 7\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"hotline.yaml: databse: unknown key \(known: caller_salt, database, "):
        load_settings(env={"HOTLINE_SETTINGS": str(bad), "HOTLINE_CALLER_SALT": "x"})
    res = CliRunner(env={"HOTLINE_SETTINGS": str(bad)}).invoke(main, ["runs"])
    assert res.exit_code == 2 and "databse: unknown key" in res.stderr and "Traceback" not in res.output
