-- The audit log (SPEC §11). The id grows with insertion and is the listing's cursor; times are
-- microseconds since the Unix epoch (UTC); tenant_id is '' for no tenant; detail is JSON text.
CREATE TABLE authura_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    event TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    user_id TEXT,
    user_id_numeric BOOLEAN NOT NULL,
    actor_id TEXT,
    actor_id_numeric BOOLEAN NOT NULL,
    ip TEXT,
    user_agent TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX authura_audit_tenant ON authura_audit (tenant_id, id);
CREATE INDEX authura_audit_user ON authura_audit (tenant_id, user_id, user_id_numeric, id);
CREATE INDEX authura_audit_at ON authura_audit (at);
