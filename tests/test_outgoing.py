"""What leaves for the offices, under a tester's attacks: citizen text carrying markup and links
(inert in every channel's format, our own links still live), secrets in receiver URLs (never
stored or printed), a receiver that hangs (no resend storm, the other channels still served)
and two runs queueing the same notices at once (one row per dedup key, no error).

Deliveries go to real local servers (tests/alert_servers.py); concurrency uses two connections
or two processes on SQLite and the real PostgreSQL."""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from sqlalchemy import func, insert, select

from alerts.acks import history
from alerts.channels import Secrets, redact
from alerts.model import fingerprint
from alerts.outbox import alert_link, deliver_due, outbox
from hotline.core.pii import mask_outgoing
from tests.alert_servers import HangingRobotServer, SmtpServer, free_port
from tests.test_alerts import (
    BAOAN,
    DAY,
    LONGGANG,
    NOW,
    SZ,
    Sleeps,
    anomaly,
    config,
    notices,
    robot_channels,
    robots,  # noqa: F401 - robots and wh are fixtures
    run,
    store,
    wh,  # noqa: F401
)
from warehouse.schema import notifications, tickets

EVIL = ("小区停水三天，电话13812345678 <script>alert(1)</script> <img src=x onerror=alert(1)> "
        "[点我](http://evil.example/x) 详情 http://evil.example/x")
DEFANGED = "hxxp://evil[.]example/x"  # how the link shows, as text
REPORTS = "https://reports.example.gov.cn/12345"
PROPERTY = "housing.property_service"


# ------------------------------------------------------------------ how a renderer sees it
_MARKDOWN = MarkdownIt("commonmark", {"html": True, "linkify": True}).enable(["linkify", "table", "strikethrough"])


class _Tags(HTMLParser):
    def __init__(self, html: str):
        super().__init__()
        self.tags: list[str] = []
        self.links: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("href", "src")]


def assert_inert_markdown(md: str, own_links: list[str]) -> None:
    """Rendered as CommonMark with raw HTML allowed and bare URLs linked (the most permissive
    renderer): no tag of the citizen's, no link but ours, the citizen's link shown as text."""
    assert "<script>" not in md and "<img" not in md and "http://evil" not in md
    html = _MARKDOWN.render(md)
    tags = _Tags(html)
    assert "script" not in tags.tags and "img" not in tags.tags, html
    assert sorted(set(tags.links)) == sorted(set(own_links)), html  # ours live, nothing else
    assert DEFANGED in html and "&lt;script&gt;" in html  # shown as text


def assert_inert_html(html: str, own_links: list[str]) -> None:
    tags = _Tags(html)
    assert "<script>" not in html and "script" not in tags.tags and "img" not in tags.tags
    assert sorted(set(tags.links)) == sorted(set(own_links)) and "http://evil" not in html
    assert DEFANGED in html and "&lt;script&gt;" in html


def assert_inert_text(text: str) -> None:
    assert "<script>" not in text and "http://evil" not in text and DEFANGED in text


def with_ticket_texts(engine, text: str) -> str:
    """A red property-service alert in 宝安区 whose tickets (and the detector's explanation) say
    ``text``; returns the alert's fingerprint."""
    a = anomaly("district", BAOAN, category_code=PROPERTY, explanation=f"当日突增。{text}")
    store(engine, a)
    with engine.begin() as conn:
        conn.execute(insert(tickets), [{
            "ticket_id": f"T{i}", "source": "test", "received_at": NOW - dt.timedelta(hours=20),
            "received_date": DAY, "channel": "phone", "province_code": "440000", "city_code": SZ,
            "district_code": BAOAN, "category_l1": "housing", "category_l2": PROPERTY,
            "content": f"{text} {i}", "status": "open", "is_repeat": False, "updated_at": NOW} for i in range(2)])
    return fingerprint(a["series_id"], "spike")


# ------------------------------------------------------------------ 1. citizen text, inert
ROBOT_PATHS = {"dingtalk": "/dingtalk", "wecom": "/wecom", "feishu": "/feishu", "hub": "/webhook"}


@pytest.mark.parametrize("channel", list(ROBOT_PATHS))
def test_citizen_text_reaches_each_robot_and_webhook_inert(wh, ref, tmp_path, robots, channel):
    channels, env = robot_channels(robots)
    cfg = config({channel: channels[channel]}, {"defaults": {"district": [channel]}}, report_base_url=REPORTS)
    fp = with_ticket_texts(wh, EVIL)
    assert run(wh, ref, cfg, tmp_path, env=env).delivery["delivered"] == 1
    doc = robots.delivered(ROBOT_PATHS[channel])[0].json
    md = {"dingtalk": lambda: doc["actionCard"]["text"], "wecom": lambda: doc["markdown"]["content"],
          "feishu": lambda: doc["card"]["elements"][0]["content"], "hub": lambda: doc["markdown"]}[channel]()
    assert_inert_markdown(md, [alert_link(cfg, tmp_path, DAY, fp)])
    assert "[手机号]" in md and "13812345678" not in md  # still masked, the placeholder readable
    if channel == "dingtalk":  # the alert's page is the card's button
        assert [b["actionURL"] for b in doc["actionCard"]["btns"]] == [alert_link(cfg, tmp_path, DAY, fp)]
    if channel == "feishu":
        (action,) = [e for e in doc["card"]["elements"] if e["tag"] == "action"]
        assert [b["url"] for b in action["actions"]] == [alert_link(cfg, tmp_path, DAY, fp)]
    if channel == "hub":  # the generic webhook: its plain text is inert, its alerts are data
        assert_inert_text(doc["text"])
        assert doc["alerts"][0]["samples"][0] == mask_outgoing(f"{EVIL} 0")[:120]  # JSON: masked, not escaped


def test_citizen_text_reaches_email_inert_in_html_and_plain_text(wh, ref, tmp_path):
    smtp = SmtpServer().start()
    try:
        env = {"AIRFLOW_CONN_HOTLINE_SMTP": f"smtp://{smtp.user.replace('@', '%40')}:{smtp.password}"
                                            f"@127.0.0.1:{smtp.port}?starttls=false"}
        cfg = config({"mail": {"type": "email", "conn_id": "hotline_smtp", "to": ["baoan@example.gov.cn"]}},
                     {"defaults": {"district": ["mail"]}}, report_base_url=REPORTS)
        fp = with_ticket_texts(wh, EVIL)
        assert run(wh, ref, cfg, tmp_path, env=env).delivery["delivered"] == 1
        msg = smtp.messages[0]["message"]
    finally:
        smtp.stop()
    assert_inert_html(msg.get_body(("html",)).get_content(), [alert_link(cfg, tmp_path, DAY, fp)])
    text = msg.get_body(("plain",)).get_content()
    assert_inert_text(text)
    assert alert_link(cfg, tmp_path, DAY, fp) in text  # our link, whole


def test_citizen_text_in_the_notice_files_md_inert_jsonl_as_data(wh, ref, tmp_path):
    cfg = config(report_base_url=REPORTS)
    fp = with_ticket_texts(wh, EVIL)
    run(wh, ref, cfg, tmp_path)
    md = (tmp_path / "notices" / f"{DAY}.md").read_text(encoding="utf-8")
    body = md.split("-->\n", 1)[1]  # after our own comment line
    assert_inert_markdown(body, [alert_link(cfg, tmp_path, DAY, fp)])
    record = notices(tmp_path)[0]
    assert record["body"] == body.split("\n\n---", 1)[0].rstrip("\n")  # the .jsonl's rendered body: the same
    assert record["payload"]["alerts"][0]["samples"][0] == mask_outgoing(f"{EVIL} 0")[:120]  # data: raw, masked


def test_citizen_text_in_the_proposal_md_and_html_inert(ref):
    from proposals.report import View, render_html, render_markdown

    v = View("zh", "每月一题建议 · 深圳市 · 2026-03：深圳市·供水",
             {"数据月份": "2026-03", "分析员改选": f"李分析: {EVIL}"},
             ["2026-03 月共 120 件，日均 3.9 件。"], samples=[EVIL, mask_outgoing(EVIL)],
             streets=[(f"新安街道{EVIL}", 3)], notes=[f"分析员理由：{EVIL}"],
             districts=[{"code": BAOAN, "name": "宝安区", "tickets": 3.0, "base": 2.0, "change": 0.5}])
    md = render_markdown(v)
    assert_inert_markdown(md, [])
    assert "新安街道" in md and "[手机号]" in md and "| 宝安区 | 3 | 50.0% |" in md  # our table intact
    assert_inert_html(render_html(v), [])


def test_report_notices_place_free_text_inert_and_keep_our_link(ref):
    from alerts.render import channel_payload, report_message

    link = f"{REPORTS}/proposals/2026-03/440300.zh.html"
    msg = report_message(f"【运维告警】{EVIL}", [EVIL, f"  {EVIL}"], tail=EVIL, link=link, link_text="完整建议")
    assert_inert_markdown(msg.markdown, [link])
    assert_inert_html(msg.html, [link])
    assert_inert_text(msg.text)
    assert link in msg.text
    payload = channel_payload("dingtalk", msg, {})
    assert payload["markdown"]["text"] == msg.markdown and "13812345678" not in json.dumps(payload, ensure_ascii=False)


# ------------------------------------------------------------------ 2. secrets in URLs
SECRETS = {"password": "PW-s3cret", "sig": "SIG-s3cret", "token": "TOK-s3cret", "key": "KEY-s3cret",
           "access_token": "AT-s3cret"}
USERINFO = "alice:UI-s3cret"


def test_redact_hides_every_query_value_user_info_and_path_tokens():
    url = "https://alice:pw@hooks.example/hook/9f8e7d6c12345678abcdef?password=X&sig=Y&token=T&key=K&access_token=A"
    assert redact(url) == "https://***@hooks.example/hook/***?password=***&sig=***&token=***&key=***&access_token=***"
    assert redact(f"HTTP 500 from {url}: boom") == redact(redact(f"HTTP 500 from {url}: boom"))  # stable
    assert redact(f"HTTP 500 from {url}: boom").endswith("access_token=***: boom")


def test_secrets_in_a_webhook_url_never_reach_errors_receipts_history_or_the_cli(wh, ref, tmp_path, robots,
                                                                                monkeypatch):
    from click.testing import CliRunner

    from hotline.cli import main

    query = "&".join(f"{k}={v}" for k, v in SECRETS.items())
    url = robots.url(f"/webhook/hotline?{query}").replace("http://", f"http://{USERINFO}@")
    env = {"HUB_URL": url, "HUB_SECRET": robots.webhook_secret}
    cfg = config({"hub": {"type": "webhook", "url_env": "HUB_URL", "secret_env": "HUB_SECRET"}},
                 {"defaults": {"district": ["hub"]}})
    robots.fail_next["/webhook"] = [500] * 3  # a receiver that fails: last_error is written
    store(wh, anomaly("district", BAOAN))
    assert run(wh, ref, cfg, tmp_path, env=env).delivery["retrying"] == 1
    error = outbox(wh, "pending")[0]["last_error"]
    assert "HTTP 500" in error and "password=***" in error and "//***@127.0.0.1" in error
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    cli = CliRunner().invoke(main, ["alerts", "outbox", "--db", str(wh.url)])
    assert cli.exit_code == 0 and "last error: HTTP 500" in cli.output
    # the receiver answers: the receipt stored with the delivery
    assert deliver_due(wh, cfg, Secrets(env), tmp_path, now=NOW + dt.timedelta(hours=1))["delivered"] == 1
    receipt = [h for h in history(wh) if h["action"] == "delivered"][0]["detail"]["receipt"]
    assert receipt.startswith("HTTP 200 from http://***@127.0.0.1") and "sig=***" in receipt
    cli_json = CliRunner().invoke(main, ["alerts", "outbox", "--db", str(wh.url), "--json"]).output
    stored = json.dumps([*history(wh), *outbox(wh)], ensure_ascii=False, default=str) + cli.output + cli_json
    for secret in [*SECRETS.values(), USERINFO.split(":")[1]]:
        assert secret not in stored, secret
    assert all(f"{k}=***" in stored for k in SECRETS)


# ------------------------------------------------------------------ 3. a hanging receiver
DISTRICTS = (BAOAN, LONGGANG, "440309", "440304")


@pytest.fixture
def hanging():
    srv = HangingRobotServer(delay=5.0).start()
    yield srv
    srv.stop()


def hanging_setup(srv: HangingRobotServer, engine):
    """Four district notices on two channels each: ``slow`` (a webhook that answers after 5 s,
    against a 0.5 s timeout) and ``wecom`` (healthy)."""
    channels, env = robot_channels(srv)
    env["SLOW_URL"] = srv.url("/webhook/slow")
    chans = {"slow": {"type": "webhook", "url_env": "SLOW_URL", "secret_env": "HOTLINE_HUB_SECRET"},
             "wecom": channels["wecom"]}
    cfg = config(chans, {"defaults": {"district": ["slow", "wecom"]}},
                 delivery={"attempts_per_run": 3, "backoff_seconds": 0.5, "retry_after": "30m",
                           "give_up_after_attempts": 20, "timeout_seconds": 0.5, "circuit_breaker_after": 2})
    store(engine, *[anomaly("district", d, category_code=PROPERTY) for d in DISTRICTS])
    return cfg, env


def slow_arrivals(srv: HangingRobotServer, since: int = 0) -> dict[str, int]:
    got: dict[str, int] = {}
    for path, key in srv.arrivals[since:]:
        if path.startswith("/webhook/slow"):
            got[key] = got.get(key, 0) + 1
    return got


def test_a_hanging_receiver_gets_each_notice_at_most_once_a_run_and_the_others_are_served(wh, ref, tmp_path,
                                                                                        hanging):
    cfg, env = hanging_setup(hanging, wh)
    sleeps = Sleeps()
    res = run(wh, ref, cfg, tmp_path, env=env, sleeps=sleeps)
    first = slow_arrivals(hanging)
    assert max(first.values()) == 1  # deliveries per notice per run: one (a timeout is not retried)
    assert len(first) == 2  # then the circuit opened: the other two were not tried
    assert res.delivery["delivered"] == 4 and len(hanging.delivered("/wecom")) == 4  # the healthy channel: all
    assert res.delivery["retrying"] == 4 and res.delivery["failed"] == 0 and sleeps == []  # no backoff sleeps
    slow = sorted((r for r in outbox(wh) if r["channel"] == "slow"), key=lambda r: r["id"])
    assert [r["status"] for r in slow] == ["pending"] * 4
    assert [r["attempts"] for r in slow] == [1, 1, 0, 0]
    assert all("ReadTimeout" in r["last_error"] and "outcome unknown" in r["last_error"] for r in slow[:2])
    assert all(r["last_error"].startswith("circuit open: 2 timeouts") for r in slow[2:])
    assert all(r["next_attempt_at"] == NOW + dt.timedelta(minutes=30) for r in slow[:2])  # waits, backoff
    assert [h["detail"]["channel"] for h in history(wh) if h["action"] == "circuit_open"] == ["slow"]
    assert {r["dedup_key"] for r in slow[:2]} == set(first)

    # the next run: the notices not tried last time go first; still at most once each
    n = len(hanging.arrivals)
    res2 = deliver_due(wh, cfg, Secrets(env), tmp_path, now=NOW + dt.timedelta(hours=1), sleep=sleeps)
    second = slow_arrivals(hanging, n)
    assert max(second.values()) == 1 and set(second) == {r["dedup_key"] for r in slow[2:]}
    assert res2 == {"delivered": 0, "retrying": 4, "failed": 0}

    # the receiver recovers: each notice arrives once more, under the same dedup key, and is delivered
    hanging.hang = ()
    n = len(hanging.arrivals)
    res3 = deliver_due(wh, cfg, Secrets(env), tmp_path, now=NOW + dt.timedelta(hours=3), sleep=sleeps)
    assert res3["delivered"] == 4 and slow_arrivals(hanging, n) == {r["dedup_key"]: 1 for r in slow}
    assert slow_arrivals(hanging) == {r["dedup_key"]: 2 for r in slow}  # in all: two per notice over three runs


def test_a_refused_connection_opens_the_circuit_for_the_run(wh, ref, tmp_path):
    cfg = config({"down": {"type": "webhook", "url": f"http://127.0.0.1:{free_port()}/hook"}},
                 {"defaults": {"district": ["down"]}}, delivery={"attempts_per_run": 3, "backoff_seconds": 0.5,
                                                                 "circuit_breaker_after": 2})
    store(wh, *[anomaly("district", d, category_code=PROPERTY) for d in DISTRICTS[:3]])
    sleeps = Sleeps()
    assert run(wh, ref, cfg, tmp_path, sleeps=sleeps).delivery["retrying"] == 3
    rows = sorted(outbox(wh), key=lambda r: r["id"])
    assert [r["attempts"] for r in rows] == [2, 0, 0] and sleeps == [0.5]  # refused twice in a row: open
    assert "ConnectError" in rows[0]["last_error"] and all(r["last_error"].startswith("circuit open") for r in rows[1:])


# ------------------------------------------------------------------ 4. two runs queueing at once
def _lists(day: dt.date, hook):
    """The day's red/yellow lists for two districts (as ``hotline lights --send`` queues them);
    ``hook(i)`` runs while list ``i`` is built, inside the queueing transaction."""
    from alerts.render import report_message

    def build(i):
        def b(lang, rname):
            hook(i)
            return report_message(f"【红黄灯日报】{rname}：红灯 1 件（{day}）", [f"红 4420260302000010{i} 物业服务"],
                                  mask=False)
        return b
    return [{"receiver": f"district:{d}", "ds": day, "group": f"lights:{day}", "keys": [f"lights:{day}"],
             "build": build(i)} for i, d in enumerate((BAOAN, LONGGANG))]


def _queue_lists_process(url: str, var_dir: str, first: bool, inserted, checked, errors) -> None:
    """One ``lights --send`` in its own process. The first holds its transaction open after
    inserting its first list until the second has checked the outbox (and found nothing
    committed); the second then inserts the same dedup keys."""
    try:
        from alerts.outbox import queue_reports
        from hotline.core.reference import load_reference
        from warehouse.db import connect

        def hook(i):
            if first and i == 1:
                inserted.set()
                checked.wait(60)
            if not first and i == 0:
                checked.set()

        eng = connect(url)
        queue_reports(eng, _lists(DAY, hook), config(), load_reference(), Path(var_dir), NOW)
        eng.dispose()
    except BaseException as exc:  # noqa: BLE001 - reported to the test
        errors.put(f"{type(exc).__name__}: {exc}")


def test_two_lights_runs_queueing_at_once_make_one_row_per_dedup_key(engine, tmp_path):
    ctx = multiprocessing.get_context("spawn")
    inserted, checked, errors = ctx.Event(), ctx.Event(), ctx.Queue()
    url = engine.url.render_as_string(hide_password=False)
    one = ctx.Process(target=_queue_lists_process, args=(url, str(tmp_path), True, inserted, checked, errors))
    two = ctx.Process(target=_queue_lists_process, args=(url, str(tmp_path), False, inserted, checked, errors))
    one.start()
    assert inserted.wait(120), "the first run never queued its first list"
    two.start()
    for p in (one, two):
        p.join(120)
    got = []
    while not errors.empty():
        got.append(errors.get(timeout=1))
    assert got == [] and one.exitcode == 0 and two.exitcode == 0
    with engine.connect() as conn:
        keys = conn.execute(select(notifications.c.dedup_key, func.count()).group_by(notifications.c.dedup_key)).all()
    assert len(keys) == 2 and all(k == 1 for _, k in keys)


def test_two_notify_runs_enqueueing_the_same_due_list_at_once_make_one_row_each(engine, ref, tmp_path, monkeypatch):
    """The alerts' own enqueue, from two connections: the first holds its transaction open after
    its first notice until the second has checked the outbox."""
    import alerts.outbox as notify
    from alerts.routing import group_alerts
    from tests.test_alerts import _alert

    cfg = config()
    alerts = [_alert(anomaly("district", d, category_code=PROPERTY), ref) for d in (BAOAN, LONGGANG)]
    due = [(g, g.firing, []) for g in group_alerts(alerts, cfg)]
    inserted, checked = threading.Event(), threading.Event()
    compose, calls = notify.compose, {}

    def held_compose(*args, **kw):
        me = threading.current_thread().name
        calls[me] = calls.get(me, 0) + 1
        if me == "first" and calls[me] == 2:
            inserted.set()
            checked.wait(60)
        if me == "second" and calls[me] == 1:
            checked.set()
        return compose(*args, **kw)

    monkeypatch.setattr(notify, "compose", held_compose)
    out, errors = {}, []

    def enqueue(name):
        try:
            out[name] = notify.enqueue(engine, DAY, due, cfg, ref, tmp_path, NOW)
        except Exception as exc:  # noqa: BLE001 - reported to the test
            errors.append(f"{type(exc).__name__}: {exc}")

    one = threading.Thread(target=enqueue, args=("first",), name="first")
    two = threading.Thread(target=enqueue, args=("second",), name="second")
    one.start()
    assert inserted.wait(60)
    two.start()
    one.join(120)
    two.join(120)
    assert errors == []
    assert len(out["first"]) == 2 and out["second"] == []  # the second queued nothing, and said so
    with engine.connect() as conn:
        keys = conn.execute(select(notifications.c.dedup_key, func.count()).group_by(notifications.c.dedup_key)).all()
    assert len(keys) == 2 and all(k == 1 for _, k in keys)
