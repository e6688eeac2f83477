-- OAuth identity links (SPEC §9, §13): the provider's subject, in a tenant ('' for none, as in
-- authura_sessions), signs into this user. A subject links to one user and a user to one subject
-- per (tenant, provider): both unique, so racing first sign-ins cannot link twice.
CREATE TABLE authura_oauth_links (
    tenant_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_numeric BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, provider, subject)
);
CREATE UNIQUE INDEX authura_oauth_links_user
    ON authura_oauth_links (tenant_id, provider, user_id, user_id_numeric);
