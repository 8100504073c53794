"""Unit tests of the emulator's enrichment: determinism, catalogue coverage, P2P, gibberish, locations.

Every result is also parsed with the official SDK's ``EnrichedTransaction`` model, which is what a
client of the real API would do with it.
"""

from __future__ import annotations

import random

import pytest
from ntropy_sdk.transactions import EnrichedTransaction

from ntropy_provider.api.wire import ACCOUNTING_CATEGORIES
from ntropy_provider.catalogue import INTERMEDIARIES, MERCHANTS
from ntropy_provider.emulator.enrichment import MISSING_HOLDER, enrich, entity_id, parse_location
from ntropy_provider.emulator.testing import make_transaction

CREATED = "2024-03-30T00:00:00Z"


def run(tx, holder_type="business", seed=0, item_error_rate=0.0):
    result = enrich(
        tx, holder_type=holder_type, seed=seed, created_at=CREATED, item_error_rate=item_error_rate
    )
    EnrichedTransaction(**result)  # the SDK accepts the shape
    return result


def test_the_catalogue_has_at_least_100_distinct_well_formed_merchants():
    assert len(MERCHANTS) >= 100
    assert len({m.name for m in MERCHANTS}) == len(MERCHANTS)
    for merchant in MERCHANTS:
        assert merchant.website and "." in merchant.website and merchant.mccs and merchant.category
        assert merchant.accounting in ACCOUNTING_CATEGORIES


@pytest.mark.parametrize("merchant", MERCHANTS, ids=lambda m: m.name)
def test_every_merchant_is_recognised_by_its_first_alias(merchant):
    result = run(make_transaction(description=f"POS PURCHASE {merchant.aliases[0]} 04/12"))
    counterparty = result["entities"]["counterparty"]
    assert counterparty["name"] == merchant.name
    assert counterparty["type"] == "organization"
    assert counterparty["id"] == entity_id(merchant.name)
    assert counterparty["logo"] == f"https://logos.ntropy.com/{merchant.website}"
    assert counterparty["mccs"] == list(merchant.mccs)
    assert result["categories"] == {"general": merchant.category, "accounting": merchant.accounting}


@pytest.mark.parametrize(
    ("description", "intermediaries", "merchant"),
    [
        ("SQ *BLUE BOTTLE COFFEE", ["Square, Inc."], "Blue Bottle Coffee"),
        ("PAYPAL *NETFLIX.COM", ["PayPal"], "Netflix"),
        ("TST* SHAKE SHACK 0123", ["Toast"], "Shake Shack"),
        ("STRIPE: GITHUB INC", ["Stripe"], "GitHub"),
        ("APPLE PAY STARBUCKS", ["Apple Pay"], "Starbucks"),
        ("PAYPAL PAYMENT TO AMAZON", ["PayPal"], "Amazon"),
    ],
)
def test_intermediaries_are_recognised_beside_the_merchant(description, intermediaries, merchant):
    entities = run(make_transaction(description=description))["entities"]
    assert [i["name"] for i in entities["intermediaries"]] == intermediaries
    assert entities["counterparty"]["name"] == merchant


@pytest.mark.parametrize(
    ("description", "entry_type", "person", "app"),
    [
        ("Zelle to John Smith", "outgoing", "John Smith", "Zelle"),
        ("ZELLE PAYMENT TO JOHN SMITH CONF 8812", "outgoing", "John Smith", "Zelle"),
        ("Venmo payment from Jane Doe", "incoming", "Jane Doe", "Venmo"),
        ("Cash App payment to Mike Ross", "outgoing", "Mike Ross", "Cash App"),
        ("PAYPAL TRANSFER FROM ALICE COOPER REF 12", "incoming", "Alice Cooper", "PayPal"),
    ],
)
def test_p2p_transfers_have_a_person_counterparty(description, entry_type, person, app):
    result = run(make_transaction(description=description, entry_type=entry_type), holder_type="consumer")
    counterparty = result["entities"]["counterparty"]
    assert counterparty["type"] == "person" and counterparty["name"] == person
    assert counterparty["id"] == entity_id(person) and counterparty["website"] is None
    assert [i["name"] for i in result["entities"]["intermediaries"]] == [app]
    assert result["categories"] == {"general": "peer to peer transfers", "accounting": None}


@pytest.mark.parametrize("description", ["xq9 zzkk 77", "", "#### ----", "AAAAAAAAAA BBBBBB 000"])
def test_gibberish_gives_no_entities_and_the_not_enough_information_category(description):
    result = run(make_transaction(description=description))
    assert result["error"] is None
    assert result["entities"] == {"counterparty": None, "intermediaries": []}
    assert result["categories"] == {"general": "not enough information", "accounting": None}


def test_keywords_categorise_when_no_merchant_is_known():
    payroll = run(make_transaction(description="ACME CORP PAYROLL", entry_type="incoming"))
    assert payroll["categories"] == {"general": "salary", "accounting": "revenue"}
    assert payroll["entities"]["counterparty"] is None


def test_accounting_category_only_for_business_holders_and_categories_only_with_a_holder():
    tx = make_transaction(description="AMZN MKTP US*2K4")
    assert run(tx, "business")["categories"] == {
        "general": "online shopping",
        "accounting": "cost of goods sold",
    }
    assert run(tx, "consumer")["categories"] == {"general": "online shopping", "accounting": None}
    assert run(tx, None)["categories"] == {
        "general": "missing account holder information",
        "accounting": None,
    }
    refund = run(make_transaction(description="AMAZON REFUND", entry_type="incoming"), "business")
    assert refund["categories"] == {"general": "refunds", "accounting": "revenue"}


def test_unknown_holder_is_an_item_error_with_null_enrichment():
    result = run(make_transaction(account_holder_id="ghost"), holder_type=MISSING_HOLDER)
    assert result["error"]["code"] == "account_holder_not_found" and "ghost" in result["error"]["message"]
    assert result["entities"] is None and result["categories"] is None and result["location"] is None


def test_location_parsing():
    us = parse_location(
        {"raw_address": "10 Union Sq, New York, NY 10003", "country": "US"}, "STARBUCKS #0042"
    )
    assert us["raw_address"] == "10 Union Sq, New York, NY 10003"
    s = us["structured"]
    assert (s["street"], s["house_number"], s["city"], s["state"], s["postcode"]) == (
        "10 Union Sq",
        "10",
        "New York",
        "NY",
        "10003",
    )
    assert (s["country_code"], s["country"], s["store_number"]) == ("US", "United States", "0042")
    assert s["latitude"] == pytest.approx(40.71, abs=0.1) and s["google_maps_url"].startswith("https://")
    uk = parse_location({"raw_address": "221B Baker Street, London, NW1 6XE"})["structured"]
    assert (uk["city"], uk["postcode"], uk["country_code"], uk["house_number"]) == (
        "London",
        "NW1 6XE",
        "GB",
        "221B",
    )
    unknown_city = parse_location({"raw_address": "5 Main St, Smallville, KS 66002"})["structured"]
    assert (unknown_city["city"], unknown_city["state"], unknown_city["latitude"]) == (
        "Smallville",
        "KS",
        None,
    )
    only_country = parse_location({"raw_address": None, "country": "DE"})
    assert only_country["raw_address"] is None and only_country["structured"]["country"] == "Germany"
    assert parse_location(None) is None
    assert parse_location({"raw_address": None, "country": None}) is None


def _corpus(count=300):
    rng = random.Random(42)
    words = (
        [m.aliases[0] for m in MERCHANTS]
        + [i.aliases[0] for i in INTERMEDIARIES]
        + ["ZELLE TO ANN LEE", "zz"]
    )
    return [
        make_transaction(
            i,
            description=f"{rng.choice(words)} {rng.randint(0, 9999)}",
            entry_type=rng.choice(["incoming", "outgoing"]),
            location=rng.choice(
                [None, {"raw_address": "1 Market St, San Francisco, CA 94105", "country": "US"}]
            ),
        )
        for i in range(count)
    ]


def test_enrichment_is_deterministic_whatever_the_order():
    corpus = _corpus()
    forward = {tx["id"]: run(tx, seed=5, item_error_rate=0.2) for tx in corpus}
    backward = {tx["id"]: run(tx, seed=5, item_error_rate=0.2) for tx in reversed(corpus)}
    assert forward == backward
    errored = {k for k, v in forward.items() if v["error"]}
    assert 20 < len(errored) < 100  # about a fifth
    assert all(forward[k]["error"]["code"] == "internal_error" for k in errored)


def test_the_seed_moves_only_the_random_choices():
    corpus = _corpus()
    one = {tx["id"]: run(tx, seed=1, item_error_rate=0.2) for tx in corpus}
    two = {tx["id"]: run(tx, seed=2, item_error_rate=0.2) for tx in corpus}
    assert {k for k, v in one.items() if v["error"]} != {k for k, v in two.items() if v["error"]}
    # Without item errors the seed changes nothing: entity ids come from names, not from the seed.
    assert [run(tx, seed=1) for tx in corpus] == [run(tx, seed=2) for tx in corpus]


def test_known_counterparties_and_intermediaries_carry_phone_tax_number_and_naics():
    result = run(make_transaction(description="SQ *STARBUCKS STORE #1234"))
    counterparty = result["entities"]["counterparty"]
    starbucks = next(m for m in MERCHANTS if m.name == "Starbucks")
    assert counterparty["phone_number"] == starbucks.phone_number
    assert counterparty["phone_number"].startswith("+1 800-555-01")
    assert counterparty["tax_number"].startswith("00-")
    assert counterparty["naics2017"] == "722515"
    (square,) = result["entities"]["intermediaries"]
    assert square["naics2017"] == "522320" and square["phone_number"] and square["tax_number"]
    person = run(make_transaction(description="VENMO PAYMENT TO JOHN SMITH"))["entities"]["counterparty"]
    assert (person["phone_number"], person["tax_number"], person["naics2017"]) == (None, None, None)


def test_an_intermediary_without_a_known_counterparty_is_categorised_other():
    result = run(make_transaction(description="SQ *GOLDEN DELI"), "consumer")
    assert result["categories"] == {"general": "other", "accounting": None}


def test_extended_accounting_categories_only_when_asked():
    unknown = make_transaction(description="xq9 zzkk 77")
    invest = make_transaction(description="ROBINHOOD BROKERAGE DEPOSIT")
    plain = {"holder_type": "business", "seed": 0, "created_at": CREATED}
    assert enrich(unknown, **plain)["categories"]["accounting"] is None
    assert enrich(invest, **plain)["categories"]["accounting"] not in ("investing", "not enough information")
    extended = {**plain, "extended_accounting": True}
    assert enrich(unknown, **extended)["categories"]["accounting"] == "not enough information"
    assert enrich(invest, **extended)["categories"]["accounting"] == "investing"
    assert enrich(invest, **{**extended, "holder_type": "consumer"})["categories"]["accounting"] is None
