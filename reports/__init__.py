"""Offline reports: inline SVG charts and self-contained HTML pages that render Chinese.

Nothing here loads a resource from the network: styles are inline and text is drawn by the
browser with a CJK-capable system font stack (``FONT_STACK``).
"""
from reports.backtest import write_backtest_report
from reports.html import page, table
from reports.svg import FONT_STACK, series_chart

__all__ = ["FONT_STACK", "page", "series_chart", "table", "write_backtest_report"]
