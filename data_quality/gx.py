"""Running an expectation suite on a DataFrame with Great Expectations 1.x.

Each run builds an ephemeral context (no files, no analytics, no progress bars), a pandas data
source with one DataFrame asset and a whole-frame batch definition, the suite, a
ValidationDefinition and a Checkpoint, and returns plain results with the offending rows.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass
class ExpectationOutcome:
    """One expectation's result, flattened for policy, storage and the HTML page."""

    expectation: str
    column: str | None
    check: str
    action: str
    success: bool
    element_count: int = 0
    unexpected_count: int = 0
    observed: Any = None
    threshold: str = ""
    description: str = ""
    unexpected_rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"expectation": self.expectation, "column": self.column, "check": self.check, "action": self.action,
                "success": self.success, "unexpected_count": self.unexpected_count,
                "element_count": self.element_count, "observed": _plain(self.observed),
                "threshold": self.threshold, "description": self.description,
                "sample": self.unexpected_rows[:5]}


def _plain(v: Any) -> Any:
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    if hasattr(v, "item"):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return str(v)
    return v


def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    cfg = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(), analytics_enabled=False,
                            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False))
    return gx.get_context(mode="ephemeral", project_config=cfg)


def run_suite(name: str, frame: pd.DataFrame, expectations: list, index_columns: list[str]) -> list[ExpectationOutcome]:
    """Validate ``frame`` against ``expectations`` (GX Expectation objects whose ``meta`` carries
    ``check``, ``action``, ``threshold`` and ``description``)."""
    import great_expectations as gx

    ctx = _context()
    tag = uuid.uuid4().hex[:8]
    asset = ctx.data_sources.add_pandas(f"hotline_{tag}").add_dataframe_asset(f"{name}_{tag}")
    batch_def = asset.add_batch_definition_whole_dataframe("whole")
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_{tag}"))
    for e in expectations:
        suite.add_expectation(e)
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(data=batch_def, suite=suite, name=f"vd_{tag}"))
    cp = ctx.checkpoints.add(gx.Checkpoint(
        name=f"cp_{tag}", validation_definitions=[vd],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": index_columns,
                       "partial_unexpected_count": 20}))
    result = cp.run(batch_parameters={"dataframe": frame.reset_index(drop=True)})
    outcomes = []
    for vr in result.run_results.values():
        for r in vr.results:
            cfg = r.expectation_config
            meta = cfg.meta or {}
            res = r.result or {}
            rows = res.get("unexpected_index_list") or []
            outcomes.append(ExpectationOutcome(
                expectation=cfg.type, column=cfg.kwargs.get("column") or cfg.kwargs.get("column_A"),
                check=meta.get("check", cfg.type), action=meta.get("action", "warn"), success=bool(r.success),
                element_count=int(res.get("element_count") or 0),
                unexpected_count=int(res.get("unexpected_count") or 0),
                observed=res.get("observed_value"), threshold=str(meta.get("threshold", "")),
                description=meta.get("description", ""),
                unexpected_rows=[{k: _plain(v) for k, v in row.items()} for row in rows]
                if isinstance(rows, list) else []))
            info = r.exception_info or {}
            for i in ([info] if "raised_exception" in info else list(info.values())):
                if isinstance(i, dict) and i.get("raised_exception"):
                    raise RuntimeError(f"expectation {cfg.type} on {cfg.kwargs} raised: {i.get('exception_message')}")
    return outcomes
