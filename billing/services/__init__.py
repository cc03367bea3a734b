"""Billing's writes, one module per concept: `prices`, `ledger` (every balance move), `ingest`
(usage events in, charged once), `rollups` (hourly folding), `enforcement` (the gateway's
authorize decision and its limits), `alerts` (balance alerts and consumption notifications),
`invoices` (requests and issue), and `retry` (transactions retried on deadlock)."""
