"""CSV exports: encodings, unreadable files, malformed rows."""
import gzip

import pytest

from ingestion.canonical import Batch, SourceFormatError
from ingestion.sources import CsvSource

HEADER = "unique_key,account,opendate,closedate,complaint_type,descriptor,zip,borough,city,council_dist,community_board\n"
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


def test_forcing_utf8_on_a_gbk_file_names_file_line_and_column(tmp_path):
    p = tmp_path / "gbk.csv"
    p.write_bytes((HEADER + ROWS).encode("gbk"))
    with pytest.raises(SourceFormatError, match=r"gbk\.csv: line 3, column 31: byte 0xc3 is not valid utf-8"):
        _read_all(p, encoding="utf-8")


def test_gzip_files_are_read_transparently(tmp_path):
    p = tmp_path / "x.csv.gz"
    p.write_bytes(gzip.compress((HEADER + ROWS).encode()))
    _, batches = _read_all(p)
    assert len(batches[0].frame) == 2


def test_a_row_with_the_wrong_number_of_fields_is_quarantined_with_its_line(tmp_path, mapper_factory):
    p = tmp_path / "x.csv"
    p.write_text(HEADER + ROWS + "K3,NYCC01,2021-05-03\n" + "K4,NYCC01,2021-05-05,,Parks,,,Bronx,,,\n", encoding="utf-8")
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
