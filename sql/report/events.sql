-- Events archived for the period, by event time, and the resources they are about.
--
-- Every report query covers [$start, $end): the period, or, for a period that had not
-- ended when the report was made, up to that moment. `rampart report` replaces
-- $start and $end with TIMESTAMP literals (UTC), $first_day and $last_day with the
-- DATE literals of their UTC days (the `date` filter only skips folders: each table's
-- `date` is the UTC date of the column the time filter is on), and $top with a number.
SELECT count(*) AS events,
       count(DISTINCT resource_id) AS resources
FROM events
WHERE date BETWEEN $first_day AND $last_day
  AND ts >= $start AND ts < $end
