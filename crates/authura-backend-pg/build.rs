//! Embeds `migrations/NNNN_name.sql` (the users table's) and `state_migrations/NNNN_name.sql`
//! (the state tables') in version order, so adding a migration is adding a file
//! (`cargo xtask migrate new NAME`).

use std::fmt::Write as _;
use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    embed("migrations")?;
    embed("state_migrations")
}

/// Writes `$OUT_DIR/<dir>.rs`, the list of the migrations in `dir`.
fn embed(dir_name: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: a build-script binary reused from another checkout must not point there.
    let dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join(dir_name);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let Some(file) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = file.strip_suffix(".sql") else {
            continue;
        };
        let (number, name) = stem
            .split_once('_')
            .ok_or_else(|| format!("{file}: expected NNNN_name.sql"))?;
        let version: u32 = number
            .parse()
            .map_err(|_| format!("{file}: expected NNNN_name.sql"))?;
        found.push((version, name.to_owned(), path.display().to_string()));
    }
    found.sort();
    for pair in found.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(format!("two migrations have version {}", pair[0].0).into());
        }
    }
    let mut out = String::from("&[\n");
    for (version, name, path) in &found {
        writeln!(
            out,
            "    Migration {{ version: {version}, name: {name:?}, sql: include_str!({path:?}) }},"
        )?;
    }
    out.push(']');
    let target = Path::new(&std::env::var("OUT_DIR")?).join(format!("{dir_name}.rs"));
    std::fs::write(target, out)?;
    Ok(())
}
