"""The monthly horse race and trend view as one call (the monthly DAG's ``ranking`` and ``brief``
tasks, and ``hotline ranking``): rank, find the hotspots, write the report, optionally send the
brief to the province's office through the alerts outbox."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from hotline.core.reference import Reference
from sla.lights import SlaConfig
from sla.race import as_json, load_stored, run_ranking
from sla.ranking import load_ranking_config
from sla.report import LANGS, brief_lines, write
from sla.trends import TrendConfig, hotspots


def horse_race(engine, month, ref: Reference, config_dir: Path, var_dir: Path, province_code: str,
               levels: tuple[str, ...] = ("city", "district"), rerank: bool = True) -> dict[str, Any]:
    """Rank the month (stored in ``rankings``; ``rerank=False`` reads the stored ranking), find the
    hotspots, write the zh/en report and the brief. Returns the Chinese JSON document with
    ``trends``, ``brief`` and ``reports``."""
    from proposals.job import stored

    sla = SlaConfig.load(config_dir)
    rcfg = load_ranking_config(config_dir)
    out = None if rerank else load_stored(engine, month, ref, province_code, levels)
    if out is None:
        out = run_ranking(engine, month, ref, sla, rcfg, province_code, levels)
    trends = hotspots(engine, month, province_code, ref, TrendConfig.load(config_dir))
    docs = {lang: as_json(out, ref, lang) for lang in LANGS}
    proposal = stored(engine, month, province_code)
    briefs = {lang: brief_lines(docs[lang], trends, ref, lang, proposal) for lang in LANGS}
    method = {"w": sla.repeat_window_days, "n": rcfg.min_closed, "z": rcfg.significance_z}
    paths = write(docs, trends, ref, Path(var_dir), briefs, method)
    return {**docs["zh"], "weights": dict(rcfg.weights), "trends": trends, "brief": briefs["zh"],
            "brief_en": briefs["en"], "reports": paths}


def deliver_brief(engine, res: dict[str, Any], ref: Reference, alerts_cfg, var_dir: Path,
                  now: dt.datetime | None = None, secrets=None) -> dict[str, Any]:
    """The province's brief (with a link to the report) to ``province:<code>``, once per month."""
    from alerts.outbox import queue_reports, report_link
    from alerts.render import Message, report_message

    month, prov = res["month"], res["province"]

    def build(lang: str, rname: str) -> Message:
        lines = res["brief"] if lang == "zh" else res["brief_en"]
        link = report_link(alerts_cfg, var_dir, f"ranking/{month}/{Path(res['reports'][lang]).name}")
        subject = (f"【赛马排名与月度简报】{rname}：{month}" if lang == "zh" else
                   f"[Horse race and monthly brief] {rname}: {month}")
        return report_message(subject, lines, link=link, link_text="完整排名与趋势" if lang == "zh" else "Full report")

    import pandas as pd

    item = {"receiver": f"province:{prov}", "ds": pd.Period(month, freq="M").end_time.date(),
            "group": f"ranking:{month}", "keys": [month], "labels": {"ranking": month}, "build": build}
    return queue_reports(engine, [item], alerts_cfg, ref, var_dir, now, secrets)
