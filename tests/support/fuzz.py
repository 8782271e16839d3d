"""Hypothesis strategies of hostile input shared by the fuzz tests.

The strategies produce what a broken or malicious client sends: arbitrary JSON, valid
payloads with one field deleted or replaced by a value of the wrong type, strings with line
breaks, markup, NUL bytes and very long runs, and raw bytes that are not JSON at all.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Reproducible in CI: the same examples every run, no example database.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\r\n",
        "x\r\nBcc: victim@evil.example",
        "<script>alert(1)</script>",
        "\x00",
        "'; DROP TABLE outbox; --",
        "{{ 7*7 }}",
        "../../etc/passwd",
        "\u202e\ufeff",
        "a" * 70_000,
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59-14:00",
        "NaN",
        "-1",
    ]
)
TEXT = st.one_of(st.text(max_size=40), HOSTILE_TEXT)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=12,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (keys and list indexes) inside a JSON value, the root excluded."""
    found = []
    if isinstance(value, dict):
        for key, item in value.items():
            found.append(prefix + (key,))
            found.extend(paths(item, prefix + (key,)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append(prefix + (index,))
            found.extend(paths(item, prefix + (index,)))
    return found


@st.composite
def mutated(draw: st.DrawFn, valid: Any) -> Any:
    """`valid` with one to three fields deleted or replaced (by any JSON value)."""
    value = copy.deepcopy(valid)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        candidates = paths(value)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = value
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return value


def fuzz(examples: int) -> settings:
    """FUZZ with `examples` examples."""
    return settings(FUZZ, max_examples=examples)


RAW_BODIES = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    JSON.map(lambda v: json.dumps(v)[:-1].encode()),  # truncated JSON
    st.just(b"\xff\xfe{}"),
    st.just(b'{"a": 1e99999}'),
    st.just(b"[" * 5000),
)
