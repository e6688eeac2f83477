-- The admin listing pages through a tenant's users in id order (SPEC §11): `WHERE
-- coalesce(tenant_id, '') = $1 AND id > $2 ORDER BY id LIMIT $3`. This index serves exactly that
-- (keyset paging: one index descent per page at any depth, never OFFSET), and the deletes and
-- lookups by id within a tenant.
CREATE INDEX IF NOT EXISTS "{{table_name}}_tenant_id_key"
    ON {{table}} (coalesce("tenant_id", ''), "id");
