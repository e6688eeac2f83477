-- The audit log (SPEC §11). The id grows with insertion and is the listing's cursor; tenant_id
-- is '' for no tenant.
CREATE TABLE {{audit}} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at TIMESTAMP WITH TIME ZONE NOT NULL,
    event TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    user_id TEXT,
    user_id_numeric BOOLEAN NOT NULL,
    actor_id TEXT,
    actor_id_numeric BOOLEAN NOT NULL,
    ip TEXT,
    user_agent TEXT,
    detail JSONB NOT NULL
);
CREATE INDEX authura_audit_tenant ON {{audit}} (tenant_id, id);
CREATE INDEX authura_audit_user ON {{audit}} (tenant_id, user_id, user_id_numeric, id);
CREATE INDEX authura_audit_at ON {{audit}} (at);
