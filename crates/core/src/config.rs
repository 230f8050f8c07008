//! Pipeline configuration, as read from `pipelines/*.toml`.
//!
//! One precedence is resolved at the edge: built-in defaults, then the file, then
//! `RAMPART_SECTION__KEY` environment variables ([`Config::load`]), then the CLI's flags;
//! the result goes to the library crates as `&Config`. Durations are written as `"30s"`,
//! sizes as `"1 MiB"`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytesize::ByteSize;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The configuration `figment` holds, or every problem with it, one message each.
fn extract(figment: Figment, origin: String) -> Result<Config> {
    figment.extract().map_err(|e| Error::ConfigLoad {
        origin,
        messages: e.into_iter().map(|err| err.to_string()).collect(),
    })
}

/// The whole configuration of one pipeline.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct Config {
    /// Where events come from.
    pub source: SourceConfig,
    /// The shape of the incoming events.
    pub input: InputConfig,
    /// Where the archive is written and read.
    pub archive: ArchiveConfig,
    /// How messages are decoded and when they are rejected.
    pub decode: DecodeConfig,
    /// How archive files are written and rolled.
    pub sink: SinkConfig,
    /// Queues between the stages.
    pub pipeline: PipelineConfig,
    /// Event-time windows.
    pub window: WindowConfig,
    /// The governance rules.
    pub rules: RulesConfig,
    /// Where alerts (policy hits and violation changes) go.
    pub alerts: AlertsConfig,
    /// How long each table is kept.
    pub retention: RetentionConfig,
    /// Rewriting the small files of closed hours into few large ones.
    pub compact: CompactConfig,
    /// The Kafka source's consumer settings and the topics alerts and dead letters go to.
    pub kafka: KafkaConfig,
    /// The Prometheus metrics and health endpoint of `rampart run`.
    pub metrics: MetricsConfig,
    /// Bounds on SQL over the archive (`rampart query`, `report`, `export`, holds).
    pub query: QueryConfig,
}

/// `[query]`: every statement over the archive runs within these bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct QueryConfig {
    /// Memory one statement may hold (sorts and aggregates spill to disk first); a
    /// statement that needs more fails with an error naming this key. `0 B`: no limit.
    pub memory_limit: ByteSize,
    /// Wall-clock time one statement may run before it is stopped.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            // Off by default: DataFusion 55 reserves far more than it uses for some
            // aggregates (`count(DISTINCT (a, b))` reserved over 1 GiB for 20,000 rows).
            memory_limit: ByteSize::b(0),
            timeout: Duration::from_secs(600),
        }
    }
}

/// `[metrics]`: `rampart run` serves Prometheus metrics at `/metrics` and its health at
/// `/healthz` on `addr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:PORT` to listen on, e.g. `127.0.0.1:9464` or `0.0.0.0:9464`; empty (the
    /// default) serves nothing. Overridden by `rampart run --metrics-addr`.
    pub addr: String,
    /// `/healthz` answers 503 once a stage has held one batch this long without
    /// finishing it.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            addr: String::new(),
            stall_timeout: Duration::from_secs(60),
        }
    }
}

impl MetricsConfig {
    /// The address to serve on, `None` when metrics are off. An address that is not
    /// `IP:PORT` is refused with the key's name.
    pub fn socket_addr(&self) -> Result<Option<std::net::SocketAddr>> {
        let addr = self.addr.trim();
        if addr.is_empty() {
            return Ok(None);
        }
        addr.parse().map(Some).map_err(|_| Error::Config {
            key: "metrics.addr".into(),
            message: format!(
                "`{addr}` is not IP:PORT; write e.g. 127.0.0.1:9464, 0.0.0.0:9464 or [::1]:9464, \
                 or leave it empty to serve no metrics"
            ),
        })
    }
}

/// `[kafka]`: settings of a `kafka://` source, and the topics that alerts and dead
/// letters are produced to. Its `Debug` form hides the values of librdkafka settings
/// that hold secrets (passwords, keys, tokens).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// The consumer group when the source URL names none (`?group=NAME`).
    pub group: String,
    /// Most records taken into one decode batch.
    pub batch_records: usize,
    /// librdkafka settings passed as they are (`security.protocol`, `sasl.*`, `ssl.*`,
    /// `session.timeout.ms`, ...), to the consumer and to the producer of the alert and
    /// dead-letter topics. Rampart sets `enable.auto.commit`, `enable.auto.offset.store`
    /// and `enable.partition.eof` (consumer), `enable.idempotence` and `acks`
    /// (producer) itself, after these.
    pub rdkafka: BTreeMap<String, String>,
    /// Topic that every alert (policy hit, violation change) is produced to as JSON,
    /// keyed by `resource_id`; empty for none.
    pub alerts_topic: String,
    /// Topic that every dead letter is produced to as JSON, keyed by the resource when
    /// the message names one; empty for none.
    pub dead_letter_topic: String,
    /// Brokers of the alert and dead-letter topics, `HOST:PORT[,HOST:PORT...]`; empty
    /// means those of the `kafka://` source. Required when the source is a file and a
    /// topic is set.
    pub brokers: String,
}

impl KafkaConfig {
    /// Whether alerts or dead letters go to a topic.
    pub fn produces(&self) -> bool {
        !self.alerts_topic.is_empty() || !self.dead_letter_topic.is_empty()
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secret = |k: &str| {
            ["password", "secret", "key", "token", "jaas", "oauthbearer"]
                .iter()
                .any(|w| k.contains(w))
        };
        let rdkafka: BTreeMap<&str, &str> = self
            .rdkafka
            .iter()
            .map(|(k, v)| {
                let v = if secret(k) { "<hidden>" } else { v.as_str() };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("group", &self.group)
            .field("batch_records", &self.batch_records)
            .field("rdkafka", &rdkafka)
            .field("alerts_topic", &self.alerts_topic)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("brokers", &self.brokers)
            .finish()
    }
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            group: "rampart".to_string(),
            batch_records: 10_000,
            rdkafka: BTreeMap::new(),
            alerts_topic: String::new(),
            dead_letter_topic: String::new(),
            brokers: String::new(),
        }
    }
}

/// `[source]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SourceConfig {
    /// The source: a JSON-lines file (`file:///abs/path.jsonl` or a plain path), or `-`
    /// for standard input. Overridden by `rampart run --source`.
    pub url: Option<String>,
    /// How many bytes the file source reads at a time; one read becomes one decode batch.
    pub read_chunk: ByteSize,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            url: None,
            read_chunk: ByteSize::mib(4),
        }
    }
}

/// `[input]`: the shape of the incoming events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct InputConfig {
    /// The schema the events are written in: `native` (the contract's own field names,
    /// the default), `ecs` (Elastic Common Schema) or `ocsf` (Open Cybersecurity Schema
    /// Framework), mapped onto the contract by the tables in the README.
    pub preset: Preset,
}

/// A schema whose field paths are mapped onto the event contract (`[input] preset`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The contract's own field names: no mapping.
    #[default]
    Native,
    /// Elastic Common Schema.
    Ecs,
    /// Open Cybersecurity Schema Framework.
    Ocsf,
}

impl Preset {
    /// Every preset, in the order the docs list them.
    pub const ALL: [Preset; 3] = [Preset::Native, Preset::Ecs, Preset::Ocsf];

    /// The name written in the pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::Ecs => "ecs",
            Self::Ocsf => "ocsf",
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Preset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::Config {
                key: "input.preset".into(),
                message: format!("{s:?} is not a preset; accepted: native, ecs, ocsf"),
            })
    }
}

// By hand rather than derived, so that an unknown value is refused naming the key and
// every accepted value, whichever layer (file or environment) it came from.
impl<'de> Deserialize<'de> for Preset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// `[archive]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// The archive location: a directory or `file:///dir` (the default, `./archive`),
    /// `s3://bucket/prefix`, `gs://bucket/prefix` or `az://container/prefix`.
    /// Overridden by `--archive`.
    pub url: String,
    /// Options passed to the object store as they are, for example `aws_endpoint`,
    /// `aws_allow_http`, `aws_region`. Credentials are better left to the provider's
    /// usual environment variables.
    pub options: BTreeMap<String, String>,
    /// A data file that no manifest lists (left by a crash) is deleted once it is this
    /// old. Younger ones may belong to a writer that has not committed yet.
    #[serde(with = "humantime_serde")]
    pub orphan_grace: Duration,
    /// How long one request to a cloud store (S3, GCS, Azure) is retried, with backoff,
    /// while the store is unreachable or answers with a server error, before the run
    /// fails. Meanwhile the pipeline waits: its queues fill and reading stops. Every
    /// failed attempt is logged as a warning.
    #[serde(with = "humantime_serde")]
    pub retry_timeout: Duration,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self {
            url: "./archive".to_string(),
            options: BTreeMap::new(),
            orphan_grace: Duration::from_secs(3600),
            retry_timeout: crate::store::DEFAULT_RETRY_TIMEOUT,
        }
    }
}

impl ArchiveConfig {
    /// Opens the archive at `url` (this config's `url`, or one given on the command
    /// line) with this config's options and retry timeout.
    pub fn open(&self, url: &str) -> crate::Result<crate::store::Location> {
        crate::store::open_with_retry(url, self.options.clone(), self.retry_timeout)
    }
}

/// `[retention]`: how long each table's files are kept, counted from the end of the
/// file's hour. The period is recorded with every file when it is written; changing it
/// later does not shorten what is already archived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Accepted events (default 400 days).
    #[serde(with = "humantime_serde")]
    pub events: Duration,
    /// Dead letters, by the time they were received (default 400 days).
    #[serde(with = "humantime_serde")]
    pub dead_letters: Duration,
    /// Attack rates per window (default 400 days).
    #[serde(with = "humantime_serde")]
    pub attack_rates: Duration,
    /// Policy hits (default 7 years).
    #[serde(with = "humantime_serde")]
    pub policy_hits: Duration,
    /// Violation changes (default 7 years).
    #[serde(with = "humantime_serde")]
    pub violations: Duration,
    /// The access log of queries, exports and reports (default 7 years).
    #[serde(with = "humantime_serde")]
    pub access_log: Duration,
    /// Audit reports stored by `rampart report`, counted from the end of the hour they
    /// were made in (default 7 years).
    #[serde(with = "humantime_serde")]
    pub reports: Duration,
    /// No period may be shorter than this unless `--allow-short-retention` is given.
    #[serde(with = "humantime_serde")]
    pub floor: Duration,
}

const DAY: u64 = 86_400;

impl Default for RetentionConfig {
    fn default() -> Self {
        let days = |n: u64| Duration::from_secs(n * DAY);
        Self {
            events: days(400),
            dead_letters: days(400),
            attack_rates: days(400),
            policy_hits: days(7 * 365 + 2),
            violations: days(7 * 365 + 2),
            access_log: days(7 * 365 + 2),
            reports: days(7 * 365 + 2),
            floor: days(365),
        }
    }
}

/// A period as people write it: whole days as `400d`, anything else as humantime
/// writes it (`1h 30m`). Both read back with `humantime::parse_duration`.
pub fn format_period(d: Duration) -> String {
    let secs = d.as_secs();
    if secs > 0 && secs.is_multiple_of(DAY) && d.subsec_nanos() == 0 {
        format!("{}d", secs / DAY)
    } else {
        humantime::format_duration(d).to_string()
    }
}

impl RetentionConfig {
    /// The retention period of `table` (or of the stored reports,
    /// [`crate::layout::REPORTS`]); `None` for a table this config does not know.
    pub fn period(&self, table: &str) -> Option<Duration> {
        Some(match table {
            crate::schema::EVENTS => self.events,
            crate::schema::DEAD_LETTERS => self.dead_letters,
            crate::schema::ATTACK_RATES => self.attack_rates,
            crate::schema::POLICY_HITS => self.policy_hits,
            crate::schema::VIOLATIONS => self.violations,
            crate::schema::ACCESS_LOG => self.access_log,
            crate::layout::REPORTS => self.reports,
            _ => return None,
        })
    }

    /// Refuses a period below the floor unless `allow_short` (the operator's
    /// `--allow-short-retention`) says it is meant.
    pub fn check_floor(&self, allow_short: bool) -> Result<()> {
        if allow_short {
            return Ok(());
        }
        for name in crate::layout::committed_folders() {
            let Some(period) = self.period(name) else {
                continue;
            };
            if period < self.floor {
                return Err(Error::Config {
                    key: format!("retention.{}", name.replace('_', "-")),
                    message: format!(
                        "{} is below the retention floor of {} (retention.floor); \
                         if a shorter period is really meant, pass --allow-short-retention",
                        format_period(period),
                        format_period(self.floor)
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `[decode]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// A message larger than this is dead-lettered as `too_large`.
    pub max_message_bytes: ByteSize,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: ByteSize::mib(1),
        }
    }
}

/// `[sink]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SinkConfig {
    /// A data file is closed once it holds this many rows.
    pub max_file_rows: u64,
    /// A data file is closed once it reaches about this size.
    pub max_file_bytes: ByteSize,
    /// A data file is closed at the latest this long after it was opened, so data becomes
    /// visible in the archive even when a partition fills slowly.
    #[serde(with = "humantime_serde")]
    pub roll_interval: Duration,
    /// At most this many files are open at once (one per table and hour); opening one
    /// more closes the oldest.
    pub max_open_files: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// zstd compression level, 1 (fast) to 22 (small).
    pub zstd_level: i32,
}

impl Default for SinkConfig {
    fn default() -> Self {
        Self {
            max_file_rows: 2_000_000,
            max_file_bytes: ByteSize::mib(256),
            roll_interval: Duration::from_secs(60),
            max_open_files: 32,
            row_group_rows: 128 * 1024,
            zstd_level: 3,
        }
    }
}

/// `[pipeline]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Batches each queue between two stages holds before the upstream stage waits. A
    /// batch is up to a `source.read-chunk` of input, so the three queues hold up to
    /// about three times this many chunks (4 by default; 8 took about twice the memory
    /// at the same throughput, see docs/performance.md).
    pub channel_capacity: usize,
    /// How often a long run logs a one-line progress summary; `0s` turns it off.
    #[serde(with = "humantime_serde")]
    pub progress_interval: Duration,
    /// How often `rampart run` hands the memory glibc's malloc keeps after it is freed
    /// back to the system (`malloc_trim`); `0s` turns it off. Without it the resident
    /// set of a long run climbs while the live heap stays level (docs/performance.md,
    /// "What grows"). Nothing on other allocators.
    #[serde(with = "humantime_serde")]
    pub heap_trim_interval: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 4,
            progress_interval: Duration::from_secs(30),
            heap_trim_interval: Duration::from_secs(1),
        }
    }
}

/// `[window]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Size of the tumbling event-time windows, aligned to the Unix epoch.
    #[serde(with = "humantime_serde")]
    pub size: Duration,
    /// How far behind the largest event time seen on a partition an event may be and
    /// still join its window.
    #[serde(with = "humantime_serde")]
    pub allowed_lateness: Duration,
    /// Wall-clock time after which a silent partition advances its event time so that its
    /// last windows close (live streams only).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            size: Duration::from_secs(300),
            allowed_lateness: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// `[rules]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Run the window stage (windows, rules, violations, alerts). With `false` the
    /// pipeline only archives events and dead letters.
    pub enabled: bool,
    /// Directory of rule files (`*.sql`), each with its header. Relative paths are taken
    /// from the working directory.
    pub dir: String,
    /// The window aggregation (counts per window, resource and attack category).
    pub window_sql: String,
    /// `attack_increase` fires when a count rose by at least this many percent
    /// (`$increase_pct` in rule SQL).
    pub increase_pct: u32,
    /// ... over a previous window of at least this many events (`$min_baseline`).
    pub min_baseline: u32,
}

impl Default for RulesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: "sql/rules".to_string(),
            window_sql: "sql/windows/attack_counts.sql".to_string(),
            increase_pct: 25,
            min_baseline: 10,
        }
    }
}

/// `[alerts]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Alerts as JSON lines: a file path (appended to), `-` for stdout, or empty for none.
    pub path: String,
}

/// `[compact]`: the small files of an hour that is over are rewritten into few large
/// ones, sorted for pruning, and the replacement is recorded in the archive's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct CompactConfig {
    /// How often `rampart run` compacts in the background; `0s` turns it off
    /// (`rampart compact` still works).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Only hours that ended at least this long ago are compacted, so that late events
    /// and files still being rolled land before their hour is rewritten.
    #[serde(with = "humantime_serde")]
    pub older_than: Duration,
    /// Size of the files compaction writes. A file under half of it is small: an hour
    /// with two or more small files has them rewritten.
    pub target_file_bytes: ByteSize,
}

impl Default for CompactConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10 * 60),
            older_than: Duration::from_secs(2 * 3600),
            target_file_bytes: ByteSize::mib(256),
        }
    }
}

impl Config {
    /// Loads the configuration from the pipeline file `file` (if given), then the
    /// environment, over the defaults. Values are not range-checked: see
    /// [`Config::validate`].
    ///
    /// Environment variables name a key as `RAMPART_<SECTION>__<KEY>`, with `_` for `-`:
    /// `RAMPART_SINK__ROLL_INTERVAL=30s` sets `[sink] roll-interval`.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut figment = Figment::new();
        if let Some(path) = file {
            if !path.is_file() {
                return Err(Error::ConfigFile {
                    path: path.display().to_string(),
                });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(
            Env::prefixed("RAMPART_")
                .filter(|k| k.as_str().contains("__"))
                .map(|k| k.as_str().replace("__", ".").replace('_', "-").into()),
        );
        let origin = match file {
            Some(p) => format!("{} or RAMPART_* environment", p.display()),
            None => "RAMPART_* environment".to_string(),
        };
        extract(figment, origin)
    }

    /// Reads `text`, the TOML of a pipeline file, over the defaults (no environment).
    /// Values are not range-checked: see [`Config::validate`].
    pub fn from_toml_str(text: &str) -> Result<Config> {
        extract(Figment::from(Toml::string(text)), "TOML text".to_string())
    }

    /// Checks every value against its allowed range. The error names the key and says
    /// what would be accepted.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, message: String| {
            Err(Error::Config {
                key: key.to_string(),
                message,
            })
        };
        let max_msg = self.decode.max_message_bytes.as_u64();
        if !(64..=(256 << 20)).contains(&max_msg) {
            return bad(
                "decode.max-message-bytes",
                format!("{max_msg} bytes is outside 64 B ..= 256 MiB"),
            );
        }
        let chunk = self.source.read_chunk.as_u64();
        if !((4 << 10)..=(64 << 20)).contains(&chunk) {
            return bad(
                "source.read-chunk",
                format!("{chunk} bytes is outside 4 KiB ..= 64 MiB"),
            );
        }
        if self.sink.max_file_rows == 0 {
            return bad("sink.max-file-rows", "must be at least 1".into());
        }
        if self.sink.max_file_bytes.as_u64() < (1 << 20) {
            return bad("sink.max-file-bytes", "must be at least 1 MiB".into());
        }
        if self.sink.roll_interval < Duration::from_secs(1) {
            return bad("sink.roll-interval", "must be at least 1s".into());
        }
        if self.archive.orphan_grace < self.sink.roll_interval {
            return bad(
                "archive.orphan-grace",
                format!(
                    "{} is shorter than sink.roll-interval ({}): a file waits up to a roll interval for its commit, and clean-up would delete it first; use at least the roll interval (the default is 1h)",
                    humantime::format_duration(self.archive.orphan_grace),
                    humantime::format_duration(self.sink.roll_interval)
                ),
            );
        }
        if self.sink.max_open_files == 0 {
            return bad("sink.max-open-files", "must be at least 1".into());
        }
        if self.sink.row_group_rows < 1024 {
            return bad("sink.row-group-rows", "must be at least 1024".into());
        }
        if !(1..=22).contains(&self.sink.zstd_level) {
            return bad(
                "sink.zstd-level",
                format!("{} is outside 1 ..= 22", self.sink.zstd_level),
            );
        }
        if self.kafka.batch_records == 0 {
            return bad("kafka.batch-records", "must be at least 1".into());
        }
        if self.kafka.group.is_empty() {
            return bad("kafka.group", "must not be empty".into());
        }
        self.validate_topics()?;
        if self.pipeline.channel_capacity == 0 {
            return bad("pipeline.channel-capacity", "must be at least 1".into());
        }
        let size = self.window.size;
        if size < Duration::from_secs(1) || size.subsec_nanos() != 0 {
            return bad(
                "window.size",
                format!(
                    "{} is not a whole number of seconds of at least 1s",
                    humantime::format_duration(size)
                ),
            );
        }
        if self.rules.min_baseline == 0 {
            return bad(
                "rules.min-baseline",
                "must be at least 1 (a window without events has no count to rise from)".into(),
            );
        }
        if self.rules.increase_pct > 100_000 {
            return bad("rules.increase-pct", "must be at most 100000".into());
        }
        if self.archive.url.trim().is_empty() {
            return bad("archive.url", "must not be empty".into());
        }
        let interval = self.compact.interval;
        if !interval.is_zero() && interval < Duration::from_secs(1) {
            return bad(
                "compact.interval",
                format!(
                    "{} is neither 0s (off) nor at least 1s",
                    humantime::format_duration(interval)
                ),
            );
        }
        self.metrics.socket_addr()?;
        if self.query.memory_limit.as_u64() != 0 && self.query.memory_limit.as_u64() < (16 << 20) {
            return bad(
                "query.memory-limit",
                format!(
                    "{} is below 16 MiB, too little for any query",
                    self.query.memory_limit
                ),
            );
        }
        if self.query.timeout < Duration::from_millis(100) {
            return bad("query.timeout", "must be at least 100ms".into());
        }
        if self.metrics.stall_timeout < Duration::from_secs(1) {
            return bad("metrics.stall-timeout", "must be at least 1s".into());
        }
        let target = self.compact.target_file_bytes.as_u64();
        if !((1 << 20)..=(4 << 30)).contains(&target) {
            return bad(
                "compact.target-file-bytes",
                format!("{target} bytes is outside 1 MiB ..= 4 GiB"),
            );
        }
        Ok(())
    }

    /// `[kafka]` alerts-topic, dead-letter-topic and brokers.
    fn validate_topics(&self) -> Result<()> {
        let k = &self.kafka;
        for (key, topic) in [
            ("kafka.alerts-topic", &k.alerts_topic),
            ("kafka.dead-letter-topic", &k.dead_letter_topic),
        ] {
            if !topic.is_empty() && !is_topic_name(topic) {
                return Err(Error::Config {
                    key: key.into(),
                    message: format!(
                        "{topic:?} is not a Kafka topic name (1 to 249 letters, digits, `.`, `_`, `-`)"
                    ),
                });
            }
        }
        if !k.brokers.is_empty() && k.brokers.split(',').any(|b| !b.contains(':')) {
            return Err(Error::Config {
                key: "kafka.brokers".into(),
                message: format!("{:?} is not HOST:PORT[,HOST:PORT...]", k.brokers),
            });
        }
        let kafka_source = self
            .source
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("kafka://"));
        if k.produces() && k.brokers.is_empty() && !kafka_source {
            return Err(Error::Config {
                key: "kafka.brokers".into(),
                message: "is required when kafka.alerts-topic or kafka.dead-letter-topic is \
                          set and the source is not kafka:// (there are no source brokers to \
                          use): set brokers = \"HOST:PORT\" in [kafka]"
                    .into(),
            });
        }
        Ok(())
    }
}

/// Whether `name` is a legal Kafka topic name: 1 to 249 of `[A-Za-z0-9._-]`, not `.`
/// or `..`.
fn is_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loading_reads_toml_over_the_defaults_and_names_every_problem() {
        let c = Config::from_toml_str("[decode]\nmax-message-bytes = \"2 MiB\"\n").unwrap();
        assert_eq!(c.decode.max_message_bytes, ByteSize::mib(2));
        assert_eq!(c.sink, Config::default().sink);
        let e = Config::from_toml_str("[decode]\nmax-message-bytes = \"2 MiB\"\nbogus = 1\n")
            .unwrap_err();
        let Error::ConfigLoad { origin, messages } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(origin, "TOML text");
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("bogus"), "{messages:?}");
        assert!(
            e.to_string()
                .starts_with("invalid configuration in TOML text: ")
        );
        let missing = Path::new("/nonexistent/pipeline.toml");
        assert_eq!(
            Config::load(Some(missing)).unwrap_err().to_string(),
            "config file /nonexistent/pipeline.toml not found; pass --config with the path \
             of a pipeline file such as pipelines/demo.toml"
        );
    }

    #[test]
    fn debug_hides_kafka_secrets() {
        let mut c = Config::default();
        c.kafka
            .rdkafka
            .insert("sasl.password".into(), "hunter2-very-secret".into());
        c.kafka
            .rdkafka
            .insert("ssl.key.password".into(), "another-secret".into());
        c.kafka
            .rdkafka
            .insert("security.protocol".into(), "SASL_SSL".into());
        let debug = format!("{c:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("another-secret"),
            "{debug}"
        );
        assert!(
            debug.contains("SASL_SSL") && debug.contains("sasl.password"),
            "{debug}"
        );
    }

    #[test]
    fn reports_have_a_retention_period_checked_against_the_floor() {
        let mut r = RetentionConfig::default();
        assert_eq!(
            r.period(crate::layout::REPORTS),
            Some(Duration::from_secs(2557 * DAY))
        );
        r.check_floor(false).unwrap();
        r.reports = Duration::from_secs(30 * DAY);
        let err = r.check_floor(false).unwrap_err().to_string();
        assert!(err.contains("retention.reports"), "{err}");
        r.check_floor(true).unwrap();
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn kebab_case_toml_with_durations_and_sizes() {
        let c: Config = toml::from_str(
            r#"
            [decode]
            max-message-bytes = "2 MiB"
            [sink]
            roll-interval = "5m"
            [window]
            size = "10m"
            "#,
        )
        .unwrap();
        assert_eq!(c.decode.max_message_bytes, ByteSize::mib(2));
        assert_eq!(c.sink.roll_interval, Duration::from_secs(300));
        assert_eq!(c.window.size, Duration::from_secs(600));
        assert_eq!(c.window.allowed_lateness, Duration::from_secs(60));
    }

    #[test]
    fn input_preset_reads_and_refuses_unknown_values() {
        assert_eq!(Config::default().input.preset, Preset::Native);
        for p in Preset::ALL {
            let c: Config = toml::from_str(&format!("[input]\npreset = \"{p}\"\n")).unwrap();
            assert_eq!(c.input.preset, p);
        }
        let err = toml::from_str::<Config>("[input]\npreset = \"elastic\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("input.preset")
                && err.contains("\"elastic\"")
                && err.contains("native, ecs, ocsf"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Config>("[sink]\nroll-intervall = \"5m\"\n").unwrap_err();
        assert!(err.to_string().contains("roll-intervall"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_their_key() {
        let mut c = Config::default();
        c.sink.zstd_level = 40;
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("sink.zstd-level"), "{err}");
        let mut c = Config::default();
        c.window.size = Duration::from_millis(1500);
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("window.size")
        );
    }

    #[test]
    fn metrics_section_reads_and_validates() {
        let c: Config =
            toml::from_str("[metrics]\naddr = \"127.0.0.1:9464\"\nstall-timeout = \"2m\"\n")
                .unwrap();
        assert_eq!(
            c.metrics.socket_addr().unwrap(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(c.metrics.stall_timeout, Duration::from_secs(120));
        c.validate().unwrap();
        assert_eq!(Config::default().metrics.socket_addr().unwrap(), None);
        for bad in [
            "localhost",
            "9464",
            "127.0.0.1",
            "127.0.0.1:99999",
            "host:9464",
        ] {
            let mut c = Config::default();
            c.metrics.addr = bad.into();
            let err = c.validate().unwrap_err().to_string();
            assert!(
                err.contains("metrics.addr") && err.contains(bad),
                "{bad}: {err}"
            );
        }
        let mut c = Config::default();
        c.metrics.stall_timeout = Duration::from_millis(10);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("metrics.stall-timeout"), "{err}");
    }

    #[test]
    fn topics_need_brokers_unless_the_source_is_kafka() {
        let c: Config = toml::from_str(
            "[source]\nurl = \"events.jsonl\"\n[kafka]\nalerts-topic = \"alerts\"\n",
        )
        .unwrap();
        assert_eq!(c.kafka.alerts_topic, "alerts");
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains("kafka.brokers") && err.contains("required"),
            "{err}"
        );

        let mut c = c;
        c.kafka.brokers = "b1:9092,b2:9092".into();
        c.validate().unwrap();
        c.kafka.brokers = "b1".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("kafka.brokers"), "{err}");

        let mut c = Config::default();
        c.source.url = Some("kafka://b:9092/security".into());
        c.kafka.dead_letter_topic = "security-dead-letters".into();
        c.validate().unwrap();
        assert!(c.kafka.produces());
        c.kafka.dead_letter_topic = "dead letters".into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("kafka.dead-letter-topic"), "{err}");

        // Neither topic set: no brokers needed, whatever the source.
        let mut c = Config::default();
        c.source.url = Some("events.jsonl".into());
        assert!(!c.kafka.produces());
        c.validate().unwrap();
    }

    #[test]
    fn compact_section_reads_and_validates() {
        let c: Config = toml::from_str(
            "[compact]\ninterval = \"0s\"\nolder-than = \"3h\"\ntarget-file-bytes = \"64 MiB\"\n",
        )
        .unwrap();
        assert_eq!(c.compact.interval, Duration::ZERO);
        assert_eq!(c.compact.older_than, Duration::from_secs(3 * 3600));
        assert_eq!(c.compact.target_file_bytes, ByteSize::mib(64));
        c.validate().unwrap();
        let mut c = Config::default();
        c.compact.interval = Duration::from_millis(500);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("compact.interval"), "{err}");
        let mut c = Config::default();
        c.compact.target_file_bytes = ByteSize::kib(10);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("compact.target-file-bytes"), "{err}");
    }

    /// Every key the config structs accept, as `section.key` (maps such as
    /// `archive.options` are one key).
    fn config_keys() -> std::collections::BTreeSet<String> {
        let value = serde_json::to_value(Config::default()).unwrap();
        let mut keys = std::collections::BTreeSet::new();
        for (section, table) in value.as_object().unwrap() {
            for key in table.as_object().unwrap().keys() {
                keys.insert(format!("{section}.{key}"));
            }
        }
        keys
    }

    /// The README's configuration reference and the config structs name the same keys: a
    /// key added, renamed or removed in one and not the other fails here.
    #[test]
    fn the_readme_configuration_reference_names_every_key() {
        let readme = std::fs::read_to_string(
            crate::package_dir(env!("CARGO_MANIFEST_DIR")).join("../../README.md"),
        )
        .unwrap();
        let section = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Configuration section");
        let mut documented = std::collections::BTreeSet::new();
        for line in section.lines().filter(|l| l.starts_with("| `")) {
            let first = line.split('|').nth(1).unwrap_or_default();
            for key in first.split('`').skip(1).step_by(2) {
                documented.insert(key.to_string());
            }
        }
        let keys = config_keys();
        let undocumented: Vec<_> = keys.difference(&documented).collect();
        let unknown: Vec<_> = documented.difference(&keys).collect();
        assert!(
            undocumented.is_empty() && unknown.is_empty(),
            "README's configuration table lacks {undocumented:?} and names keys the config does not have: {unknown:?}"
        );
    }
}
