# Rampart, built the way scripts/test.sh and benches/compare_duckdb.sh build it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p rampart-cli

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/rampart /usr/local/bin/rampart
COPY pipelines /opt/rampart/pipelines
COPY fixtures /opt/rampart/fixtures
COPY sql /opt/rampart/sql
WORKDIR /opt/rampart
ENTRYPOINT ["rampart"]
CMD ["run", "--config", "pipelines/demo.toml", "--archive", "/archive"]
