"""Chart PNGs: valid, of the expected size, rendered once per language with real CJK glyphs.

Matplotlib warns ("Glyph … missing from font(s)") when a character cannot be drawn; the tests
turn every warning into an error, so a Chinese chart drawn with boxes instead of characters
fails here.
"""

from __future__ import annotations

import asyncio
import io
import struct
import warnings
from datetime import date

import pytest
from matplotlib import image

from bot.dataout import charts
from bot.dataout.dataset import Subject, load, snapshot
from bot.domain.study import Study
from bot.i18n import t
from tests.dataout_seed import SeedFile, seed_file

LOCALES = ("en", "zh_Hans")


@pytest.fixture(scope="module")
def subject(tmp_path_factory: pytest.TempPathFactory, study: Study) -> Subject:
    seeded: SeedFile = seed_file(tmp_path_factory.mktemp("chart-seed"), study)

    async def read() -> Subject:
        async with snapshot(seeded.path) as conn:
            ds = await load(conn, study, seeded.now, subject="RP-001", with_history=False)
        return ds.subjects[0]

    return asyncio.run(read())


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the PNG header, after checking the signature and IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    pixels = image.imread(io.BytesIO(data), format="png")  # decodes every chunk
    assert pixels.shape[:2] == (height, width)
    return width, height


def render(fn: object, *args: object) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph is a failure, not a box
        return fn(*args)  # type: ignore[operator]


def test_a_cjk_font_is_installed() -> None:
    family = charts.cjk_font()
    assert family is not None, "install fonts-wqy-microhei (.ci/system-packages)"


def test_staff_chart_once_per_language(study: Study, subject: Subject) -> None:
    assert subject.alerts == ((4, "urgent"),)
    assert {d.status for d in subject.diaries} == {"completed", "missed", "paused"}
    pngs = {loc: render(charts.render_staff, study, subject, t(loc)) for loc in LOCALES}
    for png in pngs.values():
        assert png_size(png) == charts.STAFF_SIZE
    assert pngs["en"] != pngs["zh_Hans"]  # the labels differ


def test_patient_chart_once_per_language(study: Study, subject: Subject) -> None:
    today = date(2026, 12, 9)
    pngs = {loc: render(charts.render_patient, study, subject, today, t(loc)) for loc in LOCALES}
    for png in pngs.values():
        assert png_size(png) == charts.PATIENT_SIZE
    assert pngs["en"] != pngs["zh_Hans"]


def test_charts_of_a_patient_without_diaries(study: Study, subject: Subject) -> None:
    empty = Subject(
        subject="RP-009",
        injection_date=date(2026, 12, 20),
        timezone="Asia/Shanghai",
        status="invited",
        lang=None,
        diaries=(),
    )
    assert png_size(render(charts.render_staff, study, empty, t("zh_Hans"))) == charts.STAFF_SIZE
    patient = render(charts.render_patient, study, empty, date(2026, 12, 9), t("en"))
    assert png_size(patient) == charts.PATIENT_SIZE


def test_points_break_at_missed_days(study: Study, subject: Subject) -> None:
    points = {p.day: p for p in charts.points(study, subject, charts.STAFF_ITEMS)}
    assert points[2].status == "missed" and points[2].values == dict.fromkeys(charts.STAFF_ITEMS)
    assert points[4].values["PAIN"] == 4.0 and points[4].values["BLEED"] == 1.0


def test_without_a_cjk_font_chinese_would_fail_these_tests(
    study: Study, subject: Subject, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard above is real: with only DejaVu Sans, the Chinese labels raise a warning."""
    monkeypatch.setattr(charts, "_rc", lambda: {"font.family": ["DejaVu Sans"]})
    with pytest.raises(UserWarning, match="missing from font"):
        render(charts.render_staff, study, subject, t("zh_Hans"))
