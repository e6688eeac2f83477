-- The admin listing pages through a tenant's users in id order (SPEC §11): `WHERE tenant_id IS ?
-- AND id > ? ORDER BY id LIMIT ?`. Every SQLite index ends with the rowid (`id`), so this index
-- is (tenant_id, id): one seek per page at any depth, never a scan, also with a million users.
CREATE INDEX IF NOT EXISTS users_tenant_id_key ON users (tenant_id);
