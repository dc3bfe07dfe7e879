"""Build hook: the wheel carries the translation catalogs, compiled.

The catalogs live at the top of the repository (`locales/`, where `make locales` and the
translators work on them). Building a wheel, `build_py` below copies each `messages.po` and the
`messages.pot` into the package as `bot/locales/…` and compiles every `.po` into its `.mo`
there, so an installed bot finds its catalogs without a checkout (`bot.i18n.LOCALE_DIR`).
An editable install (`pip install -e .`) keeps using the checkout's `locales/`.
Everything else about the package is in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
CATALOGS = HERE / "locales"
DOMAIN = "messages"


class build_py_with_catalogs(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        from babel.messages.mofile import write_mo
        from babel.messages.pofile import read_po

        target = Path(self.build_lib) / "bot" / "locales"
        pot = CATALOGS / f"{DOMAIN}.pot"
        if pot.exists():
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(pot, target / pot.name)
        sources = sorted(CATALOGS.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
        if not sources:
            raise SystemExit(f"no catalogs under {CATALOGS}: the wheel would not start")
        for po in sources:
            out = target / po.relative_to(CATALOGS)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(po, out)
            locale = po.parent.parent.name
            with po.open("rb") as fp:
                catalog = read_po(fp, locale=locale, domain=DOMAIN)
            with out.with_suffix(".mo").open("wb") as fp:
                write_mo(fp, catalog, use_fuzzy=False)


setup(cmdclass={"build_py": build_py_with_catalogs})
