//! Decoder kernel: JSON lines to `events` + `dead_letters` record batches.
//!
//! cargo bench -p rampart-benches --bench decode
//!
//! Beside Rampart's decoder, the same good lines go through arrow-json's push decoder
//! (the STYLE.md baseline) with the contract's columns: a peer measured in the same run.
//! arrow-json does less (it drops unknown fields, keeps no coordinates and stops at the
//! first malformed line, so it gets only the well-formed lines).

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
            oversized: None,
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
    let all_chunks = chunks(&data, 1 << 20);
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
                for chunk in &all_chunks {
                    d.push_lines(chunk, 0);
                    let out = d.flush().expect("flush");
                    rows += out.events.num_rows() + out.dead_letters.num_rows();
                }
                black_box(rows)
            })
        });
    }
    group.finish();

    let good: Vec<u8> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty() && rampart_ingest::decode::parse(l, 1 << 20).is_ok())
        .flat_map(|l| l.iter().copied().chain([b'\n']))
        .collect();
    let good_chunks = chunks(&good, 1 << 20);
    let good_events = good.iter().filter(|b| **b == b'\n').count() as u64;
    let contract = contract_schema();
    let mut group = c.benchmark_group("decode_good_lines");
    group.sample_size(20);
    group.throughput(Throughput::Elements(good_events));
    group.bench_function("rampart", |b| {
        b.iter(|| {
            let mut d = Decoder::new(&DecodeConfig::default());
            let mut rows = 0;
            for chunk in &good_chunks {
                d.push_lines(chunk, 0);
                rows += d.flush().expect("flush").events.num_rows();
            }
            black_box(rows)
        })
    });
    group.bench_function("arrow_json", |b| {
        b.iter(|| {
            let mut d = arrow::json::ReaderBuilder::new(contract.clone())
                .with_batch_size(8192)
                .build_decoder()
                .expect("decoder");
            let mut rows = 0;
            for chunk in &good_chunks {
                let mut buf = &chunk.data[..];
                while !buf.is_empty() {
                    let n = d.decode(buf).expect("decode");
                    buf = &buf[n..];
                    if let Some(batch) = d.flush().expect("flush") {
                        rows += batch.num_rows();
                    }
                }
            }
            if let Some(batch) = d.flush().expect("flush") {
                rows += batch.num_rows();
            }
            black_box(rows)
        })
    });
    group.finish();
}

/// The contract fields with their archive types, for arrow-json.
fn contract_schema() -> arrow::datatypes::SchemaRef {
    let events = rampart_core::schema::events_schema();
    let fields: Vec<_> = events
        .fields()
        .iter()
        .take_while(|f| f.name() != rampart_core::schema::events::EXTRA)
        .map(|f| {
            let f = f.as_ref().clone().with_nullable(true);
            // arrow-json without chrono-tz takes offsets, not zone names.
            match f.data_type() {
                arrow::datatypes::DataType::Timestamp(unit, Some(_)) => {
                    let t = arrow::datatypes::DataType::Timestamp(*unit, Some("+00:00".into()));
                    f.with_data_type(t)
                }
                _ => f,
            }
        })
        .collect();
    Arc::new(arrow::datatypes::Schema::new(fields))
}

criterion_group!(benches, decode);
criterion_main!(benches);
