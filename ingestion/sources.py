"""Source adapters: each yields raw :class:`~ingestion.canonical.Batch` frames for a mapping.

- :class:`CsvSource`: a CSV export (plain or .gz), UTF-8 or GBK/GB18030 (detected or named).
- :class:`SqlSource`: a ticket table in any SQLAlchemy-reachable database, read incrementally
  by its change-stamp column over a window.
- :class:`GeneratorSource`: the realistic province generator, as a ticket system seen at a time.
"""
from __future__ import annotations

import collections
import csv
import datetime as dt
import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import MetaData, Table, create_engine, select

from ingestion.canonical import Batch, SourceFormatError

CHUNK_ROWS = 100_000
FIELD_SIZE_LIMIT = 64 * 1024 * 1024


def _kind(line: bytes) -> str:
    """What one line of bytes decodes as: ascii, utf-8, gb18030 or neither."""
    if line.isascii():
        return "ascii"
    for enc in ("utf-8", "gb18030"):
        try:
            line.decode(enc)
            return enc
        except UnicodeDecodeError:
            pass
    return "neither"


def _bad_byte(line: bytes, enc: str) -> str:
    """"column C: byte 0xNN" of the first byte of a line that does not decode."""
    try:
        line.decode(enc)
    except UnicodeDecodeError as exc:
        return f"column {exc.start + 1}: byte 0x{line[exc.start]:02x}"
    return "?"


def decode_csv_lines(data: bytes, path: str, encoding: str = "auto") -> tuple[str, str, dict[int, str]]:
    """Decode a CSV file's bytes line by line: (text, the file's encoding, {line: why} for the
    lines that are not valid in it).

    The file's encoding is UTF-8 when it all decodes so; otherwise each line is tried alone. A
    file whose non-ASCII lines are all GB18030 is GB18030; when both kinds occur (a UTF-8 export
    with GBK rows appended), the rows' majority decides, and every line in the other encoding is
    reported instead of being loaded garbled (GB18030 decodes UTF-8 bytes without an error:
    "é" would load as "茅"). A header that is not valid in the file's encoding is an error naming
    the first line of the other kind. An explicit ``encoding`` is the file's; lines not valid in
    it are reported.
    """
    if encoding != "auto":
        try:
            "".encode(encoding)
        except LookupError:
            raise SourceFormatError(f"{path}: unknown encoding {encoding!r}") from None
        try:
            return data.decode(encoding), encoding, {}
        except UnicodeDecodeError:
            pass
    else:
        try:
            return data.decode("utf-8-sig"), "utf-8-sig", {}
        except UnicodeDecodeError:
            pass
    lines = data.split(b"\n")
    if lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    kinds = [_kind(ln) for ln in lines]
    if encoding == "auto":
        rows = collections.Counter(k for k in kinds[1:] if k in ("utf-8", "gb18030"))
        if rows:
            enc = max(("utf-8", "gb18030"), key=lambda e: (rows[e], e == kinds[0]))
        else:
            enc = kinds[0] if kinds[0] in ("utf-8", "gb18030") else "utf-8"
    else:
        enc = encoding

    def valid(i: int) -> bool:
        if kinds[i] == "ascii" or kinds[i] == enc:
            return True
        if encoding == "auto":  # a non-ASCII line valid as UTF-8 is UTF-8, even if GB18030 reads it too
            return False
        try:
            lines[i].decode(enc)
            return True
        except UnicodeDecodeError:
            return False

    def name(e: str) -> str:
        return "UTF-8" if e.startswith("utf-8") else "GB18030 (GBK)" if e == "gb18030" else e.upper()

    label = name(enc)

    def why(i: int) -> str:
        k, where = kinds[i], _bad_byte(lines[i], enc)
        mixed = k in ("utf-8", "gb18030") and k != enc
        if where == "?":  # GB18030 reads it, but it is UTF-8
            return f"the line is {name(k)} but the file is {label}: the file mixes encodings"
        return (f"{where} is not valid {label}, the file's encoding"
                + (f"; the line is {name(k)}: the file mixes encodings" if mixed else ""))

    if not valid(0):
        first_other = next((i for i in range(1, len(lines)) if kinds[i] not in ("ascii", "neither") and valid(i)), None)
        where = f" while the rows are (first non-ASCII row at line {first_other + 1})" if first_other else ""
        raise SourceFormatError(
            f"{path}: line 1 (header), {_bad_byte(lines[0], enc)} is not valid {label}{where}"
            f"{'; the header is ' + name(kinds[0]) if kinds[0] in ('utf-8', 'gb18030') else ''}: "
            f"re-export the file in one encoding, or pass --encoding")
    bad: dict[int, str] = {}
    out = []
    for i, ln in enumerate(lines):
        if valid(i):
            out.append(ln.decode(enc))
        else:
            bad[i + 1] = why(i)  # kept for quarantine as it reads in its own encoding, never loaded
            out.append(ln.decode(kinds[i] if kinds[i] in ("utf-8", "gb18030") else enc, errors="replace"))
    return "\n".join(out), enc, bad


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
        text, self.detected_encoding, bad_lines = decode_csv_lines(raw, str(self.path), self.encoding)
        # a field may be long (a pasted document in the content); the default limit of 128 KiB would
        # stop the whole file at one such row
        csv.field_size_limit(max(csv.field_size_limit(), FIELD_SIZE_LIMIT))
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = next(reader)
        except StopIteration:
            raise SourceFormatError(f"{self.path}: line 1: empty file, no header") from None
        except csv.Error as exc:
            raise SourceFormatError(f"{self.path}: line 1: {exc}") from None
        header = [h.strip() for h in header]
        seen: dict[str, int] = {}
        for pos, h in enumerate(header, 1):
            if h in seen:
                raise SourceFormatError(f"{self.path}: line 1 (header): column {h!r} appears twice (columns "
                                        f"{seen[h]} and {pos}); rename or drop one and re-export")
            seen[h] = pos
        width = len(header)
        rows: list[list[str]] = []
        lines: list[int] = []
        encoding_notes: list[str] = []
        last_line = reader.line_num
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
            if bad_lines:  # a record spans the lines after the previous one, up to this one
                span = [ln for ln in range(last_line + 1, reader.line_num + 1) if ln in bad_lines]
                encoding_notes.append("; ".join(f"line {ln}: {bad_lines[ln]}" for ln in span))
            last_line = reader.line_num
            rows.append(row)
            lines.append(reader.line_num)
            if len(rows) >= self.chunk_rows:
                yield self._batch(header, rows, lines, encoding_notes)
                rows, lines, encoding_notes = [], [], []
        if rows:
            yield self._batch(header, rows, lines, encoding_notes)

    def _batch(self, header: list[str], rows: list[list[str]], lines: list[int], encoding_notes: list[str]) -> Batch:
        frame = pd.DataFrame(rows, columns=header + ["__malformed__"], dtype="object")
        if encoding_notes:  # rows with bytes not valid in the file's encoding: quarantined, not loaded garbled
            frame["__encoding__"] = encoding_notes
        frame["__line__"] = lines
        return Batch(frame, str(self.path), lines[0])


def window_query(table: Any, stamp: Any, since: Any, until: Any) -> Any:
    """The rows of ``table`` changed in [since, until) by their change stamp, oldest first: the one
    statement a SQL source sends (tests/test_domestic_dialects.py compiles it on each dialect)."""
    q = select(table)
    if since is not None:
        q = q.where(stamp >= since)
    if until is not None:
        q = q.where(stamp < until)
    return q.order_by(stamp)


class SqlSource:
    """Rows of a source table changed in [since, until), by the mapping's change-stamp column."""

    def __init__(self, url: str, table: str, stamp_column: str, since: dt.datetime | None = None,
                 until: dt.datetime | None = None, schema: str | None = None, chunk_rows: int = CHUNK_ROWS,
                 tz: str | None = None):
        self.url, self.table_name, self.stamp_column = url, table, stamp_column
        self.since, self.until, self.schema, self.chunk_rows = since, until, schema, chunk_rows
        self.tz = tz  # the zone of a stamp column without one (DATETIME in local time, as most systems keep it)

    def _bound(self, t: dt.datetime | None, naive_column: bool) -> dt.datetime | None:
        """A window bound as the column compares it: local wall time for a column without a zone
        (an aware bound would be cast in the server session's zone, hours off)."""
        if t is None or not naive_column or t.tzinfo is None or self.tz is None:
            return t
        import zoneinfo

        return t.astimezone(zoneinfo.ZoneInfo(self.tz)).replace(tzinfo=None)

    def batches(self) -> Iterator[Batch]:
        from ingestion.dialects import register

        register()  # 达梦, 人大金仓, openGauss by name, where their extras are installed
        engine = create_engine(self.url)
        try:
            table = Table(self.table_name, MetaData(), autoload_with=engine, schema=self.schema)
        except Exception as exc:  # noqa: BLE001 - reflection errors differ by driver
            raise SourceFormatError(f"{self.url.split('@')[-1]}: table {self.table_name!r}: "
                                    f"{str(exc).replace(self.url, self.url.split('@')[-1])}") from None
        if self.stamp_column not in table.c:
            raise SourceFormatError(f"table {self.table_name!r}: change-stamp column {self.stamp_column!r} missing; "
                                    f"columns: {', '.join(table.c.keys())}")
        stamp = table.c[self.stamp_column]
        naive = not getattr(stamp.type, "timezone", False)
        since, until = self._bound(self.since, naive), self._bound(self.until, naive)
        q = window_query(table, stamp, since, until)
        row_no = 1
        try:
            with engine.connect() as conn:
                result = conn.execution_options(stream_results=True).execute(q)
                cols = list(result.keys())
                for part in result.partitions(self.chunk_rows):
                    frame = pd.DataFrame([tuple(r) for r in part], columns=cols)
                    for c in frame.columns:
                        stamps = frame[c].map(lambda v: isinstance(v, dt.datetime) and not pd.isna(v))
                        if stamps.any():
                            aware = frame[c].map(lambda v: getattr(v, "tzinfo", None) is not None)
                            if aware[stamps].all():
                                frame[c] = pd.to_datetime(frame[c], utc=True)
                            elif aware.any():  # naive beside aware: the mapper reads naive in the region's zone
                                frame[c] = frame[c].map(lambda v: v.isoformat() if isinstance(v, dt.datetime)
                                                        and not pd.isna(v) else None if pd.isna(v) else v)
                            else:
                                frame[c] = pd.to_datetime(frame[c])
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
