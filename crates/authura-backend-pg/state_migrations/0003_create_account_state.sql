-- Account state and password history (SPEC §11, §13), never columns of the users table.
-- tenant_id is '' for no tenant.
CREATE TABLE {{account_state}} (
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    locked_at TIMESTAMP WITH TIME ZONE,
    -- NULL with locked_at set: until an admin unlocks.
    locked_until TIMESTAMP WITH TIME ZONE,
    archived_at TIMESTAMP WITH TIME ZONE,
    failed_logins INTEGER NOT NULL DEFAULT 0,
    password_changed_at TIMESTAMP WITH TIME ZONE,
    last_login_at TIMESTAMP WITH TIME ZONE,
    PRIMARY KEY (tenant_id, user_id, user_id_numeric)
);
CREATE TABLE {{password_history}} (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL
);
CREATE INDEX authura_password_history_user ON {{password_history}} (tenant_id, user_id, user_id_numeric, id);
