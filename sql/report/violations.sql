-- Violations opened and resolved in the period, per rule and workload. A violation
-- changes state at the event time of the opening hit (`state = 'open'`) and of the
-- remedy (`state = 'resolved'`), which is `changed_at`.
SELECT rule_id,
       workload,
       sum(CASE WHEN state = 'open' THEN 1 ELSE 0 END) AS opened,
       sum(CASE WHEN state = 'resolved' THEN 1 ELSE 0 END) AS resolved
FROM violations
WHERE date BETWEEN $first_day AND $last_day
  AND changed_at >= $start AND changed_at < $end
GROUP BY rule_id, workload
ORDER BY rule_id, workload NULLS LAST
