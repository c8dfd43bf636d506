"""Hypothesis strategies for untrusted documents: JSON-like values and the awkward edges of each type."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

#: Scalars a parser meets in hostile input: huge and negative numbers, non-finite floats, odd text.
AWKWARD_SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([-1, 0, 2**63, -(2**63) - 1]),
    st.integers(min_value=19, max_value=4200).map(lambda digits: 10**digits),  # int() allows 4300
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(
        [
            "",
            "\x00",
            "\ufeff",
            "../../etc/passwd",
            "${UNSET_VARIABLE}",
            "0001-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T23:59:59.999999Z",
            "2026-11-27T08:00:00",
            "2026-02-30T08:00:00Z",
            "12345678-1234-5678-1234-567812345678",
            "not-a-uuid",
            "counts",
            "end",
            "America",
        ]
    ),
    st.sampled_from([("é", 70), ("💥", 600), ("A", 300)]).map(lambda pair: pair[0] * pair[1]),
)

#: Any value ``json.dumps`` can write (non-finite floats included, as Python writes them).
JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    AWKWARD_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4),
    ),
    max_leaves=12,
)


def nested_json(depth: int) -> str:
    """JSON text of ``depth`` alternating objects and lists around a 0, deeper than ``json.dumps`` could
    write (it would hit the recursion limit)."""
    opening = "".join("[" if i % 2 else '{"a":' for i in reversed(range(depth)))
    closing = "".join("]" if i % 2 else "}" for i in range(depth))
    return opening + "0" + closing
