//! The `UserStore` conformance suite on `PgStore`, one fresh database per case: on the table
//! the migrations create, and on the seed's table with columns Authura does not know.

use std::sync::Arc;

use authura_backend_pg::{PgSettings, PgStore, UsersTable};
use authura_core::{Secret, UserStore};
use authura_testkit::postgres::Database;

authura_testkit::conformance_tests!(
    async {
        let db = authura_testkit::postgres::database().await;
        (store(&db).await, db)
    },
    extra_columns: async {
        let db = authura_testkit::postgres::database().await;
        db.execute(
            r#"CREATE TABLE "public"."users" (
                "id" SERIAL NOT NULL PRIMARY KEY,
                "email" VARCHAR NOT NULL,
                "role" VARCHAR NOT NULL,
                "password" VARCHAR NOT NULL,
                "tenant_id" VARCHAR,
                "verified_at" TIMESTAMP WITH TIME ZONE,
                "nickname" TEXT,
                "profile" JSONB,
                "created_at" TIMESTAMPTZ NOT NULL DEFAULT now()
            );
            CREATE UNIQUE INDEX ON "public"."users" ("email", "tenant_id");"#,
        )
        .await;
        (store(&db).await, db)
    },
);

async fn store(db: &Database) -> Arc<dyn UserStore> {
    let store = PgStore::connect(&PgSettings {
        dsn: Secret::new(db.url.clone()),
        pool_size: 8,
        table: UsersTable::parse("users").unwrap(),
        extra_ca_pem: None,
        query_timeout: PgSettings::DEFAULT_QUERY_TIMEOUT,
    })
    .await
    .unwrap();
    Arc::new(store)
}
