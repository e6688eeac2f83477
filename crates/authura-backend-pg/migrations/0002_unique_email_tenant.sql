-- (email, tenant) is unique, compared case-insensitively, and also for users without a tenant.
-- The seed's UNIQUE ("email", "tenant_id") lets any number of NULL-tenant rows share an email,
-- because NULLs are distinct in a unique index. An expression index closes that gap on every
-- PostgreSQL version (NULLS NOT DISTINCT needs 15 and would still be case-sensitive); tenant ids
-- are never empty, so '' cannot collide with a real tenant. The seed's own index is kept.
-- Fails, changing nothing, when the table already holds duplicates: the migration runner then
-- reports how many pairs to resolve.
CREATE UNIQUE INDEX IF NOT EXISTS "{{table_name}}_email_tenant_key"
    ON {{table}} (lower("email"), coalesce("tenant_id", ''));
