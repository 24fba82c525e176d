"""One severity encoding for every stage (hotline/core/severity.py): the detectors' cool-down, the
alerts' escalation and ordering, the board and the proposals all read red > orange > yellow."""
from hotline.core.severity import NAMES, SEVERITY_RANK, Severity, rank, worst_first


def test_red_is_the_worst_everywhere():
    assert Severity.RED > Severity.ORANGE > Severity.YELLOW and Severity.RED.label == "red"
    assert NAMES == ("red", "orange", "yellow")
    assert SEVERITY_RANK == {"yellow": 1, "orange": 2, "red": 3}
    assert rank("red") == 3 and rank("purple") == 0 and rank(None) == 0
    assert sorted(["yellow", None, "red", "orange"], key=worst_first) == ["red", "orange", "yellow", None]


def test_the_routing_lists_a_groups_alerts_worst_first():
    from alerts.config import AlertsConfig
    from alerts.routing import group_alerts

    cfg = AlertsConfig.from_dict({"route": {"receiver": "city", "group_by": ["region_code"]}})
    alerts = [{"fingerprint": f"f{s}", "state": "firing", "score": 0.9,
               "labels": {"severity": s, "region_code": "440300"}} for s in ("yellow", "red", "orange")]
    [group] = group_alerts(alerts, cfg)
    assert [a["labels"]["severity"] for a in group.alerts] == ["red", "orange", "yellow"]


def test_a_rate_is_never_finer_than_what_can_be_checked():
    """An alert without its series' record (stored before history_days was kept) used to read
    '约每 10000000 天一次（约 27379 年）': a precision nobody checked. Without a record the text
    stops at the rate the detectors' tails are checked to on real data (1 in 1,000 days)."""
    from hotline.core.rarity import UNCHECKED_BEYOND, frequency

    assert frequency(1e-7) == f"少于每 {UNCHECKED_BEYOND} 天一次（本序列记录长度未知，更细的频率无法核对）"
    assert "10,000,000" not in frequency(1e-7, lang="en") and "1,000 days" in frequency(1e-7, lang="en")
    assert frequency(1e-7, 638) == "近 638 天的记录中从未出现（约 1.7 年）"  # the record bounds it instead
    assert frequency(1 / 1300, 2000) == "约每 1300 天一次（约 3.6 年）"  # within a 2000-day record: shown
    assert frequency(1 / 200) == "约每 200 天一次"  # within what is checked: shown without a record
