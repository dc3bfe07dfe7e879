"""Charts of one patient's diary as PNG: a staff chart and a simpler one for the patient.

Pure rendering: a `Subject` from the dataset, the study definition and a translator in, PNG
bytes out. Callers run it in a worker thread (`asyncio.to_thread`) because drawing takes tens
of milliseconds of CPU that must not stall the bot. Matplotlib is not thread-safe, so one lock
serializes rendering; the object API (Figure + Agg canvas) keeps pyplot's global state out.

Chinese needs a CJK font: WenQuanYi Micro Hei (Debian `fonts-wqy-microhei`, installed by
.ci/system-packages; see docs/data.md) or any Noto/Source Han Sans CJK font that is installed.
Without one, Chinese labels would render as empty boxes, and `cjk_font()` returns None so
start-up can say so.
"""

from __future__ import annotations

import io
import math
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.dates as mdates
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from bot.dataout.dataset import Subject
from bot.domain.rules import numeric
from bot.domain.study import Study
from bot.i18n import N_, T

STAFF_ITEMS = ("BLEED", "URGENCY", "PAIN", "BM")
PATIENT_ITEMS = ("BLEED", "PAIN")
PATIENT_DAYS = 30
STAFF_SIZE = (1000, 900)  # pixels
PATIENT_SIZE = (800, 600)
DPI = 100

CJK_FAMILIES = (
    "WenQuanYi Micro Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
)
CJK_FILES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
)
ALERT_COLOURS = {"urgent": "#c0392b", "review": "#e67e22", "compliance": "#8e44ad"}
ALERT_LABELS = {
    "urgent": N_("Urgent alert"),
    "review": N_("Review alert"),
    "compliance": N_("Compliance alert"),
}
_render_lock = threading.Lock()


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed font with Chinese glyphs, or None."""
    known = {f.name for f in font_manager.fontManager.ttflist}
    for family in CJK_FAMILIES:
        if family in known:
            return family
    # Installed after matplotlib cached its font list: register the file directly.
    for path in CJK_FILES:
        if Path(path).exists():
            font_manager.fontManager.addfont(path)
            return font_manager.FontProperties(fname=path).get_name()
    return None


@dataclass(frozen=True)
class Point:
    day: int
    local_date: date
    status: str
    values: dict[str, float | None]


def points(study: Study, subject: Subject, items: tuple[str, ...]) -> list[Point]:
    """One point per opened diary: its numeric answers (None when missed or not asked)."""
    codes = [c for c in items if any(it.code == c for it in study.items)]
    out = []
    for d in subject.diaries:
        values: dict[str, float | None] = {}
        for code in codes:
            raw = d.value(code)
            values[code] = numeric(study.item(code), raw) if raw is not None else None
        out.append(Point(d.study_day, d.local_date, d.status, values))
    return out


def _figure(size: tuple[int, int]) -> Figure:
    fig = Figure(figsize=(size[0] / DPI, size[1] / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _rc() -> Any:  # matplotlib types rcParams as a dict of literal keys
    family = cjk_font()
    return {
        "font.family": "sans-serif",
        "font.sans-serif": [*([family] if family else []), "DejaVu Sans"],
        "axes.unicode_minus": False,
        "svg.fonttype": "none",
    }


def _limits(study: Study, code: str, values: list[float | None]) -> tuple[float, float]:
    item = study.item(code)
    if item.options:
        hi = max(o.value for o in item.options)
    else:
        hi = max([item.max or 0.0, *[v for v in values if v is not None]])
    return -0.3, hi + 0.3 + (hi * 0.08 if hi > 4 else 0)


def render_staff(study: Study, subject: Subject, _: T) -> bytes:
    """Bleeding, urgency, pain and bowel movements by study day; Day 0, visits, alerts, gaps."""
    pts = points(study, subject, STAFF_ITEMS)
    codes = [c for c in STAFF_ITEMS if any(it.code == c for it in study.items)]
    with _render_lock, matplotlib.rc_context(_rc()):
        fig = _figure(STAFF_SIZE)
        axes = fig.subplots(len(codes), 1, sharex=True, squeeze=False)[:, 0]
        days = [p.day for p in pts] or [0]
        lo, hi = min(days) - 1, max(days) + 1
        visits = [(v.day, v.code) for v in study.visits if lo <= v.day <= hi]
        for ax, code in zip(axes, codes, strict=True):
            values = [p.values.get(code) for p in pts]
            # NaN where there is no answer: the line breaks at a gap instead of bridging it.
            ax.plot(
                [p.day for p in pts],
                [math.nan if v is None else v for v in values],
                marker="o",
                markersize=3,
                linewidth=1.2,
                color="#1f5f99",
            )
            for p in pts:
                if p.status in ("missed", "withdrawn"):
                    ax.axvspan(p.day - 0.5, p.day + 0.5, color="#bbbbbb", alpha=0.5, lw=0)
                elif p.status == "paused":
                    ax.axvspan(p.day - 0.5, p.day + 0.5, color="#aed6f1", alpha=0.5, lw=0)
            if lo <= 0 <= hi:
                ax.axvline(0, color="black", linewidth=1.2)
            for day, _code in visits:
                ax.axvline(day, color="#27ae60", linewidth=1, linestyle="--")
            ax.set_ylim(*_limits(study, code, values))
            ax.set_ylabel(_(study.item(code).short), fontsize=9, wrap=True)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(axis="y", color="#eeeeee")
        top = axes[0]
        ymax = top.get_ylim()[1]
        for day, code in visits:
            top.annotate(code, (day, ymax), xytext=(2, 4), textcoords="offset points", size=8)
        for level, colour in ALERT_COLOURS.items():
            alert_days = [d for d, lvl in subject.alerts if lvl == level and lo <= d <= hi]
            if alert_days:
                top.plot(
                    alert_days, [ymax] * len(alert_days), "v", color=colour, ms=9, clip_on=False
                )
        axes[-1].set_xlabel(_("Study day"))
        axes[-1].set_xlim(lo, hi)
        fig.suptitle(_("Diary of {subject}", subject=subject.subject))
        legend = [
            Patch(color="#bbbbbb", alpha=0.5, label=_("Missed")),
            Patch(color="#aed6f1", alpha=0.5, label=_("Paused")),
            Line2D([], [], color="black", label=_("Day 0 (injection)")),
            Line2D([], [], color="#27ae60", linestyle="--", label=_("Visit")),
        ]
        legend += [
            Line2D([], [], marker="v", ls="", color=colour, label=_(ALERT_LABELS[level]))
            for level, colour in ALERT_COLOURS.items()
        ]
        fig.legend(handles=legend, loc="lower center", ncol=4, fontsize=8)
        fig.subplots_adjust(left=0.1, right=0.97, top=0.92, bottom=0.12, hspace=0.18)
        return _png(fig)


def render_patient(study: Study, subject: Subject, today: date, _: T) -> bytes:
    """The patient's own bleeding and pain over the last 30 days, by date; gaps marked."""
    first = today - timedelta(days=PATIENT_DAYS - 1)
    pts = [p for p in points(study, subject, PATIENT_ITEMS) if first <= p.local_date <= today]
    if pts:  # a patient who started recently gets their own days, not an empty month
        first = max(first, min(p.local_date for p in pts))
    codes = [c for c in PATIENT_ITEMS if any(it.code == c for it in study.items)]
    with _render_lock, matplotlib.rc_context(_rc()):
        fig = _figure(PATIENT_SIZE)
        axes = fig.subplots(len(codes), 1, sharex=True, squeeze=False)[:, 0]
        for ax, code in zip(axes, codes, strict=True):
            values = [p.values.get(code) for p in pts]
            ax.plot(
                [p.local_date for p in pts],
                [math.nan if v is None else v for v in values],
                marker="o",
                linewidth=1.5,
                color="#1f5f99",
            )
            gaps = [p.local_date for p in pts if p.status in ("missed", "paused")]
            ax.plot(gaps, [0] * len(gaps), "x", color="#999999", ms=7)
            ax.set_ylim(*_limits(study, code, values))
            ax.set_ylabel(_(study.item(code).short), fontsize=9)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(axis="y", color="#eeeeee")
        axes[-1].set_xlim(first - timedelta(days=1), today + timedelta(days=1))
        axes[-1].xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=8))
        axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
        fig.suptitle(_("Your diary: the last {days} days", days=PATIENT_DAYS))
        fig.legend(
            handles=[Line2D([], [], marker="x", ls="", color="#999999", label=_("No diary"))],
            loc="lower center",
            fontsize=9,
        )
        fig.subplots_adjust(left=0.12, right=0.97, top=0.91, bottom=0.13, hspace=0.15)
        return _png(fig)
