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
