"""The core every layer may use: settings, reference data, calendar, PII, series ids, severity,
the canonical ticket vocabulary, and the HTML/SVG primitives. It imports no other layer."""
