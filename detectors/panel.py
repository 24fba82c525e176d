"""The detectors' working form: every series of a scope as one matrix of daily counts, with the
calendar, the series' keys and their hierarchy (a city's districts, a category's sub-categories),
plus a cache of the expectations the detectors judge each day against.

The DAG builds a panel of a city's last 420 days and judges its last day; the backtest builds it
once for the whole period and judges each day in turn, reading only the columns before it, so the
two see exactly the same numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from detectors.calibration import CALIBRATION_WEEKS, Calibration, band_of, excess_dispersion, midp_z
from forecasting.api import to_matrix
from forecasting.calendar_features import day_kinds
from forecasting.models import FastModel
from hotline.core.series import category_part, parse, series_ids

KEY_COLUMNS = ["region_level", "region_code", "category_level", "category_code", "city_code", "parent_code"]
NEXT_REGION = {"province": "city", "city": "district"}
EXTRA_DAYS = 31  # calendar kept beyond the last day (the expectations' horizon)
GRID_DAYS = 14        # grid origins every other Sunday: days whose ordinal % GRID_DAYS is 0
WEEKS_PER_BLOCK = GRID_DAYS // 7


def keys_from_ids(ids, regions=None) -> pd.DataFrame:
    """Keys parsed from warehouse series ids (``district:440111|l2:housing.noise``), each region's
    parent from the reference data (``regions``, default: the configured reference); other ids are
    standalone series (no region, no hierarchy)."""
    if regions is None:
        from hotline.core.reference import load_reference

        regions = load_reference().regions
    rows = []
    for sid in ids:
        s = str(sid)
        try:
            rl, rc, cl, cc = parse(s)
        except ValueError:
            rl = None
        if rl is not None:
            parent = regions.parent_of(rc) if rl in ("district", "city") else ""
            city = rc if rl == "city" else (parent if rl == "district" else "")
            rows.append((rl, rc, cl, cc, city, parent))
        else:
            rows.append(("series", s, "all", "*", "", ""))
    return pd.DataFrame(rows, columns=KEY_COLUMNS, index=pd.Index(list(ids), name="series_id"))


def parent_category(code: str) -> str:
    """The level-1 code of a level-2 code ('*' for a level-1 code)."""
    return code.split(".", 1)[0] if "." in code else "*"


@dataclass
class Panel:
    ids: np.ndarray
    keys: pd.DataFrame        # one row per series, in the order of ``ids``
    Y: np.ndarray             # series x days; NaN before a series' first day
    days: pd.DatetimeIndex
    cal: pd.DataFrame         # calendar from days[0] to EXTRA_DAYS after the last day
    kinds: np.ndarray
    groups: np.ndarray
    _children: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_long(cls, frame: pd.DataFrame, keys: pd.DataFrame | None = None, country: str = "CN",
                  regions=None) -> "Panel":
        """From the long series frame (``series_id, ds, y``); keys from ``keys`` (indexed by
        series_id) or parsed from the ids (parents from ``regions``); ``country``: the holiday
        calendar."""
        m = to_matrix(frame[["series_id", "ds", "y"]], EXTRA_DAYS, country)
        k = keys_from_ids(m.ids, regions) if keys is None else keys.reindex(m.ids).reindex(columns=KEY_COLUMNS)
        k = k.fillna("")
        days = pd.date_range(m.start, periods=m.Y.shape[1], freq="D")
        return cls(m.ids, k.reset_index(drop=True), m.Y, days, m.cal, m.kinds, m.groups)

    @classmethod
    def from_rows(cls, rows: pd.DataFrame, end, country: str = "CN") -> "Panel":
        """Straight from the warehouse's stored rows (``warehouse.aggregate.read_counts``): one
        series per level pair and codes, zeros from the first loaded day to ``end``."""
        first = rows["ds"].min().normalize()
        days = pd.date_range(first, pd.Timestamp(end))
        # the series id built once per series, not once per row (string sums over a million rows
        # were a third of a province's read)
        key_cols = ["region_level", "region_code", "category_level", "category_code"]
        grp = rows.groupby(key_cols, sort=False, dropna=False).ngroup().to_numpy()
        u = rows.drop_duplicates(key_cols)  # in order of first appearance, as ngroup numbers them
        usid = series_ids(u).to_numpy(dtype=object)
        order = np.argsort(usid, kind="stable")
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        codes, ids = rank[grp], usid[order]
        Y = np.zeros((len(ids), len(days)))
        np.add.at(Y, (codes, (rows["ds"] - first).dt.days.to_numpy()), rows["y"].to_numpy(dtype=float))
        k = u.assign(series_id=usid).set_index("series_id").reindex(ids)
        k["city_code"] = k["city_code"].fillna("")
        k["parent_code"] = np.where(k["region_level"] == "district", k["city_code"],
                                    np.where(k["region_level"] == "city", k["province_code"], ""))
        cal = day_kinds(first.date(), (days[-1] + pd.Timedelta(days=EXTRA_DAYS)).date(), country)
        groups = np.array([category_part(s) for s in ids])
        return cls(np.asarray(ids), k[KEY_COLUMNS].reset_index(drop=True), Y, days, cal, cal["kind"].to_numpy(),
                   groups)

    def __len__(self) -> int:
        return len(self.ids)

    def index(self, day) -> int:
        t = int((pd.Timestamp(day) - self.days[0]).days)
        if not 0 <= t < len(self.days):
            raise KeyError(f"{pd.Timestamp(day):%Y-%m-%d} is outside the panel ({self.days[0]:%Y-%m-%d}.."
                           f"{self.days[-1]:%Y-%m-%d})")
        return t

    def y(self, t: int) -> np.ndarray:
        return np.nan_to_num(self.Y[:, t])

    # hierarchy --------------------------------------------------------------------------
    def children(self) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """For each series, its region children (a province's cities or a city's districts, same
        category) and its category children (the next category level, same region)."""
        if not self._children:
            k = self.keys
            by_parent_region = {key: g.index.to_numpy() for key, g in
                                k.groupby(["region_level", "parent_code", "category_level", "category_code"])}
            next_level = {"all": "l1", "l1": "l2"}
            cparent = np.where(k["category_level"] == "l1", "*", k["category_code"].map(parent_category))
            sub = k.assign(parent=cparent)
            by_parent = {key: g.index.to_numpy() for key, g in
                         sub.groupby(["region_level", "region_code", "category_level", "parent"])}
            region, category = {}, {}
            for i, r in enumerate(k.itertuples(index=False)):
                if r.region_level in NEXT_REGION:
                    region[i] = by_parent_region.get((NEXT_REGION[r.region_level], r.region_code, r.category_level,
                                                      r.category_code), np.array([], int))
                if r.category_level in next_level:
                    category[i] = by_parent.get((r.region_level, r.region_code, next_level[r.category_level],
                                                 r.category_code), np.array([], int))
            self._children = {"region": region, "category": category}
        return self._children["region"], self._children["category"]


class Expectations:
    """The fast model's negative binomial for the days after an origin, from the ``history_days``
    up to and including it, cached by origin: the backtest fits each origin once and the
    spike detector (origin t-1) and the level-shift baseline (origin t-window) share fits.

    It also keeps the out-of-sample record the detectors are calibrated on: for each *grid origin*
    (every other Sunday), the two weeks after it judged by the forecast made on that Sunday
    (``block``: horizons 1 to 14, so the record is a little harder than the one-day-ahead judgement
    it calibrates, never easier). Grid origins are fixed dates, so every run that judges a day, the
    daily job or the backtest, uses the same weeks; the backtest computes each block once.
    """

    def __init__(self, panel: Panel, horizon: int = 14, history_days: int = 420, yearly_pseudo: float = 300.0):
        self.panel = panel
        self.horizon = horizon
        self.history_days = history_days
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._tau: dict[int, np.ndarray] = {}
        self._blocks: dict[int, dict[str, np.ndarray]] = {}
        self._derived: dict[tuple, tuple[int, object]] = {}  # key -> (oldest origin it reads, value)
        self._model = FastModel(yearly_pseudo=yearly_pseudo)
        first = panel.days[0].toordinal()
        self._grid_offset = (-first) % GRID_DAYS  # position of the first grid origin

    def at(self, origin: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(mu, r), each series x horizon, for days origin+1.., or None without 28 days of history."""
        if origin < 27:
            return None
        if origin not in self._cache:
            p = self.panel
            lo = max(0, origin + 1 - self.history_days)
            Y = p.Y[:, lo:origin + 1]
            cal = p.cal.iloc[lo:].reset_index(drop=True)
            fit = self._model.fit_predict(Y, p.kinds[lo:], cal, self.horizon, groups=p.groups)
            self._cache[origin] = (fit.mu, np.broadcast_to(fit.r, fit.mu.shape))
        return self._cache[origin]

    # the out-of-sample record ------------------------------------------------------------
    def grid_before(self, t: int, count: int, lag: int = GRID_DAYS) -> list[int]:
        """The last ``count`` grid origins ``o`` with ``o + lag <= t - 1`` (their block, or their
        window of ``lag`` days, ends before day ``t``) and a fit, oldest first."""
        last = t - 1 - lag
        newest = last - ((last - self._grid_offset) % GRID_DAYS)
        return [o for o in range(newest - GRID_DAYS * (count - 1), newest + 1, GRID_DAYS) if o >= 27]

    def block(self, o: int) -> dict[str, np.ndarray] | None:
        """The GRID_DAYS days after grid origin ``o`` judged by the forecast made on it: ``mu``,
        ``r``, ``y`` and the signed mid-p residual ``z`` (series x days), NaN where the panel has
        no data yet."""
        if o not in self._blocks:
            fit = self.at(o)
            if fit is None or o + GRID_DAYS >= self.panel.Y.shape[1]:
                return None
            mu, r = fit[0][:, :GRID_DAYS], fit[1][:, :GRID_DAYS]
            y = self.panel.Y[:, o + 1:o + 1 + GRID_DAYS]
            z = np.where(np.isfinite(y), midp_z(np.nan_to_num(y), mu, r), np.nan)
            self._blocks[o] = {"mu": mu, "r": r, "y": y, "z": z}
        return self._blocks[o]

    def day_calibration(self, t: int) -> Calibration:
        """The one-day residual's calibration for day ``t``: the last CALIBRATION_WEEKS weeks
        before it (see detectors.calibration)."""
        grid = tuple(self.grid_before(t, CALIBRATION_WEEKS // WEEKS_PER_BLOCK))
        key = ("day", grid)
        if key not in self._derived:
            blocks = [b for b in (self.block(o) for o in grid) if b is not None]
            n = len(self.panel)
            if not blocks:
                cal = Calibration.build(np.full((n, 1), np.nan), np.zeros(n, int))
            else:
                y = np.concatenate([b["y"] for b in blocks], axis=1)
                mu = np.concatenate([b["mu"] for b in blocks], axis=1)
                r = np.concatenate([b["r"] for b in blocks], axis=1)
                z = np.concatenate([b["z"] for b in blocks], axis=1)
                phi = excess_dispersion(y, mu, r)
                with np.errstate(all="ignore"):
                    volume = np.nanmean(np.where(np.isfinite(y), mu, np.nan), axis=1)
                cal = Calibration.build(z, band_of(volume), np.clip(np.sqrt(phi), 0.5, 10.0))
            self._derived[key] = (min(grid, default=t), cal)
        return self._derived[key][1]

    def derived(self, key: tuple, oldest: int, make):
        """A value computed once per key (window statistics of a grid origin, calibrations);
        ``oldest``: the oldest origin it reads, so that forget_before drops it with that origin."""
        if key not in self._derived:
            self._derived[key] = (oldest, make())
        return self._derived[key][1]

    def tau2(self, origin: int, weeks: int = 8) -> np.ndarray:
        """Each series' week-to-week relative variance beyond count noise (τ²).

        A day's negative binomial says nothing of how a whole week drifts together (weather, news,
        a level the model has not caught up with yet), so a week's total strays from its forecast
        far more than the sum of independent days. τ² is measured on the model's own record: the
        last ``weeks`` whole weeks before ``origin`` (grid blocks), each forecast on the block's origin,
        against what came; the robust (MAD) variance of the relative errors less the count noise.
        Busy series keep their own (half-way to the pooled value), the others take the panel's
        pooled value. Cached per origin.
        """
        if origin not in self._tau:
            errs, noise = [], []
            for o in self.grid_before(origin + 1, weeks // WEEKS_PER_BLOCK):
                b = self.block(o)
                if b is None:
                    continue
                for w in range(WEEKS_PER_BLOCK):  # each week of the block
                    M = b["mu"][:, 7 * w:7 * w + 7].sum(axis=1)
                    S = np.nansum(b["y"][:, 7 * w:7 * w + 7], axis=1)
                    errs.append(S / np.maximum(M, 1e-9) - 1)
                    noise.append(1 / np.maximum(M, 1.0))
            if len(errs) < 4:
                self._tau[origin] = np.full(len(self.panel), 0.04)
            else:
                R = np.stack(errs, axis=1)
                mad = np.median(np.abs(R - np.median(R, axis=1, keepdims=True)), axis=1)
                own = np.maximum((1.4826 * mad) ** 2 - np.median(np.stack(noise, axis=1), axis=1), 0.0)
                M = np.mean([1 / x for x in noise], axis=0)
                busy = M >= 50
                pooled = float(np.median(own[busy])) if busy.any() else 0.04
                self._tau[origin] = np.where(busy, 0.5 * (own + pooled), pooled)
        return self._tau[origin]

    def forget_before(self, origin: int) -> None:
        for cache in (self._cache, self._tau, self._blocks):
            for o in [o for o in cache if o < origin]:
                del cache[o]
        for key in [k for k, (oldest, _) in self._derived.items() if oldest < origin]:
            del self._derived[key]
