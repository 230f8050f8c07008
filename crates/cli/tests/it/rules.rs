//! Rules through the binary: `rampart rules list/check`, a rule that does not plan
//! refused at start-up, and a rule an operator adds by dropping one SQL file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rampart_gen::{GenConfig, MessageKind};
use serde_json::Value;

use crate::*;

/// The shipped rules as spec §3 lists them: id, version, kind, action.
const SHIPPED: [(&str, &str, &str, &str); 4] = [
    (
        "attack_increase",
        "1",
        "window",
        "notify_security_and_owner",
    ),
    (
        "network_vulnerability",
        "1",
        "event",
        "notify_security_and_owner",
    ),
    ("security_health", "1", "event", "disable_access"),
    ("unclassified_data", "1", "event", "deny_external_access"),
];

/// A copy of the shipped `sql/rules` in `dir/rules`.
fn copy_of_shipped_rules(dir: &Path) -> PathBuf {
    let rules = dir.join("rules");
    std::fs::create_dir(&rules).unwrap();
    for entry in std::fs::read_dir(repo_root().join("sql/rules")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sql") {
            std::fs::copy(&path, rules.join(path.file_name().unwrap())).unwrap();
        }
    }
    rules
}

/// Writes a rule file `dir/<id>.sql` with a complete header and `sql`.
fn write_rule(dir: &Path, id: &str, sql: &str) -> PathBuf {
    let path = dir.join(format!("{id}.sql"));
    let text = format!(
        "-- id: {id}\n-- version: 1\n-- kind: event\n-- action: notify_security\n\
         -- description: A test rule.\n{sql}"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The id, version, kind and action of each rule `rampart rules list` shows.
fn listed(stdout: &[u8]) -> Vec<(String, String, String, String)> {
    let text = String::from_utf8(stdout.to_vec()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header
            .split_whitespace()
            .take(4)
            .eq(["id", "version", "kind", "action"]),
        "{text}"
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 4, "{l}");
            (f[0].into(), f[1].into(), f[2].into(), f[3].into())
        })
        .collect()
}

fn shipped() -> Vec<(String, String, String, String)> {
    SHIPPED
        .iter()
        .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
        .collect()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn rules_list_shows_the_shipped_rules() {
    let out = ok(rampart().args(["rules", "list"]));
    let mut rules = listed(&out.stdout);
    rules.sort();
    assert_eq!(rules, shipped());
}

#[test]
fn rules_check_passes_on_the_shipped_rules() {
    let out = ok(rampart().args(["rules", "check"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("ok"), "{stdout}");
}

#[test]
fn rules_check_reports_every_error_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = copy_of_shipped_rules(dir.path());
    // Line 7 (after the 5 header lines and one of SQL), column 18: the second `=`.
    let syntax = write_rule(
        &rules,
        "syntax_error",
        "SELECT _row FROM events\nWHERE category = = 'auth'\n",
    );
    let unknown = write_rule(
        &rules,
        "unknown_column",
        "SELECT _row FROM events\nWHERE severity_level = 'high'\n",
    );
    let no_row = write_rule(
        &rules,
        "no_row",
        "SELECT resource_id FROM events WHERE category = 'auth'\n",
    );
    let no_action = rules.join("no_action.sql");
    std::fs::write(
        &no_action,
        "-- id: no_action\n-- version: 1\n-- description: d\nSELECT _row FROM events\n",
    )
    .unwrap();

    let stderr = fails(rampart().args(["rules", "check"]).arg(&rules));
    let error_of = |path: &Path| -> &str {
        let path = path.display().to_string();
        stderr
            .lines()
            .find(|l| l.starts_with("error:") && l.contains(&path))
            .unwrap_or_else(|| panic!("no error names {path}:\n{stderr}"))
    };
    let e = error_of(&syntax);
    assert!(
        e.contains("Line: 7, Column: 18") || e.contains(&format!("{}:7:18", syntax.display())),
        "the syntax error has no position 7:18: {e}"
    );
    assert!(error_of(&unknown).contains("severity_level"), "{stderr}");
    assert!(error_of(&no_row).contains("_row"), "{stderr}");
    assert!(error_of(&no_action).contains("action"), "{stderr}");
    for (id, ..) in SHIPPED {
        assert!(!stderr.contains(&format!("{id}.sql")), "{stderr}");
    }
    assert!(stderr.contains("4 rule file(s) failed"), "{stderr}");
}

#[test]
fn run_refuses_a_rule_that_does_not_plan() {
    let dir = tempfile::tempdir().unwrap();
    let rules = copy_of_shipped_rules(dir.path());
    let bad = write_rule(
        &rules,
        "unknown_column",
        "SELECT _row FROM events WHERE severity_level = 'high'\n",
    );
    let g = generate(dir.path(), "in.jsonl", small(500, 3));
    let archive = dir.path().join("archive");
    let stderr = fails(
        rampart()
            .arg("run")
            .arg("--source")
            .arg(&g.path)
            .arg("--archive")
            .arg(&archive)
            .arg("--until-end")
            .arg("--rules-dir")
            .arg(&rules),
    );
    assert!(
        stderr.contains(&bad.display().to_string()) && stderr.contains("severity_level"),
        "{stderr}"
    );
    assert_eq!(
        files_under(&archive),
        Vec::<PathBuf>::new(),
        "nothing archived"
    );
}

/// The number on the summary's `late events` line.
fn late_count(summary: &str) -> u64 {
    summary_count(summary, "late events")
}

#[test]
fn an_operator_adds_a_rule_by_dropping_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = copy_of_shipped_rules(dir.path());
    write_rule(
        &rules,
        "failed_auth",
        "SELECT _row FROM events WHERE category = 'auth' AND outcome = 'failure'\n",
    );

    let out = ok(rampart().args(["rules", "list", "--dir"]).arg(&rules));
    let mut expected = shipped();
    expected.push((
        "failed_auth".into(),
        "1".into(),
        "event".into(),
        "notify_security".into(),
    ));
    expected.sort();
    let mut listed = listed(&out.stdout);
    listed.sort();
    assert_eq!(listed, expected);

    // Arrival at most 20 s after event time, within the minute of lateness: no event is
    // late, so every accepted event counts.
    let g = generate(
        dir.path(),
        "in.jsonl",
        GenConfig {
            disorder: std::time::Duration::from_secs(20),
            ..small(20_000, 11)
        },
    );
    let archive = dir.path().join("archive");
    let out = ok(rampart()
        .arg("run")
        .arg("--source")
        .arg(&g.path)
        .arg("--archive")
        .arg(&archive)
        .arg("--until-end")
        .arg("--rules-dir")
        .arg(&rules));
    let summary = String::from_utf8(out.stdout).unwrap();
    assert_eq!(late_count(&summary), 0, "{summary}");

    // The expected hits, counted from the input lines: per 5-minute window and resource.
    const WINDOW: i64 = 300_000_000;
    let mut expected: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let lines = input_lines(&g.path);
    assert_eq!(lines.len(), g.kinds.len());
    for ((n, text), kind) in lines.iter().zip(&g.kinds) {
        if *kind != MessageKind::Good {
            continue;
        }
        let v: Value = serde_json::from_slice(text).unwrap_or_else(|e| panic!("line {n}: {e}"));
        let field = |k: &str| v.get(k).and_then(Value::as_str);
        if field("category") == Some("auth") && field("outcome") == Some("failure") {
            let ts = chrono::DateTime::parse_from_rfc3339(field("ts").unwrap())
                .unwrap_or_else(|e| panic!("line {n}: {e}"))
                .timestamp_micros();
            let resource = field("resource_id").unwrap().to_string();
            *expected
                .entry((ts - ts.rem_euclid(WINDOW), resource))
                .or_default() += 1;
        }
    }
    assert!(
        expected.len() > 50,
        "too few failed logins: {}",
        expected.len()
    );

    let rows = query_json(
        &archive,
        "SELECT CAST(window_start AS BIGINT) AS ws, CAST(window_end AS BIGINT) AS we, \
         resource_id, rule_version, action, category, hit_count \
         FROM policy_hits WHERE rule_id = 'failed_auth'",
    );
    let mut actual: BTreeMap<(i64, String), i64> = BTreeMap::new();
    for r in &rows {
        let ws = r["ws"].as_i64().unwrap();
        assert_eq!(r["we"].as_i64(), Some(ws + WINDOW), "{r:?}");
        assert_eq!(r["rule_version"], 1, "{r:?}");
        assert_eq!(r["action"], "notify_security", "{r:?}");
        assert!(r["category"].is_null(), "{r:?}");
        let key = (ws, r["resource_id"].as_str().unwrap().to_string());
        let previous = actual.insert(key, r["hit_count"].as_i64().unwrap());
        assert_eq!(
            previous, None,
            "two rows for one window and resource: {r:?}"
        );
    }
    assert_eq!(actual, expected);
}

/// The fenced blocks of `text` whose info string is `lang`, in order.
fn fenced<'a>(text: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    text.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split("\n```").next())
        .collect()
}

#[test]
fn the_worked_example_in_docs_rules_md_gives_the_hits_it_shows() {
    let doc = std::fs::read_to_string(repo_root().join("docs/rules.md")).unwrap();
    let (rule, input, expected) = (
        fenced(&doc, "sql")[0],
        fenced(&doc, "jsonl")[0],
        fenced(&doc, "text")[0],
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = copy_of_shipped_rules(dir.path());
    std::fs::write(rules.join("failed_admin_auth.sql"), rule).unwrap();
    ok(rampart().args(["rules", "check"]).arg(&rules));
    let source = dir.path().join("admin-auth.jsonl");
    std::fs::write(&source, format!("{input}\n")).unwrap();
    let archive = dir.path().join("rules-demo");
    ok(rampart()
        .arg("run")
        .arg("--source")
        .arg(&source)
        .arg("--archive")
        .arg(&archive)
        .arg("--rules-dir")
        .arg(&rules)
        .arg("--until-end"));
    let rows = query_json(
        &archive,
        "SELECT CAST(window_start AS BIGINT) AS ws, resource_id, workload, hit_count, action \
         FROM policy_hits WHERE rule_id = 'failed_admin_auth' ORDER BY window_start, resource_id",
    );
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            let ws = chrono::DateTime::from_timestamp_micros(r["ws"].as_i64().unwrap()).unwrap();
            format!(
                "{} {} {} {} {}",
                ws.format("%Y-%m-%dT%H:%M:%SZ"),
                r["resource_id"].as_str().unwrap(),
                r["workload"].as_str().unwrap(),
                r["hit_count"],
                r["action"].as_str().unwrap()
            )
        })
        .collect();
    let expected: Vec<&str> = expected.lines().collect();
    assert_eq!(
        got, expected,
        "docs/rules.md shows other hits than the run gives"
    );
}
