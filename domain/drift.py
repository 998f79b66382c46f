"""Schema drift: what a batch's payloads look like against the fields its source promised.

A missing expected field and a new unknown field are paired as a rename when their names are
alike (rapidfuzz), their values' types fit, and (when earlier payloads of the same records are
at hand) the new field's values sit where the old field's values sat. Each pairing has a
confidence in 0..1; above the threshold the new name is mapped to the old for this batch.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs
from rapidfuzz import distance, fuzz

# how much of a rename's confidence each piece of evidence carries
NAME_WEIGHT, TYPE_WEIGHT, VALUE_WEIGHT = 0.45, 0.20, 0.35
PLAUSIBLE_NAME_SIMILARITY = 0.6
# names less alike than that still pair when the values say so: enough records, mostly agreeing
STRONG_VALUE_AGREEMENT, MIN_RECORDS_COMPARED = 0.8, 3
VALUE_TOLERANCE = Decimal("0.05")  # prices move between runs: within 5% counts as "the same place"


class FieldType(enum.StrEnum):
    NUMBER = "number"
    STRING = "string"
    BOOLEAN = "boolean"
    OBJECT = "object"
    ARRAY = "array"


class DriftKind(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    RENAMED = "renamed"
    TYPE_CHANGED = "type_changed"


ANY_TYPE = frozenset(FieldType)


@attrs.frozen
class FieldSpec:
    name: str
    types: frozenset[FieldType] = ANY_TYPE
    required: bool = False


def _same(name: str) -> str:
    return name


@attrs.frozen
class Contract:
    """A source's promised fields. `canonical` maps a name the source may use onto a contract name
    (a CSV's `Close (USD)` onto `close`); names it does not know are returned unchanged."""

    fields: tuple[FieldSpec, ...]
    canonical: Callable[[str], str] = _same

    def spec(self, name: str) -> FieldSpec | None:
        return next((spec for spec in self.fields if spec.name == name), None)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(spec.name for spec in self.fields)


@attrs.frozen
class DriftFinding:
    kind: DriftKind
    field: str
    candidate: str = ""
    confidence: float = 1.0
    auto_mapped: bool = False
    sample_value: Any = None
    evidence: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class DriftReport:
    findings: tuple[DriftFinding, ...] = ()
    mapping: Mapping[str, str] = attrs.field(factory=dict)  # observed name -> contract name

    def remap(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The payload with auto-mapped fields under their contract names, in each record that
        lacks the old name and has the new one (a rename that reached only part of a batch
        leaves the records still using the old name as they are)."""
        if not self.mapping:
            return dict(payload)
        result = dict(payload)
        for new, old in self.mapping.items():
            if new in result and old not in result:
                result[old] = result.pop(new)
        return result


@attrs.frozen
class StoredDrift:
    """A finding as kept: once per (source, kind, field, candidate), with when and how often."""

    source: str
    finding: DriftFinding
    first_seen: datetime
    last_seen: datetime
    seen_count: int
    first_run_id: int
    last_run_id: int


PreviousPayloads = Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]]


def value_type(value: Any) -> FieldType | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return FieldType.BOOLEAN
    if isinstance(value, int | float | Decimal):
        return FieldType.NUMBER
    if isinstance(value, str):
        return FieldType.STRING
    if isinstance(value, Mapping):
        return FieldType.OBJECT
    return FieldType.ARRAY


_UNKNOWN = object()
_TYPES: dict[type, FieldType | None] = {
    type(None): None,
    bool: FieldType.BOOLEAN,
    int: FieldType.NUMBER,
    float: FieldType.NUMBER,
    str: FieldType.STRING,
    dict: FieldType.OBJECT,
    list: FieldType.ARRAY,
}


@attrs.define
class _Observed:
    count: int = 0
    types: set[FieldType] = attrs.Factory(set)
    sample: Any = None


def detect_drift(
    contract: Contract,
    payloads: Sequence[tuple[str, Mapping[str, Any]]],
    threshold: float = 0.8,
    previous: PreviousPayloads | None = None,
    removal_share: float = 0.5,
) -> DriftReport:
    """Compare `(record id, payload)` pairs of one batch with the contract.

    An expected field absent from at least `removal_share` of the records (a provider's rolling
    deploy renames a field in most answers, not all) can be paired with a new field as a rename;
    unpaired, it is reported `removed` only when absent from every record."""
    if not payloads:
        return DriftReport()
    observed: dict[str, _Observed] = {}
    by_key: dict[str, _Observed] = {}  # every record repeats the same few keys: resolve each once
    for _, payload in payloads:
        for key, value in payload.items():
            seen = by_key.get(key)
            if seen is None:
                seen = by_key[key] = observed.setdefault(contract.canonical(key), _Observed())
            seen.count += 1
            kind = _TYPES.get(type(value), _UNKNOWN)
            if kind is _UNKNOWN:
                kind = value_type(value)
            if kind is not None:
                seen.types.add(kind)  # type: ignore[arg-type]
                if seen.sample is None:
                    seen.sample = value
    missing = [spec for spec in contract.fields if spec.name not in observed]
    mostly_missing = [
        spec
        for spec in contract.fields
        if spec.name in observed and 1 - observed[spec.name].count / len(payloads) >= removal_share
    ]
    unknown = sorted(name for name in observed if name not in contract.names)
    findings: list[DriftFinding] = []
    renames = _pair_renames(
        contract, missing + mostly_missing, unknown, observed, payloads, previous, threshold
    )
    findings.extend(renames)
    paired = {finding.field for finding in renames} | {finding.candidate for finding in renames}
    findings.extend(
        DriftFinding(
            DriftKind.REMOVED, spec.name, evidence={"required": spec.required, "records": len(payloads)}
        )
        for spec in missing
        if spec.name not in paired
    )
    findings.extend(
        DriftFinding(
            DriftKind.ADDED,
            name,
            confidence=round(observed[name].count / len(payloads), 3),
            sample_value=observed[name].sample,
            evidence={"present_in": observed[name].count, "records": len(payloads)},
        )
        for name in unknown
        if name not in paired
    )
    for spec in contract.fields:
        present = observed.get(spec.name)
        if present is not None and present.types - spec.types:
            findings.append(
                DriftFinding(
                    DriftKind.TYPE_CHANGED,
                    spec.name,
                    sample_value=present.sample,
                    evidence={"expected": sorted(spec.types), "observed": sorted(present.types)},
                )
            )
    mapping = {finding.candidate: finding.field for finding in renames if finding.auto_mapped}
    return DriftReport(findings=tuple(findings), mapping=mapping)


def _pair_renames(
    contract: Contract,
    missing: list[FieldSpec],
    unknown: list[str],
    observed: dict[str, _Observed],
    payloads: Sequence[tuple[str, Mapping[str, Any]]],
    previous: PreviousPayloads | None,
    threshold: float,
) -> list[DriftFinding]:
    scored: list[tuple[float, FieldSpec, str, dict[str, Any]]] = []
    earlier: Mapping[str, Mapping[str, Any]] | None = None
    for spec in missing:
        for name in unknown:
            similarity = name_similarity(spec.name, name)
            types_fit = not (observed[name].types - spec.types)
            if earlier is None and previous is not None:
                earlier = previous([record_id for record_id, _ in payloads])
            agreement, compared = _value_agreement(spec.name, name, payloads, earlier or {}, contract)
            values_say_so = compared >= MIN_RECORDS_COMPARED and agreement >= STRONG_VALUE_AGREEMENT
            if similarity < PLAUSIBLE_NAME_SIMILARITY and not values_say_so:
                continue
            evidence: dict[str, Any] = {
                "name_similarity": round(similarity, 3),
                "types_fit": types_fit,
                "observed_types": sorted(observed[name].types),
                "expected_types": sorted(spec.types),
            }
            if spec.name in observed:  # a rename that reached only part of the batch
                evidence["old_name_still_in"] = observed[spec.name].count
                evidence["records"] = len(payloads)
            if compared:
                evidence |= {"value_agreement": round(agreement, 3), "records_compared": compared}
                confidence = NAME_WEIGHT * similarity + TYPE_WEIGHT * types_fit + VALUE_WEIGHT * agreement
            else:
                scale = 1 / (NAME_WEIGHT + TYPE_WEIGHT)
                confidence = scale * (NAME_WEIGHT * similarity + TYPE_WEIGHT * types_fit)
            scored.append((round(min(1.0, confidence), 3), spec, name, evidence))
    findings: list[DriftFinding] = []
    used: set[str] = set()
    for confidence, spec, name, evidence in sorted(scored, key=lambda item: -item[0]):
        if spec.name in used or name in used:
            continue
        used.update((spec.name, name))
        findings.append(
            DriftFinding(
                DriftKind.RENAMED,
                spec.name,
                candidate=name,
                confidence=confidence,
                auto_mapped=confidence >= threshold,
                sample_value=observed[name].sample,
                evidence=evidence,
            )
        )
    return findings


def name_similarity(a: str, b: str) -> float:
    """0..1, by characters and by words; `current_price` and `currentPrice` are 1.0."""
    left, right = _squash(a), _squash(b)
    return max(
        fuzz.ratio(left, right) / 100,
        distance.JaroWinkler.similarity(left, right),
        fuzz.token_set_ratio(_words(a), _words(b)) / 100,
    )


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _words(name: str) -> str:
    """`currentPrice` and `current_price` → `current price`."""
    return " ".join(re.findall(r"[a-z]+|[0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()))


def _value_agreement(
    old: str,
    new: str,
    payloads: Sequence[tuple[str, Mapping[str, Any]]],
    earlier: Mapping[str, Mapping[str, Any]],
    contract: Contract,
) -> tuple[float, int]:
    """The share of records whose new field holds what their old field held last time."""
    compared = agreed = 0
    for record_id, payload in payloads:
        before = earlier.get(record_id)
        if before is None:
            continue
        old_value = next((v for k, v in before.items() if contract.canonical(k) == old), None)
        new_value = payload.get(new)
        if old_value is None or new_value is None:
            continue
        compared += 1
        agreed += _close(old_value, new_value)
    return (agreed / compared if compared else 0.0), compared


def _close(a: Any, b: Any) -> bool:
    try:
        left, right = Decimal(str(a).replace(",", "")), Decimal(str(b).replace(",", ""))
    except InvalidOperation:
        return str(a).strip() == str(b).strip()
    if left == right:
        return True
    scale = max(abs(left), abs(right))
    return bool(scale) and abs(left - right) / scale <= VALUE_TOLERANCE
