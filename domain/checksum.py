"""The content identity of a payload: sha256 of its canonical JSON."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(payload: Any) -> str:
    """Serialize with sorted keys and no insignificant whitespace, so equal payloads match."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def payload_checksum(payload: Any) -> str:
    return json_checksum(canonical_json(payload))


def json_checksum(text: str) -> str:
    """The checksum of a payload already in canonical JSON."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
