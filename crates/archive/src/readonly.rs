//! The read-only gate: which statements `rampart query` runs.

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::Statement as SqlStatement;

use crate::{Error, Result};

/// Parses `sql` and accepts it only when it is exactly one read-only statement.
///
/// A whitelist, not a blacklist: queries, `EXPLAIN` of a query, `SHOW TABLES` and
/// `SHOW COLUMNS`. Everything else (`CREATE`, `INSERT`, `COPY`, `DROP`, `DELETE`,
/// `UPDATE`, `SET`, ...) is refused before planning.
pub fn check_read_only(sql: &str) -> Result<()> {
    let statements = DFParser::parse_sql(sql).map_err(|source| Error::Query { source })?;
    if statements.len() != 1 {
        return Err(Error::MultipleStatements {
            count: statements.len(),
        });
    }
    if is_read(&statements[0]) {
        Ok(())
    } else {
        Err(Error::ReadOnly {
            statement: first_words(sql),
        })
    }
}

fn is_read(statement: &DfStatement) -> bool {
    match statement {
        DfStatement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_)
            | SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. } => true,
            SqlStatement::Explain { statement, .. } => {
                matches!(statement.as_ref(), SqlStatement::Query(_))
            }
            _ => false,
        },
        DfStatement::Explain(e) => is_read(&e.statement),
        DfStatement::CreateExternalTable(_) | DfStatement::CopyTo(_) | DfStatement::Reset(_) => {
            false
        }
    }
}

fn first_words(sql: &str) -> String {
    let words: Vec<&str> = sql.split_whitespace().take(3).collect();
    let mut s = words.join(" ");
    if sql.split_whitespace().count() > 3 {
        s.push_str(" ...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "select count(*) from events where date = '2026-11-01'",
            "WITH x AS (SELECT 1 AS a) SELECT a FROM x",
            "EXPLAIN SELECT * FROM events",
            "EXPLAIN ANALYZE SELECT 1",
            "SHOW TABLES",
            "SHOW COLUMNS FROM events",
        ] {
            check_read_only(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn writes_are_refused() {
        for sql in [
            "CREATE TABLE t AS SELECT 1",
            "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/tmp/x'",
            "CREATE VIEW v AS SELECT 1",
            "INSERT INTO events SELECT * FROM events",
            "COPY (SELECT 1) TO '/tmp/out.parquet'",
            "COPY events TO '/tmp/out.csv'",
            "DROP TABLE events",
            "DELETE FROM events",
            "UPDATE events SET category = 'x'",
            "SET datafusion.execution.batch_size = 1",
            "EXPLAIN INSERT INTO events SELECT * FROM events",
            "EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'",
        ] {
            match check_read_only(sql) {
                Err(Error::ReadOnly { statement }) => {
                    assert!(sql.starts_with(statement.trim_end_matches(" ...")), "{sql}")
                }
                Err(e) => {
                    // Statements the parser does not know are refused as parse errors.
                    assert!(matches!(e, Error::Query { .. }), "{sql}: {e}");
                }
                Ok(()) => panic!("{sql} was accepted"),
            }
        }
    }

    #[test]
    fn several_statements_are_refused() {
        assert!(matches!(
            check_read_only("SELECT 1; DROP TABLE events"),
            Err(Error::MultipleStatements { count: 2 })
        ));
    }
}
