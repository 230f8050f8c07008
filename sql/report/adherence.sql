-- Adherence per workload: the share of the workload's resources without a violation
-- open at $end. A workload's resources are those seen in the period's events with that
-- workload (a resource whose events name two workloads counts in both); resources whose
-- events name none form the row with a null workload. The last row (total = true)
-- counts every resource seen once.
WITH seen AS (
    SELECT resource_id, workload
    FROM events
    WHERE date BETWEEN $first_day AND $last_day
      AND ts >= $start AND ts < $end
    GROUP BY resource_id, workload
),
owned AS (
    SELECT resource_id, workload FROM seen WHERE workload IS NOT NULL
    UNION ALL
    SELECT resource_id, NULL AS workload FROM seen
    GROUP BY resource_id
    HAVING count(workload) = 0
),
open_at_end AS (
    -- The placeholder below stands for the whole query of open_violations.sql, in
    -- brackets: one definition of "open at the end" for both.
    SELECT DISTINCT resource_id FROM $open_violations AS open_violations
),
flagged AS (
    SELECT w.resource_id,
           w.workload,
           a.resource_id IS NOT NULL AS has_open
    FROM owned w
    LEFT JOIN open_at_end a ON a.resource_id = w.resource_id
)
SELECT workload,
       false AS total,
       count(*) AS resources,
       sum(CASE WHEN has_open THEN 0 ELSE 1 END) AS adherent
FROM flagged
GROUP BY workload
UNION ALL
SELECT NULL AS workload,
       true AS total,
       count(DISTINCT resource_id) AS resources,
       count(DISTINCT CASE WHEN has_open THEN NULL ELSE resource_id END) AS adherent
FROM flagged
ORDER BY total, workload NULLS LAST
