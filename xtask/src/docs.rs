//! `cargo xtask docs`: the operator guide (`docs/`, an mdBook) built into `target/book`, the
//! OpenAPI document written beside it, then every link in the built pages checked: a relative
//! link must reach a file of the book and, with a `#fragment`, an element with that id. Links
//! to other sites are not followed (this machine reaches no other site); they are counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::run;

/// Builds and checks the book.
pub fn run_docs(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask docs");
    }
    ensure_mdbook()?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let book = std::env::current_dir()?.join(&target).join("book");
    run(Command::new("mdbook")
        .args(["build", "docs", "--dest-dir"])
        .arg(&book))?;
    let out = Command::new("cargo")
        .args(["run", "--quiet", "--package", "authura", "--", "openapi"])
        .output()?;
    if !out.status.success() {
        bail!("authura openapi: {}", String::from_utf8_lossy(&out.stderr));
    }
    std::fs::write(book.join("openapi.json"), out.stdout)?;
    let report = check_links(&book)?;
    eprintln!(
        "xtask docs: {} pages, {} internal links checked, {} external links not followed; {}",
        report.pages,
        report.internal,
        report.external,
        book.join("index.html").display()
    );
    if !report.broken.is_empty() {
        bail!(
            "broken links in the book:\n  {}",
            report.broken.join("\n  ")
        );
    }
    Ok(())
}

fn ensure_mdbook() -> Result<()> {
    if Command::new("mdbook").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("xtask: installing mdbook (the operator guide's builder) from crates.io");
    run(Command::new("cargo").args([
        "install",
        "mdbook",
        "--locked",
        "--no-default-features",
        "--features",
        "search",
    ]))
    .context("mdbook is required by `cargo xtask docs`")
}

/// What a link check found.
#[derive(Debug, Default)]
pub struct LinkReport {
    pub pages: usize,
    pub internal: usize,
    pub external: usize,
    pub broken: Vec<String>,
}

/// Checks every `href` and `src` of every HTML page under `root`.
pub fn check_links(root: &Path) -> Result<LinkReport> {
    let mut pages = Vec::new();
    collect_html(root, &mut pages)?;
    let mut ids: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    let mut texts = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page)?;
        ids.insert(
            page.clone(),
            attribute_values(&text, "id").into_iter().collect(),
        );
        texts.push((page.clone(), text));
    }
    let mut report = LinkReport {
        pages: pages.len(),
        ..LinkReport::default()
    };
    for (page, text) in &texts {
        let from = page
            .strip_prefix(root)
            .unwrap_or(page)
            .display()
            .to_string();
        for link in attribute_values(text, "href")
            .into_iter()
            .chain(attribute_values(text, "src"))
        {
            if link.contains("://")
                || link.starts_with("mailto:")
                || link.starts_with("javascript:")
            {
                report.external += 1;
                continue;
            }
            report.internal += 1;
            let (path, fragment) = match link.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (link.as_str(), None),
            };
            let path = path.split('?').next().unwrap_or("");
            let target = if path.is_empty() {
                page.clone()
            } else if let Some(from_root) = path.strip_prefix('/') {
                // Site-absolute (mdBook's 404 page): the book is served at the site's root.
                let joined = normalise(&root.join(from_root));
                if joined.is_dir() {
                    joined.join("index.html")
                } else {
                    joined
                }
            } else {
                let joined = normalise(&page.parent().unwrap_or(root).join(path));
                if joined.is_dir() {
                    joined.join("index.html")
                } else {
                    joined
                }
            };
            if !target.starts_with(root) || !target.is_file() {
                report.broken.push(format!("{from}: {link} (no such file)"));
                continue;
            }
            if let Some(fragment) = fragment.filter(|f| !f.is_empty())
                && target.extension().is_some_and(|e| e == "html")
                && !ids.get(&target).is_some_and(|set| set.contains(fragment))
            {
                report
                    .broken
                    .push(format!("{from}: {link} (no element with id {fragment:?})"));
            }
        }
    }
    Ok(report)
}

fn collect_html(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_html(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "html") {
            out.push(path);
        }
    }
    Ok(())
}

/// The values of every `name="…"` attribute in `html` (entities `&amp;` decoded).
fn attribute_values(html: &str, name: &str) -> Vec<String> {
    let needle = format!(" {name}=\"");
    let mut values = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(&needle) {
        rest = &rest[at + needle.len()..];
        if let Some(end) = rest.find('"') {
            values.push(rest[..end].replace("&amp;", "&"));
            rest = &rest[end..];
        }
    }
    values
}

/// `a/b/../c` as `a/c`, without touching the file system.
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checker finds a missing page and a missing anchor, and passes good links.
    #[test]
    fn the_link_check_finds_missing_pages_and_anchors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(
            root.join("index.html"),
            r##"<a href="sub/page.html#here">ok</a> <a href="sub/page.html#gone">bad anchor</a>
            <a href="missing.html">bad page</a> <a href="https://example.com/">external</a>
            <img src="sub/../index.html"> <a href="#top">self</a> <h1 id="top">t</h1>"##,
        )
        .unwrap();
        std::fs::write(root.join("sub/page.html"), r#"<h2 id="here">x</h2>"#).unwrap();
        let report = check_links(root).unwrap();
        assert_eq!(report.pages, 2);
        assert_eq!(report.external, 1);
        assert_eq!(report.internal, 5);
        assert_eq!(report.broken.len(), 2, "{:?}", report.broken);
        assert!(report.broken[0].contains("#gone"));
        assert!(report.broken[1].contains("missing.html"));
    }
}
