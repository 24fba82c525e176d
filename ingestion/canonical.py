"""From a source's rows to canonical tickets: map fields, mask PII, validate, split off quarantine.

The canonical ticket is the province's data standard (docs/SCHEMA.md). A mapping (YAML, see
config/mappings/) says for each canonical field where it comes from:

    {column: NAME}                      a source column, optionally with
        map: {local: canonical}         a value map (an unmapped non-empty value is an error)
        format: "%Y-%m-%d"              a timestamp format (default ISO 8601)
        optional: true                  empty values allowed
    {value: CONSTANT}                   the same for every row
    {greatest: [field, field]}          the latest of other timestamp fields (updated_at)
    {closed_if: closed_at, otherwise: processing}   status from a closure timestamp
    {from_taxonomy: true}               deadline_at from the category's deadline class

and ``category`` has its own form: ``column`` (+ ``detail_column``/``detail_map`` for
"type / detail" pairs), then ``map`` (local name -> level-2 or level-1 code), ``names: taxonomy``
("一级-二级" Chinese names) or ``codes: true`` (values are canonical codes); ``unmapped: keep``
loads an unmapped value as other.unmapped (raw value kept) instead of quarantining it.

Every row ends either in ``good`` or in ``bad`` (quarantine, with field and reason): nothing is
dropped, and ``len(good) + len(bad) == len(batch)``.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hotline.core.calendar import deadlines_for
from hotline.core.pii import caller_keys, mask_series, mask_text
from hotline.core.reference import DEFAULT_TIMEZONE, UNMAPPED, Reference
from hotline.core.tickets import (  # noqa: F401 (the vocabulary, re-exported)
    CANONICAL_COLUMNS,
    CHANNELS,
    ENUMS,
    REQUEST_TYPES,
    SATISFACTION,
    STATUSES,
    URGENCY,
    mask_reason,
)
from warehouse.schema import quarantine as _quarantine_table
from warehouse.schema import tickets as _tickets_table

TIMESTAMP_FIELDS = ("received_at", "closed_at", "deadline_at", "updated_at")
REQUIRED = ("ticket_id", "received_at")
# A clock a few minutes fast at the source is not an error; a ticket from tomorrow is.
FUTURE_TOLERANCE = pd.Timedelta(minutes=10)
# Column limits come from the warehouse schema (characters), checked before the write so that
# one over-long value quarantines its row instead of failing the batch on PostgreSQL.
LIMITS = {c.name: c.type.length for c in _tickets_table.columns
          if getattr(c.type, "length", None) and c.name in CANONICAL_COLUMNS}
_QUARANTINE_LIMITS = {c.name: c.type.length for c in _quarantine_table.columns if getattr(c.type, "length", None)}
# Control characters other than tab and line breaks: NUL cannot be stored in PostgreSQL text and
# the rest are garbage from a broken export; a row carrying one is quarantined.
CONTROL_CHARS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# Free text and name-like columns: PII is masked before anything is stored.
MASKED_COLUMNS = ("content", "department", "category_raw")
# A timestamp carrying its own offset (or Z) after the time of day.
_HAS_OFFSET = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"


def _show(v: Any, width: int = 40) -> str:
    """A source value for a quarantine reason: its repr, cut to ``width`` characters."""
    r = repr(v)
    return r if len(r) <= width else r[:width - 1] + "…"


class SourceFormatError(ValueError):
    """A batch that cannot be read at all: the message names the file, line and column."""


@dataclass
class Batch:
    """Raw source rows and where they came from."""

    frame: pd.DataFrame
    source_file: str | None = None
    first_row: int = 1  # 1-based data row number of the frame's first row


@dataclass
class MappedBatch:
    good: pd.DataFrame
    bad: pd.DataFrame
    notes: list[str] = field(default_factory=list)


QUARANTINE_COLUMNS = ["source_file", "source_row", "ticket_id", "field", "reason_code", "reason", "raw"]


def _blank(s: pd.Series) -> pd.Series:
    return _text(s).isna()


def _text(s: pd.Series) -> pd.Series:
    """Source values as stripped strings, None where empty (a plain loop beats the .str machinery
    on object columns)."""
    vals = [None if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)
            else (v.strip() or None) if isinstance(v, str) else (str(v).strip() or None)
            for v in s.tolist()]
    return pd.Series(vals, index=s.index, dtype="object")


class TicketMapper:
    """Maps raw source frames to canonical tickets under one mapping. Stateless per batch except
    for the ids already seen in this run (a duplicate in a later chunk is still a duplicate)."""

    def __init__(self, mapping: dict[str, Any], ref: Reference, caller_salt: str,
                 now: dt.datetime | None = None):
        self.mapping = mapping
        self.fields: dict[str, Any] = mapping.get("fields", {})
        self.ref = ref
        self.salt = caller_salt
        self.tz = zoneinfo.ZoneInfo(mapping.get("timezone", DEFAULT_TIMEZONE))
        self.now = pd.Timestamp(now or dt.datetime.now(dt.timezone.utc)).tz_convert("UTC")
        self.source = mapping.get("source", mapping.get("name", "unknown"))
        self.seen: dict[str, int] = {}
        self._district_city = ref.regions.district_parent()
        self._city_province = ref.regions.city_parent()
        tax = ref.taxonomy
        self._l2 = set(tax.l2_codes())
        self._l1 = set(tax.l1_codes())
        self._local_names = tax.by_local_name()
        from hotline.core.sla import SlaConfig

        self.urgent_class = SlaConfig.load(ref.config_dir).urgent_class
        if self.urgent_class not in ref.deadlines:
            raise ValueError(f"{Path(ref.config_dir) / 'sla.yaml'}: urgent_class {self.urgent_class!r} is not a class "
                             f"of deadlines.yaml ({', '.join(ref.deadlines)})")

    # ------------------------------------------------------------------ columns
    def source_columns(self) -> dict[str, bool]:
        """Source columns the mapping reads, each with whether it is required."""
        cols: dict[str, bool] = {}
        for spec in self.fields.values():
            if not isinstance(spec, dict):
                continue
            for key in ("column", "detail_column"):
                if key in spec:
                    required = key == "column" and not spec.get("optional", False)
                    cols[spec[key]] = cols.get(spec[key], False) or required
        return cols

    def check_columns(self, columns: list[str], source_file: str | None) -> list[str]:
        """Raise naming the file and the missing required columns; return notes for optional ones."""
        have = set(columns)
        where = source_file or self.source
        twice = sorted({c for c in columns if columns.count(c) > 1})
        if twice:
            raise SourceFormatError(f"{where}: line 1 (header): column(s) {', '.join(repr(c) for c in twice)} "
                                    f"appear more than once; rename or drop one and re-export")
        missing = [c for c, req in self.source_columns().items() if req and c not in have]
        if missing:
            raise SourceFormatError(
                f"{where}: line 1 (header): required column(s) {', '.join(repr(m) for m in missing)} "
                f"missing for mapping {self.mapping.get('name')!r}; the header has: {', '.join(columns)}")
        return [f"{where}: optional column {c!r} missing; its field is left empty"
                for c, req in self.source_columns().items() if not req and c not in have]

    # ------------------------------------------------------------------ mapping
    def map(self, batch: Batch) -> MappedBatch:
        raw = batch.frame.reset_index(drop=True)
        n = len(raw)
        # CSV sources carry each record's line number and a note on a wrong field count
        lines = raw.pop("__line__") if "__line__" in raw.columns else None
        malformed = raw.pop("__malformed__") if "__malformed__" in raw.columns else None
        encoding = raw.pop("__encoding__") if "__encoding__" in raw.columns else None
        notes = self.check_columns(list(raw.columns), batch.source_file)
        out = pd.DataFrame(index=raw.index)
        problems: list[tuple[pd.Series, str, str, Any]] = []

        def flag(mask: pd.Series, code: str, fld: str, msg: Any) -> None:
            """Record a problem; ``msg`` is a string, or a function of the flagged index returning
            one message per flagged row (built only for the few rows that fail)."""
            mask = mask.fillna(False).astype(bool)
            if mask.any():
                problems.append((mask, code, fld, msg(mask[mask].index) if callable(msg) else msg))

        def col(name: str) -> pd.Series:
            return raw[name] if name in raw.columns else pd.Series([None] * n, index=raw.index, dtype="object")

        if malformed is not None:
            flag(malformed.fillna("") != "", "malformed_row", "row", lambda i: "row: " + malformed[i].astype(str))
        if encoding is not None:
            flag(encoding.fillna("") != "", "bad_encoding", "row", lambda i: "row: " + encoding[i].astype(str))
        # control bytes in any column the mapping reads
        for c in self.source_columns():
            if c in raw.columns and raw[c].dtype == object:
                v = raw[c]
                hit = v.map(lambda x: isinstance(x, str)).astype(bool)
                if hit.any():
                    hit &= v.where(hit, "").astype("string").str.contains(CONTROL_CHARS, regex=True).fillna(False)
                flag(hit, "control_char", c,
                     lambda i, c=c, v=v: v[i].map(lambda x: f"column {c!r}: control character "
                                                            f"{_first_control(x)} in the value"))

        # plain fields
        for fld in ("ticket_id", "channel", "request_type", "street_code", "content", "department",
                    "urgency", "status", "satisfaction", "province_code", "city_code", "district_code",
                    "caller_phone", "is_repeat", "resolved"):
            spec = self.fields.get(fld)
            if spec is None:
                out[fld] = None
                continue
            if "value" in spec:
                out[fld] = spec["value"]
                continue
            if "closed_if" in spec:
                continue  # derived after timestamps
            keyed = _text(col(spec["column"]))
            blank = keyed.isna()
            if "map" in spec:
                m = {str(k): v for k, v in spec["map"].items()}
                mapped = keyed.map(m)
                unknown = mapped.isna() & ~blank
                flag(unknown, "bad_enum", fld,
                     lambda i, c=spec["column"], f=fld, k=keyed: k[i].map(
                         lambda v: f"{f}: value {_show(v)} in column {c!r} is not in the mapping"))
                out[fld] = mapped.astype("object").where(~blank & ~unknown, None)
            else:
                out[fld] = keyed
            if not spec.get("optional", False) and fld != "ticket_id":
                flag(blank, "missing_field", fld, f"{fld}: required column {spec['column']!r} is empty")

        # timestamps
        for fld in TIMESTAMP_FIELDS:
            spec = self.fields.get(fld)
            if spec is None or "greatest" in spec or "from_taxonomy" in spec:
                out[fld] = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
                continue
            src = col(spec["column"])
            parsed = self._parse_ts(src, spec.get("format"))
            blank = src.isna() if pd.api.types.is_datetime64_any_dtype(src) else _blank(src)
            bad = parsed.isna() & ~blank
            flag(bad, "bad_timestamp", fld,
                 lambda i, c=spec["column"], f=fld, v=src: v[i].map(
                     lambda x: f"{f}: cannot parse {_show(x)} in column {c!r} as a timestamp"))
            if not spec.get("optional", False) and fld not in REQUIRED:
                flag(blank, "missing_field", fld, f"{fld}: required column {spec['column']!r} is empty")
            out[fld] = parsed
        for fld in TIMESTAMP_FIELDS:
            spec = self.fields.get(fld) or {}
            if "greatest" in spec:
                parts = [out[p] for p in spec["greatest"]]
                g = parts[0]
                for p in parts[1:]:
                    g = g.where(g.notna() & (p.isna() | (g >= p)), p)
                out[fld] = g
        upd = self.fields.get("updated_at")
        if upd is None:  # no change stamp at the source: the latest thing that happened to the ticket
            out["updated_at"] = out["closed_at"].where(out["closed_at"].notna(), out["received_at"])

        # required fields
        flag(_blank(out["ticket_id"].astype("object")), "missing_field", "ticket_id", "ticket_id: empty id")
        flag(out["received_at"].isna() & ~problems_for(problems, "received_at", n), "missing_field",
             "received_at", "received_at: missing")

        # derived status
        st = self.fields.get("status", {})
        if "closed_if" in st:
            out["status"] = np.where(out[st["closed_if"]].notna(), "closed", st.get("otherwise", "processing"))
        elif self.fields.get("status") is None:
            out["status"] = np.where(out["closed_at"].notna(), "closed", "processing")

        # enumerations given without a map must already be canonical
        for fld, allowed in ENUMS.items():
            spec = self.fields.get(fld) or {}
            if "map" in spec:
                continue
            v = out[fld]
            badv = v.notna() & ~v.isin(allowed)
            flag(badv, "bad_enum", fld, lambda i, v=v, f=fld, a=allowed: v[i].map(
                lambda x: f"{f}: {_show(x)} is not one of {', '.join(a)}"))
        if self.fields.get("channel") is None:
            out["channel"] = "other"

        # regions: the district gives the city and the province
        self._regions(out, flag)
        # categories
        self._categories(raw, out, flag, col)

        # time sanity
        rec, clo = out["received_at"], out["closed_at"]
        flag(rec > self.now + FUTURE_TOLERANCE, "future_date", "received_at",
             lambda i: rec[i].map(lambda v: f"received_at: {v} is in the future (now {self.now:%Y-%m-%d %H:%M} UTC)"))
        flag(clo > self.now + FUTURE_TOLERANCE, "future_date", "closed_at",
             lambda i: clo[i].map(lambda v: f"closed_at: {v} is in the future"))
        flag(clo < rec, "closed_before_received", "closed_at",
             lambda i: pd.Series([f"closed_at {c} is before received_at {r}" for c, r in zip(clo[i], rec[i])], index=i))

        # deadline from the taxonomy when the source has none
        dspec = self.fields.get("deadline_at") or {}
        if dspec.get("from_taxonomy"):
            ok = out["received_at"].notna() & out["category_l2"].notna()
            if ok.any():
                classes = [self.ref.taxonomy.categories[c].deadline or "general" for c in out.loc[ok, "category_l2"]]
                local = pd.DatetimeIndex(out.loc[ok, "received_at"]).tz_convert(self.tz)
                dl = deadlines_for(local, classes, self.ref.deadlines, str(self.ref.config_dir)).tz_convert("UTC")
                # an urgent ticket (加急) gets the urgent class's deadline when that is sooner
                urgent = (out.loc[ok, "urgency"] == "urgent").to_numpy()
                if urgent.any():
                    fast = deadlines_for(local[urgent], [self.urgent_class] * int(urgent.sum()), self.ref.deadlines,
                                         str(self.ref.config_dir)).tz_convert("UTC")
                    dl = dl.to_series().reset_index(drop=True)
                    dl[urgent] = np.minimum(dl[urgent].to_numpy(), fast.to_numpy())
                    dl = pd.DatetimeIndex(dl)
                out.loc[ok, "deadline_at"] = dl

        # booleans and personal data
        out["is_repeat"] = out["is_repeat"].map(_truthy).fillna(False).astype(bool)
        out["resolved"] = out["resolved"].map(_truthy).astype("object")
        for c in MASKED_COLUMNS:
            out[c] = mask_series(out[c]).astype("object").where(out[c].notna(), None)
        out["caller_key"] = caller_keys(out.pop("caller_phone"), self.salt)
        out["source"] = self.source
        out["received_date"] = out["received_at"].dt.tz_convert(self.tz).dt.date

        # column limits of the warehouse (after masking: a masked value is what is stored)
        for c, limit in LIMITS.items():
            v = out[c]
            if v.dtype != object and not pd.api.types.is_string_dtype(v):
                continue
            length = v.map(lambda x: len(x) if isinstance(x, str) else 0)
            flag(length > limit, "too_long", c,
                 lambda i, c=c, n=length, lim=limit: n[i].map(
                     lambda k: f"{c}: {k} characters, the warehouse holds at most {lim}"))

        bad_mask = pd.Series(False, index=raw.index)
        for mask, *_ in problems:
            bad_mask |= mask
        # duplicates: within the batch keep the latest version; an id seen earlier in the run wins
        ids = out["ticket_id"].astype("object")
        cand = ~bad_mask & ids.notna()
        order = out.loc[cand].sort_values("updated_at", kind="stable").index
        later_dup = ids.loc[order].duplicated(keep="last")
        dup_in_batch = pd.Series(False, index=raw.index)
        dup_in_batch.loc[later_dup.index[later_dup.to_numpy()]] = True
        dup_in_run = cand & ~dup_in_batch & ids.map(lambda x: x in self.seen)
        rows = (lines.astype(int) if lines is not None
                else pd.Series(np.arange(batch.first_row, batch.first_row + n), index=raw.index))
        first_row = ids.map(self.seen)
        flag(dup_in_batch, "duplicate_id", "ticket_id",
             lambda i: ids[i].map(lambda v: f"ticket_id {_show(v, 70)} appears more than once in the batch; "
                                            "the latest version was kept"))
        flag(dup_in_run, "duplicate_id", "ticket_id",
             lambda i: pd.Series([f"ticket_id {_show(v, 70)} already read at row {r}"
                                  for v, r in zip(ids[i], first_row[i])], index=i))
        bad_mask |= dup_in_batch | dup_in_run
        good_ids = ids[~bad_mask]
        self.seen.update(zip(good_ids, rows[~bad_mask]))

        bad = self._quarantine(raw, out, problems, bad_mask, rows, batch.source_file)
        good = out.loc[~bad_mask, CANONICAL_COLUMNS].reset_index(drop=True)
        return MappedBatch(good, bad, notes)

    # ------------------------------------------------------------------ helpers
    def _parse_ts(self, src: pd.Series, fmt: str | None) -> pd.Series:
        """Any timestamp column to UTC, microsecond precision (what the warehouse keeps)."""
        return self._parse_ts_raw(src, fmt).dt.floor("us")

    def _parse_ts_raw(self, src: pd.Series, fmt: str | None) -> pd.Series:
        if isinstance(src.dtype, pd.DatetimeTZDtype):
            return src.dt.tz_convert("UTC")
        if pd.api.types.is_datetime64_any_dtype(src):
            return src.dt.tz_localize(self.tz, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")
        s = src.astype("string").str.strip()
        s = s.where(s != "", None)
        if fmt is None:
            # One rule for every row alike: a value with an offset (or Z) is read as such; a naive
            # value is local time in the mapping's time zone (the region's, Asia/Shanghai by
            # default), even beside values that carry an offset.
            aware = s.str.contains(_HAS_OFFSET, regex=True).fillna(False).astype(bool)
            if aware.any() and not aware[s.notna()].all():
                parts = [self._parse_part(s[aware], None), self._parse_part(s[~aware], None)]
                unit = "us" if any(p.dt.unit != "ns" for p in parts) else "ns"
                return pd.concat([p.dt.as_unit(unit) for p in parts]).reindex(s.index)
        return self._parse_part(s, fmt)

    def _parse_part(self, s: pd.Series, fmt: str | None) -> pd.Series:
        """Strings that are all naive or all carry an offset (or a custom format) to UTC."""
        try:
            parsed = pd.to_datetime(s, format=fmt or "ISO8601", errors="coerce")
        except (ValueError, TypeError):  # mixed offsets
            parsed = pd.to_datetime(s, format="mixed", errors="coerce", utc=True)
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            return parsed.dt.tz_convert("UTC")
        return parsed.dt.tz_localize(self.tz, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")

    def _regions(self, out: pd.DataFrame, flag) -> None:
        d = out["district_code"].astype("object")
        has_d = d.notna()
        known_d = d.isin(self._district_city.keys())
        flag(has_d & ~known_d, "unknown_region", "district_code",
             lambda i: d[i].map(lambda v: f"district_code: {_show(v)} is not a district in config/regions"))
        parent_city = d.map(self._district_city)
        c = out["city_code"].astype("object")
        city = c.where(c.notna(), parent_city)
        flag(c.notna() & parent_city.notna() & (c != parent_city), "unknown_region", "district_code",
             lambda i: pd.Series([f"district_code {dv} is not in city {cv}" for dv, cv in zip(d[i], c[i])], index=i))
        known_c = city.isin(self._city_province.keys())
        flag(city.notna() & ~known_c, "unknown_region", "city_code",
             lambda i: city[i].map(lambda v: f"city_code: {_show(v)} is not a city in config/regions"))
        flag(city.isna() & ~(has_d & ~known_d), "missing_field", "city_code",
             "city_code: no city or district given")
        prov = out["province_code"].astype("object")
        parent_prov = city.map(self._city_province)
        flag(prov.notna() & parent_prov.notna() & (prov != parent_prov), "unknown_region", "province_code",
             lambda i: pd.Series([f"province_code {p} does not contain city {cc}"
                                  for p, cc in zip(prov[i], city[i])], index=i))
        out["city_code"] = city
        out["province_code"] = prov.where(prov.notna(), parent_prov)

    def _categories(self, raw: pd.DataFrame, out: pd.DataFrame, flag, col) -> None:
        spec = self.fields.get("category")
        if spec is None:
            raise SourceFormatError(f"mapping {self.mapping.get('name')!r}: no 'category' field")
        main = col(spec["column"]).astype("string").str.strip().fillna("")
        raw_val = main
        code = pd.Series(pd.NA, index=raw.index, dtype="object")
        if "detail_column" in spec:
            detail = col(spec["detail_column"]).astype("string").str.strip().fillna("")
            raw_val = (main + " / " + detail).where(detail != "", main)
            if spec.get("detail_map"):
                code = raw_val.map({str(k): v for k, v in spec["detail_map"].items()}).astype("object")
        if spec.get("codes"):
            direct = main.where(main.isin(self._l2 | self._l1))
        elif spec.get("names") == "taxonomy":
            direct = main.map(self._local_names)
        else:
            direct = main.map({str(k): v for k, v in (spec.get("map") or {}).items()})
        code = code.where(code.notna(), direct.astype("object"))
        # a level-1 code stands for its "other" item
        is_l1 = code.isin(self._l1)
        code = code.where(~is_l1, code.astype("string") + ".other")
        bad_code = code.notna() & ~code.isin(self._l2)
        if bad_code.any():
            wrong = sorted(set(code[bad_code]))
            raise SourceFormatError(f"{self.mapping.get('_path', self.mapping.get('name'))}: category map points at "
                                    f"unknown taxonomy code(s) {wrong[:5]}")
        unmapped = code.isna()
        if spec.get("unmapped", "quarantine") == "keep":
            code = code.where(~unmapped, UNMAPPED)
        else:
            flag(unmapped, "unknown_category", "category",
                 lambda i, c=spec["column"]: raw_val[i].map(
                     lambda v: f"category: {_show(v)} in column {c!r} is not mapped to the taxonomy"))
        out["category_l2"] = code
        out["category_l1"] = code.map(lambda c: c.split(".")[0] if isinstance(c, str) else None)
        out["category_raw"] = raw_val.str.slice(0, 255).astype("object").where(raw_val != "", None)

    def _quarantine(self, raw, out, problems, bad_mask, rows, source_file) -> pd.DataFrame:
        if not bad_mask.any():
            return pd.DataFrame(columns=QUARANTINE_COLUMNS)
        idx = bad_mask[bad_mask].index
        reasons: dict[int, list[tuple[str, str, str]]] = {i: [] for i in idx}
        for mask, code, fld, msg in problems:
            for i in mask[mask].index:
                m = msg.loc[i] if isinstance(msg, pd.Series) else msg
                reasons[i].append((code, fld, str(m)))
        recs = []
        cols = list(raw.columns)
        # every value masked but the id column: a long ticket number is not a bank card
        id_col = (self.fields.get("ticket_id") or {}).get("column")
        for i in idx:
            first = reasons[i][0]
            rawrow = {c: (mask_text(v) if isinstance(v := jsonable(raw.at[i, c]), str) and c != id_col else v)
                      for c in cols}
            tid = out.at[i, "ticket_id"]
            recs.append({
                "source_file": _cut(source_file, _QUARANTINE_LIMITS["source_file"]),
                "source_row": int(rows.loc[i]),
                # an id the warehouse cannot hold, or one with control bytes, stays in raw only
                "ticket_id": tid if isinstance(tid, str) and len(tid) <= _QUARANTINE_LIMITS["ticket_id"]
                and not _has_control(tid) else None,
                "field": _cut(first[1], _QUARANTINE_LIMITS["field"]),
                "reason_code": first[0],
                "reason": mask_reason("; ".join(r[2] for r in reasons[i]), tid),
                "raw": json.dumps(rawrow, ensure_ascii=False, default=str),
            })
        return pd.DataFrame(recs, columns=QUARANTINE_COLUMNS)


def problems_for(problems, fld: str, n: int) -> pd.Series:
    """Rows already flagged for ``fld`` (so a bad timestamp is not also reported as missing)."""
    acc = None
    for mask, _, f, _ in problems:
        if f == fld:
            acc = mask if acc is None else acc | mask
    return acc if acc is not None else pd.Series(False, index=range(n))


def _cut(v: str | None, limit: int) -> str | None:
    return v if v is None or len(v) <= limit else v[:limit - 1] + "…"


_CONTROL_RE = re.compile(CONTROL_CHARS)


def _has_control(v: str) -> bool:
    return _CONTROL_RE.search(v) is not None


def _first_control(v: Any) -> str:
    m = _CONTROL_RE.search(v) if isinstance(v, str) else None
    return f"U+{ord(m.group()):04X} at character {m.start() + 1}" if m else "?"


def _truthy(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return None
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    s = str(v).strip().lower()
    if s in ("1", "true", "t", "yes", "y", "是"):
        return True
    if s in ("0", "false", "f", "no", "n", "否"):
        return False
    return None


def jsonable(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (pd.Timestamp, dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v
