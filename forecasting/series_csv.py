"""Daily count series from an analyst's CSV: ``ds,y`` (one series) or ``series_id,ds,y`` (many).

Every row is checked: a bad day, a missing, negative or non-numeric count, or a day given twice
for one series is an error naming the file, the CSV line and the field. Nothing is dropped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


class SeriesCsvError(ValueError):
    """A CSV that cannot be read as daily counts; the message names the file, line and field."""


def read_series_csv(path: str | Path) -> pd.DataFrame:
    """The long frame ``series_id, ds, y`` of the file (``series_id`` = the file's stem when the
    file has no such column); ``ds`` normalised to days."""
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise SeriesCsvError(f"{path}: no such file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise SeriesCsvError(f"{path}: not a readable CSV: {exc}") from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in ("ds", "y") if c not in df.columns]
    if missing:
        raise SeriesCsvError(f"{path}: missing column(s) {missing}; expected ds,y or series_id,ds,y "
                             f"(found {', '.join(df.columns)})")
    if df.empty:
        raise SeriesCsvError(f"{path}: no data rows after the header")
    line = np.arange(len(df)) + 2  # the header is line 1
    ds = pd.to_datetime(df["ds"].str.strip(), errors="coerce", format="mixed")
    bad = np.flatnonzero(ds.isna().to_numpy())
    if bad.size:
        i = bad[0]
        raise SeriesCsvError(f"{path}: line {line[i]}, field 'ds': {df['ds'].iat[i]!r} is not a date")
    y = pd.to_numeric(df["y"].str.strip(), errors="coerce")
    bad = np.flatnonzero(~np.isfinite(y.to_numpy(dtype=float)) | (y.to_numpy(dtype=float) < 0))
    if bad.size:
        i = bad[0]
        raise SeriesCsvError(f"{path}: line {line[i]}, field 'y': {df['y'].iat[i]!r} is not a count "
                             f"(a number >= 0; a day without tickets is 0, not empty)")
    sid = df["series_id"].str.strip() if "series_id" in df.columns else pd.Series(path.stem, index=df.index)
    out = pd.DataFrame({"series_id": sid, "ds": ds.dt.tz_localize(None).dt.normalize(), "y": y.astype(float)})
    dup = np.flatnonzero(out.duplicated(["series_id", "ds"]).to_numpy())
    if dup.size:
        i = dup[0]
        first = np.flatnonzero(((out["series_id"] == out["series_id"].iat[i]) & (out["ds"] == out["ds"].iat[i]))
                               .to_numpy())[0]
        raise SeriesCsvError(f"{path}: lines {line[first]} and {line[i]}, field 'ds': day {out['ds'].iat[i]:%Y-%m-%d} "
                             f"given twice for series {out['series_id'].iat[i]!r}")
    return out
