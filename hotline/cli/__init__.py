"""The ``hotline`` command line: one module per command group. Every command has --help; with
--json, stdout carries exactly one JSON document and the words go to stderr."""
from hotline.cli import (  # noqa: F401 (registers the commands)
    alerts,
    data,
    detect,
    exports,
    forecast,
    governance,
    runs,
    web,
)
from hotline.cli.base import main

__all__ = ["main"]
