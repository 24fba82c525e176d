"""The `hotline` command line: help everywhere, JSON last lines, generate -> ingest round trip."""
import datetime as dt
import json

import pytest
from click.testing import CliRunner

from hotline.cli import main


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield prefix + (name,)
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, prefix + (name,))


@pytest.mark.parametrize("path", list(_commands(main)), ids=lambda p: " ".join(p))
def test_every_command_has_help(path):
    res = CliRunner().invoke(main, [*path, "--help"])
    assert res.exit_code == 0 and "Usage:" in res.output and len(res.output.splitlines()) > 3


def test_generate_then_ingest_round_trip(tmp_path):
    out, labels, db = tmp_path / "export.csv.gz", tmp_path / "labels.csv", f"sqlite:///{tmp_path / 'w.db'}"
    r = CliRunner().invoke(main, ["generate", "--start", "2024-03-01", "--end", "2024-03-03", "--scale", "0.002",
                                  "--out", str(out), "--labels", str(labels), "--json"])
    assert r.exit_code == 0, r.output
    gen = json.loads(r.output.strip().splitlines()[-1])
    assert gen["tickets"] > 0 and labels.exists()
    r = CliRunner().invoke(main, ["ingest", "csv", str(out), "--mapping", "generator", "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output.strip().splitlines()[-1])
    assert s["read"] == gen["tickets"] == s["loaded"] + s["quarantined"] and s["days_aggregated"] >= 3


def test_gbk_export_round_trip(tmp_path):
    out, db = tmp_path / "gbk.csv", f"sqlite:///{tmp_path / 'w.db'}"
    r = CliRunner().invoke(main, ["generate", "--start", "2024-03-01", "--end", "2024-03-01", "--scale", "0.002",
                                  "--out", str(out), "--encoding", "gb18030"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["ingest", "csv", str(out), "--mapping", "generator", "--db", db, "--json"])
    s = json.loads(r.output.strip().splitlines()[-1])
    assert s["encoding"] == "gb18030" and s["quarantined"] == 0 and s["loaded"] > 0


def test_unreadable_file_exits_2_with_the_file_line_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_bytes("工单编号,受理时间\n".encode("gbk") + b"\xff\xfe\xfd,x\n")
    r = CliRunner().invoke(main, ["ingest", "csv", str(bad), "--mapping", "generator", "--encoding", "utf-8",
                                  "--db", f"sqlite:///{tmp_path / 'w.db'}"])
    assert r.exit_code == 2 and "bad.csv: line 1 (header), column 1: byte 0xb9 is not valid UTF-8" in r.output


def test_unknown_mapping_lists_the_known_ones(tmp_path):
    r = CliRunner().invoke(main, ["ingest", "csv", str(tmp_path / "x.csv"), "--mapping", "nope"])
    assert r.exit_code == 2 and "nyc_council" in r.output


def test_daily_generator_ingest_and_summary(tmp_path):
    db = f"sqlite:///{tmp_path / 'w.db'}"
    r = CliRunner().invoke(main, ["ingest", "generator", "--date", "2024-05-08", "--scale", "0.002",
                                  "--db", db, "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output.strip().splitlines()[-1])
    assert s["loaded"] > 0
    r = CliRunner().invoke(main, ["summary", "--date", "2024-05-08", "--db", db, "--json"])
    rep = json.loads(r.output.strip().splitlines()[-1])
    assert rep["day"]["tickets"] > 0 and rep["day"]["read"] == s["read"] and rep["tickets"] == s["loaded"]
    assert dt.date.fromisoformat(rep["last_day"]) == dt.date(2024, 5, 8)
