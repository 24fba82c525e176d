"""`hotline doctor`: each check finds the problem it is for, names it without printing a secret,
and exits 1; a sound installation passes with exit 0. The warehouse check runs against SQLite and
the real PostgreSQL server."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hotline.cli import main
from tests.conftest import PG_SERVER_URL, pg_database_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


WEB_SECRET = "WEB-SECRET-3-" + "w" * 32


@pytest.fixture
def install(tmp_path):
    """A copy of config/ whose alerts use a DingTalk connection and a WeCom URL from the
    environment, with report_base_url and 2027's announced arrangement; a migrated warehouse."""
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    alerts = yaml.safe_load((config / "alerts.yaml").read_text(encoding="utf-8"))
    alerts["channels"].update({"baoan_dingtalk": {"type": "dingtalk", "conn_id": "hotline_dingtalk_440306"},
                               "sz_wecom": {"type": "wecom", "url_env": "HOTLINE_WECOM_440300"}})
    alerts["offices"].update({"district:440306": ["baoan_dingtalk"], "city:440300": ["sz_wecom"]})
    alerts["report_base_url"] = "https://12345.example.gov.cn/hotline"
    (config / "alerts.yaml").write_text(yaml.safe_dump(alerts, allow_unicode=True), encoding="utf-8")
    (config / "calendar_overrides.yaml").write_text(
        "years:\n  2027:\n    holidays: {2027-01-01: 元旦, 2027-02-06: 春节, 2027-02-07: 春节}\n"
        "    makeup_workdays: [2027-02-14]\n", encoding="utf-8")
    env = {"HOTLINE_CONFIG_DIR": str(config), "HOTLINE_SETTINGS": str(config / "hotline.yaml"),
           "HOTLINE_DB_URL": f"sqlite:///{tmp_path / 'w.db'}", "HOTLINE_CALLER_SALT": "doctor-salt",
           "HOTLINE_WECOM_440300": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRET-KEY-1",
           "AIRFLOW_CONN_HOTLINE_DINGTALK_440306": "https://:SEC-SIGNING-2@oapi.dingtalk.com/robot/send",
           "HOTLINE_VAR_DIR": str(tmp_path / "var"), "HOTLINE_WEB_SECRET": WEB_SECRET}
    assert CliRunner().invoke(main, ["init"], env=env).exit_code == 0
    return config, env


def _doctor(env, *args):
    res = CliRunner().invoke(main, ["doctor", "--today", "2026-12-03", "--json", *args], env=env)
    assert res.exit_code in (0, 1), res.output
    doc = json.loads(res.stdout)
    assert "SECRET-KEY-1" not in res.output and "SEC-SIGNING-2" not in res.output and WEB_SECRET not in res.output
    return res.exit_code, {c["name"]: c for c in doc["checks"]}, doc


def test_a_sound_installation_passes_every_check(install):
    _, env = install
    code, checks, doc = _doctor(env)
    assert code == 0 and doc["ok"] is True, checks
    assert set(checks) == {"config", "secrets", "warehouse", "calendar", "report_links", "fonts"}
    assert "3 channels in use (dingtalk, file, wecom): all 2 secrets present" in checks["secrets"]["summary"]
    assert "2026 (chinese_calendar), 2027 (config)" in checks["calendar"]["summary"]


def test_a_missing_secret_is_named_by_its_variable_and_connection_never_by_a_value(install):
    _, env = install
    code, checks, _ = _doctor({**env, "HOTLINE_WECOM_440300": "", "AIRFLOW_CONN_HOTLINE_DINGTALK_440306": ""})
    assert code == 1 and not checks["secrets"]["ok"]
    assert checks["secrets"]["details"] == [
        "channel baoan_dingtalk: connection hotline_dingtalk_440306 not found (set "
        "AIRFLOW_CONN_HOTLINE_DINGTALK_440306 or add it in Airflow)",
        "channel sz_wecom: environment variable HOTLINE_WECOM_440300 is not set"]
    assert all(checks[c]["ok"] for c in checks if c != "secrets")


def test_next_years_tiaoxiu_unknown_is_a_problem_until_it_is_announced_in_config(install):
    """On 2026-12-03 the next 60 days reach into 2027, which chinese-calendar does not know; the
    holidays package computes 2027's holidays without their make-up working days."""
    config, env = install
    (config / "calendar_overrides.yaml").write_text("years: {}\n", encoding="utf-8")
    code, checks, _ = _doctor(env)
    assert code == 1 and not checks["calendar"]["ok"]
    assert checks["calendar"]["details"][0].startswith("2027: holidays computed without their 调休")
    code, checks, _ = _doctor(env, "--today", "2026-06-01")  # the last --today wins: 60 days inside 2026
    assert checks["calendar"]["ok"], checks["calendar"]


def test_a_config_typo_is_named_and_the_checks_that_need_that_file_say_so(install):
    config, env = install
    doc = yaml.safe_load((config / "alerts.yaml").read_text(encoding="utf-8"))
    doc["inhibit_rule"] = doc.pop("inhibit_rules")
    (config / "alerts.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    code, checks, doc = _doctor(env)
    assert code == 1 and not checks["config"]["ok"]
    assert any("alerts.yaml: unknown key(s) inhibit_rule" in d for d in checks["config"]["details"])
    assert checks["secrets"]["summary"] == "not checked: its configuration does not load"
    assert checks["warehouse"]["ok"] and checks["calendar"]["ok"]


def test_an_unset_report_base_url_is_a_problem(install):
    config, env = install
    doc = yaml.safe_load((config / "alerts.yaml").read_text(encoding="utf-8"))
    del doc["report_base_url"]
    (config / "alerts.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    code, checks, _ = _doctor(env)
    assert code == 1 and "report_base_url is not set" in checks["report_links"]["summary"]


def test_a_served_site_without_its_secret_or_with_a_short_one_is_a_problem(install):
    _, env = install
    code, checks, _ = _doctor({k: v for k, v in env.items() if k != "HOTLINE_WEB_SECRET"})
    assert code == 1 and "HOTLINE_WEB_SECRET) is not set" in checks["report_links"]["summary"]
    code, checks, _ = _doctor({**env, "HOTLINE_WEB_SECRET": "short"})
    assert code == 1 and "shorter than 32" in checks["report_links"]["summary"]
    code, checks, _ = _doctor(env)
    assert checks["report_links"]["ok"] and "signed links" in checks["report_links"]["summary"]


def test_a_warehouse_behind_the_code_or_missing_is_a_problem(install, tmp_path):
    from sqlalchemy import text

    from warehouse.db import connect

    _, env = install
    code, checks, _ = _doctor({**env, "HOTLINE_DB_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert code == 1 and checks["warehouse"]["summary"].endswith("no warehouse file yet")
    assert not (tmp_path / "none.db").exists()  # the doctor created nothing
    eng = connect(env["HOTLINE_DB_URL"])
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0010'"))
    eng.dispose()
    code, checks, _ = _doctor(env)
    assert code == 1 and "schema at 0010, the code needs 0012" in checks["warehouse"]["summary"]


@pytest.mark.postgres
def test_the_warehouse_check_on_postgresql_and_an_unreachable_server_hides_the_password(install, pg_database_url):  # noqa: F811
    from warehouse.db import connect, migrate

    _, env = install
    migrate(connect(pg_database_url))
    code, checks, _ = _doctor({**env, "HOTLINE_DB_URL": pg_database_url})
    assert checks["warehouse"]["ok"] and "reachable, schema at the latest migration" in checks["warehouse"]["summary"]
    closed = "postgresql+psycopg2://hotline:PG-PASS-3@127.0.0.1:1/hotline"
    res = CliRunner().invoke(main, ["doctor", "--today", "2026-12-03", "--json"], env={**env, "HOTLINE_DB_URL": closed})
    doc = json.loads(res.stdout)
    wh = {c["name"]: c for c in doc["checks"]}["warehouse"]
    assert res.exit_code == 1 and wh["summary"].endswith("not reachable") and "PG-PASS-3" not in res.output
    assert PG_SERVER_URL  # the server the fixture made its database on
