"""`make bench --only web` (``python -m bench.web``): page times of the served site under a bounded
local load of 20 concurrent signed-in sessions, beside the same pages fetched one at a time and the
health check under the same load (the server's own floor), all in one run.

The warehouse: Guangdong's districts with a year of daily counts for every alerting series; 240
alerts open on the last day; one alert (宝安区 · 供水) that has fired every day for a year (365
alert days on its chart, 730 events in its history); 3,000 open tickets in 深圳市, a third of them
overdue (the red and yellow lists). The site runs as `hotline serve` does (uvicorn, one or two
processes) in a subprocess; the load is wrk (Debian's; `make bench` installs it): each page in
turn for 10 s, 20 threads with a connection and a session cookie each (province, city and district
accounts signed in before the clock starts), no pause between requests; then the same page from
one session alone, the baseline of the same run.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
DAY = dt.date(2026, 11, 30)
NOW = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.timezone.utc)
SECRET = "bench-secret-" + "b" * 40
PASSWORD = "bench password 1"
SESSIONS = 20


def build(path: Path) -> str:
    """The bench warehouse; returns the year-long alert's fingerprint."""
    from alerts.model import fingerprint, labels_for
    from hotline.app.accounts import add_user
    from hotline.core.reference import load_reference
    from warehouse.db import connect, migrate
    from warehouse.schema import COUNT_COLUMNS, alert_events, alerts, anomalies, daily_counts, tickets

    if path.exists():
        path.unlink()
    eng = connect(f"sqlite:///{path}")
    migrate(eng)
    ref = load_reference()
    rng = random.Random(7)
    prov = ref.regions.province("440000")
    districts = [(d, c.code) for c in prov.cities for d in sorted(ref.regions.district_parent())
                 if ref.regions.parent_of(d) == c.code]
    cats = [c for c in ref.taxonomy.l2_codes()][:40]
    series = [(d, city, rng.choice(cats)) for d, city in rng.sample(districts, min(len(districts), 240))]
    long_one = ("440306", "440300", "utilities.water_supply")
    series = [long_one] + [s for s in series if s[0] != "440306"][:239]
    days = [DAY - dt.timedelta(days=i) for i in range(365)]
    counts, an_rows, al_rows, ev_rows = [], [], [], []
    for i, (d, city, cat) in enumerate(series):
        for ds in days:
            counts.append({"ds": ds, "region_level": "district", "region_code": d, "category_level": "l2",
                           "category_code": cat, "province_code": "440000", "city_code": city,
                           **{c: 0 for c in COUNT_COLUMNS}, "n_tickets": rng.randint(0, 12), "aggregated_at": NOW})
        sid = f"district:{d}|l2:{cat}"
        fp = fingerprint(sid, "spike")
        alert_days = days if i == 0 else days[:rng.randint(1, 5)]
        for ds in alert_days:
            an_rows.append({"ds": ds, "series_id": sid, "detector": "spike_drop", "kind": "spike",
                            "region_level": "district", "region_code": d, "category_level": "l2",
                            "category_code": cat, "observed": 30.0, "expected": 8.0, "lower": 3.0, "upper": 14.0,
                            "score": 0.9995, "severity": "red", "explanation": "当日突增", "run_id": "bench"})
        a = {"series_id": sid, "region_level": "district", "region_code": d, "category_level": "l2",
             "category_code": cat, "severity": "red", "kind": "spike"}
        al_rows.append({**a, "fingerprint": fp, "labels": labels_for(a, ref), "city_code": city,
                        "state": "firing", "status": "firing", "starts_on": alert_days[-1], "last_seen": DAY,
                        "observed": 30.0, "expected": 8.0, "lower": 3.0, "upper": 14.0, "score": 0.9995,
                        "surprise": 3.3, "history_days": 2000, "detectors": "spike_drop",
                        "explanation": "当日突增：30 件，预期 8.0 件", "samples": ["小区停水，电话[手机号]"],
                        "updated_at": NOW})
        for ds in alert_days:
            for action in ("fired", "updated") if i == 0 else ("fired",):
                ev_rows.append({"at": NOW, "ds": ds, "fingerprint": fp, "action": action, "actor": "detectors",
                                "detail": {"severity": "red"}})
    sz = [d for d, c in districts if c == "440300"]
    tix = []
    for i in range(3000):
        rec = NOW - dt.timedelta(hours=rng.uniform(1, 24 * 20))
        cat = rng.choice(cats)
        tix.append({"ticket_id": f"B{i:05d}", "source": "bench", "received_at": rec, "received_date": rec.date(),
                    "channel": "phone", "province_code": "440000", "city_code": "440300",
                    "district_code": rng.choice(sz), "category_l1": cat.split(".")[0], "category_l2": cat,
                    "content": "诉求内容", "status": "open", "is_repeat": False,
                    "deadline_at": rec + dt.timedelta(hours=rng.choice([24, 72, 120, 360])), "updated_at": NOW})
    with eng.begin() as conn:
        for table, rows in ((daily_counts, counts), (anomalies, an_rows), (alerts, al_rows),
                            (alert_events, ev_rows), (tickets, tix)):
            for k in range(0, len(rows), 5000):
                conn.execute(insert(table), rows[k:k + 5000])
        conn.execute(insert(daily_counts), [{"ds": DAY, "region_level": "province", "region_code": "440000",
                                             "category_level": "all", "category_code": "*", "province_code": "440000",
                                             **{c: 0 for c in COUNT_COLUMNS}, "n_tickets": 40000,
                                             "aggregated_at": NOW}])
    accounts = [("gd", "province:440000"), ("sz", "city:440300"), ("gz", "city:440100")] + [
        (f"d{d}", f"district:{d}") for d in sz[:5]]
    for name, office in accounts:
        add_user(eng, name, office, PASSWORD, "bench", ref, "440000")
    eng.dispose()
    return fingerprint(f"district:{long_one[0]}|l2:{long_one[2]}", "spike")


def serve(db: Path, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "HOTLINE_DB_URL": f"sqlite:///{db}", "HOTLINE_WEB_SECRET": SECRET,
           "HOTLINE_WEB_INSECURE_COOKIES": "1", "HOTLINE_VAR_DIR": str(db.parent), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "hotline.web.app:app_from_env",
                             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
                             "--workers", str(workers)],
                            env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the site did not start")


def session(base: str, user: str) -> httpx.Client:
    c = httpx.Client(base_url=base, timeout=60)
    token = re.search(r'name="csrf" value="(\w+)"', c.get("/login").text)[1]
    r = c.post("/login", data={"username": user, "password": PASSWORD, "csrf": token})
    assert r.status_code == 303, r.text[:300]
    return c


def wrk(url: str, path: str, cookies: list[str], sessions: int, seconds: int, folder: Path) -> dict:
    """One page under ``sessions`` concurrent sessions (wrk: a thread and a connection each, no
    pause between requests) for ``seconds``."""
    import shutil

    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: `make bench` installs it (Debian's wrk)")
    jar = folder / "cookies.txt"
    jar.write_text("\n".join(cookies) + "\n")
    out = subprocess.run(["wrk", "-t", str(sessions), "-c", str(sessions), "-d", f"{seconds}s", "--timeout", "10s",
                          "-s", str(ROOT / "bench" / "wrk_sessions.lua"), url, "--", str(jar), path],
                         capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk: {out.stdout}\n{out.stderr}")
    r = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
    if r["non2xx"] or r["errors"]:
        raise RuntimeError(f"{path}: {r['non2xx']:.0f} non-2xx answers, {r['errors']:.0f} errors under load")
    return r


def run(port: int = 8799, workers: int = 2, seconds: int = 10) -> list[dict]:
    db = ROOT / "var" / "bench" / "web.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    fp = build(db)
    print(f"  bench warehouse built in {time.perf_counter() - t0:.1f} s", flush=True)
    proc = serve(db, port, workers)
    base = f"http://127.0.0.1:{port}"
    districts = ["d440303", "d440304", "d440305", "d440306", "d440307"]
    pages = {"workbench (province)": (["gd"], "/"), "workbench (city, with its 红黄灯 list)": (["sz"], "/"),
             "workbench (district, with its 红黄灯 list)": (districts, "/"),
             "alert page (a year of alerts)": (["sz"], f"/alerts/{fp}"), "health check (no page)": (["gd"], "/healthz")}
    rows = []
    try:
        for name, (users, path) in pages.items():
            cookies = [f"hl_session={session(base, users[i % len(users)]).cookies['hl_session']}"
                       for i in range(SESSIONS)]  # sign-ins are not timed
            alone = wrk(base, path, cookies[:1], 1, max(3, seconds // 2), db.parent)
            loaded = wrk(base, path, cookies, SESSIONS, seconds, db.parent)
            rows.append({"page": name, "requests": int(loaded["requests"]), "rps": round(loaded["requests"]
                                                                                         / loaded["seconds"]),
                         "p50_ms": round(loaded["p50"], 1), "p95_ms": round(loaded["p95"], 1),
                         "p99_ms": round(loaded["p99"], 1), "alone_p50_ms": round(alone["p50"], 1)})
            print(f"  {name}: p50 {loaded['p50']:.1f} ms, p95 {loaded['p95']:.1f} ms", flush=True)
    finally:
        proc.terminate()
        proc.wait(10)
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; {workers} server process(es); each page for {seconds} s under "
          f"{SESSIONS} concurrent sessions (wrk), no pause between requests")
    print("\n| page | requests | req/s | p50 (ms) | p95 (ms) | p99 (ms) | one session alone, p50 (ms) |\n"
          "|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['page']} | {r['requests']} | {r['rps']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
              f"{r['alone_p50_ms']} |")
    out = ROOT / "var" / "bench" / f"web-{workers}.json"
    out.write_text(json.dumps({"sessions": SESSIONS, "seconds": seconds, "workers": workers, "pages": rows},
                              ensure_ascii=False, indent=2))
    return rows


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="server processes (one run each)")
    for w in ap.parse_args().workers:
        run(workers=w)
