"""The production topology of docker-compose.yml as native processes, for the integration test:
Airflow with a PostgreSQL metadata database and the CeleryExecutor (Redis as the broker), its
scheduler, dag-processor, triggerer, api-server and Celery workers, and the warehouse in a second
PostgreSQL database, all against this machine's real servers.

Each service runs in its own session, so that a worker can be killed with every task process it
forked (each in a process group of its own), and ``stop()`` can check that nothing is left behind.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def members(self) -> list[int]:
        """Every live process of its session: the service and all it forked. (Airflow's task
        supervisor puts each task process in a process group of its own, so the process group
        alone would miss the running tasks; the session holds them.)"""
        import psutil

        pids = []
        for proc in psutil.process_iter():
            try:
                if os.getsid(proc.pid) == self.popen.pid and proc.status() != psutil.STATUS_ZOMBIE:
                    pids.append(proc.pid)
            except (ProcessLookupError, PermissionError, psutil.Error):
                continue
        return pids

    def group_alive(self) -> bool:
        return bool(self.members())

    def kill(self, sig: int = signal.SIGKILL) -> None:
        for pid in self.members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


@dataclass
class NativeStack:
    """``prepare()`` the databases, ``start_services()``, and always ``stop()``."""

    home: Path
    pg_server_url: str  # postgresql+psycopg2://user@host:port/db of a server where databases can be created
    redis_url: str  # redis://host:port/<db index>, flushed at start and stop
    hotline_env: dict[str, str] = field(default_factory=dict)
    airflow_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    user: str = "operator"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.meta_db, self.warehouse_db = f"hotline_it_airflow_{tag}", f"hotline_it_warehouse_{tag}"
        base = self.pg_server_url.rsplit("/", 1)[0]
        self.meta_url, self.warehouse_url = f"{base}/{self.meta_db}", f"{base}/{self.warehouse_db}"
        self.port = free_port()
        self.api = f"http://127.0.0.1:{self.port}"
        self._token: str | None = None
        self.created: list[str] = []  # databases made here, dropped by stop()
        self.teardown_errors: list[str] = []
        self.logs = self.home / "logs"

    # -- set-up ---------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        airflow_home = self.home / "airflow"
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HOTLINE_"))},
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.meta_url,
            "AIRFLOW__CELERY__BROKER_URL": self.redis_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{self.meta_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER":
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{self.user}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(airflow_home / "passwords.json"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            # runs come from the REST API only: unpausing must not start the latest scheduled day
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            # a lost worker is noticed after 20 s without heartbeats (production: 300 s)
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "3",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            "HOTLINE_DB_URL": self.warehouse_url,
            **self.hotline_env,
            **self.airflow_env,
        }

    def _admin(self):
        from sqlalchemy import create_engine

        return create_engine(self.pg_server_url, isolation_level="AUTOCOMMIT")

    def _redis(self):
        import redis

        return redis.Redis.from_url(self.redis_url)

    def prepare(self) -> "NativeStack":
        """What the compose file's postgres init and airflow-init do: both databases created and
        migrated, the pools imported. No service runs yet."""
        from sqlalchemy import text

        self._jwt_secret = secrets.token_urlsafe(32)
        (self.home / "airflow").mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        (self.home / "airflow" / "passwords.json").write_text(json.dumps({self.user: self.password}))
        admin = self._admin()
        with admin.connect() as conn:
            for name in (self.meta_db, self.warehouse_db):
                conn.execute(text(f'CREATE DATABASE "{name}"'))
                self.created.append(name)
        admin.dispose()
        self._redis().flushdb()
        self.run(["airflow", "db", "migrate"], timeout=600)
        self.run(["hotline", "init"], timeout=300)
        self.run(["airflow", "pools", "import", str(ROOT / "config" / "airflow_pools.json")], timeout=300)
        return self

    def start_services(self, workers: int = 1) -> "NativeStack":
        """api-server, scheduler, dag-processor, triggerer and ``workers`` Celery workers."""
        self.spawn("api-server", ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.port)])
        self.spawn("scheduler", ["airflow", "scheduler"])
        self.spawn("dag-processor", ["airflow", "dag-processor"])
        self.spawn("triggerer", ["airflow", "triggerer"])
        for i in range(workers):
            self.start_worker(f"worker-{i + 1}")
        self.wait_for(lambda: self._get_or_none("/api/v2/version") is not None, 180, "the api-server")
        return self

    def run(self, argv: list[str], timeout: float) -> str:
        out = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-3000:]}\n"
                               f"{out.stderr[-3000:]}")
        return out.stdout

    def spawn(self, name: str, argv: list[str]) -> Proc:
        log = self.logs / f"{name}.log"
        fh = open(log, "ab")
        popen = subprocess.Popen(argv, env=self.env(), stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                                 start_new_session=True)
        fh.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def start_worker(self, name: str) -> Proc:
        return self.spawn(name, ["airflow", "celery", "worker", "--celery-hostname", f"{name}@%h",
                                 "--concurrency", "2", "--without-mingle", "--without-gossip"])

    def kill(self, name: str) -> None:
        """SIGKILL a service and every process it forked (a worker lost with its running tasks)."""
        [proc] = [p for p in self.procs if p.name == name]
        proc.kill(signal.SIGKILL)
        proc.popen.wait(timeout=30)

    # -- REST API ---------------------------------------------------------------------------------
    def token(self) -> str:
        if self._token is None:
            req = urllib.request.Request(f"{self.api}/auth/token", method="POST",
                                         data=json.dumps({"username": self.user, "password": self.password}).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=30) as resp:
                self._token = json.loads(resp.read())["access_token"]
        return self._token

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        req = urllib.request.Request(f"{self.api}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {self.token()}"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:2000]!r}") from exc
        return json.loads(raw) if raw else None

    def _get_or_none(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"{self.api}{path}", timeout=5) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    def wait_for(self, predicate, timeout: float, what: str, every: float = 1.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = predicate()
            if got:
                return got
            dead = [p.name for p in self.procs if not p.alive and p.name.startswith(("api", "sched", "dag-"))]
            if dead:
                raise RuntimeError(f"waiting for {what}: {dead} exited; see {self.logs}\n{self.tail(dead[0])}")
            time.sleep(every)
        raise TimeoutError(f"waited {timeout:.0f} s for {what}; logs in {self.logs}\n{self.tail('scheduler')}")

    def tail(self, name: str, n: int = 40) -> str:
        path = self.logs / f"{name}.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:]) if path.exists() else ""

    # -- teardown ---------------------------------------------------------------------------------
    def stop(self) -> list[str]:
        """Stop every process (SIGTERM, then SIGKILL after 20 s), drop both databases, flush the
        Redis database; returns the names of process groups still alive (should be none)."""
        from sqlalchemy import text

        for p in self.procs:
            p.kill(signal.SIGTERM)
        end = time.monotonic() + 20
        while time.monotonic() < end and any(p.group_alive() for p in self.procs):
            for p in self.procs:
                p.popen.poll()
            time.sleep(0.5)
        for p in self.procs:
            if p.group_alive():
                p.kill(signal.SIGKILL)
        time.sleep(1)
        for p in self.procs:
            try:
                p.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        left = [p.name for p in self.procs if p.group_alive()]
        try:
            admin = self._admin()
            with admin.connect() as conn:
                for name in list(self.created):
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                    self.created.remove(name)
            admin.dispose()
        except Exception as exc:  # noqa: BLE001 - report it, and still flush Redis
            self.teardown_errors.append(f"dropping {self.created}: {exc}")
        try:
            self._redis().flushdb()
        except Exception as exc:  # noqa: BLE001
            self.teardown_errors.append(f"flushing {self.redis_url}: {exc}")
        return left

    def databases_left(self) -> list[str]:
        from sqlalchemy import text

        admin = self._admin()
        with admin.connect() as conn:
            names = [r[0] for r in conn.execute(text("SELECT datname FROM pg_database WHERE datname IN (:a, :b)"),
                                                {"a": self.meta_db, "b": self.warehouse_db})]
        admin.dispose()
        return names
