-- Dead letters by reason: messages received in the period (dead letters are
-- partitioned by the time Rampart received them: a malformed message may have no
-- event time) and their size in bytes as received (DataFusion measures text, not
-- binary: the hex rendering has two characters per byte).
SELECT reason_code,
       count(*) AS messages,
       sum(octet_length(encode(raw, 'hex')) / 2) AS bytes
FROM dead_letters
WHERE date BETWEEN $first_day AND $last_day
  AND received_at >= $start AND received_at < $end
GROUP BY reason_code
ORDER BY messages DESC, reason_code
