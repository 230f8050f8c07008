//! `sql/rules/unclassified_data.sql`: an event on a `storage` or `database` resource
//! whose classification is null, absent or `""`.
//!
//! In a batch, a JSON `null` and an absent field are the same null value; `""` is kept.

use crate::*;

const RULE: &str = "unclassified_data";

#[tokio::test]
async fn unclassified_data_table() {
    let table: Vec<Case> = vec![
        (
            "storage without a classification (absent or null)",
            vec![ev("00:01", "st-none", "storage", "data_access")],
            vec![hit("00:00", "st-none", 1)],
        ),
        (
            "database with an empty classification",
            vec![ev("00:01", "db-empty", "database", "data_access").classification("")],
            vec![hit("00:00", "db-empty", 1)],
        ),
        (
            "storage classified internal",
            vec![ev("00:01", "st-internal", "storage", "data_access").classification("internal")],
            vec![],
        ),
        (
            "database classified public",
            vec![ev("00:01", "db-public", "database", "data_access").classification("public")],
            vec![],
        ),
        (
            "a vm is no data source",
            vec![ev("00:01", "vm-none", "vm", "data_access")],
            vec![],
        ),
        (
            "a network is no data source",
            vec![ev("00:01", "net-none", "network", "network_access").classification("")],
            vec![],
        ),
        (
            "an app is no data source",
            vec![ev("00:01", "app-none", "app", "data_access")],
            vec![],
        ),
        (
            "any category counts, hits are counted per window",
            [
                burst(3, "00:00", ev("00:00", "st-many", "storage", "brute_force")),
                burst(2, "00:10", ev("00:10", "st-many", "storage", "malware")),
            ]
            .concat(),
            vec![hit("00:00", "st-many", 3), hit("00:10", "st-many", 2)],
        ),
        (
            "only the unclassified events of a resource are hits",
            vec![
                ev("00:06", "db-mixed", "database", "data_access"),
                ev("00:07", "db-mixed", "database", "data_access").classification("restricted"),
                ev("00:08", "db-mixed", "database", "data_access").classification(""),
            ],
            vec![hit("00:05", "db-mixed", 2)],
        ),
        (
            "a classification change to \"\" is itself unclassified",
            vec![ev("00:02", "st-change", "storage", "classification_change").classification("")],
            vec![hit("00:00", "st-change", 1)],
        ),
        (
            "a classification change to confidential is not",
            vec![
                ev("00:02", "db-change", "database", "classification_change")
                    .classification("confidential"),
            ],
            vec![],
        ),
    ];
    check_table(RULE, table).await;
}
