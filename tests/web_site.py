"""A small warehouse for the served site's tests: alerts in two districts of Shenzhen, one
Shenzhen-wide, one in Guangzhou and one Foshan-wide, with hostile ticket text (and, for the XSS
test, hostile category and district names in a copied config), an account per office, and the app
over it (tests/test_web.py, tests/test_web_browser.py)."""
from __future__ import annotations

import datetime as dt
import shutil
import threading
import time
from pathlib import Path

import yaml
from sqlalchemy import insert

from alerts.channels import Secrets
from alerts.model import fingerprint
from alerts.notify import notify_day
from tests.test_alerts import BAOAN, DAY, LONGGANG, NOW, SZ, Sleeps, anomaly, config, store
from tests.test_outgoing import EVIL
from warehouse.schema import COUNT_COLUMNS, daily_counts, tickets

ROOT = Path(__file__).resolve().parent.parent
GZ, TIANHE, FOSHAN = "440100", "440106", "440600"
SECRET = "test-secret-" + "x" * 40
PASSWORD = "correct horse battery"
# hostile names: what a category or a district could be called in a badly kept config
EVIL_NAME = '<img src=x onerror="window.__xss=1">{{7*7}}<script>window.__xss=2</script>'
OFFICES = {"baoan": f"district:{BAOAN}", "longgang": f"district:{LONGGANG}", "shenzhen": f"city:{SZ}",
           "tianhe": f"district:{TIANHE}", "guangzhou": f"city:{GZ}", "province": "province:440000",
           "water_sz": f"department:{SZ}:水务局", "ops": "operator"}


def hostile_config(dest: Path) -> Path:
    """config/ copied with 宝安区 and the water-supply category renamed to markup."""
    shutil.copytree(ROOT / "config", dest)
    def rename(node, code, name):
        if isinstance(node, dict):
            if str(node.get("code")) == code:
                node["zh"] = name
            for v in node.values():
                rename(v, code, name)
        elif isinstance(node, list):
            for v in node:
                rename(v, code, name)

    for path, code, name in ((dest / "regions" / "440000_guangdong.yaml", BAOAN, f"宝安区{EVIL_NAME}"),
                             (dest / "taxonomy.yaml", "water_supply", f"供水{EVIL_NAME}")):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        rename(doc, code, name)
        path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return dest


def build(engine, ref, var_dir: Path) -> dict[str, str]:
    """The alerts (fired through the notify stage) and tickets; returns {name: fingerprint}."""
    rows = {"baoan": anomaly("district", BAOAN, explanation=f"当日突增。{EVIL}"),
            "longgang": anomaly("district", LONGGANG, category_code="housing.property_service", severity="orange"),
            "shenzhen": anomaly("city", SZ, category_code="transport.public_transit"),
            "tianhe": anomaly("district", TIANHE, severity="yellow"),
            "foshan": anomaly("city", FOSHAN, category_code="environment.living_noise")}
    store(engine, *rows.values())
    with engine.begin() as conn:
        # the day's tickets (the alert's samples), and three open for ten days (red on 宝安's list)
        conn.execute(insert(tickets), [{
            "ticket_id": f"{tid}{i}", "source": "test", "received_at": NOW - dt.timedelta(hours=hours),
            "received_date": (NOW - dt.timedelta(hours=hours)).date(), "channel": "phone", "province_code": "440000",
            "city_code": SZ, "district_code": BAOAN, "category_l1": "utilities",
            "category_l2": "utilities.water_supply", "content": f"{EVIL} {i}", "status": "open", "is_repeat": False,
            "deadline_at": NOW - dt.timedelta(hours=hours - 48), "updated_at": NOW}
            for i in range(3) for tid, hours in (("S", 20), ("T", 240))])
        conn.execute(insert(daily_counts), [{"ds": DAY, "region_level": "province", "region_code": "440000",
                                             "category_level": "all", "category_code": "*", "province_code": "440000",
                                             **{c: 0 for c in COUNT_COLUMNS}, "n_tickets": 3, "aggregated_at": NOW}])
    notify_day(engine, DAY, ref, config(), var_dir, Secrets({}), now=NOW, sleep=Sleeps())
    return {k: fingerprint(r["series_id"], r["kind"]) for k, r in rows.items()}


def runtime(db_url: str, var_dir: Path, config_dir: Path | None = None):
    from hotline.app.runtime import Runtime
    from hotline.core.settings import load_settings

    env = {"HOTLINE_VAR_DIR": str(var_dir), "HOTLINE_CALLER_SALT": "test-salt"}
    if config_dir:
        env["HOTLINE_CONFIG_DIR"] = str(config_dir)
    return Runtime(load_settings(db_url, env=env))


def add_accounts(rt) -> None:
    from hotline.app.accounts import add_user

    for name, office in OFFICES.items():
        add_user(rt.engine, name, office, PASSWORD, "test", rt.ref, rt.province)


class Server:
    """The app served by uvicorn on a free loopback port, in a thread."""

    def __init__(self, app):
        import uvicorn

        from tests.alert_servers import free_port

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Server":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the site did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"
