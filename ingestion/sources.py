"""Source adapters: each yields raw :class:`~ingestion.canonical.Batch` frames for a mapping.

- :class:`CsvSource`: a CSV export (plain or .gz), UTF-8 or GBK/GB18030 (detected or named).
- :class:`SqlSource`: a ticket table in any SQLAlchemy-reachable database, read incrementally
  by its change-stamp column over a window.
- :class:`GeneratorSource`: the realistic province generator, as a ticket system seen at a time.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from sqlalchemy import MetaData, Table, create_engine, select

from ingestion.canonical import Batch, SourceFormatError

CHUNK_ROWS = 100_000
ENCODINGS_TRIED = ("utf-8-sig", "gb18030")


def _position(data: bytes, offset: int) -> tuple[int, int]:
    """1-based line and column of a byte offset."""
    line = data.count(b"\n", 0, offset) + 1
    col = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return line, col


def decode_csv_bytes(data: bytes, path: str, encoding: str = "auto") -> tuple[str, str]:
    """Decode a CSV file's bytes; ``auto`` tries UTF-8 then GB18030 (a superset of GBK).

    Raises :class:`SourceFormatError` naming the file, line and column of the first byte that
    does not decode.
    """
    tried = ENCODINGS_TRIED if encoding == "auto" else (encoding,)
    first_error: UnicodeDecodeError | None = None
    for enc in tried:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError as exc:
            first_error = first_error or exc
        except LookupError:
            raise SourceFormatError(f"{path}: unknown encoding {encoding!r}") from None
    assert first_error is not None
    line, col = _position(data, first_error.start)
    raise SourceFormatError(
        f"{path}: line {line}, column {col}: byte 0x{data[first_error.start]:02x} is not valid "
        f"{' or '.join(tried)}; pass --encoding (e.g. gb18030 for GBK exports)")


class CsvSource:
    def __init__(self, path: str | Path, encoding: str = "auto", chunk_rows: int = CHUNK_ROWS):
        self.path = Path(path)
        self.encoding = encoding
        self.chunk_rows = chunk_rows
        self.detected_encoding: str | None = None
        self.malformed: list[tuple[int, str]] = []  # (line, reason) of rows with a wrong field count

    def batches(self) -> Iterator[Batch]:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise SourceFormatError(f"{self.path}: cannot read: {exc.strerror}") from None
        if raw[:2] == b"\x1f\x8b":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise SourceFormatError(f"{self.path}: corrupt gzip data: {exc}") from None
        text, self.detected_encoding = decode_csv_bytes(raw, str(self.path), self.encoding)
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            raise SourceFormatError(f"{self.path}: line 1: empty file, no header") from None
        except csv.Error as exc:
            raise SourceFormatError(f"{self.path}: line 1: {exc}") from None
        header = [h.strip() for h in header]
        width = len(header)
        rows: list[list[str]] = []
        lines: list[int] = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise SourceFormatError(f"{self.path}: line {reader.line_num}: {exc}") from None
            if not row:
                continue  # a blank line is not a record
            if len(row) != width:
                # kept as a record so it can be quarantined with its line number
                row = (row + [""] * width)[:width] + [f"{len(row)} fields, header has {width}"]
            else:
                row = row + [""]
            rows.append(row)
            lines.append(reader.line_num)
            if len(rows) >= self.chunk_rows:
                yield self._batch(header, rows, lines)
                rows, lines = [], []
        if rows:
            yield self._batch(header, rows, lines)

    def _batch(self, header: list[str], rows: list[list[str]], lines: list[int]) -> Batch:
        frame = pd.DataFrame(rows, columns=header + ["__malformed__"], dtype="object")
        frame["__line__"] = lines
        return Batch(frame, str(self.path), lines[0])


class SqlSource:
    """Rows of a source table changed in [since, until), by the mapping's change-stamp column."""

    def __init__(self, url: str, table: str, stamp_column: str, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, schema: str | None = None, chunk_rows: int = CHUNK_ROWS):
        self.url, self.table_name, self.stamp_column = url, table, stamp_column
        self.since, self.until, self.schema, self.chunk_rows = since, until, schema, chunk_rows

    def batches(self) -> Iterator[Batch]:
        engine = create_engine(self.url)
        try:
            table = Table(self.table_name, MetaData(), autoload_with=engine, schema=self.schema)
        except Exception as exc:  # noqa: BLE001 - reflection errors differ by driver
            raise SourceFormatError(f"{self.url.split('@')[-1]}: table {self.table_name!r}: {exc}") from None
        if self.stamp_column not in table.c:
            raise SourceFormatError(f"table {self.table_name!r}: change-stamp column {self.stamp_column!r} missing; "
                                    f"columns: {', '.join(table.c.keys())}")
        stamp = table.c[self.stamp_column]
        q = select(table)
        if self.since is not None:
            q = q.where(stamp >= self.since)
        if self.until is not None:
            q = q.where(stamp < self.until)
        q = q.order_by(stamp)
        row_no = 1
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(q)
                cols = list(result.keys())
                for part in result.partitions(self.chunk_rows):
                    frame = pd.DataFrame([tuple(r) for r in part], columns=cols)
                    for c in frame.columns:
                        if frame[c].map(lambda v: isinstance(v, dt.datetime)).any():
                            frame[c] = pd.to_datetime(frame[c], utc=True) if frame[c].map(
                                lambda v: getattr(v, "tzinfo", None) is not None).any() else pd.to_datetime(frame[c])
                    yield Batch(frame, f"{engine.url.database}.{self.table_name}", row_no)
                    row_no += len(frame)
        finally:
            engine.dispose()


class GeneratorSource:
    """The generator as a live ticket system: rows as they stood at ``as_of``."""

    def __init__(self, generator, start: dt.date, end: dt.date, as_of: dt.datetime | None = None,
                 updated_since: dt.datetime | None = None):
        self.generator, self.start, self.end = generator, start, end
        self.as_of, self.updated_since = as_of, updated_since

    def batches(self) -> Iterator[Batch]:
        row_no = 1
        for frame in self.generator.tickets(self.start, self.end, as_of=self.as_of, updated_since=self.updated_since):
            yield Batch(frame, f"generator:{self.generator.province_code}", row_no)
            row_no += len(frame)
