"""The data-quality gate on broken feeds: a clean day passes; each way a feed breaks gets the
right verdict, and no row is ever lost (read = loaded + quarantined, loaded = published or staged
+ quarantined by the gate). Runs on SQLite and on PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import pytest
from sqlalchemy import create_engine, func, select, text

from data_quality import gate
from data_quality.policy import worst
from generator.province import ProvinceGenerator
from hotline.core.reference import load_mapping
from ingestion.canonical import Batch, TicketMapper
from ingestion.pipeline import ingest
from ingestion.sources import CsvSource, GeneratorSource
from warehouse.db import connect, migrate
from warehouse.schema import dq_day_flags, dq_verdicts, pipeline_runs, quarantine, staged_tickets

DAY = dt.date(2024, 5, 15)  # a Wednesday; its reference weeks hold the Labour Day holiday
TZ = "Asia/Shanghai"
GEN = ProvinceGenerator(scale=0.01, seed=21)


def _mapper(ref):
    return TicketMapper(load_mapping("generator"), ref, "dq-salt")


@pytest.fixture(scope="module")
def sqlite_base(tmp_path_factory, ref):
    path = tmp_path_factory.mktemp("dq") / "base.db"
    eng = connect(f"sqlite:///{path}")
    migrate(eng)
    ingest(eng, GeneratorSource(GEN, DAY - dt.timedelta(days=50), DAY - dt.timedelta(days=1)), _mapper(ref))
    eng.dispose()
    return path


def _drop(admin, name: str) -> None:
    """Drop a scratch database, ending sessions still open on it (a CLI run's pooled connection)."""
    with admin.connect() as conn:
        conn.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
                          f"AND pid <> pg_backend_pid()"))
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


@pytest.fixture(scope="module")
def pg_base(pg_database_url, ref):
    """A history database on the real server, cloned per test as a template."""
    admin = create_engine(pg_database_url.rsplit("/", 1)[0] + "/test", isolation_level="AUTOCOMMIT")
    name = pg_database_url.rsplit("/", 1)[1] + "_dqbase"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_database_url.rsplit("/", 1)[0] + f"/{name}"
    eng = connect(url)
    migrate(eng)
    ingest(eng, GeneratorSource(GEN, DAY - dt.timedelta(days=50), DAY - dt.timedelta(days=1)), _mapper(ref))
    eng.dispose()
    yield admin, name
    _drop(admin, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def hist_engine(request, tmp_path):
    """A warehouse holding seven weeks of clean history before DAY."""
    if request.param == "sqlite":
        base = request.getfixturevalue("sqlite_base")
        shutil.copy(base, tmp_path / "w.db")
        eng = connect(f"sqlite:///{tmp_path / 'w.db'}")
        yield eng
        eng.dispose()
        return
    admin, template = request.getfixturevalue("pg_base")
    name = f"{template}_{request.node.name[-12:].strip('[]-').lower().replace('-', '_')}_{id(tmp_path) % 10000}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    eng = connect(str(admin.url.set(database=name).render_as_string(hide_password=False)))
    yield eng
    eng.dispose()
    _drop(admin, name)


def clean_day() -> pd.DataFrame:
    """The day's feed as a ticket system holds it the next morning: the day plus a week of updates."""
    as_of = pd.Timestamp(DAY + dt.timedelta(days=1), tz=TZ)
    since = pd.Timestamp(DAY - dt.timedelta(days=7), tz=TZ)
    return pd.concat(GEN.tickets(DAY - dt.timedelta(days=7), DAY, as_of=as_of, updated_since=since), ignore_index=True)


class Frames:
    def __init__(self, frame: pd.DataFrame, name: str = "feed.csv"):
        self.frame, self.name = frame, name

    def batches(self):
        yield Batch(self.frame.reset_index(drop=True), self.name, 1)


def run_gate(engine, ref, source, tmp_path):
    """ingest (staged) -> validate -> publish + aggregate -> feed health, stopping at a halt, as the DAG does."""
    s = ingest(engine, source, _mapper(ref), logical_date=DAY, publish=False)
    assert s.read == s.loaded + s.quarantined
    batch = gate.validate_staged(engine, ref, tmp_path, s.run_id, DAY, 7)
    out = {"ingest": s, "batch": batch, "feed": None, "published": None}
    if batch.action != "halt":
        out["published"] = gate.publish_and_aggregate(engine, s.run_id, DAY)
        out["feed"] = gate.check_feed(engine, ref, tmp_path, s.run_id, DAY)
    out["action"] = worst([batch.action] + ([out["feed"].action] if out["feed"] else []))
    # nothing lost between staging and publication
    with engine.connect() as conn:
        still_staged = conn.execute(select(func.count()).select_from(staged_tickets).where(
            staged_tickets.c.ingest_run_id == s.run_id)).scalar_one()
    if out["published"]:
        p = out["published"]
        assert p["inserted"] + p["updated"] + p["unchanged"] + batch.quarantined == s.loaded
        assert still_staged == 0
    else:
        assert still_staged + batch.quarantined == s.loaded
    return out


def _reasons(out) -> str:
    return " | ".join(out["batch"].reasons + (out["feed"].reasons if out["feed"] else []))


def test_a_clean_day_passes(hist_engine, ref, tmp_path):
    out = run_gate(hist_engine, ref, Frames(clean_day()), tmp_path)
    assert out["action"] == "continue", _reasons(out)
    assert out["batch"].success and out["feed"].success and out["feed"].metrics["checked"] > 50
    assert out["published"]["inserted"] > 1000


def test_a_duplicated_day_halts_as_loaded_twice(hist_engine, ref, tmp_path):
    day = clean_day()
    twice = day[day["受理时间"].dt.date == DAY].copy()
    twice["工单编号"] = twice["工单编号"] + "R"  # the system re-sent the day under new ids
    out = run_gate(hist_engine, ref, Frames(pd.concat([day, twice])), tmp_path)
    assert out["action"] == "halt"
    assert out["feed"] is not None and "duplicate_share_halt" in {o.check for o in out["feed"].failed}
    assert "同一天被加载两次" in _reasons(out)


def test_a_silent_district_warns_and_is_flagged(hist_engine, ref, tmp_path):
    day = clean_day()
    out = run_gate(hist_engine, ref, Frames(day[day["区划代码"] != "440106"]), tmp_path)  # 天河区 sent nothing
    assert out["action"] == "warn", _reasons(out)
    assert "silent_district" in {o.check for o in out["feed"].failed}
    with hist_engine.connect() as conn:
        flags = conn.execute(select(dq_day_flags.c.region_code, dq_day_flags.c.check_name).where(
            dq_day_flags.c.ds == DAY)).all()
    assert ("440106", "silent_district") in flags


def test_a_silent_channel_warns(hist_engine, ref, tmp_path):
    day = clean_day()
    wechat_gz = (day["受理渠道"] == "微信") & day["区划代码"].str.startswith("4401")
    out = run_gate(hist_engine, ref, Frames(day[~wechat_gz]), tmp_path)
    assert out["action"] == "warn", _reasons(out)
    failed = [r for o in out["feed"].failed if o.check == "silent_channel" for r in o.unexpected_rows]
    assert {r["key"] for r in failed} == {"440100:wechat"}


def test_utc_mistaken_for_beijing_time_halts(hist_engine, ref, tmp_path):
    day = clean_day()
    for col in ("受理时间", "办理时限", "办结时间", "更新时间"):
        day[col] = day[col] + pd.Timedelta(hours=8)
    out = run_gate(hist_engine, ref, Frames(day), tmp_path)
    assert out["action"] == "halt"
    assert "received_window" in {o.check for o in out["batch"].failed}
    assert out["batch"].quarantined > 0


def test_thirty_percent_unmapped_categories_halts(hist_engine, ref, tmp_path):
    day = clean_day()
    renamed = day.sample(frac=0.3, random_state=1).index
    day.loc[renamed, "问题分类"] = day.loc[renamed, "问题分类"].str.replace("-", "/")  # upstream renamed its scheme
    out = run_gate(hist_engine, ref, Frames(day), tmp_path)
    assert out["action"] == "halt"
    assert "unmapped_share_halt" in {o.check for o in out["feed"].failed}


def test_a_gbk_batch_with_mangled_characters_halts(hist_engine, ref, tmp_path):
    day = clean_day()

    def mangle(s: pd.Series) -> pd.Series:  # UTF-8 text decoded as GBK upstream: 锟斤拷-style garbage
        return s.map(lambda v: v.encode("utf-8").decode("gbk", errors="replace") if isinstance(v, str) else v)

    for col in ("诉求内容", "问题分类", "承办单位"):
        day[col] = mangle(day[col])
    path = tmp_path / "gbk_export.csv"
    path.write_bytes(day.to_csv(index=False).encode("gb18030"))
    out = run_gate(hist_engine, ref, CsvSource(path), tmp_path)
    assert out["action"] == "halt"
    s = out["ingest"]
    assert s.read == len(day) == s.loaded + s.quarantined
    assert "mojibake" in {o.check for o in out["batch"].failed} and "wrong encoding" in _reasons(out)


def test_a_gbk_file_mangled_down_to_its_header_is_one_clear_error(tmp_path, ref):
    text_ = clean_day().head(20).to_csv(index=False).encode("utf-8").decode("gbk", errors="replace")
    path = tmp_path / "broken.csv"
    path.write_bytes(text_.encode("gb18030"))
    from ingestion.canonical import SourceFormatError

    with pytest.raises(SourceFormatError, match=r"broken\.csv: line 1 \(header\): required column"):
        _mapper(ref).map(next(CsvSource(path).batches()))


def test_rows_with_null_ids_are_quarantined_and_the_rest_load(hist_engine, ref, tmp_path):
    day = clean_day().astype({"工单编号": object})
    day.loc[day.index[::400], "工单编号"] = None
    n_null = int(day["工单编号"].isna().sum())
    out = run_gate(hist_engine, ref, Frames(day), tmp_path)
    assert out["action"] == "continue", _reasons(out)
    assert out["ingest"].quarantined == n_null and out["ingest"].quarantine_reasons == {"missing_field": n_null}
    assert out["ingest"].read == len(day) and out["published"]["inserted"] > 1000
    with hist_engine.connect() as conn:
        q = conn.execute(select(func.count()).select_from(quarantine).where(
            quarantine.c.run_id == out["ingest"].run_id, quarantine.c.field == "ticket_id")).scalar_one()
    assert q == n_null


def test_a_halted_run_says_why_in_the_run_log_and_the_page(hist_engine, ref, tmp_path):
    day = clean_day()
    day["受理时间"] = day["受理时间"] + pd.Timedelta(hours=8)
    out = run_gate(hist_engine, ref, Frames(day), tmp_path)
    v = out["batch"]
    assert v.action == "halt"
    page = v.docs_path.read_text(encoding="utf-8")
    assert "暂停 halt" in page and "受理时间在本次数据区间" in page and "样例" in page
    with hist_engine.connect() as conn:
        row = conn.execute(select(dq_verdicts).where(dq_verdicts.c.run_id == v.run_id)).mappings().one()
        log = conn.execute(select(pipeline_runs.c.status, pipeline_runs.c.message).where(
            pipeline_runs.c.stage == "dq_tickets_batch")).all()
    assert row["action"] == "halt" and not row["success"]
    assert any(status == "halted" and "暂停阈值" in (msg or "") for status, msg in log)


def test_unmasked_pii_in_a_staged_row_is_quarantined(hist_engine, ref, tmp_path):
    """Belt and braces: if a source ever slipped a phone number past the masking, the gate stops it."""
    day = clean_day().head(50)
    s = ingest(hist_engine, Frames(day), _mapper(ref), logical_date=DAY, publish=False)
    with hist_engine.begin() as conn:
        tid = conn.execute(select(staged_tickets.c.ticket_id).where(staged_tickets.c.ingest_run_id == s.run_id)
                           .limit(1)).scalar_one()
        conn.execute(staged_tickets.update().where(staged_tickets.c.ticket_id == tid).values(content="回电13800138000"))
    v = gate.validate_staged(hist_engine, ref, tmp_path, s.run_id, DAY, 7)
    assert "pii_masked" in {o.check for o in v.failed} and v.quarantined == 1
    with hist_engine.connect() as conn:
        raw = conn.execute(select(quarantine.c.raw).where(quarantine.c.ticket_id == tid)).scalar_one()
    assert "13800138000" not in raw


def test_the_page_of_a_broken_batch_shows_its_failures_offline(hist_engine, ref, tmp_path):
    day = clean_day()
    day = day[day["区划代码"] != "440106"].reset_index(drop=True)  # 天河区 silent
    day.loc[:3, "诉求内容"] = "锟斤拷锟斤拷"
    out = run_gate(hist_engine, ref, Frames(day), tmp_path)
    batch_page = out["batch"].docs_path.read_text(encoding="utf-8")
    feed_page = out["feed"].docs_path.read_text(encoding="utf-8")
    assert '<meta charset="utf-8">' in batch_page and "诉求内容无乱码" in batch_page
    bad_ids = {r["ticket_id"] for o in out["batch"].failed for r in o.unexpected_rows}
    assert len(bad_ids) == 4 and all(i in batch_page for i in bad_ids)  # sample offending rows
    assert "天河区 (440106)" in feed_page and "警告 warn" in feed_page
    for page in (batch_page, feed_page):
        assert "http://" not in page and "https://" not in page and "<script" not in page


def test_validate_command_gates_a_staged_batch(hist_engine, ref, tmp_path):
    from click.testing import CliRunner

    from hotline.cli import main

    day = clean_day()
    day["受理时间"] = day["受理时间"] + pd.Timedelta(hours=8)
    s = ingest(hist_engine, Frames(day), _mapper(ref), logical_date=DAY, publish=False)
    url = hist_engine.url.render_as_string(hide_password=False)
    r = CliRunner().invoke(main, ["validate", "--date", DAY.isoformat(), "--db", url, "--json"],
                           env={"HOTLINE_VAR_DIR": str(tmp_path)})
    assert r.exit_code == 0, r.output
    out = json.loads(r.output.strip().splitlines()[-1])
    assert set(out) >= {"success", "failed_expectations", "quarantined", "action"}
    assert out["success"] is False and out["action"] == "halt" and out["quarantined"] > 0
    assert any(f["check"] == "received_window" for f in out["failed_expectations"])
    assert s.run_id in out["docs"][0]
