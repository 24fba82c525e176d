"""Hand each scope's proposal to the alerts stage's outbox: the city's 12345 centre (``city:<code>``)
and the province's office (``province:<code>``) get it on their channels (config/alerts.yaml),
once per month and chosen issue (the outbox's dedup key), with the same retries as alerts."""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from alerts.channels import Secrets
from alerts.config import AlertsConfig
from alerts.outbox import queue_reports, report_link
from alerts.render import Message, report_message
from hotline.core.reference import Reference
from proposals.report import SPROUT_KINDS, evidence_lines, label


def proposal_link(cfg: AlertsConfig, var_dir: Path, rec: Mapping[str, Any], lang: str) -> str:
    path = ((rec.get("reports") or {}).get(lang) or {}).get("html")
    if not path:
        return ""
    return report_link(cfg, var_dir, f"proposals/{pd.Timestamp(rec['month']).to_period('M')}/{Path(path).name}")


def _message(rec: Mapping[str, Any], ref: Reference, lang: str, receiver_name: str, link: str) -> Message:
    month = pd.Timestamp(rec["month"]).to_period("M")
    issue = label(rec["chosen"], ref, lang)
    chosen = next((c for c in rec["candidates"] if c["candidate"] == rec["chosen"]), None)
    scope_label = ref.regions.name(rec["scope"], lang)
    why = evidence_lines(chosen, scope_label, ref, lang, month)[:6] if chosen else []
    watch = [label(c["candidate"], ref, lang) for c in rec["candidates"] if c.get("role") == "watch"][:3]
    sprouts = [(label(c["candidate"], ref, lang), SPROUT_KINDS[lang].get(c.get("sprout_kind"), ""))
               for c in rec["candidates"] if c.get("role") == "sprout"][:3]
    if lang == "zh":
        subject = f"【每月一题建议】{receiver_name}：{issue}（{month} 数据，{month + 1} 专项治理）"
        tail = f"观察名单：{'、'.join(watch) or '无'}"
        if sprouts:
            tail += f"；苗头：{'、'.join(f'{n}（{k}）' for n, k in sprouts)}"
        more = "完整建议"
    else:
        subject = f"[Issue of the month] {receiver_name}: {issue} ({month} data, for {month + 1})"
        tail = f"Watch list: {', '.join(watch) or 'none'}"
        if sprouts:
            tail += f"; sprouts: {', '.join(f'{n} ({k})' for n, k in sprouts)}"
        more = "Full proposal"
    return report_message(subject, why, tail, link, more)


def deliver_proposals(engine: Engine, stored: Sequence[Mapping[str, Any]], cfg: AlertsConfig, ref: Reference,
                      var_dir: Path, now: dt.datetime | None = None, secrets: Secrets | None = None) -> dict[str, Any]:
    """Queue each stored proposal (``proposals.job.stored_month`` rows) on its office's channels
    and deliver what is due. The province's goes to ``province:<code>``, a city's to ``city:<code>``."""
    provinces = {p.code for p in ref.regions.provinces}
    items = []
    for rec in stored:
        if not rec.get("chosen"):
            continue
        month = pd.Timestamp(rec["month"]).to_period("M")
        items.append({"receiver": f"{'province' if rec['scope'] in provinces else 'city'}:{rec['scope']}",
                      "ds": month.end_time.date(), "group": f"proposal:{month}", "keys": [rec["chosen"]],
                      "labels": {"proposal": str(month)},
                      "build": lambda lang, rname, rec=rec: _message(rec, ref, lang, rname,
                                                                     proposal_link(cfg, var_dir, rec, lang))})
    return queue_reports(engine, items, cfg, ref, var_dir, now, secrets)
