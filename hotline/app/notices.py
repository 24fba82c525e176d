"""Notices to the operators (``operators:<province>`` in config/alerts.yaml) through the alerts
outbox: what the Airflow callbacks and the daily run tell them. Imports nothing heavy at module
level: the DAG files import this through hotline.callbacks and must parse fast."""
from __future__ import annotations

import datetime as dt
import logging

log = logging.getLogger(__name__)


def notify_operators(day: dt.date, group: str, key: str, labels: dict[str, str], build, rt=None) -> None:
    """Queue one operators' notice (receiver ``operators:<province>``) through the alerts outbox;
    ``key`` is its dedup key, so a repeated call sends nothing twice."""
    from alerts.outbox import queue_reports
    from hotline.app.runtime import Runtime

    rt = (rt or Runtime.from_env()).migrate()
    item = {"receiver": f"operators:{rt.province}", "ds": day, "group": group, "keys": [key], "labels": labels,
            "build": build}
    queue_reports(rt.engine, [item], rt.alerts_config, rt.ref, rt.settings.var_dir, secrets=rt.secrets())


def report_abandoned_runs(days: int = 7, rt=None) -> int:
    """Tell the operators of every run marked "abandoned" (left "running" by a process that was
    killed) in the last ``days`` days: one notice per run, its dedup key the run id, so calling
    this from every daily run sends each once. Returns how many were found; never raises."""
    try:
        from alerts.render import report_message
        from hotline.app.runtime import Runtime
        from warehouse.runs import abandoned_runs

        rt = rt or Runtime.from_env()

        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
        found = abandoned_runs(rt.engine, since)
        for r in found:
            day = r["logical_date"] or r["finished_at"].date()

            def build(lang: str, rname: str, r=r, day=day):
                if lang == "zh":
                    return report_message(f"【运维告警】{r['stage']} 运行中断（{day}）", [
                        f"运行：{r['run_id']}，开始于 {r['started_at']:%Y-%m-%d %H:%M} UTC", f"情况：{r['message']}",
                        "影响：该运行未完成，其结果不完整；后续运行已接手。",
                        "处理：查看该时段的日志（进程被杀或机器重启），确认后重跑该日（`hotline runs` 可看各阶段）。"])
                return report_message(f"[Operations] {r['stage']} run abandoned ({day})", [
                    f"Run: {r['run_id']}, started {r['started_at']:%Y-%m-%d %H:%M} UTC", f"What: {r['message']}",
                    "Effect: the run did not finish and its output is incomplete; later runs have taken over.",
                    "What to do: read the logs of that time (a killed process or a restart), then rerun the day "
                    "(`hotline runs` shows each stage)."])

            notify_operators(day, "ops:runs", f"abandoned:{r['run_id']}",
                              {"stage": r["stage"], "run": r["run_id"], "kind": "run_abandoned"}, build, rt)
        return len(found)
    except Exception:  # noqa: BLE001 - reporting must not fail the task that calls it
        log.exception("report_abandoned_runs: could not notify the operators")
        return 0
