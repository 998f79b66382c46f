"""COPY text encoding of `jsonb` documents: whatever `extra` holds reads back as itself."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from adapters.postgres import copy_text

_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def copy_field(text: str) -> str:
    """What PostgreSQL reads from one COPY text field."""
    return re.sub(r"\\[\\tnr]", lambda match: _UNESCAPES[match.group(0)], text)


values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip


@given(st.dictionaries(st.text(), values, max_size=6))
def test_a_document_reads_back_as_itself(extra: dict[str, Any]) -> None:
    field = copy_text.document(extra)
    assert "\t" not in field
    assert "\n" not in field
    assert json.loads(copy_field(field)) == (extra or {})


def test_what_orjson_refuses_is_written_by_the_json_module() -> None:
    assert json.loads(copy_field(copy_text.document({"big": 2**70}))) == {"big": 2**70}
    assert json.loads(copy_field(copy_text.document({"n": {1: "one"}}))) == {"n": {"1": "one"}}
