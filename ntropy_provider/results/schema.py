"""Arrow schemas of enriched results: the ``ok/`` and ``errors/`` datasets' columns, and the typed shape
of ``GET /v3/batches/{id}/results`` for Arrow's JSON reader. Only the results code imports this module
(and so pyarrow)."""

from __future__ import annotations

import pyarrow as pa

#: Bumped whenever a column is added, removed or changes type; stored in every Parquet file's metadata.
#: Version 2 added the entities' ``phone_number``, ``tax_number`` and ``naics2017`` (flat for the
#: counterparty, as fields of each intermediary) and ``extra_json``.
RESULTS_SCHEMA_VERSION = "2"
RESULTS_SCHEMA_VERSION_KEY = b"ntropy_provider.results_schema_version"

#: Structured location fields, in the API's order, and their Arrow types.
LOCATION_STRUCTURED_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("street", pa.string()),
    ("city", pa.string()),
    ("state", pa.string()),
    ("postcode", pa.string()),
    ("country_code", pa.string()),
    ("country", pa.string()),
    ("house_number", pa.string()),
    ("latitude", pa.float64()),
    ("longitude", pa.float64()),
    ("google_maps_url", pa.string()),
    ("apple_maps_url", pa.string()),
    ("store_number", pa.string()),
)


def parquet_list(value_type: pa.DataType) -> pa.ListType:
    """A list type whose item field is named ``element``, as Parquet names it.

    Arrow's default name is ``item``; a file written with it reads back as ``element``, so the schema
    read from a results file would differ from the declared one. With ``element`` they are equal.

    :param value_type: the type of the list's values.
    """
    return pa.list_(pa.field("element", value_type))


#: An Entity (an intermediary; the counterparty adds ``type``), in the order of ntropy-sdk's model. Every
#: field is nullable; ``naics2017`` is a string, as the SDK types it (a code such as ``"722515"``).
INTERMEDIARY_TYPE = pa.struct(
    [
        pa.field("id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("website", pa.string()),
        pa.field("logo", pa.string()),
        pa.field("mccs", parquet_list(pa.int32())),
        pa.field("phone_number", pa.string()),
        pa.field("tax_number", pa.string()),
        pa.field("naics2017", pa.string()),
    ]
)

#: The column holding, as a JSON object text, what the results schema has no column for.
EXTRA_JSON_COLUMN = "extra_json"

RESULTS_ARROW_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("transaction_id", pa.string(), nullable=False),
        pa.field("batch_id", pa.string(), nullable=False),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field("counterparty_type", pa.string()),
        pa.field("counterparty_id", pa.string()),
        pa.field("counterparty_name", pa.string()),
        pa.field("counterparty_website", pa.string()),
        pa.field("counterparty_logo", pa.string()),
        pa.field("counterparty_mccs", parquet_list(pa.int32())),
        pa.field("counterparty_phone_number", pa.string()),
        pa.field("counterparty_tax_number", pa.string()),
        pa.field("counterparty_naics2017", pa.string()),
        pa.field("intermediaries", parquet_list(INTERMEDIARY_TYPE)),
        pa.field("category_general", pa.string()),
        pa.field("category_accounting", pa.string()),
        pa.field("location_raw_address", pa.string()),
        *(pa.field(f"location_{name}", type_) for name, type_ in LOCATION_STRUCTURED_FIELDS),
        pa.field("error_code", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field(EXTRA_JSON_COLUMN, pa.string()),
    ],
    metadata={RESULTS_SCHEMA_VERSION_KEY: RESULTS_SCHEMA_VERSION.encode()},
)
"""The columns of the ``ok/`` and ``errors/`` Parquet datasets.

``transaction_id`` and ``batch_id`` are never null; every other column is nullable and keeps its
type when all of its values are null. ``intermediaries`` is a list (empty, never null, for rows
without an error). ``extra_json`` holds the EnrichedTransaction's fields that no other column holds
(fields the API added after this schema), as a JSON object nested like the EnrichedTransaction, at
every depth; it is null when there are none. The schema version sits in the metadata under
``RESULTS_SCHEMA_VERSION_KEY``.
"""

#: A counterparty as the results keep it: an entity plus its ``type`` (``person`` or ``organization``).
COUNTERPARTY_TYPE = pa.struct([pa.field("type", pa.string()), *INTERMEDIARY_TYPE])

#: An EnrichedTransaction as typed for Arrow's JSON reader: the fields that have a column. Any other
#: field (at any depth) goes to ``extra_json``.
ENRICHED_TRANSACTION_ARROW_TYPE = pa.struct(
    [
        pa.field("id", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC")),
        pa.field(
            "entities",
            pa.struct(
                [
                    pa.field("counterparty", COUNTERPARTY_TYPE),
                    pa.field("intermediaries", parquet_list(INTERMEDIARY_TYPE)),
                ]
            ),
        ),
        pa.field(
            "categories", pa.struct([pa.field("general", pa.string()), pa.field("accounting", pa.string())])
        ),
        pa.field(
            "location",
            pa.struct(
                [
                    pa.field("raw_address", pa.string()),
                    pa.field(
                        "structured", pa.struct([pa.field(n, t) for n, t in LOCATION_STRUCTURED_FIELDS])
                    ),
                ]
            ),
        ),
        pa.field("error", pa.struct([pa.field("code", pa.string()), pa.field("message", pa.string())])),
    ]
)

#: The body of ``GET /v3/batches/{id}/results`` (``{"id", "total", "status", "results"}``), for Arrow's
#: JSON reader.
BATCH_RESULTS_ARROW_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("id", pa.string()),
        pa.field("total", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("results", pa.list_(ENRICHED_TRANSACTION_ARROW_TYPE)),
    ]
)
