"""Data out's screens for the sandbox's /screens page (bot/sandbox/screens.py): every text of
/export and /progress, drawn by the real views, in both languages."""

from __future__ import annotations

from collections.abc import Iterable

from bot.dataout.charts import PATIENT_DAYS
from bot.sandbox.screens import Samples, Screen
from conversations import dataout_view as view

GROUP = "Data out"


def screens(s: Samples) -> Iterable[Screen]:
    subject = s.patient.subject
    yield Screen(
        "dataout.export.usage",
        GROUP,
        "/export without a format",
        lambda _: view.export_refused(_, "usage"),
    )
    yield Screen(
        "dataout.export.date",
        GROUP,
        "/export csv 2026-02-30 (not a date)",
        lambda _: view.export_refused(_, "date"),
    )
    yield Screen(
        "dataout.export.twice",
        GROUP,
        "/export csv RP-001 RP-002",
        lambda _: view.export_refused(_, "twice"),
    )
    yield Screen(
        "dataout.export.unknown",
        GROUP,
        "/export odm RP-404 (no such subject)",
        lambda _: view.no_patient(_, "RP-404"),
    )
    yield Screen(
        "dataout.export.preparing",
        GROUP,
        "/export odm: at once, before the file",
        lambda _: view.export_preparing(_, "odm"),
    )
    yield Screen(
        "dataout.export.caption",
        GROUP,
        "caption of the exported file",
        lambda _: view.export_caption(_, "csv", 12, 1345),
    )
    yield Screen(
        "dataout.export.too_large",
        GROUP,
        "the file would exceed Telegram's 50 MB",
        view.export_too_large,
    )
    yield Screen("dataout.export.failed", GROUP, "building the export failed", view.export_failed)
    yield Screen(
        "dataout.chart.caption",
        GROUP,
        "caption of the chart sent with /patient",
        lambda _: view.chart_caption(_, subject),
    )
    yield Screen(
        "dataout.progress.empty",
        GROUP,
        "/progress before the first diary",
        view.progress_nothing_yet,
    )
    yield Screen(
        "dataout.progress.caption",
        GROUP,
        "caption of the /progress chart",
        lambda _: view.progress_caption(_, PATIENT_DAYS),
    )
