"""The production stack's compose file (there is no Docker engine here: tests/test_topology.py
runs the same topology as native processes). It must parse, and keep the properties that make the
topology work: every Airflow service runs the project image with the same settings (the shared JWT
secret above all: workers fail with "Invalid auth token" without it), both databases are migrated
by the init service, and every long-running service has a health check."""
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_SERVICES = {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                    "airflow-triggerer", "airflow-init"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def test_the_compose_file_has_the_official_layout(compose):
    assert set(compose["services"]) == AIRFLOW_SERVICES | {"postgres", "redis", "web"}


def test_every_airflow_service_runs_the_project_image_with_the_shared_settings(compose):
    envs = {}
    for name in AIRFLOW_SERVICES:
        svc = compose["services"][name]
        assert svc["image"] == "hotline-early-warning:latest" and svc["build"] == ".", name
        assert "hotline-var:/opt/hotline/var" in svc["volumes"], name
        envs[name] = svc["environment"]
    first = envs["airflow-scheduler"]
    for name, env in envs.items():
        for key in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                    "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "HOTLINE_DB_URL",
                    "HOTLINE_CALLER_SALT", "HOTLINE_LOAD_DEMO", "HOTLINE_WEB_SECRET"):
            assert env.get(key) == first[key], (name, key)
    # a production stack loads synthetic tickets only when asked (tests/test_dags.py: it stops at ingest)
    assert first["HOTLINE_LOAD_DEMO"] == "${HOTLINE_LOAD_DEMO:-false}"
    assert first["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert first["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")
    # Airflow's metadata and the warehouse are separate databases on the same server
    meta, warehouse = first["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], first["HOTLINE_DB_URL"]
    assert meta.rsplit("/", 1)[1] == "airflow" and warehouse.rsplit("/", 1)[1] == "hotline"
    created = (ROOT / "docker" / "postgres-init" / "01-hotline.sql").read_text(encoding="utf-8")
    assert re.search(r"CREATE DATABASE hotline\b", created)


def test_required_secrets_are_in_the_env_example(compose):
    text = (ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    needed = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)(?::?[-?][^}]*)?\}", text))
    example = {line.split("=", 1)[0] for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
               if "=" in line and not line.startswith("#")}
    assert needed <= example, needed - example
    assert "AIRFLOW_JWT_SECRET" in needed


def test_long_running_services_have_health_checks_and_wait_for_what_they_need(compose):
    services = compose["services"]
    for name, svc in services.items():
        if name == "airflow-init":
            continue
        check = svc.get("healthcheck") or {}
        assert check.get("test") and check.get("interval"), name
        if name.startswith("airflow-"):
            deps = svc["depends_on"]
            assert deps["airflow-init"]["condition"] == "service_completed_successfully", name
            assert deps["postgres"]["condition"] == "service_healthy", name
    assert services["airflow-worker"]["depends_on"]["airflow-apiserver"]["condition"] == "service_healthy"
    declared = set(compose["volumes"])
    for svc in services.values():
        for v in svc.get("volumes", []):
            source = v.split(":", 1)[0]
            assert source.startswith(".") or source in declared, v


def test_the_image_has_what_the_health_checks_call(compose):
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "requirements.lock" in dockerfile  # the pinned set, as make installs it
    tools = set()
    for svc in compose["services"].values():
        test = (svc.get("healthcheck") or {}).get("test") or []
        if test and test[0] in ("CMD", "CMD-SHELL"):
            tools.add((test[1] if test[0] == "CMD" else test[1]).split()[0])
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    image_tools = {"curl": "curl" in dockerfile, "airflow": "\napache-airflow==" in lock,
                   "celery": "\ncelery==" in lock and "\napache-airflow-providers-celery==" in lock}
    for svc_name in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-worker",
                     "airflow-triggerer"):
        test = compose["services"][svc_name]["healthcheck"]["test"]
        tool = (test[1] if test[0] == "CMD" else test[1]).split()[0]
        assert image_tools.get(tool), (svc_name, tool)
    assert {"pg_isready", "redis-cli"} <= tools  # from the postgres and redis images


def test_the_init_service_migrates_both_databases_and_creates_the_pools(compose):
    script = "\n".join(compose["services"]["airflow-init"]["command"])
    assert "airflow db migrate" in script and "hotline init" in script
    assert "airflow pools import /opt/hotline/config/airflow_pools.json" in script
    assert (ROOT / "config" / "airflow_pools.json").is_file()
    assert "HOTLINE_LOAD_DEMO" in script and "hotline demo" in script
    assert "hotline doctor ||" in script  # its findings in the init log, without stopping the stack
    # it runs as root; the services run as AIRFLOW_UID and must own what it wrote to the volumes
    assert compose["services"]["airflow-init"]["user"] == "0:0"
    assert 'chown -R "${AIRFLOW_UID:-50000}:0" /opt/hotline/var /opt/airflow/logs' in script


def test_the_web_service_serves_the_site_with_its_own_secret_and_a_health_check(compose):
    web = compose["services"]["web"]
    assert web["image"] == "hotline-early-warning:latest" and web["command"].startswith("hotline serve --host 0.0.0.0")
    port = re.search(r"--port (\d+)", web["command"])[1]
    assert web["ports"] == [f"{port}:{port}"]
    assert web["healthcheck"]["test"] == ["CMD", "curl", "--fail", f"http://localhost:{port}/healthz"]
    assert web["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    env = web["environment"]
    airflow = compose["services"]["airflow-worker"]["environment"]
    for key in ("HOTLINE_DB_URL", "HOTLINE_CALLER_SALT", "HOTLINE_WEB_SECRET"):
        assert env[key] == airflow[key], key  # the same warehouse, and the workers sign links with its secret
    assert env["HOTLINE_WEB_SECRET"].startswith("${HOTLINE_WEB_SECRET:?")  # no default: a missing secret stops it
    # least privilege: the site has none of Airflow's secrets
    assert not {k for k in env if k.startswith("AIRFLOW")} and "env_file" not in web


def test_no_secret_goes_into_the_image():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
               if line.strip() and not line.startswith("#")]
    for must in (".env", "var/", ".venv/", ".git/", "*.db"):
        assert must in ignored, must
    assert "!.env.example" in ignored  # the example (no secret in it) stays
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert not re.search(r"(?i)^(ENV|ARG)\b.*(SECRET|PASSWORD|SALT|KEY|TOKEN)", dockerfile, re.M)
    # what `COPY . .` would bring from a working copy that ran `make run` and `hotline serve`
    import fnmatch

    def kept(path: str) -> bool:
        keep = True
        for pat in ignored:
            neg = pat.startswith("!")
            p = pat[1:] if neg else pat
            hit = (path.startswith(p) if p.endswith("/") else fnmatch.fnmatch(path, p)
                   or fnmatch.fnmatch(path.rsplit("/", 1)[-1], p))
            if hit:
                keep = neg
        return keep
    for secret_file in (".env", "var/web-secret", "var/demo-accounts.txt", "var/hotline.db", ".env.production"):
        assert not kept(secret_file), secret_file
    assert kept(".env.example") and kept("config/alerts.yaml")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert "HOTLINE_WEB_SECRET=change-me" in example
