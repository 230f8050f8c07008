//! `sql/rules/attack_increase.sql`: per window, a resource's `brute_force` or `ddos`
//! count is at least 25% above the previous window's (`count * 4 >= prev * 5`), and the
//! previous window had at least 10 events.

use crate::*;

const RULE: &str = "attack_increase";

/// A hit of the rule in the window starting at `window`.
fn increase(window: &str, resource: &str, category: &str, count: i64, prev: i64, pct: f64) -> Hit {
    Hit {
        window_start: at(window),
        resource_id: resource.to_string(),
        category: Some(category.to_string()),
        hit_count: count,
        prev_count: Some(prev),
        increase_pct: Some(pct),
    }
}

/// `counts[i]` events of `category` on `resource` in the i-th window from 00:00 (a zero
/// is a window without any).
fn series(resource: &'static str, category: &'static str, counts: &[i64]) -> Vec<Ev> {
    let windows = ["00:00", "00:05", "00:10", "00:15", "00:20"];
    counts
        .iter()
        .zip(windows)
        .filter(|(n, _)| **n > 0)
        .flat_map(|(n, w)| burst(*n, w, ev(w, resource, "vm", category)))
        .collect()
}

#[tokio::test]
async fn attack_increase_table() {
    let table: Vec<Case> = vec![
        (
            "exactly 25% more fires",
            series("edge-fire", "brute_force", &[12, 15]),
            vec![increase("00:05", "edge-fire", "brute_force", 15, 12, 25.0)],
        ),
        (
            "just under 25% does not (14 * 4 < 12 * 5)",
            series("edge-miss", "brute_force", &[12, 14]),
            vec![],
        ),
        (
            "a baseline of 9 is too small, however large the rise",
            series("baseline-9", "ddos", &[9, 100]),
            vec![],
        ),
        (
            "a baseline of 10 is enough",
            series("baseline-10", "ddos", &[10, 13]),
            vec![increase("00:05", "baseline-10", "ddos", 13, 10, 30.0)],
        ),
        (
            "no previous window, no hit (also for the first window of the stream)",
            series("new", "brute_force", &[0, 50]),
            vec![],
        ),
        (
            "the window before the previous one does not count",
            series("gap", "brute_force", &[20, 0, 30]),
            vec![],
        ),
        (
            "each window against the one before it",
            series("chain", "brute_force", &[12, 15, 19, 19, 24]),
            vec![
                increase("00:05", "chain", "brute_force", 15, 12, 25.0),
                increase("00:10", "chain", "brute_force", 19, 15, 400.0 / 15.0),
                increase("00:20", "chain", "brute_force", 24, 19, 500.0 / 19.0),
            ],
        ),
        (
            "categories are compared separately",
            [
                series("per-category", "brute_force", &[10, 10]),
                series("per-category", "ddos", &[10, 20]),
            ]
            .concat(),
            vec![increase("00:05", "per-category", "ddos", 20, 10, 100.0)],
        ),
        (
            "brute_force and ddos are not added together (12 -> 25 in sum)",
            [
                series("no-sum", "brute_force", &[10, 5]),
                series("no-sum", "ddos", &[2, 20]),
            ]
            .concat(),
            vec![],
        ),
        (
            "other categories are not attacks",
            series("malware", "malware", &[12, 30]),
            vec![],
        ),
        (
            "a drop is no increase",
            series("drop", "ddos", &[30, 10]),
            vec![],
        ),
    ];

    check_table(RULE, table).await;
}

#[tokio::test]
async fn a_window_without_any_event_on_the_partition_is_no_baseline() {
    // The partition is silent from 00:05 to 00:10: the 00:10 window has no previous
    // window, though 00:00 had a baseline.
    let events = in_time_order(series("silent", "brute_force", &[20, 0, 30, 40]));
    let out = run(&events).await;
    assert_hits(
        &out,
        RULE,
        "silent 00:05",
        vec![increase(
            "00:15",
            "silent",
            "brute_force",
            40,
            30,
            100.0 / 3.0,
        )],
    );
}

#[tokio::test]
async fn thresholds_come_from_the_config() {
    let rules = RulesConfig {
        increase_pct: 50,
        min_baseline: 20,
        ..shipped_rules()
    };
    let events = in_time_order(
        [
            series("fifty", "ddos", &[20, 30]),
            series("forty-five", "ddos", &[20, 29]),
            series("small-base", "ddos", &[19, 100]),
        ]
        .concat(),
    );
    let out = run_with(&rules, &events).await;
    assert_hits(
        &out,
        RULE,
        "50% over 20",
        vec![increase("00:05", "fifty", "ddos", 30, 20, 50.0)],
    );
}
