//! Configuration at the edge: defaults, then the file, then `RAMPART_*` variables, then
//! flags (applied by each command).

use std::path::Path;

use anyhow::Context;
use rampart_core::Config;

/// Loads the configuration from `file` (if given) and the environment:
/// [`Config::load`], whose errors are the messages the CLI prints.
pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load(file)?)
}

/// The configuration (see [`load`]) with `--archive` applied, and the archive opened.
pub(crate) fn open_archive(
    file: Option<&Path>,
    archive: Option<String>,
) -> anyhow::Result<(Config, rampart_core::store::Location)> {
    let mut config = load(file)?;
    if let Some(archive) = archive {
        config.archive.url = archive;
    }
    // Out-of-range values (a query.memory-limit too small to be meant, say) are refused
    // by key here as they are by `run`.
    config.validate()?;
    let location = config
        .archive
        .open(&config.archive.url)
        .with_context(|| format!("cannot open archive {}", config.archive.url))?;
    Ok((config, location))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pipeline file shipped in `pipelines/` loads and passes validation, so a key
    /// renamed in the config structs cannot leave a stale example behind.
    #[test]
    fn every_shipped_pipeline_file_loads_and_validates() {
        let dir = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let config =
                    load(Some(&path)).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
                config
                    .validate()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                seen += 1;
            }
        }
        assert!(
            seen >= 2,
            "pipelines/ holds the demo and the Kafka pipeline"
        );
    }
}
