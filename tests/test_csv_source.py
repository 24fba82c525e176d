"""CSV exports: encodings, unreadable files, malformed rows."""
import gzip

import pytest

from ingestion.canonical import Batch, SourceFormatError
from ingestion.sources import CsvSource

HEADER = ("unique_key,account,opendate,closedate,complaint_type,descriptor,zip,borough,city,council_dist,"
          "community_board\n")
ROWS = ("K1,NYCC01,2021-05-03,2021-05-04,Housing and Buildings,Heat/Hot Water,,Queens,,,\n"
        "K2,NYCC01,2021-05-03,,Parks,说明：公园,,Bronx,,,\n")


def _read_all(path, encoding="auto"):
    src = CsvSource(path, encoding=encoding)
    return src, [b for b in src.batches()]


def test_gbk_export_is_detected_and_read(tmp_path, mapper_factory):
    p = tmp_path / "gbk.csv"
    p.write_bytes((HEADER + ROWS).encode("gbk"))
    src, batches = _read_all(p)
    assert src.detected_encoding == "gb18030"
    out = mapper_factory("nyc_council").map(batches[0])
    assert out.good.set_index("ticket_id").loc["K2", "content"] == "说明：公园"


def test_forcing_utf8_on_a_gbk_file_quarantines_the_row_naming_line_and_column(tmp_path, mapper_factory):
    p = tmp_path / "gbk.csv"
    p.write_bytes((HEADER + ROWS).encode("gbk"))
    _, batches = _read_all(p, encoding="utf-8")
    out = mapper_factory("nyc_council").map(batches[0])
    assert out.good["ticket_id"].tolist() == ["K1"] and len(out.bad) == 1
    bad = out.bad.iloc[0]
    assert bad["reason_code"] == "bad_encoding" and bad["source_row"] == 3
    assert "line 3: column 31: byte 0xc3 is not valid UTF-8" in bad["reason"]


def test_utf8_rows_then_gbk_rows_quarantine_the_minority_never_load_it_garbled(tmp_path, mapper_factory):
    # the tester's file: UTF-8 rows with "é", then GBK rows; GB18030 decodes the UTF-8 bytes of
    # "é" as "茅" without an error, so the whole file used to load with garbled text and exit 0
    utf = HEADER + "K1,NYCC01,2021-05-03,,Parks,plaza é,,Bronx,,,\n"
    gbk = "".join(f"G{i},NYCC01,2021-05-03,,Parks,公园长椅损坏{i},,Bronx,,,\n" for i in range(3))
    p = tmp_path / "mixed.csv"
    p.write_bytes(utf.encode() + gbk.encode("gbk"))
    src, batches = _read_all(p)
    assert src.detected_encoding == "gb18030"  # the rows' majority
    out = mapper_factory("nyc_council").map(batches[0])
    assert sorted(out.good["ticket_id"]) == ["G0", "G1", "G2"]
    assert out.good["content"].str.startswith("公园长椅损坏").all()
    assert not out.good.astype(str).apply(lambda c: c.str.contains("茅")).any().any()
    bad = out.bad.iloc[0]
    assert len(out.bad) == 1 and bad["reason_code"] == "bad_encoding" and bad["source_row"] == 2
    assert "line 2: the line is UTF-8 but the file is GB18030 (GBK): the file mixes encodings" in bad["reason"]
    assert "plaza é" in bad["raw"]  # kept as it reads in its own encoding, for whoever fixes the feed


def test_a_gbk_header_over_utf8_rows_names_the_line_where_the_rows_show_it(tmp_path):
    ascii_rows = "".join(f"K{i},NYCC01,2021-05-03,,Parks,bench,,Bronx,,,\n" for i in range(10))
    p = tmp_path / "hdr.csv"
    p.write_bytes(("编号" + HEADER).encode("gbk") + ascii_rows.encode()
                  + "K10,NYCC01,2021-05-03,,Parks,公园,,Bronx,,,\n".encode())
    with pytest.raises(SourceFormatError, match=r"hdr\.csv: line 1 \(header\), column 1: byte 0xb1 is not valid UTF-8 "
                                                r"while the rows are \(first non-ASCII row at line 12\)"):
        _read_all(p)


def test_a_duplicate_header_column_is_a_clear_error_naming_both_columns(tmp_path, mapper_factory):
    p = tmp_path / "dup.csv"
    p.write_text(HEADER.replace("descriptor", "complaint_type") + ROWS, encoding="utf-8")
    with pytest.raises(SourceFormatError, match=r"dup\.csv: line 1 \(header\): column 'complaint_type' appears twice "
                                                r"\(columns 5 and 6\)"):
        _read_all(p)
    # a frame from any other source with a repeated column is refused by the mapper alike
    import pandas as pd
    frame = pd.DataFrame([["K1", "a", "b"]], columns=["unique_key", "descriptor", "descriptor"])
    with pytest.raises(SourceFormatError, match=r"sql\.tickets: line 1 \(header\): column\(s\) 'descriptor' appear"):
        mapper_factory("nyc_council").map(Batch(frame, "sql.tickets"))


def test_gzip_files_are_read_transparently(tmp_path):
    p = tmp_path / "x.csv.gz"
    p.write_bytes(gzip.compress((HEADER + ROWS).encode()))
    _, batches = _read_all(p)
    assert len(batches[0].frame) == 2


def test_a_row_with_the_wrong_number_of_fields_is_quarantined_with_its_line(tmp_path, mapper_factory):
    p = tmp_path / "x.csv"
    p.write_text(HEADER + ROWS + "K3,NYCC01,2021-05-03\n" + "K4,NYCC01,2021-05-05,,Parks,,,Bronx,,,\n",
                 encoding="utf-8")
    _, batches = _read_all(p)
    out = mapper_factory("nyc_council").map(batches[0])
    assert len(out.good) == 3 and len(out.bad) == 1
    bad = out.bad.iloc[0]
    assert bad["reason_code"] == "malformed_row" and bad["source_row"] == 4 and "3 fields" in bad["reason"]


def test_empty_and_missing_files_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(SourceFormatError, match="empty.csv: line 1: empty file"):
        _read_all(empty)
    with pytest.raises(SourceFormatError, match="nope.csv: cannot read"):
        _read_all(tmp_path / "nope.csv")


def test_renamed_column_is_reported_with_the_header(tmp_path, mapper_factory):
    p = tmp_path / "renamed.csv"
    p.write_text(HEADER.replace("opendate", "open_date") + ROWS, encoding="utf-8")
    _, batches = _read_all(p)
    with pytest.raises(SourceFormatError, match=r"renamed\.csv: line 1 \(header\): required column\(s\) 'opendate'"):
        mapper_factory("nyc_council").map(batches[0])


def test_batch_rows_are_numbered_by_file_line(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text(HEADER + ROWS, encoding="utf-8")
    src = CsvSource(p, chunk_rows=1)
    batches: list[Batch] = list(src.batches())
    assert [b.first_row for b in batches] == [2, 3]


def test_a_dry_run_of_a_csv_export_names_what_would_be_quarantined_masked_and_writes_nothing(tmp_path):
    import csv
    import json

    from click.testing import CliRunner

    from hotline.cli import main

    export, db = tmp_path / "export.csv", tmp_path / "w.db"
    env = {"HOTLINE_CALLER_SALT": "t", "HOTLINE_DB_URL": f"sqlite:///{db}"}
    made = CliRunner().invoke(main, ["generate", "--start", "2026-01-02", "--end", "2026-01-02", "--scale", "0.0005",
                                     "--out", str(export)], env=env)
    assert made.exit_code == 0, made.output
    rows = list(csv.reader(export.open(encoding="utf-8")))
    head = rows[0]
    rows[2][head.index("受理时间")] = "yesterday 13812345678"
    rows[3][head.index("诉求内容")] = "我的电话13812345678"
    with export.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    res = CliRunner().invoke(main, ["ingest", "csv", str(export), "--mapping", "generator", "--dry-run", "--json"],
                             env=env)
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["read"], out["would_quarantine"]) == (len(rows) - 1, 1) and out["quarantine_reasons"] == {
        "bad_timestamp": 1}
    [bad] = out["first_quarantined"]
    assert bad["source_row"] == 3 and bad["field"] == "received_at" and "yesterday" in bad["reason"]
    assert "13812345678" not in res.output  # the phone number is masked in the rows and the reasons
    assert any("[手机号]" in (r["content"] or "") for r in out["first_loaded"])
    assert not db.exists()
