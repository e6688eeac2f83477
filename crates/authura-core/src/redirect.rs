//! Redirect validation (SPEC §2): a client's `redirect_url` must start with an allowed prefix,
//! compared as parsed URLs, so mail links never point at a stranger's site.

use url::Url;

use crate::error::CoreError;
use crate::mail::Action;

/// The allowed redirect prefixes.
#[derive(Clone, Debug)]
pub struct RedirectPolicy {
    allowed: Vec<Url>,
}

impl RedirectPolicy {
    /// A policy allowing URLs under each of `prefixes` (http or https).
    pub fn new(prefixes: Vec<Url>) -> Self {
        RedirectPolicy { allowed: prefixes }
    }

    /// The allowed prefixes.
    pub fn prefixes(&self) -> &[Url] {
        &self.allowed
    }

    /// Parses `candidate` and checks it against the prefixes.
    ///
    /// # Errors
    /// `CoreError::InvalidRedirectUrl` when it is unparsable, not http(s), carries credentials, or
    /// is under no prefix.
    pub fn check(&self, candidate: &str) -> Result<Url, CoreError> {
        let url = Url::parse(candidate.trim()).map_err(|_| CoreError::InvalidRedirectUrl)?;
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
            || url.host_str().is_none()
        {
            return Err(CoreError::InvalidRedirectUrl);
        }
        if self.allowed.iter().any(|prefix| is_under(&url, prefix)) {
            Ok(url)
        } else {
            Err(CoreError::InvalidRedirectUrl)
        }
    }
}

/// Scheme, host and port equal, and the path a prefix of the candidate's on a segment boundary.
fn is_under(url: &Url, prefix: &Url) -> bool {
    if url.scheme() != prefix.scheme()
        || url.host_str() != prefix.host_str()
        || url.port_or_known_default() != prefix.port_or_known_default()
    {
        return false;
    }
    let (path, base) = (url.path(), prefix.path());
    path == base
        || base.ends_with('/') && path.starts_with(base)
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The link a mail carries: `<redirect>?action=<action>&token=<token>` (`&` when it has a query).
pub fn mail_link(redirect: &Url, action: Action, token: &str) -> String {
    let mut url = redirect.clone();
    url.query_pairs_mut()
        .append_pair("action", action.as_str())
        .append_pair("token", token);
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(prefixes: &[&str]) -> RedirectPolicy {
        RedirectPolicy::new(prefixes.iter().filter_map(|p| Url::parse(p).ok()).collect())
    }

    fn check(p: &RedirectPolicy, candidate: &str, allowed: bool) {
        assert_eq!(
            p.check(candidate).is_ok(),
            allowed,
            "candidate {candidate:?}"
        );
    }

    #[test]
    fn prefixes_match_on_parsed_urls() {
        let p = policy(&["http://localhost:9000/form", "https://app.example.com"]);
        check(&p, "http://localhost:9000/form", true);
        check(&p, "http://localhost:9000/form?x=1", true);
        check(&p, "http://localhost:9000/form/sub", true);
        check(&p, "http://localhost:9000/formx", false);
        check(&p, "http://localhost:9001/form", false);
        check(&p, "https://localhost:9000/form", false);
        check(&p, "https://app.example.com/anything/here", true);
        check(&p, "https://app.example.com:443/x", true);
        check(&p, "https://app.example.com.evil.com/x", false);
        check(&p, "https://evil.com/?https://app.example.com", false);
        check(&p, "https://user@app.example.com/x", false);
        check(&p, "javascript:alert(1)", false);
        check(&p, "//app.example.com/x", false);
        check(&p, "not a url", false);
    }

    #[test]
    fn links_append_to_existing_queries() {
        let base =
            Url::parse("https://app.example.com/verify?lang=en").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            mail_link(&base, Action::VerifyEmail, "a.b-c"),
            "https://app.example.com/verify?lang=en&action=verify-email&token=a.b-c"
        );
        let bare = Url::parse("http://localhost:9000/form").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            mail_link(&bare, Action::Invite, "t"),
            "http://localhost:9000/form?action=invite&token=t"
        );
    }
}
