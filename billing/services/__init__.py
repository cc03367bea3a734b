"""Billing's writes, one module per concept: `prices`, `ledger` (every balance move), `ingest`
(usage events in, charged once), `rollups` (hourly folding), `enforcement` (the gateway's
authorize decision and its limits), `alerts` (balance alerts and consumption notifications),
`invoices` (requests and issue), card payments on Stripe (`payments`: top-ups and their webhooks,
`auto_recharge`, `refunds`, `receipts`), and `retry` (transactions retried on deadlock)."""
