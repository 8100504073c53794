"""The fields of EnrichedTransactions that the results schema has no column for, kept as JSON text.

The API may return fields that this version of the schema does not know (a field added after it was
written). They are never dropped: each row's ``extra_json`` holds them as one JSON object, nested like
the EnrichedTransaction, keys sorted, e.g. ``{"entities": {"counterparty": {"new": "x"}}, "recurrence":
{...}}``; a list of objects (``entities.intermediaries``) is kept position by position, ``{}`` for an
item without unknown fields. Values are the API's JSON values as sent (re-serialized, not re-typed); a
field whose value is null is left out, as null and absent mean the same for the API's nullable fields.

Arrow's JSON reader finds them: read with ``unexpected_field_behavior="infer"``, it adds the fields it
does not expect to the types it reports, at every depth. When the reported type equals the schema's,
there is nothing to keep and nothing here runs (the common case, no cost). Otherwise only the parts
of each item whose reported type differs are visited, in Python, on the body decoded by ``orjson``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa


@dataclass(frozen=True, slots=True)
class UnknownFieldsPlan:
    """Where to look in one JSON object: its own unknown keys, and which known children to descend into.

    :param known: the field names the schema has at this level.
    :param check_keys: whether this level may hold keys outside ``known``.
    :param children: by name, ``(is_list, plan)`` for the known struct (or list of struct) fields that
        may hold unknown fields below.
    """

    known: frozenset[str]
    check_keys: bool
    children: dict[str, tuple[bool, UnknownFieldsPlan]]

    @property
    def empty(self) -> bool:
        """Whether nothing below can be unknown."""
        return not self.check_keys and not self.children


def _struct_of(type_: pa.DataType | None) -> pa.StructType | None:
    """The struct type itself, or the struct items of a list; ``None`` for anything else."""
    if type_ is None:
        return None
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        type_ = type_.value_type
    return type_ if pa.types.is_struct(type_) else None


def plan_for(known: pa.StructType, seen: pa.StructType | None) -> UnknownFieldsPlan:
    """Where unknown fields can be, given the schema's type and the type the reader reported.

    :param known: the schema's struct type (e.g. ``ENRICHED_TRANSACTION_ARROW_TYPE``).
    :param seen: the struct type Arrow's JSON reader reported for the same data, with the fields it
        inferred; ``None`` when not known (every level is then checked).
    """
    names = frozenset(field.name for field in known)
    seen_fields = {field.name: field.type for field in seen} if seen is not None else None
    children: dict[str, tuple[bool, UnknownFieldsPlan]] = {}
    for field in known:
        known_child = _struct_of(field.type)
        if known_child is None:
            continue
        seen_type = seen_fields.get(field.name) if seen_fields is not None else None
        if seen_fields is not None and seen_type == field.type:
            continue  # the reader found nothing beyond the schema below this field
        child = plan_for(known_child, _struct_of(seen_type))
        if not child.empty:
            children[field.name] = (not pa.types.is_struct(field.type), child)
    check_keys = seen_fields is None or not set(seen_fields) <= names
    return UnknownFieldsPlan(known=names, check_keys=check_keys, children=children)


def _extra(value: dict[str, Any], plan: UnknownFieldsPlan) -> dict[str, Any] | None:
    found: dict[str, Any] = {}
    if plan.check_keys:
        # A set difference in C: most objects have no unknown key and cost no Python loop.
        for key in value.keys() - plan.known:
            if (item := value[key]) is not None:
                found[key] = item
    for name, (is_list, child_plan) in plan.children.items():
        child = value.get(name)
        if is_list:
            if isinstance(child, list):
                parts = [
                    _extra(element, child_plan) if isinstance(element, dict) else None for element in child
                ]
                if any(parts):
                    found[name] = [part or {} for part in parts]
        elif isinstance(child, dict) and (part := _extra(child, child_plan)):
            found[name] = part
    return found or None


def extra_json_column(results: list[Any], plan: UnknownFieldsPlan) -> pa.StringArray:
    """One ``extra_json`` value per result: a JSON object of its unknown fields, or null.

    :param results: the body's ``results``, decoded (``orjson``), in order.
    :param plan: from :func:`plan_for`.
    """
    if plan.empty:
        return pa.nulls(len(results), pa.string())
    texts = []
    for item in results:
        extra = _extra(item, plan) if isinstance(item, dict) else None
        texts.append(orjson.dumps(extra, option=orjson.OPT_SORT_KEYS).decode() if extra else None)
    return pa.array(texts, pa.string())
