-- Per UTC day of the period: policy hits (sum of hit counts), violations opened and
-- resolved, and attack events (brute force and DDoS, from attack_rates). Days without
-- any are left out here; the report shows them as zero.
SELECT day,
       sum(hits) AS policy_hits,
       sum(opened) AS violations_opened,
       sum(resolved) AS violations_resolved,
       sum(attack_events) AS attack_events
FROM (
    SELECT date AS day, hit_count AS hits, 0 AS opened, 0 AS resolved, 0 AS attack_events
    FROM policy_hits
    WHERE date BETWEEN $first_day AND $last_day
      AND window_start >= $start AND window_start < $end
    UNION ALL
    SELECT date AS day, 0 AS hits,
           CASE WHEN state = 'open' THEN 1 ELSE 0 END AS opened,
           CASE WHEN state = 'resolved' THEN 1 ELSE 0 END AS resolved,
           0 AS attack_events
    FROM violations
    WHERE date BETWEEN $first_day AND $last_day
      AND changed_at >= $start AND changed_at < $end
    UNION ALL
    SELECT date AS day, 0 AS hits, 0 AS opened, 0 AS resolved, event_count AS attack_events
    FROM attack_rates
    WHERE date BETWEEN $first_day AND $last_day
      AND window_start >= $start AND window_start < $end
) AS per_table
GROUP BY day
ORDER BY day
