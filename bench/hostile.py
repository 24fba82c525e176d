"""The hostile-but-honest tester's inputs, replayed: what held, as figures for docs/BENCHMARKS.md.

    .venv/bin/python -m bench.hostile [--pg postgresql+psycopg2://postgres@127.0.0.1:5432/test]

1. Bad inputs: each case is a 20-row export of generated tickets with one thing broken (or a
   whole file broken), ingested on SQLite and on PostgreSQL. A row-level case holds when the
   ingest finishes, read = loaded + quarantined, the clean rows load and the broken row is
   quarantined with the expected reason (or loads correctly, where it is valid). A file-level
   case holds when it stops with a clear error naming the file and the line.
2. PII: each written form of a phone, ID, card, e-mail, QQ, WeChat id, plate or name, masked by
   hotline.core.pii.mask_text; it holds when none of the original digits (or the name) survives.
3. Concurrent runs: four processes publish the same day at once (each its own staged batch),
   then counts are checked for duplicates against one run's aggregation.

Prints one Markdown table per part. Uses a temporary database on the PostgreSQL server (dropped).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gzip
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pandas as pd

from hotline.core.config import DEFAULT_PROVINCE

PROVINCE = DEFAULT_PROVINCE  # the demo's province (Guangdong): the benchmarks' data

DAY = dt.date(2024, 5, 8)


def _rows() -> pd.DataFrame:
    from generator.province import ProvinceGenerator

    f = next(ProvinceGenerator(PROVINCE, seed=7, scale=0.002).tickets(DAY, DAY)).head(20).reset_index(drop=True)
    for c in ("受理时间", "办理时限", "办结时间", "更新时间"):
        f[c] = f[c].map(lambda v: "" if pd.isna(v) else v.isoformat())
    return f.astype("object")


def _set(col, value, row=3):
    def edit(f):
        f.loc[row, col] = value
        return f
    return edit


def _csv_bytes(f: pd.DataFrame, enc="utf-8") -> bytes:
    return f.to_csv(index=False).encode(enc)


# (name, how the frame is broken, how it is written, expected: ("row", code or None) or ("file", text))
ROW_CASES = [
    ("10,000-character department", _set("承办单位", "某" * 10_000), "too_long"),
    ("70-character ticket id", _set("工单编号", "X" * 70), "too_long"),
    ("NUL byte in the content", _set("诉求内容", "噪音\x00扰民"), "control_char"),
    ("NUL byte in the ticket id", _set("工单编号", "44202405080000003\x00"), "control_char"),
    ("BEL control byte in the department", _set("承办单位", "城管\x07局"), "control_char"),
    ("unparseable timestamp", _set("受理时间", "2024-13-45 25:00"), "bad_timestamp"),
    ("year 0000 timestamp", _set("受理时间", "0000-00-00 00:00:00"), "bad_timestamp"),
    ("year 9999 timestamp (future)", _set("受理时间", "9999-01-01T00:00:00+08:00"), "future_date"),
    ("closed before received", _set("办结时间", "2024-01-01T00:00:00+08:00"), "closed_before_received"),
    ("unknown district code", _set("区划代码", "449999"), "unknown_region"),
    ("district code of 5,000 characters", _set("区划代码", "4" * 5000), "unknown_region"),
    ("channel not in the mapping, with a phone in it", _set("受理渠道", "回电13812345678"), "bad_enum"),
    ("empty ticket id", _set("工单编号", ""), "missing_field"),
    ("whitespace-only ticket id", _set("工单编号", "   "), "missing_field"),
    ("same ticket id twice",
     lambda f: f.assign(**{"工单编号": f["工单编号"].where(f.index != 4, f.loc[3, "工单编号"])}),
     "duplicate_id"),
    ("naive timestamp among +08:00 ones", lambda f: _set("受理时间", f.loc[3, "受理时间"][:19])(f), None),
    ("SQL injection text in the content", _set("诉求内容", "'); DROP TABLE tickets; --"), None),
    ("HTML and a Markdown link in the content",
     _set("诉求内容", "<script>alert(1)</script>[点我](http://evil.example/x)"), None),
    ("emoji and 4-byte characters in the content", _set("诉求内容", "路灯不亮😡𠀀"), None),
    ("line breaks and quotes inside the content", _set("诉求内容", '第一行\n第二行 "引号", 逗号'), None),
    ("1 MB of content", _set("诉求内容", "很长" * 500_000), None),
]


def _raw_cases(clean: pd.DataFrame) -> list[tuple[str, bytes, str]]:
    """(name, file bytes, expected) for cases built at the byte level."""
    body = _csv_bytes(clean)
    lines = body.split(b"\n")
    short = b"\n".join(lines[:4] + [lines[4].split(b",")[0] + b",2024"] + lines[5:])
    extra = b"\n".join(lines[:4] + [lines[4] + b",x,y"] + lines[5:])
    utf_in_gbk = clean.to_csv(index=False).encode("gbk", errors="replace").split(b"\n")
    utf_in_gbk[4] = lines[4]  # one UTF-8 row among GBK rows
    gbk_in_utf = list(lines)
    gbk_in_utf[4] = clean.iloc[[3]].to_csv(index=False, header=False).strip().encode("gbk")
    header, rest = body.split(b"\n", 1)
    return [
        ("row with too few fields", short, "row:malformed_row"),
        ("row with too many fields", extra, "row:malformed_row"),
        ("one UTF-8 row among GBK rows", b"\n".join(utf_in_gbk), "row:bad_encoding"),
        ("one GBK row among UTF-8 rows", b"\n".join(gbk_in_utf), "row:bad_encoding"),
        ("BOM and CRLF line endings", b"\xef\xbb\xbf" + body.replace(b"\n", b"\r\n"), "row:"),
        ("duplicate header column", header.replace("诉求内容".encode(), "问题分类".encode()) + b"\n" + rest,
         "file:appears twice"),
        ("GBK header over UTF-8 rows", header.decode().encode("gbk") + b"\n" + rest, "file:line 1 (header)"),
        ("empty file", b"", "file:empty file"),
        ("header only", header + b"\n", "row:"),
        ("truncated gzip", gzip.compress(body)[:200], "file:corrupt gzip"),
    ]


def _engine(kind: str, pg_url: str, tmp: Path):
    from sqlalchemy import create_engine, text

    from warehouse.db import connect, migrate

    if kind == "sqlite":
        eng = connect(f"sqlite:///{tmp / f'{uuid.uuid4().hex[:6]}.db'}")
    else:
        name = f"hotline_hostile_{uuid.uuid4().hex[:8]}"
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        eng = connect(pg_url.rsplit("/", 1)[0] + "/" + name)
    migrate(eng)
    return eng


def _drop(eng, pg_url: str) -> None:
    from sqlalchemy import create_engine, text

    name = eng.url.database
    eng.dispose()
    if eng.dialect.name == "postgresql":
        admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _mapper():
    from hotline.core.reference import load_mapping, load_reference
    from ingestion.canonical import TicketMapper

    return TicketMapper(load_mapping("generator"), load_reference(), "bench-salt",
                        now=dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc))


def bad_inputs(pg_url: str) -> list[str]:
    from sqlalchemy import func, select

    from ingestion.canonical import SourceFormatError
    from ingestion.pipeline import ingest
    from ingestion.sources import CsvSource
    from warehouse.schema import quarantine, tickets

    clean = _rows()
    cases = [(n, _csv_bytes(edit(clean.copy())), f"row:{code or ''}") for n, edit, code in ROW_CASES]
    cases += _raw_cases(clean)
    out = ["| case | SQLite | PostgreSQL |", "|---|---|---|"]
    held = {"sqlite": 0, "postgresql": 0}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, data, expect in cases:
            cells = []
            for kind in ("sqlite", "postgresql"):
                eng = _engine(kind, pg_url, tmp)
                path = tmp / ("x.csv.gz" if expect == "file:corrupt gzip" else "x.csv")
                path.write_bytes(data)
                try:
                    s = ingest(eng, CsvSource(path), _mapper())
                    with eng.connect() as c:
                        codes = sorted(set(c.execute(select(quarantine.c.reason_code)).scalars()))
                        n = c.execute(select(func.count()).select_from(tickets)).scalar_one()
                    what, code = expect.split(":", 1)
                    ok = (what == "row" and s.read == s.loaded + s.quarantined and n == s.loaded
                          and (codes == [code] if code else s.quarantined == 0))
                    cell = (f"{s.loaded} loaded, {s.quarantined} quarantined"
                            f"{' (' + ', '.join(codes) + ')' if codes else ''}")
                except SourceFormatError as exc:
                    what, text_ = expect.split(":", 1)
                    ok = what == "file" and text_ in str(exc) and str(path) in str(exc)
                    cell = "clear error: " + re.sub(r"\s+", " ", str(exc).replace(str(path), "x.csv"))[:90]
                except Exception as exc:  # noqa: BLE001 - a crash is what this looks for
                    ok, cell = False, f"CRASH {type(exc).__name__}: {str(exc)[:80]}"
                held[kind] += ok
                cells.append(("held: " if ok else "**FAILED**: ") + cell.replace("|", "\\|"))
                _drop(eng, pg_url)
            out.append(f"| {name} | {cells[0]} | {cells[1]} |")
    out.append(f"\nHeld: SQLite {held['sqlite']} of {len(cases)}, PostgreSQL {held['postgresql']} of {len(cases)}.")
    return out


PII_CASES = [
    ("mobile", "13812345678", "回电13812345678谢谢"),
    ("mobile, dots", "13812345678", "电话138.1234.5678"),
    ("mobile, spaces", "13812345678", "手机 138 1234 5678 找我"),
    ("mobile, dashes", "13812345678", "138-1234-5678"),
    ("mobile, +86", "13812345678", "+86 138 1234 5678"),
    ("mobile, full-width digits", "13812345678", "电话１３８１２３４５６７８"),
    ("ID number", "44010619900101123X", "身份证44010619900101123X"),
    ("ID number, spaces", "44010619900101123X", "身份证 440106 19900101 123X"),
    ("ID number, 15 digits", "440106900101123", "老身份证440106900101123"),
    ("landline, (020)", "02012345678", "座机(020)12345678"),
    ("landline, full-width brackets", "02012345678", "座机（020）12345678"),
    ("landline, spaces", "02012345678", "电话020 1234 5678"),
    ("landline, dash", "075587654321", "0755-8765 4321"),
    ("landline, bare after a cue", "87654321", "联系电话87654321"),
    ("e-mail", "zhang.san@example.com", "邮箱zhang.san@example.com"),
    ("e-mail, full-width ＠", "zhangsan@qq.com", "邮箱zhangsan＠qq.com"),
    ("bank card, spaces (Luhn-valid)", "6222021234567890128", "卡号6222 0212 3456 7890 128"),
    ("bank card, dashes (Luhn-valid)", "6222021234567890128", "卡号6222-0212-3456-7890-128"),
    ("19 digits failing Luhn", "6222021234567890123", "卡号6222 0212 3456 7890 123"),
    ("QQ", "123456789", "QQ：123456789"),
    ("WeChat id", "zhang_san88", "微信号zhang_san88"),
    ("licence plate", "粤B12345", "车牌粤B12345乱停"),
    ("name after 我叫", "张三丰", "我叫张三丰，住在"),
    ("surname after 我姓", "张", "我姓张，来电反映"),
    ("name after 本人", "赵六", "本人赵六反映"),
    ("name after 联系人", "李四", "联系人：李四"),
]


def pii() -> list[str]:
    from hotline.core.pii import mask_text

    out = ["| form | written as | stored as | masked |", "|---|---|---|---|"]
    held = 0
    for name, secret, text_ in PII_CASES:
        got = mask_text(text_)
        norm = got.translate({c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)})
        gone = (re.sub(r"\D", "", secret)[-7:] not in re.sub(r"\D", "", norm) if re.search(r"\d{5}", secret)
                else secret not in norm)
        held += gone
        out.append(f"| {name} | `{text_}` | `{got}` | {'yes' if gone else '**NO**'} |")
    out.append(f"\nMasked: {held} of {len(PII_CASES)}.")
    return out


def concurrent(pg_url: str, procs: int = 4) -> list[str]:
    from sqlalchemy import func, literal, select

    from data_quality.gate import publish_and_aggregate  # noqa: F401 - imported by the children
    from generator.province import ProvinceGenerator
    from ingestion.pipeline import ingest
    from ingestion.sources import GeneratorSource
    from warehouse.aggregate import aggregate_days
    from warehouse.schema import daily_counts, staged_tickets

    out = ["| database | processes | exit codes | errors | duplicate count rows | counts equal one run's |",
           "|---|---|---|---|---|---|"]
    gen = ProvinceGenerator(PROVINCE, seed=7, scale=0.002)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for kind in ("sqlite", "postgresql"):
            eng = _engine(kind, pg_url, tmp)
            ingest(eng, GeneratorSource(gen, DAY - dt.timedelta(days=30), DAY), _mapper(), logical_date=DAY,
                   run_id="run-0", publish=False)
            cols = [c.name for c in staged_tickets.columns if c.name != "ingest_run_id"]
            with eng.begin() as c:
                for i in range(1, procs):
                    c.execute(staged_tickets.insert().from_select(cols + ["ingest_run_id"], select(
                        *[staged_tickets.c[x] for x in cols], literal(f"run-{i}")).where(
                        staged_tickets.c.ingest_run_id == "run-0")))
            url = eng.url.render_as_string(hide_password=False)
            go = tmp / f"go-{kind}"
            code = (f"import pathlib, time, datetime\nwhile not pathlib.Path({str(go)!r}).exists(): time.sleep(0.005)\n"
                    "from data_quality.gate import publish_and_aggregate\nfrom warehouse.db import connect\n"
                    f"publish_and_aggregate(connect({url!r}), 'run-' + sys.argv[1], datetime.date(2024, 5, 8))\n")
            ps = [subprocess.Popen([sys.executable, "-c", "import sys\n" + code, str(i)], stderr=subprocess.PIPE,
                                   text=True) for i in range(procs)]
            go.touch()
            rcs = [p.wait(timeout=600) for p in ps]
            errs = [re.findall(r"^([\w.]+(?:Error|Violation|Exception)\b.*)$", p.stderr.read(), re.M) for p in ps]
            keys = [daily_counts.c[k] for k in ("ds", "region_level", "region_code", "category_level", "category_code")]
            with eng.connect() as c:
                rows = sorted(c.execute(select(*keys, daily_counts.c.n_tickets)).all())
                dups = c.execute(select(func.count()).select_from(
                    select(*keys).group_by(*keys).having(func.count() > 1).subquery())).scalar_one()
            aggregate_days(eng, {r[0] for r in rows})
            with eng.connect() as c:
                again = sorted(c.execute(select(*keys, daily_counts.c.n_tickets)).all())
            n_err = sum(len(e) for e in errs)
            first = next((e[0] for e in errs if e), "")
            out.append(f"| {kind} | {procs} | {rcs} | {n_err}{': ' + first[:60] if first else ''} | {dups} | "
                       f"{'yes' if rows == again else 'NO'} |")
            _drop(eng, pg_url)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pg", default=os.environ.get("HOTLINE_TEST_PG_URL",
                                                   "postgresql+psycopg2://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--part", choices=("inputs", "pii", "concurrent", "all"), default="all")
    a = ap.parse_args(argv)
    import logging
    logging.disable(logging.WARNING)
    parts = {"inputs": lambda: bad_inputs(a.pg), "pii": pii, "concurrent": lambda: concurrent(a.pg)}
    for name, fn in parts.items():
        if a.part in (name, "all"):
            print(f"\n### {name}\n")
            print("\n".join(fn()))


if __name__ == "__main__":
    main()
