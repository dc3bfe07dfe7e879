"""Merge translations from a Python dict file into a catalog (a translator's helper).

Usage: python scripts/fill_po.py locales/zh_Hans/LC_MESSAGES/messages.po translations.py
The dict file defines ZH = {msgid: msgstr}. Existing non-empty translations are kept unless
--force is given.
"""

from __future__ import annotations

import runpy
import sys

from babel.messages.pofile import read_po, write_po


def main(argv: list[str]) -> int:
    force = "--force" in argv
    args = [a for a in argv if a != "--force"]
    po_path, dict_path = args[0], args[1]
    table = runpy.run_path(dict_path)["ZH"]
    with open(po_path, "rb") as fp:
        catalog = read_po(fp, locale="zh_Hans")
    filled = 0
    for message in catalog:
        if message.id and message.id in table and (force or not message.string):
            message.string = table[message.id]
            message.flags.discard("fuzzy")
            filled += 1
    with open(po_path, "wb") as fp:
        write_po(fp, catalog, width=100, omit_header=False)
    print(f"{filled} translations written", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
