-- id: attack_increase
-- version: 1
-- kind: window
-- action: notify_security_and_owner
-- description: Brute-force or DDoS events on a resource rose by increase-pct (25%) or more over the previous window, from a baseline of at least min-baseline events.
--
-- A window rule: it runs once per closing window over
--   attack_counts       (window_start, window_end, resource_id, category, workload, event_count)
--   prev_attack_counts  (window_start, resource_id, category, event_count)
-- where prev_attack_counts holds, for each closing window, the counts of the window
-- just before it (window_start is the closing window's start, for the join).
-- $increase_pct and $min_baseline come from [rules] in the pipeline file.
-- Integer arithmetic: with 25%, count * 100 >= prev * 125 is count * 4 >= prev * 5.
SELECT
    c.window_start,
    c.resource_id,
    c.category,
    c.workload,
    c.event_count AS hit_count,
    p.event_count AS prev_count
FROM attack_counts c
JOIN prev_attack_counts p
  ON c.window_start = p.window_start
 AND c.resource_id = p.resource_id
 AND c.category = p.category
WHERE c.event_count * 100 >= p.event_count * (100 + $increase_pct)
  AND p.event_count >= $min_baseline
