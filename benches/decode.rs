//! Decoder kernel: JSON lines to `events` + `dead_letters` record batches.
//!
//! cargo bench -p rampart-benches --bench decode

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rampart_core::config::DecodeConfig;
use rampart_ingest::{Decoder, LineChunk};

fn chunks(data: &[u8], chunk_bytes: usize) -> Vec<LineChunk> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut line = 1;
    while start < data.len() {
        let mut end = (start + chunk_bytes).min(data.len());
        while end < data.len() && data[end - 1] != b'\n' {
            end += 1;
        }
        let c = LineChunk {
            path: Arc::from("bench"),
            first_line: line,
            data: Bytes::copy_from_slice(&data[start..end]),
        };
        line += c.line_count();
        out.push(c);
        start = end;
    }
    out
}

fn decode(c: &mut Criterion) {
    let cfg = rampart_benches::bench_config(50_000);
    let events = cfg.events;
    let data = rampart_benches::lines(cfg);
    let chunks = chunks(&data, 1 << 20);
    let mut group = c.benchmark_group("decode");
    group.sample_size(20);
    for (label, throughput) in [
        ("bytes", Throughput::Bytes(data.len() as u64)),
        ("events", Throughput::Elements(events)),
    ] {
        group.throughput(throughput);
        group.bench_function(label, |b| {
            b.iter(|| {
                let mut d = Decoder::new(&DecodeConfig::default());
                let mut rows = 0;
                for chunk in &chunks {
                    d.push_lines(chunk, 0);
                    let out = d.flush().expect("flush");
                    rows += out.events.num_rows() + out.dead_letters.num_rows();
                }
                black_box(rows)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
