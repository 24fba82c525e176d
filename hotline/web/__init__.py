"""The served warning site (FastAPI): sign-in per office, the workbench, acting on alerts."""
