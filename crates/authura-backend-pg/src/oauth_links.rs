//! OAuth identity links (SPEC §9) on `authura_oauth_links`: the `OAuthLinkStore` of
//! [`PgStateStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::sql_types::{Bool, Text, Timestamptz};
use diesel::{OptionalExtension, QueryableByName};
use diesel_async::RunQueryDsl;

use authura_core::StoreError;
use authura_core::state::{
    OAuthLink, OAuthLinkStore, link_from_columns, stored_link_owner, stored_owner,
};
use authura_core::types::{TenantId, UserId};

use crate::migrate::{OAUTH_LINKS_TABLE, quoted_in};
use crate::state::PgStateStore;
use crate::statement::Sql;

/// The statements, built once from the quoted table name.
pub(crate) struct Queries {
    by_subject: Sql,
    by_user: Sql,
    insert: Sql,
}

impl Queries {
    pub(crate) fn new(schema: Option<&str>) -> Queries {
        let t = quoted_in(schema, OAUTH_LINKS_TABLE);
        let columns = "tenant_id::text AS tenant_id, provider::text AS provider, \
            subject::text AS subject, user_id::text AS user_id, user_id_numeric, created_at";
        Queries {
            by_subject: Sql::new(&format!(
                "SELECT {columns} FROM {t} WHERE tenant_id = $1 AND provider = $2 AND subject = $3"
            )),
            by_user: Sql::new(&format!(
                "SELECT {columns} FROM {t} WHERE tenant_id = $1 AND provider = $2 \
                 AND user_id = $3 AND user_id_numeric = $4"
            )),
            // Both unique keys are the table's: a racing second link of the subject or the
            // user fails with a unique violation, which is `Conflict`.
            insert: Sql::new(&format!(
                "INSERT INTO {t} (tenant_id, provider, subject, user_id, user_id_numeric, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6)"
            )),
        }
    }
}

#[derive(QueryableByName)]
struct LinkRow {
    #[diesel(sql_type = Text)]
    tenant_id: String,
    #[diesel(sql_type = Text)]
    provider: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    user_id: String,
    #[diesel(sql_type = Bool)]
    user_id_numeric: bool,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

fn link(row: LinkRow) -> Result<OAuthLink, StoreError> {
    link_from_columns(
        row.provider,
        row.subject,
        &row.tenant_id,
        row.user_id,
        row.user_id_numeric,
        row.created_at,
    )
}

#[async_trait]
impl OAuthLinkStore for PgStateStore {
    async fn find_oauth_link(
        &self,
        tenant: Option<&TenantId>,
        provider: &str,
        subject: &str,
    ) -> Result<Option<OAuthLink>, StoreError> {
        let tenant = tenant.map_or("", TenantId::as_str);
        let query = self
            .oauth_link_queries
            .by_subject
            .bind::<Text, _>(tenant)
            .bind::<Text, _>(provider)
            .bind::<Text, _>(subject);
        self.run(async |conn| query.get_result::<LinkRow>(conn).await.optional())
            .await?
            .map(link)
            .transpose()
    }

    async fn find_user_oauth_link(
        &self,
        tenant: Option<&TenantId>,
        provider: &str,
        user_id: &UserId,
    ) -> Result<Option<OAuthLink>, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let query = self
            .oauth_link_queries
            .by_user
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(provider)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric);
        self.run(async |conn| query.get_result::<LinkRow>(conn).await.optional())
            .await?
            .map(link)
            .transpose()
    }

    async fn create_oauth_link(&self, link: OAuthLink) -> Result<(), StoreError> {
        let (tenant, user, numeric) = stored_link_owner(&link);
        let query = self
            .oauth_link_queries
            .insert
            .bind::<Text, _>(&tenant)
            .bind::<Text, _>(&link.provider)
            .bind::<Text, _>(&link.subject)
            .bind::<Text, _>(&user)
            .bind::<Bool, _>(numeric)
            .bind::<Timestamptz, _>(link.created_at);
        self.run(async |conn| query.execute(conn).await)
            .await
            .map(drop)
    }
}
