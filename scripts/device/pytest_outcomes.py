"""A pytest plugin that appends each test's outcome to a JSON-lines file the moment
it is known (``DIFFILL_OUTCOMES``), so that a run stopped at the GPU check's time
limit still leaves every result it had (scripts/device/gpu_check.py).

    DIFFILL_OUTCOMES=out.jsonl python -m pytest -p pytest_outcomes ...
"""
from __future__ import annotations

import json
import os

import pytest

#: characters of a failure's report kept (its end: the assertion and where it failed)
MESSAGE_CHARS = 3000


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """One line per test: its call's outcome, or a failed/skipped setup, or a failed teardown."""
    path = os.environ.get("DIFFILL_OUTCOMES")
    if not path:
        return
    if not (report.when == "call" or (report.when == "setup" and not report.passed)
            or (report.when == "teardown" and report.failed)):
        return
    row: dict[str, object] = {"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
                              "duration_s": round(report.duration, 3)}
    if report.failed:
        row["message"] = report.longreprtext[-MESSAGE_CHARS:]
    elif report.skipped and isinstance(report.longrepr, tuple):
        row["reason"] = str(report.longrepr[2]).removeprefix("Skipped: ")
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")
