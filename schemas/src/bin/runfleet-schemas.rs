//! Writes the generated JSON Schemas into a directory (default `schemas/json`).
//!
//! ```text
//! cargo run -p runfleet-schemas --bin runfleet-schemas -- schemas/json
//! ```

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "schemas/json".into()),
    );
    std::fs::create_dir_all(&dir)?;
    for (name, text) in runfleet_schemas::generate::files() {
        std::fs::write(dir.join(&name), text)?;
        println!("wrote {}", dir.join(name).display());
    }
    Ok(())
}
