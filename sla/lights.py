"""Red/yellow lights on open tickets, with escalation, as pure array arithmetic.

A ticket is green while more than ``yellow_share`` of its handling time remains, yellow until its
deadline, red after it. A red ticket goes up one level (district -> city supervision) at its
deadline and one more each ``escalate_again_hours`` it stays red, up to the last level. Every
change has an exact time that follows from the ticket's received, deadline and closed times, so
the history can be replayed: :func:`transitions` lists the changes in a time window.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from hotline.core.sla import SlaConfig  # noqa: F401 (lights are computed under it)


def _ns(values: Any) -> np.ndarray:
    """Timestamps as int64 nanoseconds UTC (NaT -> the int64 minimum)."""
    return pd.to_datetime(pd.Series(values), utc=True).to_numpy(dtype="datetime64[ns]").astype(np.int64)


NAT = np.iinfo(np.int64).min


def lights_at(received: Any, deadline: Any, closed: Any, now: dt.datetime, cfg: SlaConfig) -> pd.DataFrame:
    """Each ticket's light and escalation level at ``now``: ``light`` (green, yellow, red, or
    closed / none for a ticket without a deadline), ``level`` (index into ``cfg.levels``),
    ``since`` (when the current light or level began)."""
    rec, dl, cl = _ns(received), _ns(deadline), _ns(closed)
    t = pd.Timestamp(now).tz_convert("UTC").value if pd.Timestamp(now).tzinfo else pd.Timestamp(now, tz="UTC").value
    has_dl = dl != NAT
    open_ = (cl == NAT) | (cl > t)
    yellow_at = dl - (cfg.yellow_share * (dl - rec)).astype(np.int64)
    step = int(cfg.escalate_again_hours * 3600e9)
    over = np.where(has_dl, t - dl, -1)
    ups = np.where(over >= 0, 1 + over // step, 0)
    level = np.minimum(ups, len(cfg.levels) - 1)
    light = np.where(~open_, "closed", np.where(~has_dl, "none", np.where(over >= 0, "red",
                     np.where(t >= yellow_at, "yellow", "green"))))
    last_up = dl + (level - 1).clip(0) * step
    since = np.where(light == "red", last_up, np.where(light == "yellow", yellow_at,
                     np.where(light == "closed", cl, rec)))
    return pd.DataFrame({"light": light, "level": level.astype(int),
                         "since": pd.to_datetime(since, utc=True)})


def transitions(ticket_ids: Any, received: Any, deadline: Any, closed: Any, start: dt.datetime, end: dt.datetime,
                cfg: SlaConfig) -> pd.DataFrame:
    """Every light change with its time in (start, end]: ``yellow``, ``red`` (with the escalation
    to level 1), ``escalated`` (each further level), ``closed`` (``detail`` on_time or late; level
    the one it had reached). One row per ticket, event and level: a rerun finds the same rows."""
    ids = np.asarray(ticket_ids, dtype=object)
    rec, dl, cl = _ns(received), _ns(deadline), _ns(closed)
    lo = pd.Timestamp(start).tz_convert("UTC").value
    hi = pd.Timestamp(end).tz_convert("UTC").value
    has_dl = dl != NAT
    end_of_life = np.where(cl == NAT, np.iinfo(np.int64).max, cl)
    yellow_at = dl - (cfg.yellow_share * (dl - rec)).astype(np.int64)
    step = int(cfg.escalate_again_hours * 3600e9)
    frames = []

    def add(mask: np.ndarray, at: np.ndarray, event: str, level: np.ndarray | int) -> None:
        m = mask & (at > lo) & (at <= hi)
        if m.any():
            lv = np.broadcast_to(np.asarray(level), m.shape)[m]
            frames.append(pd.DataFrame({"ticket_id": ids[m], "event": event, "level": lv.astype(int),
                                        "at": pd.to_datetime(at[m], utc=True)}))

    add(has_dl & (yellow_at < end_of_life) & (yellow_at < dl), yellow_at, "yellow", 0)
    add(has_dl & (dl < end_of_life), dl, "red", 1)
    for lv in range(2, len(cfg.levels)):
        at = dl + (lv - 1) * step
        add(has_dl & (at < end_of_life), at, "escalated", lv)
    late = has_dl & (cl != NAT) & (cl > dl)
    closed_level = np.where(late, np.minimum(1 + (cl - dl) // step, len(cfg.levels) - 1), 0)
    add(cl != NAT, cl, "closed", closed_level)
    if not frames:
        return pd.DataFrame(columns=["ticket_id", "event", "level", "at", "detail"])
    out = pd.concat(frames, ignore_index=True)
    late_ids = set(ids[late])
    out["detail"] = np.where(out["event"] != "closed", "", np.where(out["ticket_id"].isin(late_ids), "late", "on_time"))
    return out.sort_values(["at", "ticket_id"], kind="stable").reset_index(drop=True)
