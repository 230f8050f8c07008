//! Shared helpers of the benchmarks: seeded input generation.

use std::io::Write;
use std::path::Path;

use rampart_gen::{GenConfig, GenStats, Generator};

/// The benchmark stream: `events` messages, seed 42, the generator's defaults otherwise
/// (0.2% malformed, 200 resources over 2 h, 20 s disorder).
pub fn bench_config(events: u64) -> GenConfig {
    GenConfig {
        events,
        seed: 42,
        ..GenConfig::default()
    }
}

/// The stream as one JSON-lines buffer.
pub fn lines(cfg: GenConfig) -> Vec<u8> {
    let mut out = Vec::new();
    for m in Generator::new(cfg).expect("valid generator config") {
        out.extend_from_slice(&m.payload);
        out.push(b'\n');
    }
    out
}

/// Writes the stream to `path`.
pub fn write_file(cfg: GenConfig, path: &Path) -> std::io::Result<GenStats> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let stats = rampart_gen::write_lines(cfg, &mut f)?;
    f.flush()?;
    Ok(stats)
}
