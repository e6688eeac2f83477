//! docs/configuration.md's generated tables: each variable table, the secrets and the features
//! not built yet, rendered from the declarations. The test `config::tests::docs` compares them
//! with the file and rewrites them when run with `UPDATE_DOCS=1`.

use std::collections::BTreeMap;

use crate::config::var::{IfUnset, Need, Var};
use crate::config::{SECTIONS, declared};

/// Where a generated block starts: `<!-- generated: NAME -->` on a line of its own.
const START: &str = "<!-- generated: ";
/// Where a generated block ends.
const END: &str = "<!-- end generated -->";

/// Every generated block, by name: one per variable table, `secrets` and `future`.
pub fn blocks() -> BTreeMap<String, String> {
    let mut tables: BTreeMap<String, String> = BTreeMap::new();
    for var in declared().filter(|var| var.is_built()) {
        let table = tables
            .entry(var.table.to_owned())
            .or_insert_with(|| "| variable | default | meaning |\n|---|---|---|\n".to_owned());
        table.push_str(&row(var));
    }
    tables.insert("secrets".into(), secrets());
    tables.insert("future".into(), future());
    tables
}

fn row(var: &Var) -> String {
    let new = if var.new { " (new)" } else { "" };
    let default = match var.unset {
        IfUnset::Default(value) => format!("`{value}`"),
        IfUnset::Nothing(text) | IfUnset::Required(text) | IfUnset::Computed(text) => {
            text.to_owned()
        }
    };
    format!("| `{}`{new} | {default} | {} |\n", var.name, var.doc)
}

fn names<'a>(vars: impl Iterator<Item = &'a &'static Var>) -> String {
    vars.map(|var| format!("`{}`", var.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The secrets, one row per section.
fn secrets() -> String {
    let mut out = "| secret | in this build |\n|---|---|\n".to_owned();
    for (_, vars) in SECTIONS {
        let secret: Vec<_> = vars.iter().filter(|var| var.secret).collect();
        let Some(first) = secret.first() else {
            continue;
        };
        let status = if first.is_built() {
            "yes"
        } else {
            "refused (see [Not in this build yet](#not-in-this-build-yet)), also in their `_FILE` form"
        };
        out.push_str(&format!(
            "| {} | {status} |\n",
            names(secret.iter().copied())
        ));
    }
    out
}

/// The features not built, with their variables.
fn future() -> String {
    let mut features: Vec<(&str, Vec<&'static Var>)> = Vec::new();
    for var in declared() {
        if let Need::Future(feature) = var.need {
            match features.iter_mut().find(|(f, _)| *f == feature) {
                Some((_, vars)) => vars.push(var),
                None => features.push((feature, vec![var])),
            }
        }
    }
    let mut out = "| feature | variables |\n|---|---|\n".to_owned();
    for (feature, vars) in features {
        out.push_str(&format!("| {feature} | {} |\n", names(vars.iter())));
    }
    out
}

/// `doc` with every generated block replaced by `blocks`' version.
///
/// # Errors
/// A block the file has but `blocks` does not (or one left unterminated), or a block of
/// `blocks` the file does not have.
pub fn regenerate(doc: &str, blocks: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = doc;
    let mut seen = Vec::new();
    while let Some(start) = rest.find(START) {
        let after = &rest[start + START.len()..];
        let name_end = after
            .find(" -->\n")
            .ok_or("a generated block's marker does not end with ` -->`")?;
        let name = &after[..name_end];
        let body = &after[name_end + 5..];
        let end = body
            .find(END)
            .ok_or(format!("the generated block {name} has no `{END}`"))?;
        let block = blocks.get(name).ok_or(format!(
            "the generated block {name} is not declared by any variable"
        ))?;
        out.push_str(&rest[..start]);
        out.push_str(&format!("{START}{name} -->\n{block}{END}"));
        seen.push(name.to_owned());
        rest = &body[end + END.len()..];
    }
    out.push_str(rest);
    let missing: Vec<_> = blocks.keys().filter(|k| !seen.contains(k)).collect();
    if !missing.is_empty() {
        return Err(format!(
            "docs/configuration.md has no generated block for {missing:?}; add a line \
             `{START}NAME -->` and a line `{END}` where each table belongs"
        ));
    }
    Ok(out)
}
