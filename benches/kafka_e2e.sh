#!/usr/bin/env bash
# End to end from Kafka: the same messages read from a Kafka topic and from a file, by
# the release binary, runs interleaved so that both see the same machine.
#
#   EVENTS=1000000 RUNS=3 benches/kafka_e2e.sh
#
# Starts the test broker (tansu) and S3 server with scripts/services.sh on 127.0.0.1,
# creates a 4-partition topic, produces EVENTS messages with `rampart gen --kafka`, then
# runs `rampart run --until-end` RUNS times over the topic (a new consumer group and a
# new archive each time) and over the same messages in a file. Prints each run's
# summary lines and the medians:
#   - "while reading": messages / time from the first message read to the end of the
#     run (a consumer group's join, about half a session timeout, is left out);
#   - "throughput": messages / the whole run;
#   - latencies (hdrhistogram): alert (window close to alert written), batch (read to
#     archive writer) and to-archive (read to committed in the archive).
# Then a live phase (LIVE_RATE messages/s produced while one member reads, for
# LIVE_SECONDS) scrapes rampart_kafka_consumer_lag every second and prints its maximum.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS="${EVENTS:-1000000}"
RUNS="${RUNS:-3}"
RULES="${RULES:-true}"
LIVE_RATE="${LIVE_RATE:-100000}"
LIVE_SECONDS="${LIVE_SECONDS:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rampart/target}"
cargo build --release --locked -p rampart-cli >&2
bin="$CARGO_TARGET_DIR/release/rampart"

source scripts/services.sh
services_up >&2
work="$(mktemp -d)"
trap 'services_down; rm -rf "$work"' EXIT
tansu="${RAMPART_SERVICES:-$HOME/.cache/rampart/services}/bin/tansu"
topic="bench-$$"
"$tansu" topic create "$topic" --broker "tcp://$RAMPART_TEST_KAFKA" --partitions 4 >&2
start=$(date +%s.%N)
if [ "$RUNS" -gt 0 ]; then
    "$bin" gen --events "$EVENTS" --seed 7 --kafka "$RAMPART_TEST_KAFKA/$topic" >&2
    echo "produced $EVENTS messages in $(echo "$(date +%s.%N) - $start" | bc) s" >&2
    "$bin" gen --events "$EVENTS" --seed 7 > "$work/in.jsonl"
fi

cat > "$work/rampart.toml" <<EOF
[kafka.rdkafka]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"
EOF
export RAMPART_RULES__ENABLED="$RULES" RAMPART_LOG=warn RAMPART_SINK__ROLL_INTERVAL=5s

pick() { # label, summary file -> the number after the label
    awk -v l="$1" 'index($0, l) { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $i; exit } }' "$2"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for i in $(seq 1 "$RUNS"); do
    "$bin" run --config "$work/rampart.toml" --until-end \
        --source "kafka://$RAMPART_TEST_KAFKA/$topic?group=bench-$i" \
        --archive "$work/kafka-$i" > "$work/kafka-$i.txt"
    "$bin" run --config "$work/rampart.toml" --until-end \
        --source "$work/in.jsonl" --archive "$work/file-$i" > "$work/file-$i.txt"
    for kind in kafka file; do
        echo "== run $i, $kind"
        grep -E "messages|throughput|while reading|latency|to archive" "$work/$kind-$i.txt"
    done
    rm -rf "$work/kafka-$i" "$work/file-$i"
done

if [ "$RUNS" -gt 0 ]; then
    echo "== medians over $RUNS runs ($EVENTS messages, rules $RULES)"
    k=$(for i in $(seq 1 "$RUNS"); do pick "while reading" "$work/kafka-$i.txt"; done | median)
    kw=$(for i in $(seq 1 "$RUNS"); do pick "throughput" "$work/kafka-$i.txt"; done | median)
    f=$(for i in $(seq 1 "$RUNS"); do pick "throughput" "$work/file-$i.txt"; done | median)
    echo "kafka, while reading: $k events/s"
    echo "kafka, whole run:     $kw events/s"
    echo "file, whole run:      $f events/s"
    echo "kafka / file:         $(echo "scale=2; $k / $f" | bc)"
fi

echo "== live: $LIVE_RATE messages/s produced for ${LIVE_SECONDS}s while one member reads"
live="live-$$"
"$tansu" topic create "$live" --broker "tcp://$RAMPART_TEST_KAFKA" --partitions 4 >&2
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" run --config "$work/rampart.toml" --metrics-addr "127.0.0.1:$port" \
    --source "kafka://$RAMPART_TEST_KAFKA/$live?group=live" \
    --archive "$work/live" > "$work/live.txt" &
member=$!
sleep 8 # the group join
"$bin" gen --events $((LIVE_RATE * LIVE_SECONDS)) --seed 8 --rate "$LIVE_RATE" \
    --kafka "$RAMPART_TEST_KAFKA/$live" 2>/dev/null &
producer=$!
max=0
while kill -0 "$producer" 2>/dev/null; do
    lag=$(curl -s "http://127.0.0.1:$port/metrics" |
        awk '/^rampart_kafka_consumer_lag\{/ { s += $NF } END { print s + 0 }')
    echo "consumer lag (all partitions): $lag"
    [ "$lag" -gt "$max" ] && max=$lag
    sleep 1
done
sleep 8
lag=$(curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^rampart_kafka_consumer_lag\{/ { s += $NF } END { print s + 0 }')
kill -TERM "$member"
wait "$member" || true
echo "max consumer lag while producing: $max messages; after the producer stopped: $lag"
grep -E "messages|throughput|while reading|latency|to archive" "$work/live.txt"
