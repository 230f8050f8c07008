//! Legal holds: a named SQL predicate that keeps every file holding a matching row.
//!
//! A hold is recorded in the chain when placed and when released. It is kept as a
//! predicate, not as a list of files, so it covers rows wherever they are: in files
//! written after it was placed, and in the large files compaction makes of small ones.
//! Retention evaluates it against each file before deleting that file.

use std::sync::Arc;

use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use rampart_core::Clock;
use rampart_core::layout::DATA_FILE_EXTENSION;
use rampart_core::ledger::{Action, Change, Committed, Hold, Ledger, LiveFile};
use rampart_core::schema;
use rampart_core::store::Location;

use crate::{Archive, Error, Result};

fn refuse<T>(message: String) -> Result<T> {
    Err(Error::Governance { message })
}

/// A hold name: letters, digits, `.`, `_` and `-`, up to 128 characters.
fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        refuse(format!(
            "`{name}` is not a usable hold name: use 1 to 128 letters, digits, `.`, `_` or `-` (for example case-2026-114)"
        ))
    }
}

/// A hold placed, and the rows it covers now.
#[derive(Debug, Clone)]
pub struct PlacedHold {
    /// The manifest that records it.
    pub committed: Committed,
    /// Per table, the rows that match now.
    pub matching_rows: Vec<(String, u64)>,
}

/// Checks that `predicate` can be evaluated on a single file of `table`, as retention
/// does: on the file's own columns, without the partition columns `date` and `hour`.
async fn fits_a_file(table: &str, predicate: &str) -> Result<()> {
    let Some(def) = schema::table(table) else {
        return Ok(());
    };
    let ctx = SessionContext::new();
    let df = ctx
        .read_batch(arrow::record_batch::RecordBatch::new_empty(def.schema()))
        .map_err(|source| Error::Query { source })?;
    let planned = df
        .parse_sql_expr(predicate)
        .and_then(|expr| df.clone().filter(expr));
    match planned {
        Ok(_) => Ok(()),
        Err(e) => {
            let partition = rampart_core::layout::partition_columns()
                .iter()
                .any(|(c, _)| predicate.contains(c.as_str()));
            let hint = if partition {
                "; a hold is evaluated on each file's own columns, so the partition columns date and hour cannot be used: use the time column instead (for example ts >= TIMESTAMP '2026-11-01T00:00:00Z')"
            } else {
                ""
            };
            Err(Error::Governance {
                message: format!("{e}{hint}"),
            })
        }
    }
}

/// Rows of `table` matching `predicate` in the archive, or the reason it does not fit.
async fn count_matching(archive: &Archive, table: &str, predicate: &str) -> Result<u64> {
    fits_a_file(table, predicate).await?;
    let df = archive
        .session()
        .table(table)
        .await
        .map_err(|source| Error::Query { source })?;
    let expr = df
        .parse_sql_expr(predicate)
        .map_err(|source| Error::Query { source })?;
    let n = df
        .filter(expr)
        .map_err(|source| Error::Query { source })?
        .count()
        .await
        .map_err(|source| Error::Query { source })?;
    Ok(n as u64)
}

/// Places hold `name` over the rows matching `predicate` in `tables` (by default every
/// table whose columns the predicate names) and records it in the chain.
pub async fn place_hold(
    archive: &Archive,
    name: &str,
    predicate: &str,
    tables: Option<Vec<String>>,
    reason: Option<String>,
    clock: &dyn Clock,
) -> Result<PlacedHold> {
    check_name(name)?;
    if predicate.trim().is_empty() {
        return refuse("the hold's --where predicate is empty: give a SQL condition such as \"resource_id = 'vm-17'\"".into());
    }
    let explicit = tables.is_some();
    let candidates = tables.unwrap_or_else(|| {
        schema::tables()
            .into_iter()
            .map(|t| t.name().to_string())
            .filter(|t| t != schema::ACCESS_LOG)
            .collect()
    });
    let mut matching_rows = Vec::new();
    let mut misfits = Vec::new();
    for table in &candidates {
        if schema::table(table).is_none() {
            return refuse(format!(
                "no table named `{table}`; the archive's tables are {}",
                table_names()
            ));
        }
        match count_matching(archive, table, predicate).await {
            Ok(n) => matching_rows.push((table.clone(), n)),
            Err(e) if explicit => {
                return refuse(format!("the predicate does not fit table `{table}`: {e}"));
            }
            Err(e) => misfits.push(format!("{table}: {e}")),
        }
    }
    if matching_rows.is_empty() {
        return refuse(format!(
            "the predicate fits no table:\n  {}",
            misfits.join("\n  ")
        ));
    }
    let mut ledger = archive.ledger().clone();
    ledger
        .refresh()
        .await
        .map_err(|source| Error::Ledger { source })?;
    let committed = ledger
        .commit(
            Change {
                hold: Some(Hold {
                    name: name.to_string(),
                    predicate: predicate.to_string(),
                    tables: matching_rows.iter().map(|(t, _)| t.clone()).collect(),
                    reason,
                }),
                ..Change::new(Action::Hold)
            },
            clock,
        )
        .await
        .map_err(|source| Error::Ledger { source })?;
    Ok(PlacedHold {
        committed,
        matching_rows,
    })
}

/// Releases hold `name` and records the release (and why) in the chain.
pub async fn release_hold(
    location: &Location,
    name: &str,
    reason: Option<String>,
    clock: &dyn Clock,
) -> Result<Committed> {
    check_name(name)?;
    let mut ledger = Ledger::load(location)
        .await
        .map_err(|source| Error::Ledger { source })?;
    if !ledger.state().holds.contains_key(name) {
        let names: Vec<&String> = ledger.state().holds.keys().collect();
        return refuse(format!(
            "no hold named `{name}` is in force (holds in force: {}); see `rampart hold list`",
            if names.is_empty() {
                "none".to_string()
            } else {
                names
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    }
    ledger
        .commit(
            Change {
                release: Some(name.to_string()),
                note: reason,
                ..Change::new(Action::Release)
            },
            clock,
        )
        .await
        .map_err(|source| Error::Ledger { source })
}

fn table_names() -> String {
    schema::tables()
        .iter()
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Evaluates holds against single archive files.
pub(crate) struct FileProbe {
    ctx: SessionContext,
    location: Location,
    base: String,
}

impl FileProbe {
    pub(crate) fn new(location: &Location) -> Result<Self> {
        let ctx = SessionContext::new();
        let root = url::Url::parse(&location.store_root_url()).map_err(|e| Error::Governance {
            message: format!("cannot use archive URL {}: {e}", location.url),
        })?;
        ctx.register_object_store(&root, Arc::clone(&location.store));
        let mut base = location.url.to_string();
        if !base.ends_with('/') {
            base.push('/');
        }
        Ok(Self {
            ctx,
            location: location.clone(),
            base,
        })
    }

    /// Whether `file` holds a row matching `hold`'s predicate.
    pub(crate) async fn matches(&self, file: &LiveFile, hold: &Hold) -> Result<bool> {
        if !hold.tables.contains(&file.entry.table) {
            return Ok(false);
        }
        let Some(def) = schema::table(&file.entry.table) else {
            return Ok(false);
        };
        let url = ListingTableUrl::parse(format!("{}{}", self.base, file.entry.path))
            .map_err(|source| Error::Query { source })?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(DATA_FILE_EXTENSION);
        let table = ListingTable::try_new(
            ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(def.schema()),
        )
        .map_err(|source| Error::Query { source })?;
        let df = self
            .ctx
            .read_table(Arc::new(table))
            .map_err(|source| Error::Query { source })?;
        let expr = df
            .parse_sql_expr(&hold.predicate)
            .map_err(|source| Error::Query { source })?;
        let n = df
            .filter(expr)
            .map_err(|source| Error::Query { source })?
            .limit(0, Some(1))
            .map_err(|source| Error::Query { source })?
            .count()
            .await
            .map_err(|source| Error::Query { source })?;
        tracing::debug!(path = %file.entry.path, hold = %hold.name, matched = n > 0, location = %self.location.url, "hold evaluated");
        Ok(n > 0)
    }
}
