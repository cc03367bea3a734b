"""Billing's reads, one module per concern: `gateway` (enforcement's one-round-trip context),
`pages` (summary, ledger, prices, invoices), `usage` (consumption charts, from rollups), `alerts`
(balance alert settings and recipients), `reconcile` (ledger vs event costs)."""
