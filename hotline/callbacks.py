"""Airflow callbacks that tell the operators (``operators:<province>`` in config/alerts.yaml), through
the alerts outbox, when a task has failed for good, when the data-quality gate halted a run, and
when the daily run missed its deadline. Imports nothing heavy at module level: the
DAG files import this and must parse fast."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Any

log = logging.getLogger(__name__)


def _local_day(context: dict[str, Any]) -> dt.date:
    """The day the failed run covers (as its tasks take it), else today in Asia/Shanghai."""
    import pendulum

    from hotline.app.operations import run_day

    day = run_day((context.get("params") or {}).get("day"),
                  context.get("data_interval_start") or context.get("logical_date"))
    return day or pendulum.now("Asia/Shanghai").date()


DQ_TASKS = {"validate", "feed_health"}


def _notify_operators(day: dt.date, group: str, key: str, labels: dict[str, str], build) -> None:
    """Queue one operators' notice (receiver ``operators:<province>``) through the alerts outbox;
    ``key`` is its dedup key, so a repeated call sends nothing twice."""
    from alerts.config import AlertsConfig
    from alerts.notify import queue_reports
    from hotline.core.reference import load_reference
    from hotline.core.settings import load_settings
    from warehouse.db import connect, migrate

    s = load_settings()
    engine = connect(s.db_url)
    migrate(engine)
    item = {"receiver": f"operators:{s.province}", "ds": day, "group": group, "keys": [key], "labels": labels,
            "build": build}
    queue_reports(engine, [item], AlertsConfig.load(s.config_dir), load_reference(s.config_dir), s.var_dir)


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
                lines = [f"任务：{dag_id} / {task_id}（第 {tries} 次尝试，已用尽重试）", f"运行：{run_id}", f"错误：{error}",
                         "处理：查看该任务日志，修复后在 Airflow 中清除（Clear）该任务；DAG 文档说明每个任务失败时怎么办。"]
            else:
                subject = f"[Operations] {dag_id}.{task_id} failed ({day})"
                lines = [f"Task: {dag_id} / {task_id} (try {tries}, retries exhausted)", f"Run: {run_id}",
                         f"Error: {error}", "What to do: read the task's log, fix, then clear the task in Airflow; "
                         "the DAG's docs say what to do when each task fails."]
            return report_message(subject, lines)

        _notify_operators(day, f"ops:{dag_id}", f"{dag_id}:{task_id}:{run_id}:{tries}",
                          {"dag": dag_id, "task": task_id, "kind": "dq_halt" if halted else "task_failed"}, build)
    except Exception:  # noqa: BLE001 - the task's own failure is what matters; log ours
        log.exception("on_task_failure: could not notify the operators")


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
    local = deadline.in_timezone("Asia/Shanghai")
    from hotline.app.operations import run_day

    # the day the run covers, as the DAG's tasks take it
    covered = run_day((run.get("conf") or {}).get("day"), run.get("data_interval_start") or run.get("logical_date"))
    day = (covered or local.subtract(days=1).date()).isoformat()
    state = run.get("state", "?")
    failed = state == "failed"

    def build(lang: str, rname: str):
        if lang == "zh":
            what = "已失败，至今未重跑成功" if failed else f"未在 {local:%m-%d %H:%M} 前完成"
            return report_message(f"【运维告警】{dag_id} {day} 的运行{what}", [
                f"运行：{run_id}（状态：{state}）", f"截止时间：{local:%Y-%m-%d %H:%M}（北京时间）",
                "影响：各办公室今天的预警、红黄灯日报和看板可能延迟。",
                "处理：在 Airflow 中查看该运行哪个任务仍在运行或排队（worker 是否在线、池是否占满），"
                "必要时增加 worker；`hotline runs --last 3` 可看各阶段耗时。"])
        what = "failed and not rerun successfully" if failed else "not finished"
        return report_message(f"[Operations] {dag_id} for {day} {what} by {local:%m-%d %H:%M}", [
            f"Run: {run_id} (state: {state})", f"Deadline: {local:%Y-%m-%d %H:%M} Asia/Shanghai",
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
    _notify_operators(dt.date.fromisoformat(labels["day"]), f"ops:{labels['dag']}",
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


def report_abandoned_runs(days: int = 7) -> int:
    """Tell the operators of every run marked "abandoned" (left "running" by a process that was
    killed) in the last ``days`` days: one notice per run, its dedup key the run id, so calling
    this from every daily run sends each once. Returns how many were found; never raises."""
    try:
        from alerts.render import report_message
        from hotline.core.settings import load_settings
        from warehouse.db import connect
        from warehouse.runs import abandoned_runs

        since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=days)
        found = abandoned_runs(connect(load_settings().db_url), since)
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

            _notify_operators(day, "ops:runs", f"abandoned:{r['run_id']}",
                              {"stage": r["stage"], "run": r["run_id"], "kind": "run_abandoned"}, build)
        return len(found)
    except Exception:  # noqa: BLE001 - reporting must not fail the task that calls it
        log.exception("report_abandoned_runs: could not notify the operators")
        return 0
