"""The calibration report: one offline HTML page, Chinese first, with the PIT histogram, the
intervals' coverage and the exceedance tables of `hotline calibrate`."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from hotline.core.html import page, table
from hotline.core.svg import bar_chart

DETECTOR_ZH = {"spike_drop": "单日突增/骤降", "level_shift": "持续变化", "emerging": "新发问题", "spread": "多区扩散"}
SEVERITY_ZH = {"yellow": "黄色及以上", "orange": "橙色及以上", "red": "红色"}


def _rows(ex: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = [{"what": f"p ≤ {lv['claimed']:g}", "expected": lv["expected"], "hits": lv["hits"], "ratio": lv["ratio"]}
            for lv in ex["levels"]]
    rows += [{"what": f"{SEVERITY_ZH[s['severity']]} {s['severity']} (p ≤ {s['threshold']})", "expected": s["expected"],
              "hits": s["hits"], "ratio": s["ratio"]} for s in ex["severity"]]
    return rows


COLUMNS = [("what", "阈值 threshold"), ("expected", "按声称应有 claimed"), ("hits", "实际 observed"),
           ("ratio", "实际/声称 ratio")]


def _group(title: str, groups: Mapping[str, Mapping[str, Any]], names: Mapping[str, str] | None = None) -> str:
    parts = [f"<h2>{escape(title)}</h2>"]
    for key, ex in groups.items():
        label = f"{names.get(key, key)} {key}" if names else key
        parts.append(f"<h3>{escape(label)} · {ex['tests']:,} 次检验 tests</h3>" + table(_rows(ex), COLUMNS))
    return "".join(parts)


def write_calibration_report(path: str | Path, summary: Mapping[str, Any], source: str) -> Path:
    """Write the report of ``summary`` (detectors.calibrate.summarise plus ``period``) to ``path``."""
    pit = summary["pit"]["shares"]
    edges = [f"{i / len(pit):.1f}–{(i + 1) / len(pit):.1f}" for i in range(len(pit))]
    pit_chart = bar_chart(edges, [s * len(pit) for s in pit],
                          title="PIT 直方图（1 = 均匀，即校准）PIT histogram (1 = flat)")
    cov = summary["coverage"]
    cov_rows = [{"level": f"{c}%", "observed": "—" if v is None else f"{v:.1%}",
                 "gap": "—" if v is None else f"{(v - int(c) / 100) * 100:+.1f} 个百分点"} for c, v in cov.items()]
    ex = summary["exceedance"]
    ratio_chart = bar_chart([r["what"] for r in _rows(ex)], [r["ratio"] or 0 for r in _rows(ex)],
                            title="实际/声称（1 = 说到做到）observed / claimed (1 = true)",
                            highlight=[r["what"] for r in _rows(ex) if (r["ratio"] or 0) > 2])
    body = (f"<h1>校准报告 Calibration report</h1>"
            f"<p class=\"meta\">数据 data: {escape(source)} · 期间 period: {escape(summary.get('period', ''))} · "
            f"{summary['series']:,} 条序列 series · {summary['days']:,} 天 days · {ex['tests']:,} 次单侧检验 "
            f"one-sided tests</p>"
            "<p>每条预警都说明“这样的一天约多少天出现一次”。本页用历史逐日回放检验这句话：声称为 1/N 的日子，"
            "实际是否约每 N 天出现一次（比值 1 = 属实，2 = 实际多一倍）。真实事件也计算在内。"
            " Each warning states how often a day this unusual comes; this page replays history day by day and "
            "checks the claim (ratio 1 = true; real events included).</p>"
            f"<h2>单日预测分布 One-day predictive distribution</h2>{Markup(pit_chart)}"
            + table(cov_rows, [("level", "区间 interval"), ("observed", "实际覆盖 coverage"), ("gap", "偏差 gap")])
            + f"<h2>超越率 Exceedance (全部 all)</h2>{Markup(ratio_chart)}" + table(_rows(ex), COLUMNS)
            + _group("按检测器 By detector", summary["by_detector"], DETECTOR_ZH)
            + _group("按日均量 By volume band (expected tickets a day)", summary["by_band"])
            + _group("按城市规模 By tier", summary["by_tier"]))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page("校准报告 Calibration report", body), encoding="utf-8")
    return out
