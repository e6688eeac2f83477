-- The seed's users table, exactly as the Go Authura documents it. IF NOT EXISTS: an operator may
-- already have it (possibly with extra nullable columns, which Authura leaves alone).
-- {{table}} is the quoted POSTGRES_USERS_TABLE (default "users").
CREATE TABLE IF NOT EXISTS {{table}} (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "email" VARCHAR NOT NULL,
    "role" VARCHAR NOT NULL,
    "password" VARCHAR NOT NULL,
    "tenant_id" VARCHAR,
    "verified_at" TIMESTAMP WITH TIME ZONE
);
