"""A realistic, deterministic 12345 ticket generator for one province.

It plays the part of a city's ticket system: it emits rows in a typical 12345 export format
(Chinese column names, local category names "一级-二级", raw phone numbers in the caller column
and sometimes in the text), which the ``generator`` mapping in config/mappings/ turns into
canonical tickets like any other source.

Expected volume of a district x level-2 category on a day =
    city volume (tier rate x population x scale) x district share x category share
    x weekday / holiday / 调休 factor x yearly growth x the category's season profiles
    x injected anomaly multipliers (or + an emerging issue's ramp),
and counts are negative binomial around it, with a city-wide daily shock shared by the city's
series. Every day is generated from its own seeded stream, so any window reproduces the same
tickets for the same day, and the injected anomalies come from per-year plans, so any window
reproduces the same labels.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from generator.seasonality import Place, profile
from hotline.core.calendar import calendar_frame, deadlines_for
from hotline.core.reference import DEFAULT_CONFIG_DIR, Reference, load_reference, tier_profile

SOURCE_COLUMNS = [
    "工单编号", "受理时间", "来电号码", "受理渠道", "诉求类型", "区划代码", "问题分类", "诉求内容",
    "承办单位", "紧急程度", "办理时限", "办结时间", "工单状态", "重复诉求", "满意度评价", "是否解决", "更新时间",
]
CHANNEL_ZH = {"phone": "电话", "app": "APP", "wechat": "微信", "web": "网站", "sms": "短信"}
REQUEST_ZH = {"consult": "咨询", "help": "求助", "suggest": "建议", "complain": "投诉", "thanks": "感谢"}
EVENT_KINDS = ("spike", "level_shift", "emerging", "surge")
# A city-wide surge, an emerging issue or a level shift should not land on a category whose
# volume swings by season anyway: the label would be ambiguous.
_SEASONAL_EXCLUDE = {"heating", "pre_spring_festival", "enrolment", "typhoon", "rainy", "summer_peak",
                     "school_term", "school_holidays", "holiday_travel", "shopping_festival"}


@dataclass(frozen=True)
class Event:
    """An injected, labelled anomaly."""

    kind: str             # spike, level_shift, emerging, surge
    start: dt.date
    end: dt.date          # inclusive
    region_level: str     # district or city
    region_code: str
    city_code: str
    category_level: str   # l1 or l2
    category_code: str
    magnitude: float      # multiplier (spike, shift, surge) or the emerging issue's daily peak count
    description: str


class ProvinceGenerator:
    """Generates one province's tickets. Constructor arguments only; nothing is sampled until asked."""

    def __init__(self, province_code: str = "440000", seed: int = 12345, scale: float = 1.0,
                 anomalies: bool = True, config_dir: str | Path = DEFAULT_CONFIG_DIR,
                 events_per_year: dict[str, int] | None = None, planted: tuple[Event, ...] = ()):
        self.province_code = province_code
        self.planted = tuple(planted)  # events placed by hand (the demo's last days), besides the plan
        self.seed = seed
        self.scale = scale
        self.anomalies = anomalies
        self.config_dir = Path(config_dir)
        self.events_per_year = events_per_year or {"spike": 8, "level_shift": 3, "emerging": 2, "surge": 2}
        self.ref: Reference = load_reference(self.config_dir)
        self.province = self.ref.regions.province(province_code)
        self.tz = zoneinfo.ZoneInfo(self.province.timezone)
        with open(self.config_dir / "generator.yaml", encoding="utf-8") as fh:
            self.cfg = yaml.safe_load(fh)
        self._build_series()

    # ------------------------------------------------------------------ structure
    def _build_series(self) -> None:
        tax = self.ref.taxonomy
        climate = self.province.climate
        cats = []
        for code, spec in self.cfg["categories"].items():
            if code not in tax.categories:
                raise ValueError(f"config/generator.yaml: category {code} is not in the taxonomy")
            if spec.get("north_only") and climate != "north":
                continue
            if spec.get("south_only") and climate != "south":
                continue
            cats.append((code, float(spec["share"]), tuple(spec.get("season", ())), spec["phrase"]))
        shares = np.array([c[1] for c in cats])
        shares = shares / shares.sum()
        rows = []
        for city in self.province.cities:
            prof = tier_profile(city, self.config_dir)
            city_rate = prof["tickets_per_10k_per_day"] * city.population * self.scale
            pop = np.array([d.population for d in city.districts])
            dshare = pop / pop.sum()
            for d, ds_ in zip(city.districts, dshare):
                for (code, _, season, phrase), cs in zip(cats, shares):
                    rows.append((city.code, d.code, d.zh, code, tax.parent(code), season, phrase,
                                 city_rate * ds_ * cs))
        self.series = pd.DataFrame(rows, columns=["city_code", "district_code", "district_zh", "category_l2",
                                                  "category_l1", "season", "phrase", "base"])
        self.series.insert(0, "province_code", self.province.code)
        self.city_profiles = {c.code: tier_profile(c, self.config_dir) for c in self.province.cities}
        self.cities = {c.code: c for c in self.province.cities}
        self._season_cache: dict[tuple, np.ndarray] = {}

    # ------------------------------------------------------------------ anomalies
    def _plan_year(self, year: int) -> list[Event]:
        rng = np.random.default_rng([self.seed, int(self.province_code), year, 7])
        s = self.series
        seasonal = s["season"].map(lambda t: bool(set(t) & _SEASONAL_EXCLUDE))
        events: list[Event] = []
        used: set[tuple[str, str]] = set()
        year_start = dt.date(year, 1, 1)

        def pick_day(margin_end: int) -> dt.date:
            return year_start + dt.timedelta(days=int(rng.integers(20, 365 - margin_end)))

        def district_level(level: str) -> pd.DataFrame:
            col = "category_l2" if level == "l2" else "category_l1"
            g = s[~seasonal].groupby(["city_code", "district_code", col], as_index=False)["base"].sum()
            return g.rename(columns={col: "category"})

        for kind in EVENT_KINDS:
            for _ in range(self.events_per_year.get(kind, 0)):
                if kind in ("spike", "level_shift"):
                    floor = 5.0 if kind == "spike" else 3.0
                    level = "l2"
                    cand = district_level("l2")
                    cand = cand[cand["base"] >= floor]
                    if len(cand) < 10:
                        level = "l1"
                        cand = district_level("l1")
                        cand = cand[cand["base"] >= floor]
                    cand = cand[[(r.district_code, r.category) not in used for r in cand.itertuples()]]
                    if cand.empty:
                        continue
                    r = cand.iloc[int(rng.integers(len(cand)))]
                    if kind == "spike":
                        start = pick_day(5)
                        end = start + dt.timedelta(days=int(rng.integers(0, 3)))
                        mag = float(np.round(rng.uniform(2.7, 3.3), 2))
                        desc = "一至三日突增约3倍"
                    else:
                        start = pick_day(50)
                        end = start + dt.timedelta(days=int(rng.integers(14, 36)))
                        mag = float(np.round(rng.uniform(1.45, 1.6), 2))
                        desc = "持续性水平上移约50%"
                    used.add((r.district_code, r.category))
                    events.append(Event(kind, start, end, "district", r.district_code, r.city_code, level,
                                        r.category, mag, desc))
                elif kind == "emerging":
                    cand = s[~seasonal & (s["base"] < 0.5)]
                    cand = cand[[(d, c) not in used for d, c in zip(cand["district_code"], cand["category_l2"])]]
                    if cand.empty:
                        continue
                    r = cand.iloc[int(rng.integers(len(cand)))]
                    start = pick_day(60)
                    end = start + dt.timedelta(days=27 + 14)  # four weeks of growth, two at the peak
                    used.add((r.district_code, r.category_l2))
                    events.append(Event(kind, start, end, "district", r.district_code, r.city_code, "l2",
                                        r.category_l2, 12.0, "新问题约四周内从几乎为零增至每日10件以上"))
                else:  # surge: one category across every district of a city
                    big = s[~seasonal].groupby(["city_code", "category_l2"], as_index=False)["base"].sum()
                    big = big[big["base"] >= 10]
                    if big.empty:
                        big = s[~seasonal].groupby(["city_code", "category_l2"], as_index=False)["base"].sum()
                        big = big.nlargest(20, "base")
                    r = big.iloc[int(rng.integers(len(big)))]
                    start = pick_day(30)
                    end = start + dt.timedelta(days=int(rng.integers(7, 15)))
                    mag = float(np.round(rng.uniform(1.35, 1.45), 2))
                    events.append(Event(kind, start, end, "city", r.city_code, r.city_code, "l2",
                                        r.category_l2, mag, "全市各区同一类别诉求同步上升约40%"))
        return events

    def events(self, start: dt.date, end: dt.date) -> list[Event]:
        """Injected anomalies overlapping [start, end] (empty when anomalies are off)."""
        if not self.anomalies:
            return []
        out = [e for e in self.planted if e.end >= start and e.start <= end]
        for year in range(start.year - 1, end.year + 1):
            out.extend(e for e in self._plan_year(year) if e.end >= start and e.start <= end)
        return sorted(out, key=lambda e: (e.start, e.kind, e.region_code))

    def labels(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """The labels file's rows: type, start, end, region, category, magnitude, ..."""
        ev = self.events(start, end)
        cols = ["type", "start", "end", "region_level", "region", "city", "category_level", "category",
                "magnitude", "description"]
        return pd.DataFrame([(e.kind, e.start, e.end, e.region_level, e.region_code, e.city_code,
                              e.category_level, e.category_code, e.magnitude, e.description) for e in ev],
                            columns=cols)

    # ------------------------------------------------------------------ expected counts
    def expected(self, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, pd.DatetimeIndex, np.ndarray]:
        """Expected counts, shape (series, days), for every district x level-2 series."""
        cal = calendar_frame(start, end, str(self.config_dir))
        days = pd.DatetimeIndex(cal["ds"])
        c = self.cfg
        wk = np.asarray(c["weekday_factor"])[cal["weekday"].to_numpy()]
        wk = np.where(cal["is_makeup_workday"], c["makeup_workday_factor"], wk)
        sf_hol = cal["holiday_name"].str.contains("Spring", na=False).to_numpy() | (
            cal["is_holiday"].to_numpy() & (np.abs(cal["days_from_spring_festival"].to_numpy()) <= 8))
        wk = np.where(cal["is_holiday"], np.where(sf_hol, c["spring_festival_factor"], c["holiday_factor"]), wk)
        years = (days - pd.Timestamp(f"{c['growth_reference_year']}-07-01")).days.to_numpy() / 365.25
        growth = (1 + c["yearly_growth"]) ** years
        day_factor = wk * growth

        s = self.series
        lam = np.outer(s["base"].to_numpy(), day_factor)
        # season profiles, computed once per (profiles, city climate) combination
        for (season, city_code), idx in s.groupby(["season", "city_code"]).groups.items():
            if not season:
                continue
            city = self.cities[city_code]
            place = Place(self.province.climate, city.coastal, self.province.heating_season)
            mult = np.ones(len(days))
            for name in season:
                mult = mult * profile(name, cal, place)
            lam[np.asarray(idx)] *= mult

        for e in self.events(start, end):
            d0 = max(0, (pd.Timestamp(e.start) - days[0]).days)
            d1 = min(len(days) - 1, (pd.Timestamp(e.end) - days[0]).days)
            if d1 < d0:
                continue
            col = "category_l2" if e.category_level == "l2" else "category_l1"
            region_col = "district_code" if e.region_level == "district" else "city_code"
            rows = np.flatnonzero((s[col] == e.category_code).to_numpy() & (s[region_col] == e.region_code).to_numpy())
            if e.kind == "emerging":
                offs = np.arange(d0, d1 + 1) - (pd.Timestamp(e.start) - days[0]).days
                ramp = e.magnitude * np.clip(offs / 27.0, 0, 1) ** 1.5
                # the weekly rhythm applies to a new issue too; normalised so the peak is the magnitude
                weekly = wk[d0:d1 + 1] / np.mean(c["weekday_factor"])
                lam[rows[:, None], np.arange(d0, d1 + 1)[None, :]] += ramp[None, :] * weekly
            else:
                lam[rows, d0:d1 + 1] *= e.magnitude
        return s, days, lam

    # ------------------------------------------------------------------ tickets
    def tickets(self, start: dt.date, end: dt.date, as_of: dt.datetime | None = None,
                updated_since: dt.datetime | None = None, chunk_days: int = 31) -> Iterator[pd.DataFrame]:
        """Rows in the source export format, received on days [start, end], as the system held them
        at ``as_of`` (default: the end of ``end``): later closures are not yet visible, and a
        ticket reaching the system late appears only once it has arrived.

        With ``updated_since``, days before ``start`` are generated too (45 days back) and only rows
        updated at or after that moment are returned: the incremental feed a warehouse polls.
        """
        if as_of is None:
            as_of = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), self.tz)
        first = start - dt.timedelta(days=45) if updated_since is not None else start
        d = first
        while d <= end:
            chunk_end = min(end, d + dt.timedelta(days=chunk_days - 1))
            frame = self._tickets_between(d, chunk_end, as_of)
            if updated_since is not None:
                frame = frame[frame["更新时间"] >= pd.Timestamp(updated_since)]
            if len(frame):
                yield frame.reset_index(drop=True)
            d = chunk_end + dt.timedelta(days=1)

    def _tickets_between(self, start: dt.date, end: dt.date, as_of: dt.datetime) -> pd.DataFrame:
        s, days, lam = self.expected(start, end)
        frames = [self._one_day(day.date(), lam[:, i], s) for i, day in enumerate(days)]
        out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SOURCE_COLUMNS)
        return self._as_of(out, as_of)

    def _draw(self, day: dt.date, lam: np.ndarray, s: pd.DataFrame) -> tuple[np.random.Generator, np.ndarray]:
        """The day's random generator and its count per district x level-2 series."""
        rng = np.random.default_rng([self.seed, int(self.province_code), day.toordinal()])
        c = self.cfg
        cities = s["city_code"].to_numpy()
        city_codes = list(self.cities)
        shock = dict(zip(city_codes, rng.gamma(1 / c["city_day_cv"] ** 2, c["city_day_cv"] ** 2, len(city_codes))))
        mu = lam * np.array([shock[x] for x in cities])
        r = float(c["nb_dispersion"])
        return rng, rng.negative_binomial(r, r / (r + np.maximum(mu, 1e-9)))

    def counts(self, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, pd.DatetimeIndex, np.ndarray]:
        """Daily counts (series x days) of every district x level-2 series, drawn exactly as
        ``tickets`` draws them (by day received), without building the tickets: province-scale
        volumes for detector backtests and benchmarks."""
        s, days, lam = self.expected(start, end)
        return s, days, np.stack([self._draw(day.date(), lam[:, i], s)[1] for i, day in enumerate(days)], axis=1)

    def _one_day(self, day: dt.date, lam: np.ndarray, s: pd.DataFrame) -> pd.DataFrame:
        rng, counts = self._draw(day, lam, s)
        c = self.cfg
        cities = s["city_code"].to_numpy()
        n = int(counts.sum())
        if n == 0:
            return pd.DataFrame(columns=SOURCE_COLUMNS + ["_visible_at", "_closed_at"])
        idx = np.repeat(np.arange(len(s)), counts)
        city = cities[idx]
        district = s["district_code"].to_numpy()[idx]
        l2 = s["category_l2"].to_numpy()[idx]
        tax = self.ref.taxonomy

        # time of day: 12345 lines take calls around the clock, most between 8:00 and 21:00
        hour_w = np.array([2, 1, 1, 1, 1, 2, 4, 8, 14, 16, 16, 14, 10, 11, 14, 15, 14, 13, 11, 10, 9, 7, 5, 3], float)
        hours = rng.choice(24, n, p=hour_w / hour_w.sum())
        secs = hours * 3600 + rng.integers(0, 3600, n)
        midnight = pd.Timestamp(day, tz=self.tz)
        received = midnight + pd.to_timedelta(np.sort(secs), unit="s")  # whole seconds, as systems record
        order = np.argsort(secs, kind="stable")
        idx, city, district, l2 = idx[order], city[order], district[order], l2[order]

        city_codes = list(self.cities)
        prof = [self.city_profiles[x] for x in city_codes]
        tier_of = {code: p for code, p in zip(city_codes, prof)}

        def per_city_choice(key: str) -> np.ndarray:
            out = np.empty(n, dtype=object)
            for code in city_codes:
                m = city == code
                k = int(m.sum())
                if k:
                    mix = tier_of[code][key]
                    names = list(mix)
                    p = np.array([mix[x] for x in names], float)
                    out[m] = np.array(names, dtype=object)[rng.choice(len(names), k, p=p / p.sum())]
            return out

        city_pos = np.searchsorted(np.array(city_codes), city, sorter=np.argsort(city_codes))
        city_pos = np.argsort(city_codes)[city_pos]

        def per_city_value(key: str) -> np.ndarray:
            return np.array([tier_of[x][key] for x in city_codes], float)[city_pos]

        channel = per_city_choice("channel_mix")
        rtype = per_city_choice("request_type_mix")

        # callers: repeat callers come from a small pool per district x category (同人同事)
        repeat_p = per_city_value("repeat_share")
        is_repeat = rng.random(n) < repeat_p
        pool_slot = rng.integers(0, 6, n)
        fresh = rng.integers(13_000_000_000, 19_999_999_999, n, dtype=np.int64)
        pool_key = (pd.Series(district.astype(str)) + "|" + pd.Series(l2.astype(str)) + "|"
                    + pd.Series(pool_slot.astype(str)))
        stable = pd.util.hash_pandas_object(pool_key + f"|{self.seed}", index=False).to_numpy()
        pooled = 13_000_000_000 + (stable % np.uint64(6_999_999_999)).astype(np.int64)
        phone = np.where(is_repeat, pooled, fresh).astype(str)

        # deadline: hours, or working days on the Chinese calendar (调休 included)
        cls = np.array([tax.categories[x].deadline or "general" for x in l2], dtype=object)
        deadline = deadlines_for(received, cls, self.ref.deadlines, str(self.config_dir))
        span_h = (deadline - received).total_seconds().to_numpy() / 3600.0

        # handling: consultations are often answered on the call (直办); others take part of
        # their deadline; a tier-dependent share runs over
        overdue_p = per_city_value("overdue_share")
        overdue = rng.random(n) < overdue_p
        direct = (rtype == "consult") & (rng.random(n) < c["direct_answer_share"])
        frac = rng.beta(2.0, 3.0, n)
        dur_h = np.where(overdue, span_h * (1.0 + rng.exponential(0.4, n) + 0.01), span_h * frac * 0.98)
        dur_h = np.where(direct & ~overdue, rng.uniform(0.05, 0.5, n), dur_h)
        closed = (received + pd.to_timedelta(dur_h, unit="h")).floor("s")

        unsat_p = per_city_value("unsatisfied_share") * np.where(overdue, 3.0, 1.0)
        rated = rng.random(n) < 0.85
        u = rng.random(n)
        unsat = u < unsat_p
        satisfaction = np.where(~rated, None,
                                np.where(unsat, "不满意", np.where(u < unsat_p + 0.1, "基本满意", "满意")))
        unres_p = per_city_value("unresolved_share") + np.where(unsat, 0.5, 0.0)
        resolved = np.where(rng.random(n) < unres_p, "否", "是")

        # arrival in the system: a few tickets reach the feed one to three days late
        late = rng.random(n) < per_city_value("late_share") * c["late_share_multiplier"]
        visible = (received + pd.to_timedelta(np.where(late, rng.uniform(24, 72, n), rng.uniform(0.01, 0.2, n)),
                                              unit="h")).floor("s")
        # a ticket cannot be closed in the system before it has reached it
        closed = closed.where(closed > visible, visible + pd.Timedelta(hours=1))

        # text: what the citizen says, where, what they ask; a few carry a phone or ID number
        places = c["places"]
        asks = c["asks"]
        place = np.array(places, dtype=object)[rng.integers(0, len(places), n)]
        ask_pick = rng.integers(0, 2, n)
        dz = s["district_zh"].to_numpy()[idx]
        phrase = s["phrase"].to_numpy()[idx]
        pii = rng.random(n) < c["pii_in_text_share"]
        born = rng.integers(0, 20000, n)  # days after 1950-01-01: a valid birth date for the ID number
        text = [
            f"市民反映：{d_}某{p_}一带，{ph_}，{asks[rt][a_ % len(asks[rt])]}。"
            + ((f"联系电话{tel}。" if k % 2 else f"身份证号{d_code}{_birth(k)}{k % 997:03d}X。") if pi else "")
            for d_, p_, ph_, rt, a_, pi, tel, k, d_code in zip(dz, place, phrase, rtype, ask_pick, pii, phone, born,
                                                                district)
        ]
        l1_zh = {code: tax.categories[code].zh for code in tax.l1_codes()}
        local_cat = np.array([f"{l1_zh[tax.categories[x].parent]}-{tax.categories[x].zh}" for x in l2], dtype=object)
        dept = np.array([tax.categories[x].department for x in l2], dtype=object)
        unit = np.char.add(dz.astype(str), dept.astype(str))
        urgency = np.where(np.isin(cls, ["emergency", "urgent"]), "紧急", "一般")
        ids = [f"{self.province_code[:2]}{day:%Y%m%d}{i:07d}" for i in range(n)]

        return pd.DataFrame({
            "工单编号": ids,
            "受理时间": received,
            "来电号码": phone,
            "受理渠道": [CHANNEL_ZH[x] for x in channel],
            "诉求类型": [REQUEST_ZH[x] for x in rtype],
            "区划代码": district,
            "问题分类": local_cat,
            "诉求内容": text,
            "承办单位": unit,
            "紧急程度": urgency,
            "办理时限": deadline,
            "办结时间": closed,
            "工单状态": "已办结",
            "重复诉求": np.where(is_repeat, "是", "否"),
            "满意度评价": satisfaction,
            "是否解决": resolved,
            "更新时间": closed,
            "_visible_at": visible,
            "_closed_at": closed,
        })

    def _as_of(self, df: pd.DataFrame, as_of: dt.datetime) -> pd.DataFrame:
        """The system's view at ``as_of``: unarrived rows hidden, unfinished ones still open."""
        if df.empty:
            return df.drop(columns=["_visible_at", "_closed_at"], errors="ignore")
        cut = pd.Timestamp(as_of)
        df = df[df["_visible_at"] <= cut].copy()
        open_ = df["_closed_at"] > cut
        df.loc[open_, "办结时间"] = pd.NaT
        df.loc[open_, "工单状态"] = "办理中"
        df.loc[open_, "满意度评价"] = None
        df.loc[open_, "是否解决"] = None
        df["更新时间"] = df["_visible_at"].where(open_, df["_closed_at"])
        return df.drop(columns=["_visible_at", "_closed_at"]).reset_index(drop=True)


_EPOCH = dt.date(1950, 1, 1)


def _birth(days: int) -> str:
    return (_EPOCH + dt.timedelta(days=int(days))).strftime("%Y%m%d")


def planted_events(specs: list[dict], anchor: dt.date, ref: Reference) -> tuple[Event, ...]:
    """Events from config, dated relative to ``anchor``: ``{kind, days_before, days, region,
    category, magnitude, description}`` (the demo's own, on the day it runs for)."""
    out = []
    for i, sp in enumerate(specs):
        try:
            region, cat = str(sp["region"]), str(sp["category"])
            level = ref.regions.level_of(region)
            if level not in ("city", "district") or cat not in ref.taxonomy.categories:
                raise ValueError(f"region {region} must be a configured city or district and category {cat} "
                                 f"a taxonomy code")
            end = anchor - dt.timedelta(days=int(sp.get("days_before", 0)))
            start = end - dt.timedelta(days=int(sp.get("days", 1)) - 1)
            city = region if level == "city" else ref.regions.district_parent()[region]
            out.append(Event(str(sp["kind"]), start, end, level, region, city,
                             ref.taxonomy.categories[cat].level, cat, float(sp["magnitude"]),
                             str(sp.get("description", ""))))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"config/hotline.yaml: source.planted_events[{i}]: {exc}") from None
    return tuple(out)


def write_labels(labels: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    labels.to_csv(path, index=False)
    return path

