-- The seed's users table in SQLite's dialect. IF NOT EXISTS: an operator may already have the
-- table (possibly with extra nullable columns, which Authura leaves alone).
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    tenant_id TEXT,
    -- RFC 3339 UTC text, e.g. 2026-11-01T12:00:00.000000+00:00.
    verified_at TEXT
);

-- (email, tenant) is unique, compared case-insensitively, and also for users without a tenant:
-- a plain UNIQUE (email, tenant_id) would let any number of NULL-tenant rows share an email.
CREATE UNIQUE INDEX IF NOT EXISTS users_email_tenant_key ON users (lower(email), coalesce(tenant_id, ''));
