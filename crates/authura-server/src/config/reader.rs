//! [`Reader`]: the raw values of every source merged by precedence, and typed reads that take a
//! declared [`Var`] (never a name), record the effective value (redacted for secrets) and collect
//! problems instead of stopping at the first.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use authura_core::{Role, Secret, duration};
use url::Url;

use crate::config::var::{IfUnset, Var};
use crate::config::{Sources, declared, parse_http_url};

/// Reads raw values by precedence and records problems, warnings, effective values and which
/// variables were read.
#[derive(Debug)]
pub struct Reader {
    values: BTreeMap<String, String>,
    /// Every problem found so far.
    pub problems: Vec<String>,
    /// Non-fatal remarks.
    pub warnings: Vec<String>,
    /// The effective value of every variable read (secrets redacted), for `check-config`.
    pub effective: BTreeMap<String, String>,
    /// The names of the variables read (for the tests that every declaration is read).
    pub read: BTreeSet<&'static str>,
}

impl Reader {
    /// Merges the sources: the `--config` file (unknown keys refused), `.env` (likely typos
    /// warned about), the environment and the flags; empty values are unset; `NAME_FILE` of
    /// every secret is resolved.
    pub fn new(sources: &Sources) -> Self {
        let mut problems = Vec::new();
        let mut dotenv_warnings = Vec::new();
        let mut values = BTreeMap::new();
        let known: BTreeSet<String> = declared()
            .flat_map(|var| {
                let file = var.secret.then(|| format!("{}_FILE", var.name));
                std::iter::once(var.name.to_owned()).chain(file)
            })
            .collect();
        if let Some(path) = &sources.file {
            match read_file(path) {
                Ok(map) => {
                    for (k, v) in map {
                        if known.contains(&k) {
                            values.insert(k, v);
                        } else {
                            problems.push(format!("{}: unknown setting {k:?}", path.display()));
                        }
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        if let Some(path) = &sources.dotenv {
            match dotenvy::from_path_iter(path) {
                Ok(iter) => {
                    for item in iter {
                        match item {
                            Ok((k, v)) => {
                                // A `.env` is often shared with the app, so other names are
                                // fine; one a letter or two from a setting is a likely typo.
                                if !known.contains(&k)
                                    && let Some(close) = close_name(&k, &known)
                                {
                                    dotenv_warnings.push(format!(
                                        "{}: {k:?} is not a setting and is ignored; did you mean {close}?",
                                        path.display()
                                    ));
                                }
                                values.insert(k, v);
                            }
                            Err(e) => problems.push(format!("{}: {e}", path.display())),
                        }
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
        }
        for (k, v) in sources.env.iter().chain(&sources.flags) {
            values.insert(k.clone(), v.clone());
        }
        // Empty values are unset (an `.env` line `CAPTCHA=` means off).
        values.retain(|_, v| !v.trim().is_empty());
        let mut reader = Reader {
            values,
            problems,
            warnings: dotenv_warnings,
            effective: BTreeMap::new(),
            read: BTreeSet::new(),
        };
        for var in declared().filter(|var| var.secret) {
            reader.resolve_file(var);
        }
        reader
    }

    /// `NAME_FILE=/path` becomes `NAME`; both together is an error.
    fn resolve_file(&mut self, var: &Var) {
        let name = var.name;
        let file_var = format!("{name}_FILE");
        let Some(path) = self.values.remove(&file_var) else {
            return;
        };
        if self.values.contains_key(name) {
            self.problems
                .push(format!("{name} and {file_var} are both set; keep one"));
            return;
        }
        match std::fs::read_to_string(&path) {
            Ok(content) => {
                let value = content.trim_end_matches(['\n', '\r']).to_owned();
                self.values.insert(name.to_owned(), value);
                self.effective
                    .insert(name.to_owned(), format!("[redacted, from {path}]"));
            }
            Err(e) => self
                .problems
                .push(format!("{file_var}: cannot read {path}: {e}")),
        }
    }

    /// Records a problem.
    pub fn problem(&mut self, p: String) {
        self.problems.push(p);
    }

    /// Whether `var` is set, without reading it (for refusals and warnings about variables
    /// that are not used).
    pub fn is_set(&self, var: &Var) -> bool {
        self.values.contains_key(var.name)
    }

    /// The raw value, recorded as read and in the effective listing (redacted for a secret).
    fn take(&mut self, var: &'static Var) -> Option<String> {
        if self.read.insert(var.name) && !declared().any(|d| std::ptr::eq(d, var)) {
            self.problems.push(format!(
                "{} is read but no configuration section declares it",
                var.name
            ));
        }
        let v = self.values.get(var.name)?.clone();
        let shown = if var.secret {
            "[redacted]".to_owned()
        } else {
            v.trim().to_owned()
        };
        self.effective.entry(var.name.to_owned()).or_insert(shown);
        Some(v)
    }

    /// The value, trimmed, if set.
    pub fn string(&mut self, var: &'static Var) -> Option<String> {
        self.take(var).map(|v| v.trim().to_owned())
    }

    /// A secret's value, as given (not trimmed), if set.
    pub fn secret(&mut self, var: &'static Var) -> Option<Secret> {
        debug_assert!(var.secret, "{} is read as a secret", var.name);
        self.take(var).map(Secret::new)
    }

    /// Sets what check-config prints for `var` (a default, a computed value, a redaction).
    pub fn record(&mut self, var: &'static Var, shown: &str) {
        self.effective.insert(var.name.to_owned(), shown.to_owned());
    }

    /// `value`, recorded as `var`'s effective value: the default of a variable that is unset.
    pub fn default(&mut self, var: &'static Var, value: &str) -> String {
        self.record(var, value);
        value.to_owned()
    }

    /// The declared default of `var` (a declaration without one is a problem).
    fn declared_default(&mut self, var: &'static Var) -> &'static str {
        match var.unset {
            IfUnset::Default(value) => value,
            _ => {
                self.problem(format!("{}: no default is declared", var.name));
                ""
            }
        }
    }

    /// The value, or the declared default.
    pub fn text(&mut self, var: &'static Var) -> String {
        match self.string(var) {
            Some(v) => v,
            None => {
                let d = self.declared_default(var);
                self.default(var, d)
            }
        }
    }

    /// A boolean, or the declared default.
    pub fn bool(&mut self, var: &'static Var) -> bool {
        let default = match self.declared_default(var) {
            "true" => true,
            "false" => false,
            other => {
                self.problem(format!("{}: the default {other:?} is no boolean", var.name));
                false
            }
        };
        match self.string(var) {
            None => {
                self.default(var, if default { "true" } else { "false" });
                default
            }
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => {
                    self.problem(format!("{}: expected true or false, got {v:?}", var.name));
                    default
                }
            },
        }
    }

    /// A number, or the declared default.
    pub fn number<T: FromStr + fmt::Display + Copy + Default>(&mut self, var: &'static Var) -> T {
        let declared = self.declared_default(var);
        match declared.parse() {
            Ok(default) => self.number_or(var, default),
            Err(_) => {
                self.problem(format!(
                    "{}: the default {declared:?} is no number",
                    var.name
                ));
                T::default()
            }
        }
    }

    /// A number, or `default` (computed from other settings).
    pub fn number_or<T: FromStr + fmt::Display + Copy>(
        &mut self,
        var: &'static Var,
        default: T,
    ) -> T {
        match self.string(var) {
            None => {
                self.default(var, &default.to_string());
                default
            }
            Some(v) => v.parse().unwrap_or_else(|_| {
                self.problem(format!(
                    "{}: expected a non-negative whole number, got {v:?}",
                    var.name
                ));
                default
            }),
        }
    }

    /// A Go duration, or the declared default.
    pub fn duration(&mut self, var: &'static Var) -> Option<Duration> {
        let v = self.text(var);
        duration::parse(&v)
            .map_err(|e| self.problem(format!("{}: {e}", var.name)))
            .ok()
    }

    /// A whole number of days (`90d`) or a Go duration (SPEC gives some variables in days).
    pub fn days_or_duration(&mut self, var: &'static Var) -> Option<Duration> {
        let v = self.text(var);
        duration::parse_days_or_go(&v)
            .map_err(|e| self.problem(format!("{}: {e}", var.name)))
            .ok()
    }

    /// A duration that must be longer than zero (a timeout).
    pub fn positive_duration(&mut self, var: &'static Var) -> Option<Duration> {
        let d = self.duration(var)?;
        if d.is_zero() {
            self.problem(format!("{} must be longer than zero", var.name));
            return None;
        }
        Some(d)
    }

    /// An http(s) URL, or the declared default.
    pub fn url(&mut self, var: &'static Var) -> Option<Url> {
        let default = self.declared_default(var);
        self.url_or(var, default)
    }

    /// An http(s) URL, or `default` (computed from other settings).
    pub fn url_or(&mut self, var: &'static Var, default: &str) -> Option<Url> {
        let v = self
            .string(var)
            .unwrap_or_else(|| self.default(var, default));
        parse_http_url(&v)
            .map_err(|e| self.problem(format!("{}: {e}", var.name)))
            .ok()
    }

    /// A role name, or the declared default.
    pub fn role(&mut self, var: &'static Var) -> Option<Role> {
        let v = self.text(var);
        Role::parse(&v)
            .map_err(|_| self.problem(format!("{}: {v:?} is not a valid role name", var.name)))
            .ok()
    }

    /// An HTTP header name, or the declared default.
    pub fn header_name(&mut self, var: &'static Var) -> String {
        let v = self.text(var);
        if actix_web::http::header::HeaderName::from_str(&v).is_err() {
            self.problem(format!("{}: {v:?} is not a valid header name", var.name));
        }
        v
    }

    /// A comma-separated list: items trimmed, a trailing `/` removed, empty items dropped.
    pub fn list(&mut self, var: &'static Var) -> Vec<String> {
        self.string(var)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().trim_end_matches('/').to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The known name within two edits of `name` (a likely typo), if there is one.
fn close_name<'a>(name: &str, known: &'a BTreeSet<String>) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), k))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, k)| k.as_str())
}

/// Levenshtein distance over bytes (setting names are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// Reads a TOML file into upper-cased variable names and string values.
fn read_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let parsed = config::Config::builder()
        .add_source(config::File::from(path.to_path_buf()).format(config::FileFormat::Toml))
        .build()
        .map_err(|e| format!("--config {}: {e}", path.display()))?;
    let table = parsed
        .try_deserialize::<BTreeMap<String, config::Value>>()
        .map_err(|e| format!("--config {}: {e}", path.display()))?;
    let mut out = BTreeMap::new();
    for (k, v) in table {
        let text = match v.clone().into_array() {
            Ok(items) => items
                .into_iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(","),
            Err(_) => v.to_string(),
        };
        out.insert(k.to_ascii_uppercase(), text);
    }
    Ok(out)
}
