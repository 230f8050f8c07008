#!/usr/bin/env bash
# The pipeline from Kafka, for a machine without Kafka: starts a Kafka-protocol broker
# (tansu, installed on first use by scripts/services.sh) on 127.0.0.1, creates a topic
# with 4 partitions, produces a synthetic stream into it keyed by resource, reads it
# with `rampart run --until-end` into ./archive-kafka, queries it and stops the broker.
#
#   scripts/kafka-demo.sh [EVENTS]        # default 200000
#
# With a broker of your own, skip this script: rampart gen --kafka HOST:PORT/TOPIC, then
# rampart run --source 'kafka://HOST:PORT/TOPIC?group=NAME'.
set -euo pipefail
cd "$(dirname "$0")/.."
events="${1:-200000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rampart/target}"

echo "== building rampart (release; the first build takes several minutes)"
cargo build --release --locked -p rampart-cli
rampart="$CARGO_TARGET_DIR/release/rampart"

if [ -d archive-kafka ] && [ ! -f archive-kafka/.rampart-demo ]; then
    echo "./archive-kafka exists and was not made by this demo; move it away first" >&2
    exit 1
fi
rm -rf archive-kafka
mkdir -p archive-kafka && touch archive-kafka/.rampart-demo

echo "== starting a broker on 127.0.0.1"
source scripts/services.sh
services_up
broker="$RAMPART_TEST_KAFKA"
topic="security-events"
"${RAMPART_SERVICES:-$HOME/.cache/rampart/services}/bin/tansu" topic create "$topic" \
    --broker "tcp://$broker" --partitions 4

echo "== rampart gen --kafka $broker/$topic ($events messages, keyed by resource)"
"$rampart" gen --events "$events" --kafka "$broker/$topic"

echo "== rampart run --source kafka://$broker/$topic?group=demo --until-end"
# The demo broker waits about half a session timeout for members to join: keep it short.
config="$(mktemp)"
printf '[kafka.rdkafka]\n"session.timeout.ms" = "6000"\n' > "$config"
"$rampart" run --config "$config" --source "kafka://$broker/$topic?group=demo" \
    --archive archive-kafka --until-end
rm -f "$config"

echo "== events per Kafka partition"
"$rampart" query --archive archive-kafka \
    "SELECT kafka_partition, count(*) AS events, count(DISTINCT resource_id) AS resources,
            min(kafka_offset) AS first_offset, max(kafka_offset) AS last_offset
     FROM events GROUP BY kafka_partition ORDER BY kafka_partition"
echo "== policy hits per rule"
"$rampart" query --archive archive-kafka \
    "SELECT rule_id, action, sum(hit_count) AS hits FROM policy_hits GROUP BY rule_id, action ORDER BY rule_id"
echo "== rampart verify"
"$rampart" verify --archive archive-kafka
