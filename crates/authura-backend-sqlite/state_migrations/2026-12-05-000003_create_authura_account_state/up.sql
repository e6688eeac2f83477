-- Account state and password history (SPEC §11, §13), never columns of the users table. Times
-- are microseconds since the Unix epoch (UTC); tenant_id is '' for no tenant.
CREATE TABLE authura_account_state (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    locked_at BIGINT,
    -- NULL with locked_at set: until an admin unlocks.
    locked_until BIGINT,
    archived_at BIGINT,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    password_changed_at BIGINT,
    last_login_at BIGINT,
    PRIMARY KEY (tenant_id, user_id, user_id_numeric)
);
CREATE TABLE authura_password_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX authura_password_history_user ON authura_password_history (tenant_id, user_id, user_id_numeric, id);
