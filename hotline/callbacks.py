"""Airflow callbacks that tell the operators (``operators:<province>`` in config/alerts.yaml) when a
task has failed for good, through the alerts outbox. Imports nothing heavy at module level: the
DAG files import this and must parse fast."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

log = logging.getLogger(__name__)


def _local_day(context: dict[str, Any]) -> dt.date:
    import pendulum

    when = context.get("logical_date") or context.get("data_interval_end")
    if when is None:
        return pendulum.now("Asia/Shanghai").date()
    return pendulum.instance(when).in_timezone("Asia/Shanghai").date()


def on_task_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback``: a task failed after its retries. Queue one operators' notice per
    DAG, task, run and try (the outbox's dedup key), with the error and what to do; never raise
    (a callback that fails would hide the task's own error)."""
    try:
        from alerts.config import AlertsConfig
        from alerts.notify import queue_reports
        from alerts.render import report_message
        from hotline.reference import load_reference
        from hotline.settings import load_settings
        from warehouse.db import connect, migrate

        ti = context.get("task_instance") or context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
        task_id, run_id = getattr(ti, "task_id", "?"), getattr(ti, "run_id", None) or str(context.get("run_id"))
        tries = getattr(ti, "try_number", None)
        err = context.get("exception")
        error = f"{type(err).__name__}: {err}" if err is not None else "unknown error"
        s = load_settings()
        engine = connect(s.db_url)
        migrate(engine)
        day = _local_day(context)

        def build(lang: str, rname: str):
            if lang == "zh":
                subject = f"【运维告警】{dag_id}.{task_id} 运行失败（{day}）"
                lines = [f"任务：{dag_id} / {task_id}（第 {tries} 次尝试，已用尽重试）", f"运行：{run_id}", f"错误：{error}",
                         "处理：查看该任务日志，修复后在 Airflow 中清除（Clear）该任务；DAG 文档说明每个任务失败时怎么办。"]
            else:
                subject = f"[Operations] {dag_id}.{task_id} failed ({day})"
                lines = [f"Task: {dag_id} / {task_id} (try {tries}, retries exhausted)", f"Run: {run_id}",
                         f"Error: {error}", "What to do: read the task's log, fix, then clear the task in Airflow; "
                         "the DAG's docs say what to do when each task fails."]
            return report_message(subject, lines)

        item = {"receiver": f"operators:{s.province}", "ds": day, "group": f"ops:{dag_id}",
                "keys": [f"{dag_id}:{task_id}:{run_id}:{tries}"], "labels": {"dag": dag_id, "task": task_id},
                "build": build}
        queue_reports(engine, [item], AlertsConfig.load(s.config_dir), load_reference(s.config_dir), s.var_dir)
    except Exception:  # noqa: BLE001 - the task's own failure is what matters; log ours
        log.exception("on_task_failure: could not notify the operators")
