"""DynamoDB numbers as SQLite values that compare as numbers and still give back the exact text.

A Number in a typed column is stored as INTEGER when it is integral and fits 64 bits, as REAL
when its canonical decimal text survives a trip through an IEEE double (the shortest repr of the
double gives back the same canonical decimal: 0.85, 800.5, 1e-7), and otherwise as its exact
decimal TEXT. The decision is made on decimal text; a double is only built to be checked against
it. When the text DynamoDB sent is not its canonical spelling ("1.50", "1E+2", "-0"), the exact
text is kept beside the row (in `_types`), so reading back always gives the same string.
"""

from __future__ import annotations

import decimal
import math
import re
from decimal import Decimal

from seo_sync.codec.values import CANONICAL_INT_RE

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Wide enough for every DynamoDB number (38 significant digits) and for the 17 digits of a double.
_EXACT = decimal.Context(prec=100, Emin=-999_999, Emax=999_999)
# DynamoDB's own spelling of a number: plain decimal, no exponent, no leading or trailing zeros.
_CANONICAL_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d*[1-9])?")

Cell = int | float | str


def canonical_text(text: str) -> str:
    """DynamoDB's canonical spelling of a valid number: '1.50' -> '1.5', '1E+2' -> '100', '-0' -> '0'."""
    if _CANONICAL_RE.fullmatch(text) and text != "-0":
        return text
    d = Decimal(text)
    if d.is_zero():
        return "0"
    return format(_EXACT.normalize(d), "f")


def _double_text(value: float) -> str:
    """The canonical decimal a double stands for, via its shortest repr."""
    return canonical_text(repr(value))


def number_cell(text: str) -> tuple[Cell, str | None]:
    """The SQLite value of a valid DynamoDB number, and its exact text when that is not canonical.

    INTEGER when integral within 64 bits, REAL when the canonical decimal round-trips exactly
    through a double, else the exact TEXT (which needs no note: it is the text itself).
    """
    if CANONICAL_INT_RE.fullmatch(text):  # the common case: no Decimal at all
        n = int(text)
        if INT64_MIN <= n <= INT64_MAX:
            return n, None
        canon = text
    else:
        canon = canonical_text(text)
    note = None if canon == text else text
    if "." not in canon:
        n = int(canon)
        if INT64_MIN <= n <= INT64_MAX:
            return n, note
    value = float(canon)
    if math.isfinite(value) and _double_text(value) == canon:
        return value, note
    return text, None


def cell_text(cell: Cell) -> str:
    """The canonical text of a number column's value (inverse of number_cell, without its note)."""
    if isinstance(cell, bool):  # never written by number_cell; refuse rather than print 'True'
        raise TypeError("a bool is not a number cell")
    if isinstance(cell, int):
        return str(cell)
    if isinstance(cell, float):
        return _double_text(cell)
    return cell


def is_json_number(text: str) -> bool:
    """True when `text` is a valid JSON number literal as it is (else JSON gets the canonical text)."""
    return bool(_JSON_NUMBER_RE.fullmatch(text))


_JSON_NUMBER_RE = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
