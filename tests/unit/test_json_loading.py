"""The JSON loader the pool installs reads every value exactly as json.loads does."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.postgres.pooling import _load_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values, st.sampled_from(["", " ", "\n\t "]))
def test_the_loader_reads_what_json_loads_reads(value: Any, blanks: str) -> None:
    compact = json.dumps(value, ensure_ascii=False).encode("utf-8")
    assert _load_json(compact) == json.loads(compact)
    padded = blanks.encode() + compact + blanks.encode()
    assert _load_json(padded) == json.loads(padded)
