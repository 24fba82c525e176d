"""Alerts: routing, grouping, inhibition, silences, the outbox and delivery to real local servers
(an HTTP server emulating the DingTalk / WeCom / Feishu robots and a signed webhook; aiosmtpd)."""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from alerts.acks import acknowledge, history
from alerts.channels import Secrets, dingtalk_sign, feishu_sign, redact
from alerts.config import AlertsConfig, ConfigError, Matcher
from alerts.model import fingerprint, labels_for
from alerts.notify import notify_day
from alerts.outbox import deliver_due, outbox, requeue
from alerts.render import compose
from alerts.routing import group_alerts, inhibited
from alerts.silences import add_silence, expire_silence
from hotline.core.pii import contains_pii
from tests.alert_servers import RobotServer, SmtpServer
from warehouse.schema import alerts as alerts_table
from warehouse.schema import anomalies, notifications, tickets

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 3, 10)
NOW = dt.datetime(2026, 3, 11, 1, 0, tzinfo=dt.timezone.utc)  # the run after the day, 09:00 in Shanghai
# Shenzhen (super-large) and its districts 宝安区 440306, 龙岗区 440307; Shaoguan 440200 is small.
SZ, BAOAN, LONGGANG = "440300", "440306", "440307"


def anomaly(region_level: str, region_code: str, category_level: str = "l2",
            category_code: str = "utilities.water_supply", ds: dt.date = DAY, kind: str = "spike",
            severity: str = "red", p: float = 1 / 1300, observed: float = 40, expected: float = 10,
            detector: str = "spike_drop", explanation: str = "当日突增：40 件，预期 10.0 件",
            history_days: int = 2000) -> dict:
    return {"ds": ds, "series_id": f"{region_level}:{region_code}|{category_level}:{category_code}",
            "detector": detector, "kind": kind, "region_level": region_level, "region_code": region_code,
            "category_level": category_level, "category_code": category_code, "observed": observed,
            "expected": expected, "lower": expected * 0.5, "upper": expected * 1.6, "score": 1 - p,
            "p_value": p, "surprise": -math.log10(p), "threshold": 1e-3, "excess": observed - expected,
            "history_days": history_days, "severity": severity, "explanation": explanation, "run_id": "test"}


def store(engine, *rows: dict) -> None:
    with engine.begin() as conn:
        conn.execute(insert(anomalies), list(rows))


def config(channels: dict | None = None, offices: dict | None = None, **top) -> AlertsConfig:
    """The project's own routing tree and rules, with the test's channels and offices."""
    doc = yaml.safe_load((ROOT / "config" / "alerts.yaml").read_text(encoding="utf-8"))
    doc["channels"] = channels or {"file": {"type": "file", "path": "notices"}}
    doc["offices"] = offices or {"defaults": {r: list(doc["channels"]) for r in ("province", "city", "district",
                                                                                 "department")}}
    doc["delivery"] = {**doc["delivery"], "backoff_seconds": 0.5, "retry_after": "30m"}
    doc.update(top)
    return AlertsConfig.from_dict(doc)


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def run(engine, ref, cfg, tmp_path, day=DAY, now=NOW, env=None, sleeps=None):
    return notify_day(engine, day, ref, cfg, tmp_path, Secrets(env or {}), now=now,
                      sleep=sleeps if sleeps is not None else Sleeps())


def notices(tmp_path: Path, day: dt.date = DAY) -> list[dict]:
    path = tmp_path / "notices" / f"{day}.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


@pytest.fixture
def wh(tmp_path):
    from warehouse.db import connect, migrate

    eng = connect(f"sqlite:///{tmp_path / 'alerts.db'}")
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def robots():
    srv = RobotServer().start()
    yield srv
    srv.stop()


# ------------------------------------------------------------------ config, matchers, routing
def test_matchers_follow_alertmanager_syntax():
    labels = {"region_code": "440306", "category_code": "utilities.water_supply", "severity": "red"}
    assert Matcher.parse('region_code="440306"').matches(labels)
    assert not Matcher.parse('region_code!="440306"').matches(labels)
    assert Matcher.parse('category_code=~"utilities\\..*"').matches(labels)
    assert not Matcher.parse('category_code=~"utilities"').matches(labels)  # anchored, as in Alertmanager
    assert Matcher.parse('severity!~"yellow|orange"').matches(labels)
    assert Matcher.parse('department=""').matches(labels)  # a missing label is the empty string


def test_config_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(ConfigError, match=r"route.routes\[0\].matchers\[0\].*not a matcher"):
        AlertsConfig.from_dict({"route": {"receiver": "x", "routes": [{"matchers": ["region_code=440306"]}]}},
                               tmp_path / "alerts.yaml")
    with pytest.raises(ConfigError, match=r"alerts.yaml: offices.district:440306: unknown channel 'nope'"):
        AlertsConfig.from_dict({"route": {"receiver": "x"}, "channels": {"f": {"type": "file"}},
                                "offices": {"district:440306": ["nope"]}}, tmp_path / "alerts.yaml")
    with pytest.raises(ConfigError, match=r"group_wait: '5 minutes' is not a duration"):
        AlertsConfig.from_dict({"route": {"receiver": "x", "group_wait": "5 minutes"}}, tmp_path / "alerts.yaml")
    with pytest.raises(ConfigError, match=r"channels.mail.to"):
        AlertsConfig.from_dict({"route": {"receiver": "x"}, "channels": {"mail": {"type": "email"}}})


def _alert(a: dict, ref) -> dict:
    lab = labels_for(a, ref)
    return {"fingerprint": fingerprint(a["series_id"], a["kind"]), "labels": lab, "state": "firing",
            "severity": a["severity"], "score": a["score"], "starts_on": a["ds"], "kind": a["kind"], **{
                k: a[k] for k in ("observed", "expected", "lower", "upper", "explanation", "surprise",
                                  "history_days")}, "detectors": "spike_drop"}


def test_routing_sends_each_level_to_its_office(ref):
    cfg = config()
    routed = {}
    for a in [anomaly("district", BAOAN, category_code="housing.property_service"),
              anomaly("city", SZ, category_code="housing.property_service"),
              anomaly("province", "440000", category_code="housing.property_service"),
              anomaly("district", "445102", category_code="housing.property_service"),  # 湘桥区, Chaozhou (small)
              anomaly("city", SZ, kind="spread", category_code="housing.property_service")]:
        routed[(a["region_code"], a["kind"])] = sorted(g.receiver for g in group_alerts([_alert(a, ref)], cfg))
    assert routed[(BAOAN, "spike")] == ["district:440306"]
    assert routed[(SZ, "spike")] == ["city:440300"]
    assert routed[(SZ, "spread")] == ["city:440300"]  # spreading problems go to the city's hotline centre
    assert routed[("440000", "spike")] == ["province:440000"]
    assert routed[("445102", "spike")] == ["city:445100"]  # a small city: everything to one desk


def test_a_configured_department_also_receives_its_categories(ref):
    cfg = config()
    water = _alert(anomaly("district", BAOAN), ref)  # 供水: 水务局, routed with continue
    assert sorted(g.receiver for g in group_alerts([water], cfg)) == ["department:440300:水务局", "district:440306"]
    yellow = _alert(anomaly("district", BAOAN, severity="yellow"), ref)  # the department asked for red/orange only
    assert [g.receiver for g in group_alerts([yellow], cfg)] == ["district:440306"]


def test_one_notice_per_office_carries_its_related_alerts(ref):
    cfg = config()
    alerts = [_alert(anomaly("district", BAOAN, category_code=c, severity=s), ref)
              for c, s in (("housing.property_service", "yellow"), ("transport.parking", "red"),
                           ("environment.living_noise", "orange"))]
    alerts.append(_alert(anomaly("district", LONGGANG, category_code="transport.parking"), ref))
    groups = {g.receiver: g for g in group_alerts(alerts, cfg)}
    assert set(groups) == {"district:440306", "district:440307"}
    assert [a["severity"] for a in groups["district:440306"].alerts] == ["red", "orange", "yellow"]


def test_a_city_alert_inhibits_the_same_categorys_district_alerts_in_that_city(ref):
    cfg = config()
    city = _alert(anomaly("city", SZ, kind="spread"), ref)
    same = _alert(anomaly("district", BAOAN), ref)
    other_category = _alert(anomaly("district", BAOAN, category_code="transport.parking"), ref)
    other_city = _alert(anomaly("district", "440106"), ref)  # 天河区, Guangzhou
    got = inhibited([city, same, other_category, other_city], cfg.inhibit_rules)
    assert got == {same["fingerprint"]: city["fingerprint"]}


def test_a_red_alert_inhibits_a_yellow_one_of_the_same_series(ref):
    cfg = config()
    red = _alert(anomaly("district", BAOAN, kind="spike", severity="red"), ref)
    yellow = _alert(anomaly("district", BAOAN, kind="level_shift", severity="yellow", detector="level_shift"), ref)
    elsewhere = _alert(anomaly("district", LONGGANG, kind="level_shift", severity="yellow"), ref)
    assert inhibited([red, yellow, elsewhere], cfg.inhibit_rules) == {yellow["fingerprint"]: red["fingerprint"]}


def test_a_sub_category_alert_inhibits_its_category_and_that_the_all_tickets_one(ref):
    cfg = config()
    l2 = _alert(anomaly("district", BAOAN, category_code="housing.property_service"), ref)
    l1 = _alert(anomaly("district", BAOAN, category_level="l1", category_code="housing"), ref)
    total = _alert(anomaly("district", BAOAN, category_level="all", category_code="*"), ref)
    other_l1 = _alert(anomaly("district", BAOAN, category_level="l1", category_code="transport"), ref)
    drop_l1 = _alert(anomaly("district", BAOAN, category_level="l1", category_code="housing", kind="drop"), ref)
    got = inhibited([l2, l1, total, other_l1, drop_l1], cfg.inhibit_rules)
    assert got == {l1["fingerprint"]: l2["fingerprint"], total["fingerprint"]: l1["fingerprint"]}


# ------------------------------------------------------------------ messages
def test_the_notice_says_what_an_office_needs_in_chinese_by_default(ref):
    a = _alert(anomaly("district", BAOAN,
                       explanation="当日突增：40 件，预期 10.0 件。主要来源（占超出量）某街道 60%"), ref)
    a["samples"] = ["市民反映小区突然停水，无任何通知"]
    msg = compose("深圳市宝安区12345工作站", DAY, [a], [], "zh", {a["fingerprint"]: "file:///r/a.html"})
    assert msg.subject.startswith("【12345预警】深圳市宝安区12345工作站：1 条预警（红 1）")
    for must in ("当日 40 件，预期 10 件（正常范围 5–16 件），为预期的 4.0 倍", "本序列约每 1300 天一次（约 3.6 年）",
                 "起始：2026-03-10",
                 "宝安区", "供水", "突增", "主要来源（占超出量）某街道 60%", "典型诉求：市民反映小区突然停水",
                 "file:///r/a.html", a["fingerprint"][:8]):
        assert must in msg.markdown and must in msg.text, must
    en = compose("Bao'an 12345 office", DAY, [a], [], "en", {})
    assert en.subject.startswith("[12345 early warning] Bao'an 12345 office: 1 alert(s) (1 red)")
    assert "Observed 40 tickets, expected 10 (normal range 5–16), 4.0× expected" in en.text
    assert "How unusual: about once every 1,300 days (about 3.6 years) for this series" in en.text


def test_a_day_rarer_than_the_record_is_said_to_be_unseen_not_given_odds(ref):
    """p = 1e-9 on a series with 560 days on record: no '10亿分之一', only what the record shows."""
    a = _alert(anomaly("district", BAOAN, p=1e-9, history_days=560), ref)
    zh = compose("宝安区", DAY, [a], [], "zh", {}).text
    assert "本序列近 560 天的记录中从未出现（约 1.5 年）" in zh and "分之一" not in zh
    en = compose("Bao'an", DAY, [a], [], "en", {}).text
    assert "never in the 560 days on record (about 1.5 years) for this series" in en


def test_a_long_notice_is_cut_to_the_robots_size_limit_at_an_alert_boundary(ref):
    many = [_alert(anomaly("district", BAOAN, category_code=c), ref) for c in ref.taxonomy.l2_codes()[:60]]
    msg = compose("宝安区", DAY, many, [], "zh", {}, limit_bytes=4000)
    assert len(msg.markdown.encode()) <= 4000
    assert "条预警未在此列出" in msg.markdown
    assert len(compose("宝安区", DAY, many, [], "zh", {}).markdown.encode()) > 4000


PHONE = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)
ID_NUMBER = st.builds(lambda area, y, m, d, seq: f"{area}{y}{m:02d}{d:02d}{seq}",
                      st.from_regex(r"[1-6][0-9]{5}", fullmatch=True), st.integers(1930, 2015),
                      st.integers(1, 12), st.integers(1, 28), st.from_regex(r"[0-9]{3}[0-9X]", fullmatch=True))
NAME = st.text(alphabet="张王李赵刘陈杨黄周吴伟芳娜敏静丽强磊军洋", min_size=2, max_size=3)
FILLER = st.text(alphabet="小区停水物业噪音投诉反映，。请尽快处理电话身份证号 ", max_size=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(phone=PHONE, id_number=ID_NUMBER, name=NAME, before=FILLER, after=FILLER)
def test_no_phone_id_number_or_name_ever_leaves_in_a_notice(ref, phone, id_number, name, before, after):
    text = f"{before}我叫{name}，电话{phone}，身份证{id_number}{after}"
    a = _alert(anomaly("district", BAOAN, explanation=text), ref)
    a["samples"] = [text, f"联系人：{name} {phone[:3]}-{phone[3:7]}-{phone[7:]}"]
    from alerts.render import channel_payload

    msg = compose("宝安区", DAY, [a], [], "zh", {})
    for kind in ("dingtalk", "wecom", "feishu", "email", "webhook"):
        out = json.dumps(channel_payload(kind, msg, {"alerts": [a], "firing": True}), ensure_ascii=False)
        for secret in (phone, id_number, f"我叫{name}", f"联系人：{name}", f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"):
            assert secret not in out, (kind, secret)
        assert not contains_pii(out), kind


# ------------------------------------------------------------------ the stage end to end
def test_a_days_notices_reach_the_file_channel_and_a_rerun_sends_nothing(engine, ref, tmp_path):
    store(engine, anomaly("district", BAOAN, category_code="housing.property_service"),
          anomaly("district", BAOAN, category_code="transport.parking", severity="orange"),
          anomaly("city", "440100", category_code="transport.parking", kind="spread", detector="spread"))
    cfg = config()
    first = run(engine, ref, cfg, tmp_path)
    assert first.fired == 3 and first.notices == 2 and first.delivery["delivered"] == 2
    sent = notices(tmp_path)
    assert sorted(n["receiver"] for n in sent) == ["city:440100", "district:440306"]
    baoan = next(n for n in sent if n["receiver"] == "district:440306")
    assert len(baoan["payload"]["alerts"]) == 2 and "深圳市宝安区12345工作站" in baoan["subject"]
    second = run(engine, ref, cfg, tmp_path, now=NOW + dt.timedelta(hours=2))
    assert second.fired == 0 and second.notices == 0 and second.delivery["delivered"] == 0
    assert notices(tmp_path) == sent
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(notifications)).scalar_one() == 2


def test_an_alert_fires_updates_and_resolves_with_its_history(wh, ref, tmp_path):
    cfg = config()
    a = anomaly("district", BAOAN, category_code="housing.property_service")
    fp = fingerprint(a["series_id"], "spike")
    store(wh, {**a, "detector": "level_shift"}, {**a, "detector": "spike_drop", "severity": "orange", "score": 0.999999,
                                                 "p_value": 1e-6, "surprise": 6.0})  # two detectors, one alert
    run(wh, ref, cfg, tmp_path)
    with wh.connect() as conn:
        first = conn.execute(select(alerts_table).where(alerts_table.c.fingerprint == fp)).mappings().one()
    assert (first["severity"], first["detectors"]) == ("red", "level_shift,spike_drop")
    assert first["surprise"] == pytest.approx(math.log10(1300)) and first["history_days"] == 2000
    store(wh, {**a, "ds": DAY + dt.timedelta(days=1)})
    run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=1))
    run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=2))  # quiet 1 day: still firing (resolve after 2)
    res = run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=3))
    assert res.resolved == 1
    with wh.connect() as conn:
        row = conn.execute(select(alerts_table).where(alerts_table.c.fingerprint == fp)).mappings().one()
    assert (row["state"], row["starts_on"], row["last_seen"], row["ends_on"]) == (
        "resolved", DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=3))
    assert [h["action"] for h in history(wh, fp) if h["action"] in ("fired", "updated", "resolved")] == [
        "fired", "updated", "resolved"]


def test_an_unchanged_group_is_repeated_only_after_the_repeat_interval(wh, ref, tmp_path):
    cfg = config()  # district route: group_interval 1d, repeat_interval 3d, level shifts resolve after 7 days
    a = anomaly("district", BAOAN, category_code="housing.property_service", kind="level_shift", detector="level_shift")
    store(wh, a)
    counts = []
    for k in range(5):
        store(wh, {**a, "ds": DAY + dt.timedelta(days=k)}) if k else None
        counts.append(run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=k)).notices)
    assert counts == [1, 0, 0, 1, 0]
    # a new alert joining the group is notified the next day (group_interval), with the old one
    store(wh, anomaly("district", BAOAN, category_code="transport.parking", ds=DAY + dt.timedelta(days=5)))
    res = run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=5))
    assert res.notices == 1 and len(res.queued[0]["firing"]) == 2


def test_rerunning_an_older_day_after_a_later_one_sends_nothing(engine, ref, tmp_path):
    cfg = config()
    d1, d2 = DAY, DAY + dt.timedelta(days=1)
    store(engine, anomaly("district", BAOAN, category_code="housing.property_service"))
    run(engine, ref, cfg, tmp_path)
    store(engine, anomaly("district", BAOAN, category_code="transport.parking", ds=d2),
          anomaly("district", BAOAN, category_code="housing.property_service", ds=d2))
    assert run(engine, ref, cfg, tmp_path, day=d2, now=NOW + dt.timedelta(days=1)).notices == 1
    again = run(engine, ref, cfg, tmp_path, day=d1, now=NOW + dt.timedelta(days=1, hours=3))  # clear the older run
    assert again.notices == 0 and again.fired == 0
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(notifications)).scalar_one() == 2


def test_a_rise_in_severity_is_news_the_next_day(wh, ref, tmp_path):
    cfg = config()
    a = anomaly("district", BAOAN, kind="level_shift", detector="level_shift", severity="yellow",
                category_code="housing.property_service")
    store(wh, a)
    assert run(wh, ref, cfg, tmp_path).notices == 1
    store(wh, {**a, "ds": DAY + dt.timedelta(days=1), "severity": "red"})
    res = run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=1))
    assert res.notices == 1 and "红色预警" in res.queued[0]["body"]  # not held for the 3-day repeat
    store(wh, {**a, "ds": DAY + dt.timedelta(days=2), "severity": "red"})
    assert run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=2)).notices == 0


def test_a_resolved_notice_goes_only_where_the_alert_was_announced(wh, ref, tmp_path):
    cfg = config()  # the city route sends resolved notices; the district route does not
    store(wh, anomaly("city", SZ, category_code="transport.parking"))
    sid = add_silence(wh, ['region_code="440100"'], "值班员", "已知", ends_at=NOW + dt.timedelta(days=30),
                      now=NOW - dt.timedelta(hours=1))
    store(wh, anomaly("city", "440100", category_code="transport.parking"))  # silenced: never announced
    run(wh, ref, cfg, tmp_path)
    expire_silence(wh, sid, "值班员", "结束", now=NOW + dt.timedelta(hours=1))
    res = run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=2), now=NOW + dt.timedelta(days=2))
    assert res.resolved == 2
    sent = notices(tmp_path, DAY + dt.timedelta(days=2))
    assert [(n["receiver"], n["payload"]["status"]) for n in sent] == [("city:440300", "resolved")]
    assert "1 条已恢复" in sent[0]["subject"] and "已恢复 · 深圳市 · 停车管理 · 突增" in sent[0]["body"]


def test_a_rerun_of_the_resolving_day_that_now_raises_the_alert_reopens_the_same_episode(wh, ref, tmp_path):
    cfg = config()
    a = anomaly("district", BAOAN, category_code="housing.property_service")
    fp = fingerprint(a["series_id"], "spike")
    store(wh, a)
    run(wh, ref, cfg, tmp_path)
    acknowledge(wh, fp[:8], "宝安区", "useful", now=NOW)
    d3 = DAY + dt.timedelta(days=2)
    assert run(wh, ref, cfg, tmp_path, day=d3, now=NOW + dt.timedelta(days=2)).resolved == 1
    store(wh, {**a, "ds": d3})  # late data: the day is rerun and now has the anomaly
    res = run(wh, ref, cfg, tmp_path, day=d3, now=NOW + dt.timedelta(days=2, hours=2))
    assert res.reopened == 1 and res.fired == 0
    with wh.connect() as conn:
        row = conn.execute(select(alerts_table).where(alerts_table.c.fingerprint == fp)).mappings().one()
    assert (row["state"], row["starts_on"], row["ends_on"], row["ack_by"]) == ("firing", DAY, None, "宝安区")


def test_a_silence_suppresses_matching_alerts_and_is_audited(wh, ref, tmp_path):
    cfg = config()
    store(wh, anomaly("district", BAOAN, category_code="housing.property_service"),
          anomaly("district", LONGGANG, category_code="housing.property_service"))
    sid = add_silence(wh, ['region_code="440306"', 'category_l1="housing"'], "张主任", "物业纠纷已专项处置中",
                      ends_at=NOW + dt.timedelta(days=3), now=NOW - dt.timedelta(hours=1))
    res = run(wh, ref, cfg, tmp_path)
    assert res.status["silenced"] == 1
    assert [n["receiver"] for n in notices(tmp_path)] == ["district:440307"]
    fp = fingerprint(f"district:{BAOAN}|l2:housing.property_service", "spike")
    ev = [h for h in history(wh, silence_id=sid)]
    assert ev[0]["action"] == "silence_created" and ev[0]["actor"] == "张主任"
    assert ev[0]["detail"]["reason"] == "物业纠纷已专项处置中"
    held = [h for h in ev if h["action"] == "silenced"]
    assert [h["fingerprint"] for h in held] == [fp] and held[0]["detail"]["until"].startswith("2026-03-14")
    # ended by hand: the next day's run notifies it (still firing), and the end is audited too
    expire_silence(wh, sid, "李科长", "处置完毕", now=NOW + dt.timedelta(hours=20))
    store(wh, anomaly("district", BAOAN, category_code="housing.property_service", ds=DAY + dt.timedelta(days=1)))
    run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1))
    assert [n["receiver"] for n in notices(tmp_path, DAY + dt.timedelta(days=1))] == ["district:440306"]
    assert [(h["action"], h["actor"]) for h in history(wh, silence_id=sid)][-1] == ("silence_expired", "李科长")


def test_a_silence_can_end_when_its_alerts_resolve(wh, ref, tmp_path):
    cfg = config()
    store(wh, anomaly("district", BAOAN))
    sid = add_silence(wh, ['region_code="440306"'], "值班员", "停水已知，抢修中", ends_at=NOW + dt.timedelta(days=30),
                      end_on_resolve=True, now=NOW - dt.timedelta(hours=1))
    run(wh, ref, cfg, tmp_path)
    run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=2), now=NOW + dt.timedelta(days=2))  # resolves
    run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=3), now=NOW + dt.timedelta(days=3))
    last = history(wh, silence_id=sid)[-1]
    assert (last["action"], last["detail"]["reason"]) == ("silence_expired", "its alerts resolved")


def test_district_alerts_under_a_city_alert_are_inhibited_in_the_stage(engine, ref, tmp_path):
    cfg = config()
    store(engine, anomaly("city", SZ, kind="spread", detector="spread", category_code="utilities.water_supply"),
          *[anomaly("district", d) for d in (BAOAN, LONGGANG, "440309")],
          anomaly("district", BAOAN, category_code="transport.parking"))
    res = run(engine, ref, cfg, tmp_path)
    assert res.status["inhibited"] == 3
    got = {n["receiver"]: n for n in notices(tmp_path)}
    assert set(got) == {"city:440300", "department:440300:水务局", "district:440306"}
    assert [a["labels"]["category_code"] for a in got["district:440306"]["payload"]["alerts"]] == ["transport.parking"]


def test_an_acknowledged_alert_is_not_repeated_and_keeps_the_verdict(wh, ref, tmp_path):
    cfg = config()
    a = anomaly("district", BAOAN, kind="level_shift", detector="level_shift")
    store(wh, a)
    run(wh, ref, cfg, tmp_path)
    fp = acknowledge(wh, fingerprint(a["series_id"], "level_shift")[:8], "宝安区工作站", "useful", "已派单")
    for k in range(1, 5):
        store(wh, {**a, "ds": DAY + dt.timedelta(days=k)})
        assert run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=k)).notices == 0
    with wh.connect() as conn:
        row = conn.execute(select(alerts_table).where(alerts_table.c.fingerprint == fp)).mappings().one()
    assert (row["status"], row["ack_by"], row["ack_verdict"], row["ack_comment"]) == (
        "acknowledged", "宝安区工作站", "useful", "已派单")


def test_the_notice_quotes_masked_ticket_texts(wh, ref, tmp_path):
    store(wh, anomaly("district", BAOAN, category_code="housing.property_service"))
    with wh.begin() as conn:  # raw text as if a source had slipped PII past ingestion
        conn.execute(insert(tickets), [{
            "ticket_id": f"T{i}", "source": "test", "received_at": NOW - dt.timedelta(hours=20),
            "received_date": DAY, "channel": "phone", "province_code": "440000", "city_code": SZ,
            "district_code": BAOAN, "category_l1": "housing", "category_l2": "housing.property_service",
            "content": f"我叫王小明，电话1380013800{i}，小区电梯停运三天无人维修", "status": "open", "is_repeat": False,
            "updated_at": NOW} for i in range(3)])
    run(wh, ref, config(), tmp_path)
    body = notices(tmp_path)[0]["body"]
    assert "典型诉求：我叫[姓名]，电话[手机号]，小区电梯停运三天无人维修" in body
    assert "王小明" not in body and "13800138000" not in body


# ------------------------------------------------------------------ delivery to real servers
FEISHU_HOOK = "9f8e7d6c-1234-5678-9abc-def012345678"  # a robot's hook id is its token


def robot_channels(robots: RobotServer) -> tuple[dict, dict]:
    env = {
        "AIRFLOW_CONN_HOTLINE_DINGTALK": json.dumps({"conn_type": "http",
                                                     "host": robots.url("/dingtalk/robot/send?access_token=dt-token"),
                                                     "password": robots.dingtalk_secret}),
        "AIRFLOW_CONN_HOTLINE_FEISHU": json.dumps({"conn_type": "http",
                                                   "host": robots.url(f"/feishu/open-apis/bot/v2/hook/{FEISHU_HOOK}"),
                                                   "password": robots.feishu_secret}),
        "HOTLINE_WECOM_URL": robots.url("/wecom/cgi-bin/webhook/send?key=wecom-key"),
        "HOTLINE_HUB_URL": robots.url("/webhook/hotline"),
        "HOTLINE_HUB_SECRET": robots.webhook_secret,
    }
    channels = {"dingtalk": {"type": "dingtalk", "conn_id": "hotline_dingtalk"},
                "feishu": {"type": "feishu", "conn_id": "hotline_feishu"},
                "wecom": {"type": "wecom", "url_env": "HOTLINE_WECOM_URL"},
                "hub": {"type": "webhook", "url_env": "HOTLINE_HUB_URL", "secret_env": "HOTLINE_HUB_SECRET",
                        "language": "en"}}
    return channels, env


def test_each_robot_webhook_gets_its_format_and_a_valid_signature(wh, ref, tmp_path, robots):
    channels, env = robot_channels(robots)
    cfg = config(channels, {"defaults": {"district": list(channels)}})
    store(wh, anomaly("district", BAOAN, category_code="housing.property_service"))
    res = run(wh, ref, cfg, tmp_path, env=env)
    assert res.delivery["delivered"] == 4 and res.delivery["retrying"] == 0
    for prefix in ("/dingtalk", "/feishu", "/wecom", "/webhook"):
        assert len(robots.delivered(prefix)) == 1, prefix
    ding = robots.delivered("/dingtalk")[0]
    assert "物业服务" in ding.json["markdown"]["text"] and ding.json["markdown"]["title"].startswith("【12345预警】")
    assert robots.delivered("/feishu")[0].json["card"]["header"]["template"] == "red"
    hub = robots.delivered("/webhook")[0]
    assert hub.json["subject"].startswith("[12345 early warning]")  # this channel is configured in English
    assert hub.json["alerts"][0]["labels"]["region_code"] == BAOAN
    assert hub.headers["X-Hotline-Dedup-Key"] == hub.json["dedupKey"]


def test_a_wrong_signing_secret_is_a_failed_delivery_that_never_logs_the_token(wh, ref, tmp_path, robots):
    channels, env = robot_channels(robots)
    env["AIRFLOW_CONN_HOTLINE_DINGTALK"] = json.dumps({"host": robots.url("/dingtalk/robot/send?access_token=dt-token"),
                                                       "password": "SECwrong"})
    cfg = config({"dingtalk": channels["dingtalk"]}, {"defaults": {"district": ["dingtalk"]}})
    store(wh, anomaly("district", BAOAN))
    res = run(wh, ref, cfg, tmp_path, env=env)
    assert res.delivery["retrying"] == 1 and robots.delivered("/dingtalk") == []
    row = outbox(wh, "pending")[0]
    assert "310000" in row["last_error"] and "sign not match" in row["last_error"]
    assert "dt-token" not in row["last_error"] and "access_token=***" in row["last_error"]
    assert "SECwrong" not in json.dumps([dict(h) for h in history(wh)], ensure_ascii=False, default=str)


def test_a_hook_token_in_the_url_path_never_reaches_the_history_or_the_outbox(wh, ref, tmp_path, robots):
    channels, env = robot_channels(robots)
    cfg = config({"feishu": channels["feishu"]}, {"defaults": {"district": ["feishu"]}})
    robots.fail_next["/feishu"] = [502] * 3
    store(wh, anomaly("district", BAOAN))
    run(wh, ref, cfg, tmp_path, env=env)  # three failures: the error is kept on the row
    failed = json.dumps(outbox(wh, "pending"), ensure_ascii=False, default=str)
    assert "HTTP 502" in failed and "hook/***" in failed
    run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1), env=env)
    assert len(robots.delivered("/feishu")) == 1
    stored = json.dumps([*history(wh), *outbox(wh)], ensure_ascii=False, default=str)
    assert "hook/***" in stored  # the delivery receipt
    assert FEISHU_HOOK not in stored + failed and robots.feishu_secret not in stored


def test_a_broken_channel_leaves_its_notice_pending_and_the_others_go(wh, ref, tmp_path):
    cfg = config({"good": {"type": "file", "path": "notices"},
                  "bad": {"type": "webhook", "url": "http://[::1:bad-url/hook"}},
                 {"defaults": {"district": ["bad", "good"]}})
    store(wh, anomaly("district", BAOAN))
    res = run(wh, ref, cfg, tmp_path)
    assert res.delivery["delivered"] == 1 and res.delivery["retrying"] == 1
    assert len(notices(tmp_path)) == 1
    assert "InvalidURL" in outbox(wh, "pending")[0]["last_error"]


def test_a_webhook_failing_twice_then_answering_gets_exactly_one_delivery(engine, ref, tmp_path, robots):
    channels, env = robot_channels(robots)
    cfg = config({"hub": channels["hub"]}, {"defaults": {"district": ["hub"]}})
    robots.fail_next["/webhook"] = [500, 500]
    store(engine, anomaly("district", BAOAN))
    sleeps = Sleeps()
    res = run(engine, ref, cfg, tmp_path, env=env, sleeps=sleeps)
    assert res.delivery["delivered"] == 1
    assert [r.status for r in robots.requests] == [500, 500, 200]
    assert len(robots.delivered("/webhook")) == 1
    assert sleeps == [0.5, 1.0]  # exponential backoff between the attempts
    assert outbox(engine, "delivered")[0]["attempts"] == 3
    run(engine, ref, cfg, tmp_path, env=env, now=NOW + dt.timedelta(hours=1))  # a rerun: nothing more
    assert len(robots.requests) == 3


def test_a_notice_that_fails_today_is_delivered_on_the_next_run(wh, ref, tmp_path, robots):
    channels, env = robot_channels(robots)
    cfg = config({"wecom": channels["wecom"]}, {"defaults": {"district": ["wecom"]}})
    robots.fail_next["/wecom"] = [503] * 3
    store(wh, anomaly("district", BAOAN))
    assert run(wh, ref, cfg, tmp_path, env=env).delivery["retrying"] == 1
    assert outbox(wh, "pending")[0]["attempts"] == 3
    # the next day's run (no new anomaly) delivers it, once
    res = run(wh, ref, cfg, tmp_path, day=DAY + dt.timedelta(days=1), now=NOW + dt.timedelta(days=1), env=env)
    assert res.delivery["delivered"] == 1 and len(robots.delivered("/wecom")) == 1
    assert outbox(wh, "pending") == [] and len(outbox(wh, "delivered")) == 1


def test_after_too_many_attempts_a_notice_is_failed_until_an_operator_requeues_it(wh, ref, tmp_path, robots):
    channels, env = robot_channels(robots)
    cfg = config({"wecom": channels["wecom"]}, {"defaults": {"district": ["wecom"]}},
                 delivery={"attempts_per_run": 2, "give_up_after_attempts": 4, "backoff_seconds": 0})
    robots.fail_next["/wecom"] = [500] * 4
    store(wh, anomaly("district", BAOAN))
    run(wh, ref, cfg, tmp_path, env=env)
    deliver_due(wh, cfg, Secrets(env), tmp_path, now=NOW + dt.timedelta(hours=2), sleep=Sleeps())
    failed = outbox(wh, "failed")
    assert len(failed) == 1 and failed[0]["attempts"] == 4
    assert deliver_due(wh, cfg, Secrets(env), tmp_path, now=NOW + dt.timedelta(days=2), sleep=Sleeps()) == {
        "delivered": 0, "retrying": 0, "failed": 0}
    requeue(wh, failed[0]["id"], "运维值班", now=NOW + dt.timedelta(days=2))
    assert deliver_due(wh, cfg, Secrets(env), tmp_path, now=NOW + dt.timedelta(days=2),
                       sleep=Sleeps())["delivered"] == 1
    assert len(robots.delivered("/wecom")) == 1


def test_email_goes_through_a_real_smtp_server_with_the_connections_credentials(wh, ref, tmp_path):
    smtp = SmtpServer().start()
    try:
        env = {"AIRFLOW_CONN_HOTLINE_SMTP": f"smtp://{smtp.user.replace('@', '%40')}:{smtp.password}"
                                            f"@127.0.0.1:{smtp.port}"
                                            f"?from_email=12345-alerts%40gd.example.gov.cn&starttls=false"}
        cfg = config({"mail": {"type": "email", "conn_id": "hotline_smtp", "to": ["baoan@example.gov.cn"]}},
                     {"defaults": {"district": ["mail"]}})
        store(wh, anomaly("district", BAOAN, category_code="housing.property_service"))
        res = run(wh, ref, cfg, tmp_path, env=env)
        assert res.delivery["delivered"] == 1
        assert len(smtp.messages) == 1
        m = smtp.messages[0]
        assert (m["authenticated"] and m["to"] == ["baoan@example.gov.cn"]
                and m["from"] == "12345-alerts@gd.example.gov.cn")
        msg = m["message"]
        assert msg["Subject"].startswith("【12345预警】深圳市宝安区12345工作站")
        assert msg["Message-ID"].strip() == f"<{outbox(wh)[0]['dedup_key']}@hotline-early-warning>"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        assert "物业服务" in text and "当日 40 件" in text and "<h3" in html and "物业服务" in html
        run(wh, ref, cfg, tmp_path, env=env, now=NOW + dt.timedelta(hours=3))
        assert len(smtp.messages) == 1  # the rerun sends nothing
        stored = json.dumps([dict(r) for r in outbox(wh)], ensure_ascii=False, default=str)
        assert smtp.password not in stored
    finally:
        smtp.stop()


def test_a_wrong_smtp_password_is_a_retry_not_a_loss(wh, ref, tmp_path):
    smtp = SmtpServer().start()
    try:
        env = {"AIRFLOW_CONN_HOTLINE_SMTP": f"smtp://{smtp.user.replace('@', '%40')}:wrong@127.0.0.1:{smtp.port}"}
        cfg = config({"mail": {"type": "email", "conn_id": "hotline_smtp", "to": ["a@example.gov.cn"]}},
                     {"defaults": {"district": ["mail"]}})
        store(wh, anomaly("district", BAOAN))
        assert run(wh, ref, cfg, tmp_path, env=env).delivery["retrying"] == 1
        row = outbox(wh, "pending")[0]
        assert "SMTPAuthenticationError" in row["last_error"] and "wrong" not in row["last_error"]
        assert smtp.messages == []
    finally:
        smtp.stop()


def test_a_missing_connection_says_where_to_set_it(wh, ref, tmp_path):
    cfg = config({"ding": {"type": "dingtalk", "conn_id": "hotline_dingtalk_nowhere"}},
                 {"defaults": {"district": ["ding"]}})
    store(wh, anomaly("district", BAOAN))
    run(wh, ref, cfg, tmp_path)
    assert "AIRFLOW_CONN_HOTLINE_DINGTALK_NOWHERE" in outbox(wh, "pending")[0]["last_error"]


def test_signatures_match_the_documented_algorithms():
    import base64
    import hashlib
    import hmac

    secret = "SEC000"
    assert dingtalk_sign(secret, 1700000000000) == base64.b64encode(
        hmac.new(b"SEC000", b"1700000000000\nSEC000", hashlib.sha256).digest()).decode()
    assert feishu_sign(secret, 1700000000) == base64.b64encode(
        hmac.new(b"1700000000\nSEC000", b"", hashlib.sha256).digest()).decode()
    assert redact("https://oapi.dingtalk.com/robot/send?access_token=abc&timestamp=1&sign=xyz") == (
        "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=***&sign=***")


# ------------------------------------------------------------------ CLI
def test_cli_silence_ack_and_outbox(wh, ref, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from hotline.cli import main

    db = str(wh.url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    store(wh, anomaly("district", BAOAN, category_code="housing.property_service"))
    runner = CliRunner()
    out = runner.invoke(main, ["alerts", "notify", "--date", str(DAY), "--db", db, "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["notices"][0]["receiver"] == "district:440306"
    assert "--- notice #1 to 深圳市宝安区12345工作站" in out.output
    lst = json.loads(runner.invoke(main, ["alerts", "list", "--db", db, "--json"]).output.strip().splitlines()[-1])
    fp = lst["alerts"][0]["fingerprint"]
    out = runner.invoke(main, ["alerts", "ack", fp[:8], "--author", "宝安区", "--verdict", "not_useful", "--db", db])
    assert out.exit_code == 0 and "acknowledged" in out.output
    out = runner.invoke(main, ["alerts", "silence", "--match", 'region_code="440306"', "--until", "72h",
                               "--author", "张三", "--reason", "施工已报备", "--db", db, "--json"])
    assert out.exit_code == 0, out.output
    sid = json.loads(out.output.strip().splitlines()[-1])["silence"]
    sil = runner.invoke(main, ["alerts", "silences", "--db", db, "--json"])
    assert "施工已报备" in sil.output and "张三" in sil.output
    bad = runner.invoke(main, ["alerts", "silence", "--match", "region_code=440306", "--until", "1d", "--author", "a",
                               "--reason", "r", "--db", db])
    assert bad.exit_code == 2 and "not a matcher" in bad.output
    assert runner.invoke(main, ["alerts", "unsilence", str(sid), "--author", "张三", "--db", db]).exit_code == 0
    box = json.loads(runner.invoke(main, ["alerts", "outbox", "--db", db, "--json"]).output.strip().splitlines()[-1])
    assert box["counts"]["delivered"] == 1
    show = runner.invoke(main, ["alerts", "show", fp[:8], "--db", db])
    assert "acknowledged" in show.output and "not_useful" in show.output and "fired" in show.output


def test_the_notify_stages_run_alone_as_notify_day_runs_them(engine, ref, tmp_path):
    """Each stage of STAGES takes the run and the step before's result: the first four, run by
    hand, see today's alerts grouped for their offices, and nothing is queued until enqueue."""
    from alerts.notify import STAGES, NotifyRun, due_stage, evaluate_stage, group_stage, sync_stage

    assert [s.__name__ for s in STAGES] == ["sync_stage", "evaluate_stage", "group_stage", "due_stage",
                                            "pages_stage", "enqueue_stage", "deliver_stage"]
    store(engine, anomaly("district", BAOAN), anomaly("district", LONGGANG))
    run = NotifyRun(engine, DAY, ref, config(), tmp_path, Secrets({}), NOW, "notify-test")
    assert sync_stage(run, None) is None and run.metrics["fired"] == 2
    rows = evaluate_stage(run, None)
    assert run.metrics["status"]["firing"] == 2 and len(rows) == 2
    groups = group_stage(run, rows)
    assert run.metrics["groups"] == len(groups) >= 1
    due = due_stage(run, groups)
    assert sum(len(f) for _, f, _ in due) >= 2  # new groups are due on their first day (group_wait 0)
    assert outbox(engine) == []
