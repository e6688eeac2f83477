-- Authura's own sessions (SPEC §8, §13), beside the users table (or in STATE_DSN's database).
-- Only the SHA-256 of a key is stored. tenant_id is '' for no tenant, so no NULL needs special
-- comparison and the indexes serve every lookup.
CREATE TABLE {{sessions}} (
    id UUID NOT NULL PRIMARY KEY,
    key_hash BYTEA NOT NULL,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    last_seen_at TIMESTAMP WITH TIME ZONE NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE NOT NULL,
    ip TEXT,
    user_agent TEXT,
    method TEXT NOT NULL,
    generation BIGINT NOT NULL,
    generation_changed_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE UNIQUE INDEX authura_sessions_key_hash ON {{sessions}} (key_hash);
CREATE INDEX authura_sessions_user ON {{sessions}} (tenant_id, user_id, user_id_numeric, created_at);
CREATE INDEX authura_sessions_expires_at ON {{sessions}} (expires_at);
