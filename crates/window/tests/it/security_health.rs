//! `sql/rules/security_health.sql`: a `malware` or `vulnerability` event on a `vm` whose
//! `patched` is not `true` (absent, null or false).

use crate::*;

const RULE: &str = "security_health";

#[tokio::test]
async fn security_health_table() {
    let table: Vec<Case> = vec![
        (
            "malware, patched absent (or null)",
            vec![ev("00:01", "vm-absent", "vm", "malware")],
            vec![hit("00:00", "vm-absent", 1)],
        ),
        (
            "vulnerability, patched false",
            vec![ev("00:01", "vm-false", "vm", "vulnerability").patched(false)],
            vec![hit("00:00", "vm-false", 1)],
        ),
        (
            "malware, patched false",
            vec![ev("00:01", "vm-malware-false", "vm", "malware").patched(false)],
            vec![hit("00:00", "vm-malware-false", 1)],
        ),
        (
            "vulnerability, patched true",
            vec![ev("00:01", "vm-true", "vm", "vulnerability").patched(true)],
            vec![],
        ),
        (
            "malware, patched true",
            vec![ev("00:01", "vm-malware-true", "vm", "malware").patched(true)],
            vec![],
        ),
        (
            "a patch event is no hit, patched or not",
            vec![
                ev("00:01", "vm-patch", "vm", "patch").patched(false),
                ev("00:02", "vm-patch", "vm", "patch"),
                ev("00:03", "vm-patch", "vm", "patch").patched(true),
            ],
            vec![],
        ),
        (
            "an app is not a vm",
            vec![ev("00:01", "app-malware", "app", "malware").patched(false)],
            vec![],
        ),
        (
            "storage is not a vm",
            vec![ev("00:01", "st-vuln", "storage", "vulnerability")],
            vec![],
        ),
        (
            "other categories on a vm",
            vec![
                ev("00:01", "vm-other", "vm", "brute_force").patched(false),
                ev("00:02", "vm-other", "vm", "network_access"),
            ],
            vec![],
        ),
        (
            "hits are counted per window",
            vec![
                ev("00:06", "vm-many", "vm", "malware"),
                ev("00:07", "vm-many", "vm", "vulnerability").patched(false),
                ev("00:08", "vm-many", "vm", "vulnerability").patched(true),
                ev("00:09", "vm-many", "vm", "malware").patched(false),
                ev("00:16", "vm-many", "vm", "vulnerability"),
            ],
            vec![hit("00:05", "vm-many", 3), hit("00:15", "vm-many", 1)],
        ),
    ];
    check_table(RULE, table).await;
}
