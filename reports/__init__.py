"""Reports: the pages people read (the daily warning board, the detector backtest, the
calibration report). They sit above the stages whose results they show; the HTML and SVG
primitives they draw with are in ``hotline.core``, which renders Chinese with no network."""
