-- Reverts the migration. Dropping the table also drops rows an operator had before Authura
-- created it; take a backup first.
DROP INDEX IF EXISTS users_email_tenant_key;
DROP TABLE IF EXISTS users;
