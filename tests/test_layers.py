"""The layer contract (pyproject.toml [tool.importlinter]) that `make test` runs: it holds on the
tree, and it is not vacuous: an upward or sideways import in a copy of the tree breaks it."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["hotline", "warehouse", "ingestion", "generator", "data_quality", "forecasting", "detectors", "alerts",
            "proposals", "sla", "reports"]
LINT = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache", "--config", str(tree / "pyproject.toml")], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the project's packages and pyproject.toml, to break on purpose."""
    dst = tmp_path_factory.mktemp("layers")
    for p in PACKAGES:
        shutil.copytree(ROOT / p, dst / p, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copy(ROOT / "pyproject.toml", dst / "pyproject.toml")
    return dst


def test_the_tree_keeps_the_layer_contract(tree):
    out = _lint(tree)
    assert out.returncode == 0 and "1 kept, 0 broken" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("module, line, broken", [
    ("warehouse/locks.py", "from sla.job import lights_day", "warehouse is not allowed to import sla"),
    ("hotline/core/series.py", "from warehouse.db import connect", "hotline.core is not allowed to import warehouse"),
    ("alerts/routing.py", "from detectors.engine import decide", "alerts is not allowed to import detectors"),
    ("ingestion/pipeline.py", "from hotline.app.runtime import Runtime",
     "ingestion is not allowed to import hotline.app"),
])
def test_an_upward_or_sideways_import_breaks_it(tree, module, line, broken):
    path = tree / module
    original = path.read_text(encoding="utf-8")
    try:
        path.write_text(original + f"\n\ndef _probe():\n    {line}  # noqa\n", encoding="utf-8")
        out = _lint(tree)
    finally:
        path.write_text(original, encoding="utf-8")
    assert out.returncode != 0 and broken in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("dag", sorted((ROOT / "dags").glob("*.py")), ids=lambda p: p.name)
def test_the_dags_call_the_app_only_and_log_through_logging(dag):
    """A DAG file imports Airflow, pendulum, the standard library and, of the project, only
    hotline.app and the Airflow glue (hotline.callbacks); no task prints."""
    import ast

    tree = ast.parse(dag.read_text(encoding="utf-8"))
    ours = set(PACKAGES)
    for node in ast.walk(tree):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
            [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for name in names:
            if name.split(".")[0] in ours:
                assert name.startswith(("hotline.app", "hotline.callbacks")), f"{dag.name} imports {name}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "print", f"{dag.name}:{node.lineno} prints instead of logging"
