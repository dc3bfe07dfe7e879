"""Text that is safe to store and to export (pure).

- XML 1.0 allows only tab, line feed, carriage return and the printable planes
  (https://www.w3.org/TR/xml/#charsets): one NUL, BEL or ESC in a patient's free text makes a
  whole CDISC ODM file unreadable. Such characters are refused when typed (the patient is asked
  to type the answer again) and stripped from every export, for data stored before that.
- CSV injection (OWASP): a spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, tab or
  carriage return as a formula. Such cells get a leading `'`, except a plain decimal number
  (`-3`, `-0.5`: study days before Day 0 are negative and stay numbers a statistics package
  reads); a number cannot run anything.
"""

from __future__ import annotations

import re

_XML_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def has_xml_forbidden(text: str) -> bool:
    return _XML_FORBIDDEN.search(text) is not None


def strip_xml_forbidden(text: str) -> str:
    return _XML_FORBIDDEN.sub("", text)


def csv_cell(value: object) -> object:
    """A value as a CSV cell: forbidden characters stripped, formulas defused."""
    if not isinstance(value, str):
        return value
    text = strip_xml_forbidden(value)
    if text.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text
