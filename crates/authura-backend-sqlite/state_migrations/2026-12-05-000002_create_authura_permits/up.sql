-- Role groups and permits (SPEC §8a, §13). AUTOINCREMENT: an assigned id is never given again,
-- so a permit that still names a deleted group never gains a new one. `permissions` is
-- Authaus's permission list (big-endian u16s). Names compare as bytes: case-sensitive.
CREATE TABLE authura_role_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id BETWEEN 0 AND 4294967295),
    name TEXT NOT NULL,
    permissions BLOB NOT NULL
);
CREATE UNIQUE INDEX authura_role_groups_name ON authura_role_groups (name);
-- A permit is the set of its rows; '' for no tenant, as in authura_sessions. No foreign key:
-- a permit imported from Authaus may name a group that no longer exists (skipped when read).
CREATE TABLE authura_permits (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    group_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, user_id_numeric, group_id)
);
CREATE INDEX authura_permits_group ON authura_permits (group_id);
