//! Rule files: a header an operator reads, then SQL that DataFusion runs.
//!
//! ```sql
//! -- id: unclassified_data
//! -- version: 1
//! -- kind: event
//! -- action: deny_external_access
//! -- violation: true
//! -- remedy: category = 'classification_change' AND classification IS NOT NULL
//! -- description: A data source without a classification.
//! SELECT _row FROM events
//! WHERE resource_type IN ('storage', 'database') AND (classification IS NULL OR classification = '')
//! ```
//!
//! The header is the run of `-- key: value` lines at the top of the file. `id` (equal to
//! the file name without `.sql`), `version` (a positive integer), `action` and
//! `description` are required. `kind` is `event` (the default: the query selects the
//! hitting events of a batch from `events`, keeping `_row`) or `window` (the query runs
//! per closing window over `attack_counts` and `prev_attack_counts`). An event rule
//! with `violation: true` opens a violation on a resource at its first hit, which stays
//! open until an event matches the `remedy` predicate. `$increase_pct` and
//! `$min_baseline` in the SQL are the `[rules]` settings.

use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// How a rule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    /// Over each batch of on-time events; selects the hitting events by `_row`.
    Event,
    /// Over each closing window's attack counts and the previous window's.
    Window,
}

impl RuleKind {
    /// `event` or `window`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::Window => "window",
        }
    }
}

/// One rule file, parsed (not yet planned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The rule's id, also its file name.
    pub id: String,
    /// Its version, recorded with every hit.
    pub version: i32,
    /// How it runs.
    pub kind: RuleKind,
    /// The enforcement action its hits carry.
    pub action: String,
    /// One line for people.
    pub description: String,
    /// Whether a hit opens a violation.
    pub violation: bool,
    /// The SQL predicate over `events` that remedies an open violation.
    pub remedy: Option<String>,
    /// The whole file (the header is SQL comments, so line numbers stay the file's).
    pub sql: String,
    /// Where it was read from.
    pub path: PathBuf,
}

const KEYS: [&str; 7] = [
    "id",
    "version",
    "kind",
    "action",
    "description",
    "violation",
    "remedy",
];

/// Parses the text of a rule file read from `path`.
pub fn parse_rule(path: &Path, text: &str) -> Result<Rule> {
    let header_err = |line: usize, message: String| Error::Header {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut fields: Vec<(&str, String, usize)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(comment) = line.trim_start().strip_prefix("--") else {
            break;
        };
        let Some((key, value)) = comment.split_once(':') else {
            break;
        };
        let key = key.trim();
        if key.is_empty()
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '-')
        {
            break;
        }
        let Some(known) = KEYS.iter().find(|k| **k == key) else {
            if fields.is_empty() {
                break; // an ordinary comment before any header line
            }
            return Err(header_err(
                i + 1,
                format!(
                    "unknown header key `{key}`; the keys are {}",
                    KEYS.join(", ")
                ),
            ));
        };
        if fields.iter().any(|(k, _, _)| k == known) {
            return Err(header_err(i + 1, format!("header key `{key}` given twice")));
        }
        fields.push((known, value.trim().to_string(), i + 1));
    }
    let get = |key: &str| fields.iter().find(|(k, _, _)| *k == key);
    let required = |key: &str| {
        get(key)
            .filter(|(_, v, _)| !v.is_empty())
            .map(|(_, v, line)| (v.clone(), *line))
            .ok_or_else(|| {
                header_err(
                    1,
                    format!("the header has no `-- {key}: ...` line; every rule needs id, version, action and description"),
                )
            })
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let (id, id_line) = required("id")?;
    if id != stem {
        return Err(header_err(
            id_line,
            format!(
                "rule id `{id}` differs from the file name `{stem}.sql`; name the file after the rule"
            ),
        ));
    }
    let (version, version_line) = required("version")?;
    let version: i32 = version.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
        header_err(
            version_line,
            format!("version `{version}` is not a positive integer"),
        )
    })?;
    let (action, _) = required("action")?;
    let (description, _) = required("description")?;
    let kind = match get("kind") {
        None => RuleKind::Event,
        Some((_, v, line)) => match v.as_str() {
            "event" => RuleKind::Event,
            "window" => RuleKind::Window,
            other => {
                return Err(header_err(
                    *line,
                    format!("kind `{other}` is neither `event` nor `window`"),
                ));
            }
        },
    };
    let violation = match get("violation") {
        None => false,
        Some((_, v, line)) => match v.as_str() {
            "true" => true,
            "false" => false,
            other => {
                return Err(header_err(
                    *line,
                    format!("violation `{other}` is neither true nor false"),
                ));
            }
        },
    };
    let remedy = get("remedy")
        .map(|(_, v, _)| v.clone())
        .filter(|v| !v.is_empty());
    if violation && remedy.is_none() {
        return Err(header_err(
            1,
            "a rule with `violation: true` needs a `-- remedy: <SQL predicate>` line".into(),
        ));
    }
    if !violation && remedy.is_some() {
        return Err(header_err(
            1,
            "`remedy` is only meaningful with `violation: true`".into(),
        ));
    }
    if violation && kind == RuleKind::Window {
        return Err(header_err(1, "only event rules can open violations".into()));
    }
    Ok(Rule {
        id,
        version,
        kind,
        action,
        description,
        violation,
        remedy,
        sql: text.to_string(),
        path: path.to_path_buf(),
    })
}

/// Reads and parses every `*.sql` file of `dir`, in file-name order, one result per
/// file (so that a check can report every bad file at once).
pub fn read_dir(dir: &Path) -> Result<Vec<Result<Rule>>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "sql") && p.is_file())
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).map_err(|source| Error::Read {
                path: p.clone(),
                source,
            })?;
            parse_rule(&p, &text)
        })
        .collect())
}

/// Reads and parses every `*.sql` file of `dir`, failing on the first bad one.
pub fn load_dir(dir: &Path) -> Result<Vec<Rule>> {
    read_dir(dir)?.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, text: &str) -> Result<Rule> {
        parse_rule(Path::new(&format!("sql/rules/{name}.sql")), text)
    }

    const OK: &str = "-- id: r\n-- version: 2\n-- action: alert\n-- description: d\n-- A free comment: fine\nSELECT _row FROM events\n";

    #[test]
    fn a_minimal_header() {
        let r = parse("r", OK).unwrap();
        assert_eq!(
            (r.id.as_str(), r.version, r.kind, r.violation),
            ("r", 2, RuleKind::Event, false)
        );
        assert_eq!(r.action, "alert");
        assert!(r.sql.contains("SELECT _row"));
    }

    #[test]
    fn header_mistakes_name_the_line() {
        let cases = [
            (
                "r",
                OK.replace("-- version: 2", "-- version: two"),
                ":2: version `two`",
            ),
            ("r", OK.replace("-- action: alert\n", ""), "no `-- action"),
            (
                "other",
                OK.to_string(),
                "differs from the file name `other.sql`",
            ),
            (
                "r",
                OK.replace("-- description: d", "-- descripton: d"),
                ":4: unknown header key `descripton`",
            ),
            (
                "r",
                OK.replace("-- version: 2", "-- version: 2\n-- version: 3"),
                "given twice",
            ),
            (
                "r",
                OK.replace("-- version: 2", "-- version: 2\n-- kind: stream"),
                "kind `stream`",
            ),
            (
                "r",
                OK.replace("-- version: 2", "-- version: 2\n-- violation: true"),
                "needs a `-- remedy",
            ),
            (
                "r",
                OK.replace("-- version: 2", "-- version: 2\n-- remedy: true"),
                "only meaningful",
            ),
        ];
        for (name, text, needle) in cases {
            let err = parse(name, &text).unwrap_err().to_string();
            assert!(err.contains(needle), "{err} lacks {needle}");
            assert!(err.starts_with(&format!("sql/rules/{name}.sql:")), "{err}");
        }
    }

    #[test]
    fn the_shipped_rules_parse() {
        let dir = rampart_core::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../sql/rules");
        let rules = load_dir(&dir).unwrap();
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "attack_increase",
                "network_vulnerability",
                "security_health",
                "unclassified_data"
            ]
        );
        let violating: Vec<&str> = rules
            .iter()
            .filter(|r| r.violation)
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(violating, ["security_health", "unclassified_data"]);
    }
}
