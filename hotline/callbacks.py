"""Airflow callbacks that tell the operators (``operators:<province>`` in config/alerts.yaml), through
the alerts outbox, when a task has failed for good, when the data-quality gate halted a run, and
when the daily run missed its deadline. Imports nothing heavy at module level: the
DAG files import this and must parse fast."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from hotline.app.notices import notify_operators, report_abandoned_runs  # noqa: F401 (report_* for the DAGs)

log = logging.getLogger(__name__)


def _local_day(context: dict[str, Any]) -> dt.date:
    """The day the failed run covers (as its tasks take it), else today in the province's time zone."""
    import pendulum

    from hotline.app.operations import load_operations, run_day

    tz = load_operations().timezone
    day = run_day((context.get("params") or {}).get("day"),
                  context.get("data_interval_start") or context.get("logical_date"), tz)
    return day or pendulum.now(tz).date()


DQ_TASKS = {"validate", "feed_health"}


def on_task_failure(context: dict[str, Any]) -> None:
    """``on_failure_callback``: a task failed after its retries, or the data-quality gate halted
    the run (no retry: the feed must be fixed first). Queue one operators' notice per DAG, task,
    run and try (the outbox's dedup key), with the error and what to do; never raise (a callback
    that fails would hide the task's own error)."""
    try:
        from alerts.render import report_message

        ti = context.get("task_instance") or context.get("ti")
        dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
        task_id, run_id = getattr(ti, "task_id", "?"), getattr(ti, "run_id", None) or str(context.get("run_id"))
        tries = getattr(ti, "try_number", None)
        err = context.get("exception")
        error = f"{type(err).__name__}: {err}" if err is not None else "unknown error"
        halted = task_id in DQ_TASKS and "data-quality gate halted" in str(err)
        if task_id == "validate":
            held_zh = "本批数据停留在暂存区、未发布，"
            held_en = "the batch stays staged and unpublished; "
        else:
            held_zh = "该日已发布但已标记为可疑，"
            held_en = "the day is published but flagged; "
        day = _local_day(context)

        def build(lang: str, rname: str):
            if halted and lang == "zh":
                subject = f"【运维告警】数据质量闸门暂停了 {dag_id} 的运行（{day}）"
                lines = [f"任务：{dag_id} / {task_id}；运行：{run_id}", f"原因：{err}",
                         f"影响：{held_zh}预测、异常检测与异常预警不会使用这一天（红黄灯照常）。",
                         "处理：按页面所述修复数据源或映射后，重跑该日（清除该任务或以 day 参数触发）。"]
            elif halted:
                subject = f"[Operations] the data-quality gate halted {dag_id} ({day})"
                lines = [f"Task: {dag_id} / {task_id}; run: {run_id}", f"Why: {err}",
                         f"Effect: {held_en}forecasts, anomaly detection and anomaly alerts do not use the "
                         "day (the overdue lights go on).",
                         "What to do: fix the source or the mapping as the page says, then rerun the day "
                         "(clear the task, or trigger with the day param)."]
            elif lang == "zh":
                subject = f"【运维告警】{dag_id}.{task_id} 运行失败（{day}）"
                lines = [f"任务：{dag_id} / {task_id}（第 {tries} 次尝试，已用尽重试）", f"运行：{run_id}",
                         f"错误：{error}",
                         "处理：查看该任务日志，修复后在 Airflow 中清除（Clear）该任务；"
                         "DAG 文档说明每个任务失败时怎么办。"]
            else:
                subject = f"[Operations] {dag_id}.{task_id} failed ({day})"
                lines = [f"Task: {dag_id} / {task_id} (try {tries}, retries exhausted)", f"Run: {run_id}",
                         f"Error: {error}", "What to do: read the task's log, fix, then clear the task in Airflow; "
                         "the DAG's docs say what to do when each task fails."]
            return report_message(subject, lines)

        notify_operators(day, f"ops:{dag_id}", f"{dag_id}:{task_id}:{run_id}:{tries}",
                          {"dag": dag_id, "task": task_id, "kind": "dq_halt" if halted else "task_failed"}, build)
    except Exception:  # noqa: BLE001 - the task's own failure is what matters; log ours
        log.exception("on_task_failure: could not notify the operators")


def _tz_zh(tz: str) -> str:
    return "北京时间" if tz == "Asia/Shanghai" else f"当地时间 {tz}"


def deadline_notice(context: dict[str, Any] | None) -> tuple[dict[str, str], Any] | None:
    """What to tell the operators when a daily run missed its deadline: (labels, build), or None
    when the deadline had already passed when the run was queued (a backfill or a late rerun of an
    old day, started on purpose: its lateness is not news)."""
    import pendulum

    from alerts.render import report_message

    context = context or {}
    run = context.get("dag_run") or {}
    deadline = (context.get("deadline") or {}).get("deadline_time")
    if deadline is None:
        return None
    deadline = pendulum.instance(deadline) if not isinstance(deadline, str) else pendulum.parse(deadline)
    queued = run.get("queued_at") or run.get("run_after")
    run_type = run.get("run_type")
    if run_type == "backfill" or (run_type == "manual" and queued and pendulum.parse(str(queued)) >= deadline):
        return None  # a scheduled run created late (the scheduler was down) is exactly what to report
    dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
    from hotline.app.operations import load_operations, run_day

    tz = load_operations().timezone
    local = deadline.in_timezone(tz)

    # the day the run covers, as the DAG's tasks take it
    covered = run_day((run.get("conf") or {}).get("day"), run.get("data_interval_start") or run.get("logical_date"), tz)
    day = (covered or local.subtract(days=1).date()).isoformat()
    state = run.get("state", "?")
    failed = state == "failed"

    def build(lang: str, rname: str):
        if lang == "zh":
            what = "已失败，至今未重跑成功" if failed else f"未在 {local:%m-%d %H:%M} 前完成"
            return report_message(f"【运维告警】{dag_id} {day} 的运行{what}", [
                f"运行：{run_id}（状态：{state}）", f"截止时间：{local:%Y-%m-%d %H:%M}（{_tz_zh(tz)}）",
                "影响：各办公室今天的预警、红黄灯日报和看板可能延迟。",
                "处理：在 Airflow 中查看该运行哪个任务仍在运行或排队（worker 是否在线、池是否占满），"
                "必要时增加 worker；`hotline runs --last 3` 可看各阶段耗时。"])
        what = "failed and not rerun successfully" if failed else "not finished"
        return report_message(f"[Operations] {dag_id} for {day} {what} by {local:%m-%d %H:%M}", [
            f"Run: {run_id} (state: {state})", f"Deadline: {local:%Y-%m-%d %H:%M} {tz}",
            "Effect: today's alerts, overdue lists and the board may be late for the offices.",
            "What to do: see in Airflow which task is still running or queued (workers up? pool full?), "
            "add a worker if needed; `hotline runs --last 3` shows each stage's time."])

    return {"dag": dag_id, "run": run_id, "day": day, "deadline": local.isoformat(), "kind": "deadline"}, build


def _deadline_missed(context: dict[str, Any] | None) -> None:
    got = deadline_notice(context)
    if got is None:
        log.info("deadline missed by a run queued after its deadline (backfill or late rerun): not reported")
        return
    labels, build = got
    notify_operators(dt.date.fromisoformat(labels["day"]), f"ops:{labels['dag']}",
                      f"deadline:{labels['dag']}:{labels['run']}", labels, build)


async def on_daily_deadline_missed(context: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """The daily DAG's DeadlineAlert callback; Airflow's triggerer awaits it when a run is still
    unfinished at the deadline. The database work runs in a thread so the triggerer's loop is free."""
    import asyncio

    try:
        await asyncio.to_thread(_deadline_missed, context)
    except Exception:  # noqa: BLE001 - log it: the triggerer marks the callback failed otherwise silently
        log.exception("on_daily_deadline_missed: could not notify the operators")
        raise
