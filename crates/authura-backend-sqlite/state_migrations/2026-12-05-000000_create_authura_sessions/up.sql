-- Authura's own sessions (SPEC §8, §13). Only the SHA-256 of a key is stored. Times are
-- microseconds since the Unix epoch (UTC) as integers, so they compare as numbers.
CREATE TABLE authura_sessions (
    id BLOB NOT NULL PRIMARY KEY,
    key_hash BLOB NOT NULL,
    -- '' for no tenant.
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    method TEXT NOT NULL,
    generation BIGINT NOT NULL,
    generation_changed_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX authura_sessions_key_hash ON authura_sessions (key_hash);
CREATE INDEX authura_sessions_user ON authura_sessions (tenant_id, user_id, user_id_numeric, created_at);
CREATE INDEX authura_sessions_expires_at ON authura_sessions (expires_at);
