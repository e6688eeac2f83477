//! OAuth identity links (SPEC §9) on `authura_oauth_links`: the `OAuthLinkStore` of
//! [`SqliteStateStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use authura_core::StoreError;
use authura_core::state::{
    OAuthLink, OAuthLinkStore, link_from_columns, stored_link_owner, stored_owner,
};
use authura_core::types::{TenantId, UserId};

use crate::state::SqliteStateStore;

diesel::table! {
    /// (tenant, provider, subject) → user; `created_at` in microseconds since the epoch.
    authura_oauth_links (tenant_id, provider, subject) {
        tenant_id -> Text,
        provider -> Text,
        subject -> Text,
        user_id -> Text,
        user_id_numeric -> Bool,
        created_at -> BigInt,
    }
}

use authura_oauth_links::dsl as l;

type Row = (String, String, String, String, bool, i64);

/// The columns a [`Row`] is read from, in its order.
const COLUMNS: (
    l::tenant_id,
    l::provider,
    l::subject,
    l::user_id,
    l::user_id_numeric,
    l::created_at,
) = (
    l::tenant_id,
    l::provider,
    l::subject,
    l::user_id,
    l::user_id_numeric,
    l::created_at,
);

fn link((tenant, provider, subject, user, numeric, created): Row) -> Result<OAuthLink, StoreError> {
    let created_at = DateTime::<Utc>::from_timestamp_micros(created)
        .ok_or_else(|| StoreError::Backend("an OAuth link has an invalid created_at".into()))?;
    link_from_columns(provider, subject, &tenant, user, numeric, created_at)
}

#[async_trait]
impl OAuthLinkStore for SqliteStateStore {
    async fn find_oauth_link(
        &self,
        tenant: Option<&TenantId>,
        provider: &str,
        subject: &str,
    ) -> Result<Option<OAuthLink>, StoreError> {
        let tenant = tenant.map_or_else(String::new, |t| t.as_str().to_owned());
        let (provider, subject) = (provider.to_owned(), subject.to_owned());
        let row: Option<Row> = self
            .run(move |conn| {
                l::authura_oauth_links
                    .filter(l::tenant_id.eq(tenant))
                    .filter(l::provider.eq(provider))
                    .filter(l::subject.eq(subject))
                    .select(COLUMNS)
                    .first(conn)
                    .optional()
            })
            .await?;
        row.map(link).transpose()
    }

    async fn find_user_oauth_link(
        &self,
        tenant: Option<&TenantId>,
        provider: &str,
        user_id: &UserId,
    ) -> Result<Option<OAuthLink>, StoreError> {
        let (tenant, user, numeric) = stored_owner(tenant, user_id);
        let provider = provider.to_owned();
        let row: Option<Row> = self
            .run(move |conn| {
                l::authura_oauth_links
                    .filter(l::tenant_id.eq(tenant))
                    .filter(l::provider.eq(provider))
                    .filter(l::user_id.eq(user))
                    .filter(l::user_id_numeric.eq(numeric))
                    .select(COLUMNS)
                    .first(conn)
                    .optional()
            })
            .await?;
        row.map(link).transpose()
    }

    async fn create_oauth_link(&self, link: OAuthLink) -> Result<(), StoreError> {
        let (tenant, user, numeric) = stored_link_owner(&link);
        let created = link.created_at.timestamp_micros();
        // Both unique keys are the store's: a racing second link of the subject or the user
        // fails with a unique violation, which is `Conflict`.
        self.run(move |conn| {
            diesel::insert_into(l::authura_oauth_links)
                .values((
                    l::tenant_id.eq(tenant),
                    l::provider.eq(link.provider),
                    l::subject.eq(link.subject),
                    l::user_id.eq(user),
                    l::user_id_numeric.eq(numeric),
                    l::created_at.eq(created),
                ))
                .execute(conn)
        })
        .await
        .map(drop)
    }
}
