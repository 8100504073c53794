"""Deterministic, plausible enrichment of one transaction: pure functions, no clock, no I/O.

The same transaction, account-holder type and seed always give the same EnrichedTransaction (except
``created_at``, which the caller passes in), whatever the order or the time of the requests: entity ids
are uuid5 of the entity's name and every random choice hashes the seed with the transaction.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from ntropy_provider.api.wire import (
    GENERAL_CATEGORY_MISSING_ACCOUNT_HOLDER,
    GENERAL_CATEGORY_NOT_ENOUGH_INFORMATION,
    GENERAL_CATEGORY_OTHER,
    ITEM_ERROR_ACCOUNT_HOLDER_NOT_FOUND,
    ITEM_ERROR_INTERNAL,
)
from ntropy_provider.catalogue import (
    CITIES,
    COUNTRY_NAMES,
    INTERMEDIARIES,
    KEYWORD_CATEGORIES,
    MERCHANTS,
    US_STATES,
    Intermediary,
    Merchant,
)

#: Namespace of the emulator's entity ids (uuid5 of the entity's name within it).
ENTITY_NAMESPACE = uuid.UUID("6f1c1c6e-4a9b-5d6e-9a51-7e0f3c2b8a10")
LOGO_URL = "https://logos.ntropy.com/{website}"
P2P_CATEGORY = "peer to peer transfers"
MISSING_HOLDER = "missing"
"""Marker in a holder-type map for an ``account_holder_id`` that was never created."""

_NON_ALNUM = re.compile(r"[^A-Z0-9]+")
_STORE_NUMBER = re.compile(r"#\s*(\d{2,6})\b")
_US_STATE_ZIP = re.compile(r"\b([A-Z]{2})\s+(\d{5})(?:-\d{4})?\b")
_ZIP = re.compile(r"\b(\d{5})(?:-\d{4})?\b")
_UK_POSTCODE = re.compile(r"\b([A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2})\b")
_HOUSE_NUMBER = re.compile(r"^(\d+[A-Z]?)\s+(.*)$", re.IGNORECASE)
#: Words that end a person's name in a P2P description (``ZELLE TO JOHN SMITH CONF 123``).
#: Words that make an otherwise unrecognised transaction an investment (``investing`` in accounting).
_INVESTING_WORDS = re.compile(r"\b(?:BROKERAGE|ROBINHOOD|VANGUARD|FIDELITY|SCHWAB|COINBASE|INVESTMENT)\b")
_NAME_STOP_WORDS = frozenset(
    {"ON", "REF", "CONF", "ID", "FOR", "PAYMENT", "TRANSFER", "VIA", "WEB", "MOBILE"}
)


def _alternation(aliases: list[str]) -> re.Pattern[str]:
    # Longest alias first, so that ``AMAZON WEB SERVICES`` wins over ``AMAZON`` at the same position.
    ordered = sorted(set(aliases), key=lambda alias: (-len(alias), alias))
    return re.compile(r"\b(?:" + "|".join(re.escape(alias) for alias in ordered) + r")\b")


_MERCHANT_BY_ALIAS: dict[str, Merchant] = {alias: m for m in MERCHANTS for alias in m.aliases}
_MERCHANT_PATTERN = _alternation(list(_MERCHANT_BY_ALIAS))
_INTERMEDIARY_BY_ALIAS: dict[str, Intermediary] = {alias: i for i in INTERMEDIARIES for alias in i.aliases}
_INTERMEDIARY_PATTERN = _alternation(list(_INTERMEDIARY_BY_ALIAS))
_P2P_PATTERN = re.compile(r"\b(TO|FROM)\s+((?:[A-Z]{2,20}\s?){1,3})")
_KEYWORD_PATTERNS = [
    (_alternation(list(words)), general, out, inc) for words, general, out, inc in KEYWORD_CATEGORIES
]


@functools.lru_cache(maxsize=16_384)
def entity_id(name: str) -> str:
    """The stable id of an entity: uuid5 of its name.

    :param name: the entity's display name.
    """
    return str(uuid.uuid5(ENTITY_NAMESPACE, name))


def unit_interval(seed: int, *parts: str) -> float:
    """A number in [0, 1) that depends only on the seed and the parts (a stable, seeded coin).

    :param seed: the emulator's seed.
    :param parts: what the choice is about (e.g. ``"item-error"`` and a transaction id).
    """
    digest = hashlib.blake2b("\x1f".join((str(seed), *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _entity(name: str, website: str | None, mccs: tuple[int, ...] = (), known: Any = None) -> dict[str, Any]:
    """An Entity object; ``known`` (a catalogue Merchant or Intermediary) fills the registry fields."""
    return {
        "id": entity_id(name),
        "name": name,
        "website": website,
        "logo": LOGO_URL.format(website=website) if website else None,
        "mccs": list(mccs),
        "phone_number": known.phone_number if known is not None else None,
        "tax_number": known.tax_number if known is not None else None,
        "naics2017": known.naics2017 if known is not None else None,
    }


@dataclass(frozen=True, slots=True)
class Recognition:
    """What the description names, before the account holder and direction are taken into account.

    :param merchant: the organization recognised, if any.
    :param intermediaries: payment processors recognised, in order of appearance.
    :param person: a person's name for a P2P transfer, if any.
    :param keyword: ``(general, accounting for outgoing, accounting for incoming)`` from a keyword.
    """

    merchant: Merchant | None
    intermediaries: tuple[Intermediary, ...]
    person: str | None
    keyword: tuple[str, str, str] | None


def normalize(description: str) -> str:
    """Upper-case the description and turn every run of punctuation into one space.

    :param description: the raw description.
    """
    return _NON_ALNUM.sub(" ", description.upper()).strip()


@functools.lru_cache(maxsize=32_768)
def recognise(description: str) -> Recognition:
    """Find the merchant, intermediaries, P2P person and keyword category named in a description.

    Cached: bank exports repeat the same descriptions many times.

    :param description: the raw description.
    """
    text = normalize(description)
    intermediaries: list[Intermediary] = []
    for match in _INTERMEDIARY_PATTERN.finditer(text):
        found = _INTERMEDIARY_BY_ALIAS[match.group(0)]
        if found not in intermediaries:
            intermediaries.append(found)
    # The merchant is looked for with the intermediaries' words blanked out (``APPLE PAY`` is not Apple).
    rest = _INTERMEDIARY_PATTERN.sub(" ", text)
    person = None
    if any(i.p2p for i in intermediaries) and (p2p := _P2P_PATTERN.search(rest)):
        words = []
        for word in p2p.group(2).split():
            if word in _NAME_STOP_WORDS:
                break
            words.append(word)
        # "PAYPAL PAYMENT TO AMAZON" pays a merchant, not a person.
        if words and not _MERCHANT_PATTERN.search(" ".join(words)):
            person = " ".join(word.capitalize() for word in words)
    merchant = None
    if person is None and (found_merchant := _MERCHANT_PATTERN.search(rest)):
        merchant = _MERCHANT_BY_ALIAS[found_merchant.group(0)]
    keyword = None
    if merchant is None and person is None:
        for pattern, general, outgoing, incoming in _KEYWORD_PATTERNS:
            if pattern.search(rest):
                keyword = (general, outgoing, incoming)
                break
    return Recognition(merchant, tuple(intermediaries), person, keyword)


def _categories(
    recognition: Recognition,
    description: str,
    entry_type: str,
    holder_type: str | None,
    extended_accounting: bool,
) -> dict[str, Any]:
    """The Categories object, with the documented special general categories (docs/ntropy-api.md).

    :param recognition: what the description names.
    :param description: the raw description.
    :param entry_type: ``incoming`` or ``outgoing``.
    :param holder_type: ``consumer``, ``business``, or ``None`` when no account holder is given.
    :param extended_accounting: also emit ``investing`` and ``not enough information`` as accounting values
        (documented, but ntropy-sdk 5.7.0 rejects them).
    """
    if holder_type is None:
        return {"general": GENERAL_CATEGORY_MISSING_ACCOUNT_HOLDER, "accounting": None}
    incoming = entry_type == "incoming"
    general: str
    accounting: str | None
    if recognition.merchant is not None:
        general = "refunds" if incoming else recognition.merchant.category
        accounting = "revenue" if incoming else recognition.merchant.accounting
    elif recognition.person is not None or any(i.p2p for i in recognition.intermediaries):
        general = P2P_CATEGORY
        accounting = "revenue" if incoming else "operational expenses"
    elif recognition.keyword is not None:
        general = recognition.keyword[0]
        accounting = recognition.keyword[2] if incoming else recognition.keyword[1]
    elif recognition.intermediaries:
        # A payment processor is known but not whom it paid: no category fits, so "other".
        general = GENERAL_CATEGORY_OTHER
        accounting = "revenue" if incoming else "operational expenses"
    else:
        # Nothing in the description is recognised.
        general = GENERAL_CATEGORY_NOT_ENOUGH_INFORMATION
        accounting = GENERAL_CATEGORY_NOT_ENOUGH_INFORMATION if extended_accounting else None
    if extended_accounting and _INVESTING_WORDS.search(normalize(description)):
        accounting = "investing"
    return {"general": general, "accounting": accounting if holder_type == "business" else None}


@functools.lru_cache(maxsize=32_768)
def _entities(recognition: Recognition) -> dict[str, Any]:
    # Shared between results (descriptions repeat): the results are only serialized, never changed.
    counterparty = None
    if recognition.merchant is not None:
        m = recognition.merchant
        counterparty = {"type": "organization", **_entity(m.name, m.website, m.mccs, known=m)}
    elif recognition.person is not None:
        counterparty = {"type": "person", **_entity(recognition.person, None)}
    return {
        "counterparty": counterparty,
        "intermediaries": [_entity(i.name, i.website, known=i) for i in recognition.intermediaries],
    }


def parse_location(location: Any, description: str = "") -> dict[str, Any] | None:
    """A Location object from a TransactionInput's ``location``: the raw address parsed into parts.

    The result may be shared between calls (addresses repeat): treat it as read-only.

    :param location: ``None`` or ``{"raw_address": str|None, "country": str|None}``.
    :param description: the transaction's description (a ``#1234`` in it is the store number).
    """
    if not isinstance(location, Mapping):
        return None
    raw = location.get("raw_address") or None
    country_code = location.get("country") or None
    if raw is None and country_code is None:
        return None
    parsed = _parse_address(raw, country_code)
    if store := _STORE_NUMBER.search(description):
        return {"raw_address": raw, "structured": {**parsed["structured"], "store_number": store.group(1)}}
    return parsed


@functools.lru_cache(maxsize=8_192)
def _parse_address(raw: str | None, country_code: str | None) -> dict[str, Any]:
    structured: dict[str, Any] = dict.fromkeys(
        (
            "street",
            "city",
            "state",
            "postcode",
            "country_code",
            "country",
            "house_number",
            "latitude",
            "longitude",
            "google_maps_url",
            "apple_maps_url",
            "store_number",
        )
    )
    if raw is not None:
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        upper_parts = [part.upper() for part in parts]
        city_index = next((i for i, part in enumerate(upper_parts) if part in CITIES), None)
        if city_index is not None:
            state, city_country, latitude, longitude = CITIES[upper_parts[city_index]]
            structured.update(
                city=parts[city_index].title(), state=state, latitude=latitude, longitude=longitude
            )
            country_code = country_code or city_country
        elif len(parts) >= 3:
            structured["city"] = parts[1].title()
        if len(parts) >= 2 and city_index != 0:
            street = parts[0]
            structured["street"] = street
            if house := _HOUSE_NUMBER.match(street):
                structured["house_number"] = house.group(1)
        tail = " ".join(upper_parts[1:]) if len(parts) > 1 else upper_parts[0] if parts else ""
        if state_zip := _US_STATE_ZIP.search(tail):
            if state_zip.group(1) in US_STATES:
                structured["state"] = state_zip.group(1)
                structured["postcode"] = state_zip.group(2)
                country_code = country_code or "US"
        elif zip_code := _ZIP.search(tail):
            structured["postcode"] = zip_code.group(1)
        elif uk := _UK_POSTCODE.search(tail):
            structured["postcode"] = uk.group(1)
            country_code = country_code or "GB"
        structured["google_maps_url"] = "https://www.google.com/maps/search/?api=1&query=" + quote_plus(raw)
        structured["apple_maps_url"] = "https://maps.apple.com/?q=" + quote_plus(raw)
    if country_code:
        structured["country_code"] = country_code[:2]
        structured["country"] = COUNTRY_NAMES.get(country_code[:2])
    return {"raw_address": raw, "structured": structured}


def enrich(
    transaction: Mapping[str, Any],
    *,
    holder_type: str | None,
    seed: int,
    created_at: str,
    item_error_rate: float = 0.0,
    extended_accounting: bool = False,
) -> dict[str, Any]:
    """Enrich one (already validated) TransactionInput into an EnrichedTransaction.

    Nested objects may be shared with other results (they are cached): treat the result as read-only.

    :param transaction: the validated input.
    :param holder_type: ``consumer`` or ``business`` for an existing holder, ``None`` when the input
        names no holder, :data:`MISSING_HOLDER` when it names one that does not exist.
    :param seed: the emulator's seed.
    :param created_at: the ``created_at`` to report (the batch's creation time).
    :param item_error_rate: fraction of items that get ``internal_error``.
    :param extended_accounting: also emit the accounting values ntropy-sdk 5.7.0 rejects.
    """
    tx_id = transaction["id"]
    description = transaction.get("description") or ""
    result: dict[str, Any] = {
        "id": tx_id,
        "created_at": created_at,
        "entities": None,
        "categories": None,
        "location": None,
        "error": None,
    }
    if holder_type == MISSING_HOLDER:
        holder = transaction.get("account_holder_id")
        result["error"] = {
            "code": ITEM_ERROR_ACCOUNT_HOLDER_NOT_FOUND,
            "message": f"Account holder {holder!r} not found: create it before submitting its transactions",
        }
        return result
    if item_error_rate > 0 and unit_interval(seed, "item-error", tx_id, description) < item_error_rate:
        result["error"] = {"code": ITEM_ERROR_INTERNAL, "message": "Internal error while enriching this item"}
        return result
    recognition = recognise(description)
    result["entities"] = _entities(recognition)
    result["categories"] = _categories(
        recognition, description, transaction.get("entry_type", "outgoing"), holder_type, extended_accounting
    )
    result["location"] = parse_location(transaction.get("location"), description)
    return result


def holder_type_for(transaction: Mapping[str, Any], holders: Mapping[str, str]) -> str | None:
    """The ``holder_type`` argument of :func:`enrich` for a transaction, given the existing holders.

    :param transaction: the input.
    :param holders: existing holder id -> type.
    """
    holder_id = transaction.get("account_holder_id")
    if holder_id is None:
        return None
    return holders.get(holder_id, MISSING_HOLDER)
