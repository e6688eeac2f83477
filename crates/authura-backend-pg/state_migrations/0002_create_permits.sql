-- Role groups and permits (SPEC §8a, §13). Ids come from a sequence that an imported id moves
-- past, so an id is never given twice and a permit still naming a deleted group never gains a
-- new one. `permissions` is Authaus's permission list (big-endian u16s). Names compare
-- exactly (the default, deterministic collation): case-sensitive.
CREATE SEQUENCE {{role_group_ids}} MINVALUE 0 START WITH 1 MAXVALUE 4294967295;
CREATE TABLE {{role_groups}} (
    id BIGINT NOT NULL PRIMARY KEY CHECK (id BETWEEN 0 AND 4294967295),
    name TEXT NOT NULL,
    permissions BYTEA NOT NULL
);
CREATE UNIQUE INDEX authura_role_groups_name ON {{role_groups}} (name);
-- A permit is the set of its rows; '' for no tenant, as in authura_sessions. No foreign key:
-- a permit imported from Authaus may name a group that no longer exists (skipped when read).
CREATE TABLE {{permits}} (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    group_id BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, user_id_numeric, group_id)
);
CREATE INDEX authura_permits_group ON {{permits}} (group_id);
