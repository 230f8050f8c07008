//! The alerts output: one JSON line per policy hit and per violation change.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};

use rampart_window::Outputs;

use crate::{Error, Result};

/// Where alerts go: a file (appended to), stdout, or nowhere.
#[derive(Debug)]
pub(crate) enum AlertSink {
    None,
    Stdout,
    File { path: String, out: BufWriter<File> },
}

impl AlertSink {
    /// Opens `path` (`-` for stdout, empty for none).
    pub(crate) fn open(path: &str) -> Result<Self> {
        match path {
            "" => Ok(Self::None),
            "-" => Ok(Self::Stdout),
            p => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| Error::Alerts {
                        path: p.to_string(),
                        source: e,
                    })?;
                Ok(Self::File {
                    path: p.to_string(),
                    out: BufWriter::new(file),
                })
            }
        }
    }

    /// Writes the alerts of `outputs` and flushes them; returns how many were written.
    pub(crate) fn write(&mut self, outputs: &Outputs) -> Result<u64> {
        let count = (outputs.policy_hits.len() + outputs.violations.len()) as u64;
        if count == 0 || matches!(self, Self::None) {
            return Ok(count);
        }
        let lines: Vec<String> = outputs
            .policy_hits
            .iter()
            .map(|h| h.alert_line())
            .chain(outputs.violations.iter().map(|v| v.alert_line()))
            .collect();
        let write_all = |out: &mut dyn Write| -> std::io::Result<()> {
            for l in &lines {
                out.write_all(l.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.flush()
        };
        match self {
            Self::None => {}
            Self::Stdout => {
                write_all(&mut std::io::stdout().lock()).map_err(|e| Error::Alerts {
                    path: "-".into(),
                    source: e,
                })?
            }
            Self::File { path, out } => write_all(out).map_err(|e| Error::Alerts {
                path: path.clone(),
                source: e,
            })?,
        }
        Ok(count)
    }
}
