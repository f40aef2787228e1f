"""Hypothesis strategies over DynamoDB's AttributeValues, shared by the codec, backup and profile tests."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import strategies as st

from seo_sync import codec


def _number_text(mantissa: int, exponent: int) -> str:
    return str(Decimal(mantissa).scaleb(exponent))


# Up to 38 significant digits, magnitudes well inside DynamoDB's range, in the text forms Decimal writes.
numbers = st.one_of(
    st.integers(min_value=-(10**38 - 1), max_value=10**38 - 1).map(str),
    st.builds(_number_text, st.integers(min_value=-(10**38 - 1), max_value=10**38 - 1),
              st.integers(min_value=-90, max_value=87)),
    st.sampled_from(["0", "-0", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1E-130",
                     "9.9999999999999999999999999999999999999E+125", "0.1", "007", "1.50", ".5", "5.", "+5",
                     "1e-7", "1E+2", "0.0000001", "0.85", "800.5", "-0.0", "1e25", "12345678901234567890"]),
)
# All ten AttributeValue types: the eight scalar and set types here, L and M by recursion below.
scalars = st.one_of(
    st.text(max_size=30).map(lambda v: {"S": v}),
    numbers.map(lambda v: {"N": v}),
    st.binary(max_size=40).map(lambda v: {"B": v}),
    st.booleans().map(lambda v: {"BOOL": v}),
    st.just({"NULL": True}),
    st.lists(st.text(max_size=10), min_size=1, max_size=5, unique=True).map(lambda v: {"SS": v}),
    st.lists(numbers, min_size=1, max_size=5, unique_by=Decimal).map(lambda v: {"NS": v}),
    st.lists(st.binary(max_size=10), min_size=1, max_size=5, unique=True).map(lambda v: {"BS": v}),
)
attribute_values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4).map(lambda v: {"L": v}),
                               st.dictionaries(st.text(max_size=12), children, max_size=4).map(lambda v: {"M": v})),
    max_leaves=12,
)


def same(a: codec.Item, b: codec.Item) -> bool:
    """Identical items: equal canonical forms and equal content hashes."""
    return (codec.item_hash(a) == codec.item_hash(b)
            and {k: codec.canonical(v) for k, v in a.items()} == {k: codec.canonical(v) for k, v in b.items()})
