"""PostgreSQL only: the authorize hot path's one statement as a PL/pgSQL function.

PL/pgSQL keeps the statement's plan for the life of the (persistent) connection, which saves the
planning that otherwise costs more than executing it (bench/authorize.py). Other databases use
the ORM path in billing.selectors.gateway_context.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION billing_gateway_context(p_digest text, p_day date, p_month date)
RETURNS TABLE (
    key_id bigint, key_public_id varchar, last_used_at timestamptz, expires_at timestamptz,
    revoked_at timestamptz, project_id bigint, project_public_id varchar, archived_at timestamptz,
    daily_budget numeric, monthly_budget numeric, tpm_limit integer, organization_id bigint,
    organization_public_id varchar, cumulative_topups numeric, rate_tier_override varchar,
    balance numeric, day_spent numeric, month_spent numeric
)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- 'day' / 'month': billing.models.SpendPeriod. The money columns are scalar subqueries:
    -- they plan faster than joins.
    RETURN QUERY
    SELECT k.id, k.public_id, k.last_used_at, k.expires_at, k.revoked_at,
           p.id, p.public_id, p.archived_at, p.daily_budget, p.monthly_budget, p.tpm_limit,
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
DROP = "DROP FUNCTION IF EXISTS billing_gateway_context(text, date, date);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_ledger_usage"),
        ("projects", "0001_initial"),
        ("orgs", "0002_limits_and_rate_tier"),
    ]

    operations = [migrations.RunPython(create, drop)]
