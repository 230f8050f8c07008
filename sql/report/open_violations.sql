-- Violations still open at the end of the covered range: opened before $end, in this
-- period or any earlier one, and not resolved before $end. A violation is identified by
-- its resource, its rule and the event that opened it (`opened_by`); its resolution
-- row repeats all three. A resolution after $end does not count: the report shows the
-- range as it ended. The report computes each one's age as $end - opened_at.
SELECT o.resource_id,
       o.workload,
       o.rule_id,
       o.action,
       o.opened_at,
       o.opened_by
FROM violations o
WHERE o.date <= $last_day
  AND o.state = 'open'
  AND o.opened_at < $end
  AND NOT EXISTS (
        SELECT 1
        FROM violations r
        WHERE r.date <= $last_day
          AND r.state = 'resolved'
          AND r.resolved_at < $end
          AND r.resource_id = o.resource_id
          AND r.rule_id = o.rule_id
          AND r.opened_by = o.opened_by)
ORDER BY o.opened_at, o.resource_id, o.rule_id, o.opened_by
