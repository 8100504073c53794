"""The Ntropy API v3's shapes, in one home used by the hooks, the operators, the webhook receiver and
the emulator: ``wire`` (constants, limits, enumerations), ``models`` (resources and their datetime
codec), ``transaction_input`` (the input rules) and ``currencies`` (the ISO 4217 table)."""
