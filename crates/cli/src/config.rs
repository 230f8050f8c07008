//! Configuration at the edge: defaults, then the file, then `RAMPART_*` variables, then
//! flags (applied by each command).

use std::path::Path;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use rampart_core::Config;

/// Loads the configuration from `file` (if given) and the environment.
///
/// Environment variables name a key as `RAMPART_<SECTION>__<KEY>`, with `_` for `-`:
/// `RAMPART_SINK__ROLL_INTERVAL=30s` sets `[sink] roll-interval`.
pub(crate) fn load(file: Option<&Path>) -> anyhow::Result<Config> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            bail!(
                "config file {} not found; pass --config with the path of a pipeline file such as pipelines/demo.toml",
                path.display()
            );
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment.merge(
        Env::prefixed("RAMPART_")
            .filter(|k| k.as_str().contains("__"))
            .map(|k| k.as_str().replace("__", ".").replace('_', "-").into()),
    );
    let config: Config = figment
        .extract()
        .map_err(|e| {
            let mut msg = String::new();
            for err in e {
                if !msg.is_empty() {
                    msg.push_str("; ");
                }
                msg.push_str(&err.to_string());
            }
            anyhow::anyhow!("{msg}")
        })
        .with_context(|| match file {
            Some(p) => format!(
                "invalid configuration in {} or RAMPART_* environment",
                p.display()
            ),
            None => "invalid configuration in RAMPART_* environment".to_string(),
        })?;
    Ok(config)
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
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines");
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
