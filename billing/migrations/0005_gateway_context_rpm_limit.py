"""The authorize hot path's function also returns the project's RPM limit (issue 12).

Its result columns change, so the function is dropped and created again (CREATE OR REPLACE cannot
change a RETURNS TABLE). PostgreSQL only, like 0002.
"""

from importlib import import_module

from django.db import migrations

previous = import_module("billing.migrations.0002_gateway_context_function")

CREATE = """
CREATE FUNCTION billing_gateway_context(p_digest text, p_day date, p_month date)
RETURNS TABLE (
    key_id bigint, key_public_id varchar, last_used_at timestamptz, expires_at timestamptz,
    revoked_at timestamptz, project_id bigint, project_public_id varchar, archived_at timestamptz,
    daily_budget numeric, monthly_budget numeric, tpm_limit integer, rpm_limit integer,
    organization_id bigint, organization_public_id varchar, cumulative_topups numeric,
    rate_tier_override varchar, balance numeric, day_spent numeric, month_spent numeric
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- 'day' / 'month': billing.models.SpendPeriod. The money columns are scalar subqueries:
    -- they plan faster than joins.
    RETURN QUERY
    SELECT k.id, k.public_id, k.last_used_at, k.expires_at, k.revoked_at,
           p.id, p.public_id, p.archived_at, p.daily_budget, p.monthly_budget, p.tpm_limit, p.rpm_limit,
           o.id, o.public_id, o.cumulative_topups, o.rate_tier_override,
           (SELECT b.balance FROM billing_billingaccount b WHERE b.organization_id = k.organization_id),
           (SELECT d.spent FROM billing_projectspend d
             WHERE d.project_id = k.project_id AND d.period = 'day' AND d.period_start = p_day),
           (SELECT m.spent FROM billing_projectspend m
             WHERE m.project_id = k.project_id AND m.period = 'month' AND m.period_start = p_month)
    FROM projects_apikey k
    JOIN projects_project p ON p.id = k.project_id
    JOIN orgs_organization o ON o.id = k.organization_id
    WHERE k.digest = p_digest;
END
$$;
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(previous.DROP)
        schema_editor.execute(CREATE)


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(previous.DROP)
        schema_editor.execute(previous.CREATE)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_invoice_pdf_after_commit_ledger_protect"),
        ("projects", "0004_project_rpm_limit"),
    ]

    operations = [migrations.RunPython(create, restore)]
