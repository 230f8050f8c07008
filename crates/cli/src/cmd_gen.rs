//! `rampart gen`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use clap::Args;
use rampart_gen::{GenConfig, GenStats};

/// Write a deterministic synthetic stream of security events (JSON lines).
///
/// The stream follows the event contract: every category and resource type, attack
/// campaigns whose counts rise window over window, unclassified data sources, unpatched
/// VMs, disallowed network access, unknown extra fields, a share of malformed messages
/// of every kind, and out-of-order arrival bounded by --disorder. The same flags always
/// give the same bytes.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  rampart gen --events 100000 --out events.jsonl
  rampart gen --events 1000 --seed 7 --bad-rate 0.05 | rampart run --source - --archive ./archive
  rampart gen --events 1000000 --kafka 127.0.0.1:9092/security --rate 50000")]
pub(crate) struct GenArgs {
    /// Number of messages (good and malformed together).
    #[arg(long)]
    events: u64,
    /// Random seed.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Number of distinct resources.
    #[arg(long, default_value_t = 200)]
    resources: u32,
    /// First event time (RFC 3339).
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    start: String,
    /// Event-time span of the stream (e.g. 2h, 30d).
    #[arg(long, default_value = "2h", value_parser = humantime::parse_duration)]
    span: Duration,
    /// Largest delay of an event's arrival behind its event time (e.g. 20s, 3m).
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    disorder: Duration,
    /// Share of malformed messages, 0 to 1.
    #[arg(long, default_value_t = 0.002)]
    bad_rate: f64,
    /// Output file, or - for stdout.
    #[arg(long, default_value = "-")]
    out: PathBuf,
    /// Produce into Kafka instead, keyed by resource: HOST:PORT[,HOST:PORT]/TOPIC.
    #[arg(long, conflicts_with = "out")]
    kafka: Option<String>,
    /// With --kafka: at most this many messages per second (default: as fast as it goes).
    #[arg(long, requires = "kafka")]
    rate: Option<u64>,
}

/// Produces the stream into `target` (`HOST:PORT/TOPIC`) with an idempotent producer,
/// keyed by resource, at most `rate` messages per second.
fn produce(cfg: GenConfig, target: &str, rate: Option<u64>) -> anyhow::Result<GenStats> {
    use rdkafka::config::ClientConfig;
    use rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let (brokers, topic) = target.split_once('/').filter(|(b, t)| !b.is_empty() && !t.is_empty()).ok_or_else(|| {
        anyhow!("--kafka {target:?} is not HOST:PORT[,HOST:PORT]/TOPIC, as in 127.0.0.1:9092/security")
    })?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        // The stream has messages over 1 MiB on purpose (they become dead letters).
        .set("message.max.bytes", "33554432")
        .create()
        .context("cannot create the Kafka producer")?;
    let started = std::time::Instant::now();
    let mut stats = GenStats::default();
    for (i, m) in rampart_gen::Generator::new(cfg)
        .map_err(|e| anyhow!(e))?
        .enumerate()
    {
        if let Some(rate) = rate.filter(|r| *r > 0) {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let mut record = BaseRecord::to(topic)
            .key(m.key.as_bytes())
            .payload(&m.payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    producer.poll(Duration::from_millis(10));
                    record = r;
                }
                Err((e, _)) => return Err(anyhow!("cannot produce to {target}: {e}")),
            }
        }
        producer.poll(Duration::ZERO);
        stats.record(&m.kind);
    }
    producer
        .flush(Duration::from_secs(60))
        .with_context(|| format!("cannot deliver every message to {target}"))?;
    Ok(stats)
}

pub(crate) fn run(args: GenArgs) -> anyhow::Result<ExitCode> {
    let start = chrono::DateTime::parse_from_rfc3339(&args.start)
        .map_err(|e| {
            anyhow!(
                "--start {:?} is not an RFC 3339 time such as 2026-11-01T00:00:00Z: {e}",
                args.start
            )
        })?
        .with_timezone(&chrono::Utc);
    let cfg = GenConfig {
        events: args.events,
        seed: args.seed,
        resources: args.resources,
        start,
        span: args.span,
        disorder: args.disorder,
        bad_rate: args.bad_rate,
        ..GenConfig::default()
    };
    cfg.validate().map_err(|e| anyhow!(e))?;
    let stats = if let Some(target) = &args.kafka {
        produce(cfg, target, args.rate)?
    } else if args.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let stats = rampart_gen::write_lines(cfg, &mut out).context("cannot write to stdout")?;
        out.flush().context("cannot write to stdout")?;
        stats
    } else {
        let file = std::fs::File::create(&args.out)
            .with_context(|| format!("cannot create {}", args.out.display()))?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        let stats = rampart_gen::write_lines(cfg, &mut out)
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        out.flush()
            .with_context(|| format!("cannot write {}", args.out.display()))?;
        stats
    };
    let bad: Vec<String> = stats.bad.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "generated {} messages: {} good, {} malformed ({})",
        stats.total(),
        stats.good,
        stats.bad_total(),
        if bad.is_empty() {
            "none".to_string()
        } else {
            bad.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}
