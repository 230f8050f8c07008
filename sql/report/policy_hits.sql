-- Policy hits per rule and workload: windows that started in the period.
-- `hits` is the sum of the hit counts (events, or for attack_increase the window's
-- attack count), `windows` the (window, resource) rows, `resources` the distinct
-- resources hit. A null workload is a hit on events that named none.
SELECT rule_id,
       workload,
       sum(hit_count) AS hits,
       count(*) AS windows,
       count(DISTINCT resource_id) AS resources
FROM policy_hits
WHERE date BETWEEN $first_day AND $last_day
  AND window_start >= $start AND window_start < $end
GROUP BY rule_id, workload
ORDER BY rule_id, workload NULLS LAST
