DROP INDEX IF EXISTS users_tenant_id_key;
