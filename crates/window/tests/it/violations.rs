//! Violations (spec §3): `unclassified_data` and `security_health` open one on a resource
//! at the first on-time hit; a remedy (any event, late or not, not from before the
//! opening) resolves it.

use rampart_window::ViolationState;

use crate::*;

fn opened(
    at_: &str,
    resource: &str,
    rule: &str,
    workload: Option<&str>,
    line: i64,
) -> ViolationChange {
    ViolationChange {
        changed_at: at(at_),
        resource_id: resource.into(),
        workload: workload.map(Into::into),
        rule_id: rule.into(),
        rule_version: 1,
        action: action(rule).into(),
        state: ViolationState::Open,
        opened_at: at(at_),
        resolved_at: None,
        opened_by: format!("file:{FILE}:{line}"),
        resolved_by: None,
    }
}

fn resolved(open: &ViolationChange, at_: &str, line: i64) -> ViolationChange {
    ViolationChange {
        changed_at: at(at_),
        state: ViolationState::Resolved,
        resolved_at: Some(at(at_)),
        resolved_by: Some(format!("file:{FILE}:{line}")),
        ..open.clone()
    }
}

/// Lines 1.. of a stream that opens, keeps, resolves and reopens violations.
fn lifecycle() -> Vec<Ev> {
    vec![
        // 1: opens
        ev("00:01", "st-1", "storage", "data_access").workload("payments"),
        // 2: a second hit does not reopen
        ev("00:02", "st-1", "storage", "data_access"),
        // 3: classified as "" is no remedy
        ev("00:03", "st-1", "storage", "classification_change").classification(""),
        // 4: resolves
        ev("00:04", "st-1", "storage", "classification_change").classification("internal"),
        // 5: opens
        ev("00:04:30", "st-2", "storage", "data_access"),
        // 6: moves the watermark to 00:11: the windows before 00:10 are closed
        ev("00:12", "vm-0", "vm", "auth"),
        // 7: a late remedy still resolves
        ev("00:06", "st-2", "storage", "classification_change").classification("public"),
        // 8: a late hit opens nothing
        ev("00:07", "db-3", "database", "data_access"),
        // 9: st-1 is unclassified again: a new violation
        ev("00:12:30", "st-1", "storage", "data_access"),
        // 10: a remedy with nothing open changes nothing
        ev("00:12:40", "st-4", "storage", "classification_change").classification("public"),
        // 11: opens
        ev("00:13", "vm-1", "vm", "malware").workload("web"),
        // 12: a failed patch is no remedy
        ev("00:13:30", "vm-1", "vm", "patch").patched(false),
        // 13: a vulnerability while open: no change
        ev("00:13:40", "vm-1", "vm", "vulnerability"),
        // 14: resolves
        ev("00:14", "vm-1", "vm", "patch").patched(true),
    ]
}

fn expected_lifecycle() -> Vec<ViolationChange> {
    let st1 = opened("00:01", "st-1", "unclassified_data", Some("payments"), 1);
    let st2 = opened("00:04:30", "st-2", "unclassified_data", None, 5);
    let vm1 = opened("00:13", "vm-1", "security_health", Some("web"), 11);
    vec![
        st1.clone(),
        resolved(&st1, "00:04", 4),
        st2.clone(),
        resolved(&st2, "00:06", 7),
        opened("00:12:30", "st-1", "unclassified_data", None, 9),
        vm1.clone(),
        resolved(&vm1, "00:14", 14),
    ]
}

#[tokio::test]
async fn violations_open_once_and_remedies_resolve_them_late_or_not() {
    let events = lifecycle();

    let mut h = Harness::new().await;
    let mut out = h.feed(0, &events).await;
    out.extend(h.close_all().await);
    assert_eq!(out.late, 2, "lines 7 and 8 are late");
    assert_eq!(out.violations, expected_lifecycle(), "one batch");
    assert_eq!(h.engine.open_violations(), 1, "st-1, opened by line 9");
    assert!(
        !out.policy_hits.iter().any(|p| &*p.resource_id == "db-3"),
        "a late event is no hit"
    );

    // Event by event: the same changes in the same order.
    let mut h = Harness::new().await;
    let mut out = Outputs::default();
    for e in &events {
        out.extend(h.feed(0, std::slice::from_ref(e)).await);
    }
    out.extend(h.close_all().await);
    assert_eq!(out.violations, expected_lifecycle(), "one event per batch");
}

#[tokio::test]
async fn a_remedy_before_the_hit_in_the_same_batch_does_not_resolve_it() {
    let mut h = Harness::new().await;
    let out = h
        .feed(
            0,
            &[
                ev("00:01", "st-1", "storage", "classification_change").classification("public"),
                ev("00:02", "st-1", "storage", "data_access"),
            ],
        )
        .await;
    assert_eq!(
        out.violations,
        [opened("00:02", "st-1", "unclassified_data", None, 2)]
    );
}

#[tokio::test]
async fn violations_open_in_a_previous_run_are_honoured() {
    let previous = |resource: &str, rule: &str, line: i64| ViolationChange {
        changed_at: at("00:00") - 24 * 60 * MINUTE,
        opened_at: at("00:00") - 24 * 60 * MINUTE,
        opened_by: format!("file:old.jsonl:{line}"),
        workload: Some("legacy".into()),
        ..opened("00:00", resource, rule, None, 0)
    };
    let st = previous("st-old", "unclassified_data", 7);
    let vm = previous("vm-old", "security_health", 8);
    let mut h = Harness::with(
        &window_config(),
        &shipped_rules(),
        vec![st.clone(), vm.clone()],
    )
    .await;
    assert_eq!(h.engine.open_violations(), 2);

    let mut out = h
        .feed(
            0,
            &[
                // 1: a hit for an open violation does not reopen it
                ev("00:01", "st-old", "storage", "data_access"),
                // 2: a remedy resolves the violation opened in the previous run
                ev("00:02", "st-old", "storage", "classification_change")
                    .classification("restricted"),
                // 3: a hit for the other one: still open, not reopened
                ev("00:03", "vm-old", "vm", "malware"),
            ],
        )
        .await;
    out.extend(h.close_all().await);
    assert_eq!(out.violations, [resolved(&st, "00:02", 2)]);
    assert_hits(
        &out,
        "unclassified_data",
        "hits still count",
        vec![hit("00:00", "st-old", 1)],
    );
    assert_eq!(h.engine.open_violations(), 1, "vm-old stays open");
}

#[tokio::test]
async fn a_late_remedy_from_before_the_opening_does_not_resolve_it() {
    let mut h = Harness::new().await;
    let mut out = h
        .feed(
            0,
            &[
                // 1: opens at 00:05
                ev("00:05", "vm-1", "vm", "malware"),
                // 2: moves the watermark past the first windows
                ev("00:20", "vm-0", "vm", "auth"),
                // 3: a late patch from 00:01: before the malware was found, no remedy
                ev("00:01", "vm-1", "vm", "patch").patched(true),
                // 4: a late patch from 00:06: after it, resolves
                ev("00:06", "vm-1", "vm", "patch").patched(true),
            ],
        )
        .await;
    out.extend(h.close_all().await);
    assert_eq!(out.late, 2);
    let vm1 = opened("00:05", "vm-1", "security_health", None, 1);
    assert_eq!(out.violations, [vm1.clone(), resolved(&vm1, "00:06", 4)]);
}
