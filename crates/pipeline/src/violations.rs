//! Open violations survive restarts: they are read back from the archive at start-up.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int32Type, TimestampMicrosecondType};
use rampart_archive::Archive;
use rampart_core::store::Location;
use rampart_window::{ViolationChange, ViolationState};

use crate::{Error, Result};

/// The violations whose latest change in the archive at `location` is `open`.
pub(crate) async fn open_violations(location: &Location) -> Result<Vec<ViolationChange>> {
    let archive = Archive::open(location.clone())
        .await
        .map_err(|e| Error::Restore {
            message: e.to_string(),
        })?;
    // The latest change per (resource, rule); at equal times `resolved` sorts after `open`.
    let out = archive
        .query(
            "SELECT changed_at, resource_id, workload, rule_id, rule_version, action, state, \
                    opened_at, resolved_at, opened_by, resolved_by \
             FROM (SELECT *, row_number() OVER (PARTITION BY resource_id, rule_id \
                                                ORDER BY changed_at DESC, state DESC) AS rn \
                   FROM violations) \
             WHERE rn = 1 AND state = 'open'",
        )
        .await
        .map_err(|e| Error::Restore {
            message: e.to_string(),
        })?;
    let mut open = Vec::new();
    for b in &out.batches {
        let ts = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>().cloned())
        };
        let s = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).ok())
                .map(|c| c.as_string::<i32>().clone())
        };
        let missing = || Error::Restore {
            message: "the violations table lacks a column".into(),
        };
        let (changed, opened) = (
            ts("changed_at").ok_or_else(missing)?,
            ts("opened_at").ok_or_else(missing)?,
        );
        let (res, wl, rule, action, by) = (
            s("resource_id").ok_or_else(missing)?,
            s("workload").ok_or_else(missing)?,
            s("rule_id").ok_or_else(missing)?,
            s("action").ok_or_else(missing)?,
            s("opened_by").ok_or_else(missing)?,
        );
        let version = b
            .column_by_name("rule_version")
            .and_then(|c| c.as_primitive_opt::<Int32Type>().cloned())
            .ok_or_else(missing)?;
        for i in 0..b.num_rows() {
            open.push(ViolationChange {
                changed_at: changed.value(i),
                resource_id: res.value(i).into(),
                workload: wl.is_valid(i).then(|| wl.value(i).into()),
                rule_id: rule.value(i).into(),
                rule_version: version.value(i),
                action: action.value(i).into(),
                state: ViolationState::Open,
                opened_at: opened.value(i),
                resolved_at: None,
                opened_by: by.value(i).to_string(),
                resolved_by: None,
            });
        }
    }
    Ok(open)
}
