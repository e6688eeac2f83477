//! The OpenAPI document against the app: it describes exactly the (path, method) pairs the
//! router serves, read from actix's own resource table and asked of the app itself; and
//! `/openapi.json` is served as the document.
//!
//! Why this way: actix has no public listing of an app's routes, but every answered request
//! carries the router's `ResourceMap`, whose `Debug` output holds each resource's pattern (scopes
//! nested). The patterns come from there; the methods of each come from asking the app, since a
//! resource routes by guards: a method it does not serve falls to its default service, which
//! answers 405 `method_not_allowed`.

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::http::Method;
use actix_web::test::{TestRequest, call_service, init_service};
use actix_web::web;
use authura_server::openapi::{ApiDoc, MEDIA_TYPE};
use authura_server::routes::app;
use utoipa::OpenApi as _;

use crate::harness::TestServer;

/// The methods asked of every resource (CONNECT aside, which actix's test client cannot send).
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
];

#[tokio::test]
async fn the_document_describes_exactly_the_routes_the_app_serves() {
    // Metrics and sessions on, so that `/metrics` and the session routes answer as themselves
    // rather than 404.
    let srv = TestServer::with(&[("METRICS_ENABLED", "true"), ("SESSIONS_ENABLED", "true")]).await;
    let service = init_service(app(web::Data::from(Arc::clone(&srv.state)))).await;
    let probe = call_service(&service, TestRequest::get().uri("/healthz").to_request()).await;
    let patterns = routed_patterns(&format!("{:?}", probe.request().resource_map()));
    assert!(patterns.contains("/healthz"), "{patterns:?}");

    let mut served = BTreeSet::new();
    for pattern in &patterns {
        for method in METHODS {
            let req = TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&sample_path(pattern))
                .to_request();
            let res = call_service(&service, req).await;
            assert_eq!(
                res.request().match_pattern().as_deref(),
                Some(pattern.as_str()),
                "{method} {pattern} reached another resource"
            );
            let refused = res.status() == 405;
            if refused {
                let allow = res.headers().get("allow").map(|v| v.to_str().unwrap());
                assert!(allow.is_some(), "{method} {pattern}: 405 without Allow");
            } else {
                served.insert((openapi_path(pattern), method.to_owned()));
            }
        }
    }
    // HEAD is GET without the body, for every GET route; the document lists the GETs.
    let with = |m: &str| -> BTreeSet<String> {
        served
            .iter()
            .filter(|(_, method)| method == m)
            .map(|(path, _)| path.clone())
            .collect()
    };
    assert_eq!(
        with("HEAD"),
        with("GET"),
        "HEAD and GET are served together"
    );
    served.retain(|(_, method)| method != "HEAD");

    let documented = documented_operations();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in the OpenAPI document (add #[utoipa::path] and list it in ApiDoc): \
         {undocumented:?}; documented but not served: {unserved:?}"
    );
    // Every route is counted under its own name in /metrics, not as `other`.
    let served_paths: BTreeSet<&str> = served.iter().map(|(path, _)| path.as_str()).collect();
    let counted: BTreeSet<&str> = authura_server::metrics::ROUTES.iter().copied().collect();
    assert_eq!(
        served_paths, counted,
        "metrics::ROUTES names exactly the routed paths"
    );
}

#[tokio::test]
async fn openapi_json_is_the_document() {
    let srv = TestServer::start().await;
    let res = srv.send(srv.client.get(srv.url("/openapi.json"))).await;
    assert_eq!(res.status, 200, "{}", res.text);
    assert_eq!(res.headers["content-type"], MEDIA_TYPE);
    assert_eq!(res.body, serde_json::to_value(ApiDoc::openapi()).unwrap());
    assert_eq!(res.body["openapi"], "3.1.0");
    // A browser sees the document too, not an HTML result page.
    let page = srv
        .send(
            srv.client
                .get(srv.url("/openapi.json"))
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(page.body, res.body);
    // HEAD answers like GET; other methods are refused with what is allowed.
    let head = srv
        .client
        .head(srv.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let post = srv.send(srv.client.post(srv.url("/openapi.json"))).await;
    post.expect(405, "method_not_allowed");
    assert_eq!(post.headers["allow"], "GET, HEAD");
}

#[tokio::test]
async fn openapi_json_is_rate_limited_and_host_checked_like_other_endpoints() {
    let srv = TestServer::with(&[("ALLOWED_HOSTS", "auth.example.com")]).await;
    srv.send(srv.client.get(srv.url("/openapi.json")))
        .await
        .expect(400, "host_not_allowed");
    let srv = TestServer::with(&[("RATE_PER_MINUTE", "1")]).await;
    assert_eq!(
        srv.send(srv.client.get(srv.url("/openapi.json")))
            .await
            .status,
        200
    );
    let limited = srv.send(srv.client.get(srv.url("/openapi.json"))).await;
    limited.expect(429, "rate_limited");
    assert!(limited.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn a_refused_method_says_which_are_allowed() {
    let srv = TestServer::start().await;
    for (method, path, allow) in [
        (reqwest::Method::GET, "/signup", "POST"),
        (reqwest::Method::DELETE, "/token", "POST"),
        (reqwest::Method::POST, "/user", "GET, HEAD"),
        (reqwest::Method::PUT, "/healthz", "GET, HEAD"),
    ] {
        let res = srv
            .send(srv.client.request(method.clone(), srv.url(path)))
            .await;
        res.expect(405, "method_not_allowed");
        assert_eq!(res.headers["allow"], allow, "{method} {path}");
    }
}

#[tokio::test]
async fn the_route_table_is_read_through_scopes() {
    // Later areas (admin, sessions) may well nest resources in scopes.
    let service = init_service(
        actix_web::App::new()
            .service(web::resource("/healthz").to(actix_web::HttpResponse::Ok))
            .service(
                web::scope("/admin").service(
                    web::resource(["/users/{id:\\d+}", "/groups/{name}"])
                        .to(actix_web::HttpResponse::Ok),
                ),
            ),
    )
    .await;
    let res = call_service(&service, TestRequest::get().uri("/healthz").to_request()).await;
    let patterns = routed_patterns(&format!("{:?}", res.request().resource_map()));
    let expected = ["/admin/groups/{name}", "/admin/users/{id:\\d+}", "/healthz"];
    assert_eq!(patterns.iter().collect::<Vec<_>>(), expected);
    assert_eq!(openapi_path("/admin/users/{id:\\d+}"), "/admin/users/{id}");
    assert_eq!(openapi_path("/a/{id:\\d{1,3}}/b"), "/a/{id}/b");
    assert_eq!(sample_path("/admin/users/{id:\\d{1,3}}"), "/admin/users/1");
}

/// The (path, method) pairs the document describes, methods upper-case.
fn documented_operations() -> BTreeSet<(String, String)> {
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            // Path-level fields that are not operations.
            if !["summary", "description", "servers", "parameters"].contains(&method.as_str()) {
                operations.insert((path.clone(), method.to_ascii_uppercase()));
            }
        }
    }
    operations
}

/// An actix pattern as OpenAPI writes it: `{id:\d+}` is `{id}`.
fn openapi_path(pattern: &str) -> String {
    let mut out = String::new();
    let (mut depth, mut regex) = (0, false);
    for c in pattern.chars() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    out.push(c);
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    regex = false;
                    out.push(c);
                }
            }
            ':' if depth == 1 => regex = true,
            _ if regex || depth > 1 => {}
            _ => out.push(c),
        }
    }
    out
}

/// A path that `pattern` matches: each variable is `1`.
fn sample_path(pattern: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in pattern.chars() {
        match c {
            '{' => {
                if depth == 0 {
                    out.push('1');
                }
                depth += 1;
            }
            '}' => depth -= 1,
            _ if depth > 0 => {}
            _ => out.push(c),
        }
    }
    out
}

/// The full pattern of every resource in actix's `ResourceMap`, from its `Debug` output: a tree
/// of `ResourceMap { pattern: ResourceDef { patterns: Single("…") | List([…]), … }, nodes: None
/// | Some([…]) }` whose leaves are resources and whose inner nodes are scopes.
fn routed_patterns(debug: &str) -> BTreeSet<String> {
    let tree = debug_value::parse(debug).unwrap_or_else(|| {
        panic!("cannot read actix's ResourceMap (has its Debug output changed?): {debug}")
    });
    let mut out = BTreeSet::new();
    collect(&tree, "", &mut out);
    out
}

fn collect(map: &debug_value::Value, prefix: &str, out: &mut BTreeSet<String>) {
    use debug_value::Value;
    let read = || -> Option<(Vec<&str>, Option<&[Value]>)> {
        let patterns = match map.field("pattern")?.field("patterns")? {
            Value::Named(kind, inner) if kind == "Single" => vec![inner.items().first()?.as_str()?],
            Value::Named(kind, inner) if kind == "List" => inner
                .items()
                .first()?
                .items()
                .iter()
                .map(Value::as_str)
                .collect::<Option<_>>()?,
            _ => return None,
        };
        let children = match map.field("nodes")? {
            Value::Named(some, inner) if some == "Some" => Some(inner.items().first()?.items()),
            Value::Atom(none) if none == "None" => None,
            _ => return None,
        };
        Some((patterns, children))
    };
    let (patterns, children) =
        read().unwrap_or_else(|| panic!("unexpected ResourceMap shape: {map:?}"));
    for pattern in patterns {
        match children {
            // A scope: its resources' patterns follow its own.
            Some(children) => {
                for child in children {
                    collect(child, &format!("{prefix}{pattern}"), out);
                }
            }
            None => {
                out.insert(format!("{prefix}{pattern}"));
            }
        }
    }
}

/// A reader of Rust's `{:?}` output: structs, tuples, lists, maps, strings and atoms.
mod debug_value {
    /// One value of `{:?}` output.
    #[derive(Debug)]
    pub enum Value {
        /// `Name { … }` or `Name(…)`.
        Named(String, Box<Value>),
        /// `{ key: value, … }`: a struct's fields or a map's entries.
        Pairs(Vec<(Value, Value)>),
        /// `( … )`.
        Tuple(Vec<Value>),
        /// `[ … ]`.
        List(Vec<Value>),
        Str(String),
        /// A number, `None`, `true`, `(Weak)`'s word, …
        Atom(String),
    }

    impl Value {
        /// A struct field (of `Name { … }`).
        pub fn field(&self, name: &str) -> Option<&Value> {
            let Value::Named(_, inner) = self else {
                return None;
            };
            let Value::Pairs(pairs) = &**inner else {
                return None;
            };
            pairs
                .iter()
                .find(|(k, _)| matches!(k, Value::Atom(a) if a == name))
                .map(|(_, v)| v)
        }

        /// The items of a tuple or a list.
        pub fn items(&self) -> &[Value] {
            match self {
                Value::Tuple(items) | Value::List(items) => items,
                _ => &[],
            }
        }

        pub fn as_str(&self) -> Option<&str> {
            match self {
                Value::Str(s) => Some(s),
                _ => None,
            }
        }
    }

    pub fn parse(text: &str) -> Option<Value> {
        let mut p = Parser {
            chars: text.chars().collect(),
            at: 0,
        };
        let v = p.value()?;
        p.skip_space();
        (p.at == p.chars.len()).then_some(v)
    }

    struct Parser {
        chars: Vec<char>,
        at: usize,
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.at).copied()
        }

        fn skip_space(&mut self) {
            while self.peek().is_some_and(char::is_whitespace) {
                self.at += 1;
            }
        }

        fn eat(&mut self, c: char) -> bool {
            self.skip_space();
            if self.peek() == Some(c) {
                self.at += 1;
                true
            } else {
                false
            }
        }

        fn value(&mut self) -> Option<Value> {
            self.skip_space();
            match self.peek()? {
                '"' => self.string().map(Value::Str),
                '[' => {
                    self.at += 1;
                    self.list(']').map(Value::List)
                }
                '(' => {
                    self.at += 1;
                    self.list(')').map(Value::Tuple)
                }
                '{' => {
                    self.at += 1;
                    self.pairs().map(Value::Pairs)
                }
                _ => {
                    let atom = self.atom()?;
                    self.skip_space();
                    match self.peek() {
                        Some('{') => {
                            self.at += 1;
                            Some(Value::Named(atom, Box::new(Value::Pairs(self.pairs()?))))
                        }
                        Some('(') => {
                            self.at += 1;
                            Some(Value::Named(atom, Box::new(Value::Tuple(self.list(')')?))))
                        }
                        _ => Some(Value::Atom(atom)),
                    }
                }
            }
        }

        fn list(&mut self, close: char) -> Option<Vec<Value>> {
            let mut items = Vec::new();
            loop {
                if self.eat(close) {
                    return Some(items);
                }
                items.push(self.value()?);
                if !self.eat(',') {
                    return self.eat(close).then_some(items);
                }
            }
        }

        fn pairs(&mut self) -> Option<Vec<(Value, Value)>> {
            let mut pairs = Vec::new();
            loop {
                if self.eat('}') {
                    return Some(pairs);
                }
                let key = self.value()?;
                if let Value::Atom(a) = &key
                    && a == ".."
                {
                    // `finish_non_exhaustive`.
                    continue;
                }
                if !self.eat(':') {
                    return None;
                }
                pairs.push((key, self.value()?));
                if !self.eat(',') {
                    return self.eat('}').then_some(pairs);
                }
            }
        }

        fn string(&mut self) -> Option<String> {
            self.at += 1;
            let mut out = String::new();
            loop {
                let c = self.peek()?;
                self.at += 1;
                match c {
                    '"' => return Some(out),
                    '\\' => {
                        let escaped = self.peek()?;
                        self.at += 1;
                        out.push(match escaped {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            '0' => '\0',
                            'u' => {
                                // `\u{…}`
                                let close = self.chars[self.at..].iter().position(|&c| c == '}')?;
                                let hex: String =
                                    self.chars[self.at + 1..self.at + close].iter().collect();
                                self.at += close + 1;
                                char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                            }
                            other => other,
                        });
                    }
                    _ => out.push(c),
                }
            }
        }

        fn atom(&mut self) -> Option<String> {
            let start = self.at;
            while self
                .peek()
                .is_some_and(|c| !c.is_whitespace() && !"{}()[],:\"".contains(c))
            {
                self.at += 1;
            }
            // `a::b` paths and `'c'` chars are atoms too.
            while self.chars.get(self.at..self.at + 2) == Some(&[':', ':']) {
                self.at += 2;
                self.atom()?;
            }
            (self.at > start).then(|| self.chars[start..self.at].iter().collect())
        }
    }
}
