//! A line far over `decode.max-message-bytes` through the file source and the decoder:
//! one `too_large` dead letter with a truncated `raw`, the lines after it numbered as if
//! it had been read whole, and the source's buffer bounded by the limit, not the line.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use bytesize::ByteSize;
use rampart_core::config::DecodeConfig;
use rampart_core::schema::dead_letters as dl;
use rampart_core::schema::source::SOURCE_LINE;
use rampart_ingest::{Decoder, FileSource};
use tokio::io::{AsyncRead, ReadBuf};

const GOOD: &str =
    r#"{"ts":"2026-11-01T00:00:00Z","resource_id":"r1","resource_type":"vm","category":"auth"}"#;

/// `head`, then `len` bytes of `x` (no newline) handed out at most `piece` bytes a read,
/// then `tail`: a line of any length without holding it anywhere.
struct Generated {
    head: &'static [u8],
    left: u64,
    piece: usize,
    tail: &'static [u8],
}

impl AsyncRead for Generated {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let room = buf.remaining();
        if !self.head.is_empty() {
            let n = room.min(self.head.len());
            buf.put_slice(&self.head[..n]);
            self.head = &self.head[n..];
        } else if self.left > 0 {
            let n = room.min(self.piece).min(self.left as usize);
            buf.initialize_unfilled_to(n).fill(b'x');
            buf.advance(n);
            self.left -= n as u64;
        } else {
            let n = room.min(self.tail.len());
            buf.put_slice(&self.tail[..n]);
            self.tail = &self.tail[n..];
        }
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_64_mib_line_is_one_truncated_too_large_dead_letter_read_in_bounded_memory() {
    const LIMIT: usize = 1 << 20;
    const LINE: u64 = 64 << 20;
    let head: &'static [u8] = format!("{GOOD}\n").leak().as_bytes();
    let tail: &'static [u8] = format!("\r\n{GOOD}\nnot json\n{GOOD}").leak().as_bytes();
    let reader = Generated {
        head,
        left: LINE,
        piece: 100_000,
        tail,
    };
    let mut source =
        FileSource::from_reader("big", Box::new(reader), 256 << 10).with_max_line_bytes(LIMIT);
    let mut decoder = Decoder::new(&DecodeConfig {
        max_message_bytes: ByteSize::b(LIMIT as u64),
    });
    let (mut accepted, mut dead, mut lines) = (0, 0, 0);
    while let Some(chunk) = source.next_chunk().await.unwrap() {
        assert_eq!(chunk.first_line, lines + 1);
        lines += chunk.line_count();
        let (a, d) = decoder.push_lines(&chunk, 0);
        accepted += a;
        dead += d;
    }
    assert_eq!((lines, accepted, dead), (5, 3, 2));
    // The read buffer held the limit and a few reads, never the line.
    let high = source.buffer_high_water();
    assert!(high <= 2 * LIMIT, "buffer grew to {high} bytes");

    let out = decoder.flush().unwrap();
    let d = &out.dead_letters;
    let line_of = |b: &arrow::record_batch::RecordBatch, name: &str| {
        b.column_by_name(name)
            .unwrap()
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    };
    assert_eq!(line_of(d, SOURCE_LINE), [2, 4]);
    let codes: Vec<_> = d
        .column_by_name(dl::REASON_CODE)
        .unwrap()
        .as_string::<i32>()
        .iter()
        .flatten()
        .collect();
    assert_eq!(codes, ["too_large", "not_json"]);
    let reason = d
        .column_by_name(dl::REASON)
        .unwrap()
        .as_string::<i32>()
        .value(0);
    assert_eq!(
        reason,
        "line is 67108864 bytes, over the limit of 1048576 (decode.max-message-bytes); \
         raw holds only its first 1048576 bytes"
    );
    let raw = d
        .column_by_name(dl::RAW)
        .unwrap()
        .as_binary::<i32>()
        .value(0);
    assert_eq!(raw.len(), LIMIT);
    assert!(raw.iter().all(|b| *b == b'x'));
    assert_eq!(line_of(&out.events, SOURCE_LINE), [1, 3, 5]);
}
