"""The record and the report of a design run.

A design run's directory holds ``run.json`` (a :class:`RunRecord`: trials, research log,
baselines, validation, model usage) and the files it names. :func:`write_report` turns it into
``report.md``, a self-contained ``report.html`` and the PNG figures under ``figures/``.
"""

from __future__ import annotations

from ._records import (
    Budget,
    LogEntry,
    ModelUsage,
    RunRecord,
    Trial,
    Validation,
    load_record,
    save_record,
)
from ._render import write_report

__all__ = [
    "Budget",
    "LogEntry",
    "ModelUsage",
    "RunRecord",
    "Trial",
    "Validation",
    "load_record",
    "save_record",
    "write_report",
]
