//! The JSON-lines source: a file or standard input, read in chunks of whole lines.
//!
//! Oversized lines. A line longer than the source's line limit
//! ([`FileSource::with_max_line_bytes`], set to `decode.max-message-bytes` by the
//! pipeline) is not buffered whole: once the buffer holds more than the limit (plus one
//! byte, for a `\r` before the `\n`) of one line, the source keeps its first
//! limit bytes, reads on to the next `\n` counting but discarding, and hands the line on
//! alone as a [`LineChunk`] with [`LineChunk::oversized`] set to its true length. The
//! decoder writes it as one `too_large` dead letter. The line keeps its number, so the
//! lines after it, `line_count` and `skip_through` are as if it had been read whole;
//! the buffer holds about the limit plus one read chunk at most (its allocation at most
//! about twice that, [`FileSource::buffer_high_water`]), however long the line (a multi-GB line, or `/dev/zero` on stdin, end as one dead letter).

use std::io::Read;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::{Error, Result};

/// Whole lines read from a JSON-lines source, with the number of the first.
#[derive(Debug, Clone)]
pub struct LineChunk {
    /// The source's label, stored as `source_file`: the absolute path, or `-` for stdin.
    pub path: Arc<str>,
    /// Line number (from 1) of the first line in `data`.
    pub first_line: u64,
    /// Complete lines, each ended by `\n` except perhaps the last line of the source.
    pub data: Bytes,
    /// Set when the chunk is one line over the source's line limit: that line's true
    /// length in bytes (without its `\n`, and a `\r` before it). `data` then holds only
    /// the line's first bytes (as many as the limit), with no `\n`.
    pub oversized: Option<u64>,
}

impl LineChunk {
    /// The lines, without their `\n`.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> {
        let body = self.data.strip_suffix(b"\n").unwrap_or(&self.data);
        // `body.split(|b| *b == b'\n')`, with the line ends found by `memchr`.
        let mut ends = memchr::memchr_iter(b'\n', body);
        let mut start = Some(0);
        std::iter::from_fn(move || {
            let from = start?;
            match ends.next() {
                Some(end) => {
                    start = Some(end + 1);
                    Some(&body[from..end])
                }
                None => {
                    start = None;
                    Some(&body[from..])
                }
            }
        })
    }

    /// How many lines the chunk holds.
    pub fn line_count(&self) -> u64 {
        if self.data.is_empty() {
            return 0;
        }
        let newlines = memchr::memchr_iter(b'\n', &self.data).count() as u64;
        newlines + u64::from(!self.data.ends_with(b"\n"))
    }

    /// The chunk without its lines up to and including `line` (already archived by an
    /// earlier run); `None` when nothing is left.
    pub fn skip_through(self, line: u64) -> Option<LineChunk> {
        if line < self.first_line {
            return Some(self);
        }
        let skip = line - self.first_line + 1;
        let mut at = 0usize;
        for _ in 0..skip {
            match self.data[at..].iter().position(|b| *b == b'\n') {
                Some(nl) => at += nl + 1,
                None => return None,
            }
        }
        (at < self.data.len()).then(|| LineChunk {
            path: self.path,
            first_line: line + 1,
            data: self.data.slice(at..),
            oversized: None,
        })
    }
}

/// Where the bytes come from.
enum Reader {
    /// A file, read on a blocking thread straight into the chunk's buffer (tokio's file
    /// reads into a buffer of its own and copies from it). The file and the buffer are
    /// in the read in flight, if any.
    File(Option<std::fs::File>),
    /// Standard input, or any reader.
    Stream(Box<dyn AsyncRead + Send + Unpin>),
}

/// A read in flight on a blocking thread: the file, the buffer and how many bytes came.
type Reading = JoinHandle<(std::fs::File, BytesMut, std::io::Result<usize>)>;

/// Buffers of chunks handed back once decoded (see [`FileSource::recycler`]).
#[derive(Debug, Clone, Default)]
pub struct Recycler(Arc<Mutex<Vec<BytesMut>>>);

/// Buffers kept for reuse at most: the chunks in the queues between the stages.
const RECYCLED_MAX: usize = 16;

impl Recycler {
    /// Gives back the data of a chunk that is no longer needed. Its buffer is read into
    /// again when nothing else holds it: reused memory is already mapped, where a new
    /// buffer of a few MiB costs a page fault per page.
    pub fn give(&self, data: Bytes) {
        let Ok(buf) = data.try_into_mut() else {
            return; // still shared: freed when the last holder drops it
        };
        if let Ok(mut spare) = self.0.lock()
            && spare.len() < RECYCLED_MAX
        {
            spare.push(buf);
        }
    }

    fn take(&self, capacity: usize) -> Option<BytesMut> {
        let mut spare = self.0.lock().ok()?;
        while let Some(mut buf) = spare.pop() {
            if buf.capacity() >= capacity {
                buf.clear();
                return Some(buf);
            }
        }
        None
    }
}

/// Reads a JSON-lines file (or stdin) in chunks of about `chunk_bytes` whole lines.
pub struct FileSource {
    path: Arc<str>,
    reader: Reader,
    /// The read in flight, kept across a cancelled [`FileSource::next_chunk`].
    reading: Option<Reading>,
    recycler: Recycler,
    chunk_bytes: usize,
    /// Lines longer than this are handed on truncated (see the module docs).
    max_line_bytes: usize,
    buf: BytesMut,
    /// The largest capacity `buf` has had.
    high_water: usize,
    next_line: u64,
    eof: bool,
    /// A live stream (stdin): hand on whole lines as soon as they arrive instead of
    /// waiting for a full chunk.
    eager: bool,
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSource")
            .field("path", &self.path)
            .field("next_line", &self.next_line)
            .finish_non_exhaustive()
    }
}

impl FileSource {
    /// Opens `location`: `-` for standard input, `file:///abs/path`, or a plain path.
    pub async fn open(location: &str, chunk_bytes: usize) -> Result<Self> {
        if location == "-" {
            return Ok(Self::from_reader(
                "-",
                Box::new(tokio::io::stdin()),
                chunk_bytes,
            ));
        }
        let path = file_path(location)?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|source| Error::Open {
                path: path.display().to_string(),
                source,
            })?
            .into_std()
            .await;
        Ok(Self::new(
            path.display().to_string(),
            Reader::File(Some(file)),
            chunk_bytes,
        ))
    }

    /// A source over any reader, labelled `label` in `source_file`. The label `-`
    /// (standard input) makes it a live stream: lines are handed on as soon as they
    /// arrive, not when a chunk is full.
    pub fn from_reader(
        label: impl Into<Arc<str>>,
        reader: Box<dyn AsyncRead + Send + Unpin>,
        chunk_bytes: usize,
    ) -> Self {
        Self::new(label, Reader::Stream(reader), chunk_bytes)
    }

    fn new(label: impl Into<Arc<str>>, reader: Reader, chunk_bytes: usize) -> Self {
        let path: Arc<str> = label.into();
        Self {
            eager: path.as_ref() == "-",
            path,
            reader,
            reading: None,
            recycler: Recycler::default(),
            chunk_bytes: chunk_bytes.max(1),
            max_line_bytes: usize::MAX,
            buf: BytesMut::with_capacity(chunk_bytes.max(1)),
            high_water: chunk_bytes.max(1),
            next_line: 1,
            eof: false,
        }
    }

    /// Limits the bytes of one line held in memory to about `limit` (at least 1): a
    /// longer line is handed on alone, as its first `limit` bytes with
    /// [`LineChunk::oversized`] set, and the rest of it is read and discarded (see the
    /// module docs). Without a limit a line is buffered whole, however long.
    pub fn with_max_line_bytes(mut self, limit: usize) -> Self {
        self.max_line_bytes = limit.max(1);
        self
    }

    /// The largest capacity, in bytes, the read buffer has had so far.
    pub fn buffer_high_water(&self) -> usize {
        self.high_water
    }

    /// Where the pipeline gives back the data of chunks it has decoded, for their
    /// buffers to be read into again.
    pub fn recycler(&self) -> Recycler {
        self.recycler.clone()
    }

    /// The source's label as stored in `source_file`.
    pub fn label(&self) -> &Arc<str> {
        &self.path
    }

    /// The next chunk of whole lines, or `None` at the end of the source.
    pub async fn next_chunk(&mut self) -> Result<Option<LineChunk>> {
        loop {
            let lines_waiting = self.eager && self.buf.contains(&b'\n');
            if self.buf.len() >= self.chunk_bytes || self.eof || lines_waiting {
                let split_at = if self.eof {
                    self.buf.len()
                } else {
                    match memchr::memrchr(b'\n', &self.buf) {
                        Some(i) => i + 1,
                        // One line over the limit: hand on its start, skip the rest.
                        None if self.buf.len() > self.max_line_bytes.saturating_add(1) => {
                            return self.oversized_line().await.map(Some);
                        }
                        // One line longer than a chunk: read on until it ends.
                        None => {
                            self.fill(self.buf.len() + self.chunk_bytes).await?;
                            continue;
                        }
                    }
                };
                if split_at == 0 {
                    return Ok(None);
                }
                // The lines go; what follows them (the start of the next line) moves
                // to the next buffer.
                let mut next = self
                    .recycler
                    .take(self.chunk_bytes)
                    .unwrap_or_else(|| BytesMut::with_capacity(self.chunk_bytes));
                next.extend_from_slice(&self.buf[split_at..]);
                self.buf.truncate(split_at);
                let data = std::mem::replace(&mut self.buf, next).freeze();
                let chunk = LineChunk {
                    path: Arc::clone(&self.path),
                    first_line: self.next_line,
                    data,
                    oversized: None,
                };
                self.next_line += chunk.line_count();
                return Ok(Some(chunk));
            }
            self.fill(self.chunk_bytes).await?;
        }
    }

    /// The line that starts the buffer, which holds more than the line limit and no
    /// `\n`: keeps its first `max_line_bytes`, then reads and discards up to and
    /// including its `\n` (or the end of the source), a chunk at a time, counting.
    async fn oversized_line(&mut self) -> Result<LineChunk> {
        let data = Bytes::copy_from_slice(&self.buf[..self.max_line_bytes]);
        let mut len = 0u64;
        let mut last = None;
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.buf) {
                len += nl as u64;
                last = nl.checked_sub(1).map(|i| self.buf[i]).or(last);
                bytes::Buf::advance(&mut self.buf, nl + 1);
                break;
            }
            len += self.buf.len() as u64;
            last = self.buf.last().copied().or(last);
            self.buf.clear();
            if self.eof {
                break;
            }
            self.fill(self.chunk_bytes).await?;
        }
        if last == Some(b'\r') {
            len -= 1;
        }
        let chunk = LineChunk {
            path: Arc::clone(&self.path),
            first_line: self.next_line,
            data,
            oversized: Some(len),
        };
        self.next_line += 1;
        Ok(chunk)
    }

    /// Reads until the buffer holds `target` bytes or the source ends; a live stream
    /// reads once, so that what has arrived is not held back.
    async fn fill(&mut self, target: usize) -> Result<()> {
        while self.buf.len() < target && !self.eof {
            let read = match &mut self.reader {
                Reader::Stream(reader) => {
                    // At most up to `target`, however much room the buffer has.
                    let room = target - self.buf.len();
                    self.buf.reserve(room);
                    reader
                        .read_buf(&mut bytes::BufMut::limit(&mut self.buf, room))
                        .await
                }
                Reader::File(_) => self.read_file(target).await,
            };
            let n = read.map_err(|source| self.read_error(source))?;
            self.high_water = self.high_water.max(self.buf.capacity());
            if n == 0 {
                self.eof = true;
            }
            if self.eager {
                break;
            }
        }
        Ok(())
    }
}

impl FileSource {
    /// Reads the file until the buffer holds `target` bytes or the file ends, on a
    /// blocking thread. Cancel-safe: a read cut short is picked up by the next call.
    async fn read_file(&mut self, target: usize) -> std::io::Result<usize> {
        let reading = match self.reading.as_mut() {
            Some(reading) => reading,
            None => {
                let Reader::File(file) = &mut self.reader else {
                    return Err(std::io::Error::other("not a file"));
                };
                let Some(mut f) = file.take() else {
                    return Err(std::io::Error::other(
                        "the file was lost by a read that did not finish",
                    ));
                };
                let mut buf = std::mem::take(&mut self.buf);
                // Not SpawnedTask (the pipeline's, which aborts on drop): the handle
                // stays in the source when the caller's future is dropped, so that the
                // bytes read are not lost; a panic comes back as a read error.
                #[expect(
                    clippy::disallowed_methods,
                    reason = "the handle outlives a cancelled call"
                )]
                let handle = tokio::task::spawn_blocking(move || {
                    let n = read_into(&mut f, &mut buf, target);
                    (f, buf, n)
                });
                self.reading.insert(handle)
            }
        };
        let done = reading.await;
        self.reading = None;
        let (f, buf, n) = done.map_err(std::io::Error::other)?;
        if let Reader::File(file) = &mut self.reader {
            *file = Some(f);
        }
        self.buf = buf;
        n
    }

    fn read_error(&self, source: std::io::Error) -> Error {
        Error::Read {
            path: self.path.to_string(),
            line: self.next_line.saturating_sub(1),
            source,
        }
    }
}

/// Reads from `file` onto the end of `buf` until it holds `target` bytes or the file
/// ends; the bytes read. The room is made here, not before the read is started (while a
/// read is in flight the source's own buffer is an empty stand-in). The read goes
/// through a `Vec` (the buffer's own allocation, moved, not copied) because `read_to_end`
/// reads into its spare capacity as it is, where a slice to read into would have to be
/// zeroed first, a write of every byte before the read writes it again.
fn read_into(
    file: &mut std::fs::File,
    buf: &mut BytesMut,
    target: usize,
) -> std::io::Result<usize> {
    let start = buf.len();
    let room = target.saturating_sub(start);
    let mut vec = Vec::from(std::mem::take(buf));
    vec.reserve(room);
    // Bytes read before an error stay in `vec`; `Interrupted` is retried inside.
    let result = file.take(room as u64).read_to_end(&mut vec);
    let read = vec.len() - start;
    // Back without a copy: the `Bytes` made of a `Vec` is its only holder.
    *buf = Bytes::from(vec)
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    result.map(|_| read)
}

fn file_path(location: &str) -> Result<std::path::PathBuf> {
    let unsupported = |message: String| Error::UnsupportedSource {
        location: location.to_string(),
        message,
    };
    match location.split_once("://") {
        Some(("file", _)) => url::Url::parse(location)
            .ok()
            .and_then(|u| u.to_file_path().ok())
            .ok_or_else(|| {
                unsupported(
                    "a file:// URL must hold an absolute path, as in file:///var/log/events.jsonl"
                        .into(),
                )
            }),
        Some((scheme, _)) => Err(unsupported(format!(
            "`{scheme}://` sources are not supported by this build; use a file path, file:///abs/path or - for stdin"
        ))),
        None => std::path::absolute(location).map_err(|source| Error::Open {
            path: location.to_string(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_every_line_end_like_slice_split() {
        for text in [
            "",
            "\n",
            "\n\n",
            "a",
            "a\n",
            "a\nb",
            "a\n\nb\n",
            "{\"x\":1}\r\n{}\n",
            "\na\n\n",
        ] {
            let chunk = LineChunk {
                path: Arc::from("t"),
                first_line: 1,
                data: Bytes::from(text),
                oversized: None,
            };
            let body = text.strip_suffix('\n').unwrap_or(text).as_bytes();
            let reference: Vec<&[u8]> = body.split(|b| *b == b'\n').collect();
            assert_eq!(chunk.lines().collect::<Vec<_>>(), reference, "{text:?}");
        }
    }

    #[test]
    fn skipping_archived_lines_keeps_the_rest_with_their_numbers() {
        let chunk = || LineChunk {
            path: Arc::from("t"),
            first_line: 10,
            data: Bytes::from_static(b"a\nb\nc\nd"),
            oversized: None,
        };
        let rest = chunk().skip_through(11).unwrap();
        assert_eq!((rest.first_line, &rest.data[..]), (12, &b"c\nd"[..]));
        let whole = chunk().skip_through(9).unwrap();
        assert_eq!((whole.first_line, whole.line_count()), (10, 4));
        assert!(chunk().skip_through(13).is_none(), "all four archived");
        assert!(chunk().skip_through(99).is_none());
        let last = chunk().skip_through(12).unwrap();
        assert_eq!((last.first_line, &last.data[..]), (13, &b"d"[..]));
    }

    async fn chunks(text: &'static [u8], chunk: usize) -> Vec<LineChunk> {
        let mut src = FileSource::from_reader("t", Box::new(text), chunk);
        let mut out = Vec::new();
        while let Some(c) = src.next_chunk().await.unwrap() {
            out.push(c);
        }
        out
    }

    #[tokio::test]
    async fn chunks_hold_whole_lines_and_number_them() {
        let text = b"a\nbb\nccc\ndddd\ne";
        for size in 1..20 {
            let got = chunks(text, size).await;
            let mut lines = Vec::new();
            let mut next = 1;
            for c in &got {
                assert_eq!(c.first_line, next, "chunk size {size}");
                next += c.line_count();
                lines.extend(c.lines().map(|l| String::from_utf8(l.to_vec()).unwrap()));
            }
            assert_eq!(lines, ["a", "bb", "ccc", "dddd", "e"], "chunk size {size}");
        }
    }

    #[tokio::test]
    async fn a_live_stream_hands_on_lines_as_they_arrive() {
        use tokio::io::AsyncWriteExt;
        let (mut tx, rx) = tokio::io::duplex(1024);
        let mut src = FileSource::from_reader("-", Box::new(rx), 1 << 20);
        tx.write_all(b"one\ntw").await.unwrap();
        let c = src.next_chunk().await.unwrap().unwrap();
        assert_eq!(
            c.lines().collect::<Vec<_>>(),
            [&b"one"[..]],
            "not held for a full chunk"
        );
        tx.write_all(b"o\nthree").await.unwrap();
        drop(tx);
        let c = src.next_chunk().await.unwrap().unwrap();
        assert_eq!(
            (c.first_line, c.lines().collect::<Vec<_>>()),
            (2, vec![&b"two"[..]])
        );
        let c = src.next_chunk().await.unwrap().unwrap();
        assert_eq!(
            (c.first_line, c.lines().collect::<Vec<_>>()),
            (3, vec![&b"three"[..]])
        );
        assert!(src.next_chunk().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn empty_lines_are_kept_as_lines() {
        let got = chunks(b"a\n\nb\n", 1024).await;
        let lines: Vec<_> = got.iter().flat_map(|c| c.lines()).collect();
        assert_eq!(lines, [&b"a"[..], b"", b"b"]);
    }

    /// Reads `text` with a line limit of `limit`; returns each line as (number, bytes
    /// handed on, true length when cut).
    async fn limited(
        text: &'static [u8],
        limit: usize,
        chunk: usize,
    ) -> Vec<(u64, Vec<u8>, Option<u64>)> {
        let mut src =
            FileSource::from_reader("t", Box::new(text), chunk).with_max_line_bytes(limit);
        let mut out = Vec::new();
        let mut next = 1;
        while let Some(c) = src.next_chunk().await.unwrap() {
            assert_eq!(c.first_line, next, "chunk size {chunk}");
            next += c.line_count();
            if let Some(len) = c.oversized {
                assert_eq!(c.line_count(), 1, "a cut line comes alone");
                assert!(!c.data.contains(&b'\n'));
                out.push((c.first_line, c.data.to_vec(), Some(len)));
            } else {
                for (i, l) in c.lines().enumerate() {
                    out.push((c.first_line + i as u64, l.to_vec(), None));
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_handed_on_alone_truncated_with_its_length() {
        // Line 2 is 30 bytes, line 4 is 21 and a `\r`, line 6 is 20 with no `\n`.
        let long = [
            (2, b"012345678901234567890123456789".to_vec()),
            (4, b"xxxxxxxxxxxxxxxxxxxxx\r".to_vec()),
            (6, b"yyyyyyyyyyyyyyyyyyyy".to_vec()),
        ];
        let text = b"a\n012345678901234567890123456789\nbb\nxxxxxxxxxxxxxxxxxxxxx\r\nc\nyyyyyyyyyyyyyyyyyyyy";
        for size in 1..40 {
            let got = limited(text, 8, size).await;
            let numbers: Vec<u64> = got.iter().map(|l| l.0).collect();
            assert_eq!(numbers, [1, 2, 3, 4, 5, 6], "chunk size {size}");
            for (n, short) in [(1, &b"a"[..]), (3, b"bb"), (5, b"c")] {
                assert_eq!(
                    got[n - 1],
                    (n as u64, short.to_vec(), None),
                    "chunk size {size}"
                );
            }
            for (n, line) in &long {
                let (_, data, cut) = &got[*n as usize - 1];
                let content = line.strip_suffix(b"\r").unwrap_or(line);
                match cut {
                    // Cut: its first 8 bytes, and its length without the `\r`.
                    Some(len) => {
                        assert_eq!(
                            (&data[..], *len),
                            (&line[..8], content.len() as u64),
                            "line {n}, chunk size {size}"
                        );
                    }
                    // Whole only when it fits in a chunk; the decoder cuts it then.
                    None => {
                        assert_eq!(data, line, "line {n}, chunk size {size}");
                        assert!(size > 9, "line {n} read whole with chunk size {size}");
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn the_buffer_stays_bounded_and_numbering_exact_past_a_huge_line() {
        use tokio::io::AsyncReadExt;
        let huge = tokio::io::repeat(b'z').take(8 << 20);
        let reader = huge.chain(&b"\r\nnext\nlast"[..]);
        let mut src =
            FileSource::from_reader("-", Box::new(reader), 4096).with_max_line_bytes(1000);
        let first = src.next_chunk().await.unwrap().unwrap();
        assert_eq!(
            (first.first_line, first.oversized, first.data.len()),
            (1, Some(8 << 20), 1000)
        );
        assert_eq!(first.clone().skip_through(1).map(|c| c.first_line), None);
        let mut rest = Vec::new();
        while let Some(c) = src.next_chunk().await.unwrap() {
            assert_eq!(c.first_line, 2 + rest.len() as u64);
            rest.extend(c.lines().map(<[u8]>::to_vec));
        }
        assert_eq!(rest, [b"next".to_vec(), b"last".to_vec()]);
        assert!(
            src.buffer_high_water() <= 16 << 10,
            "{}",
            src.buffer_high_water()
        );
    }

    #[test]
    fn locations() {
        assert_eq!(
            file_path("file:///var/log/a%20b.jsonl").unwrap(),
            std::path::PathBuf::from("/var/log/a b.jsonl")
        );
        assert!(
            file_path("kafka://h:9092/t")
                .unwrap_err()
                .to_string()
                .contains("kafka://")
        );
        assert!(file_path("rel/x.jsonl").unwrap().is_absolute());
    }

    /// A file of lines of every length from empty to longer than most chunk sizes,
    /// without a `\n` at its end; the lines, by splitting the bytes at every `\n`.
    fn sample_file(dir: &std::path::Path) -> (std::path::PathBuf, Vec<Vec<u8>>) {
        let mut text = Vec::new();
        for i in 0..300usize {
            text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, (i * 7) % 53));
            text.push(b'\n');
        }
        text.extend_from_slice(b"last");
        let path = dir.join("in.jsonl");
        std::fs::write(&path, &text).unwrap();
        let lines = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
        (path, lines)
    }

    /// Every line of `chunks`, checking that each chunk starts at the next line number.
    fn lines_of(chunks: &[LineChunk]) -> Vec<Vec<u8>> {
        let mut next = 1;
        let mut lines = Vec::new();
        for c in chunks {
            assert_eq!(c.first_line, next);
            next += c.line_count();
            lines.extend(c.lines().map(<[u8]>::to_vec));
        }
        lines
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_is_read_into_chunks_of_whole_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (path, expected) = sample_file(dir.path());
        for size in [1, 2, 7, 64, 100, 4096, 1 << 20] {
            let mut src = FileSource::open(path.to_str().unwrap(), size)
                .await
                .unwrap();
            let mut got = Vec::new();
            while let Some(c) = src.next_chunk().await.unwrap() {
                assert!(
                    c.data.len() <= size.max(60) + 60,
                    "chunk size {size}: a chunk of {} bytes",
                    c.data.len()
                );
                got.push(c);
            }
            assert_eq!(lines_of(&got), expected, "chunk size {size}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn buffers_given_back_are_read_into_again_unless_still_shared() {
        let dir = tempfile::tempdir().unwrap();
        let (path, expected) = sample_file(dir.path());
        let mut src = FileSource::open(path.to_str().unwrap(), 256).await.unwrap();
        let recycler = src.recycler();
        let spare = || recycler.0.lock().unwrap().len();
        let mut lines = Vec::new();
        let mut chunks = 0;
        while let Some(c) = src.next_chunk().await.unwrap() {
            chunks += 1;
            assert_eq!(
                spare(),
                0,
                "the buffer given back was taken for the next chunk"
            );
            lines.push(c.clone());
            if chunks % 2 == 0 {
                // Still held elsewhere (the copy in `lines`): not taken.
                recycler.give(c.data.clone());
                assert_eq!(spare(), 0, "a buffer still shared was kept for reuse");
                let alone = Bytes::copy_from_slice(&c.data);
                recycler.give(alone);
            } else {
                recycler.give(Bytes::from(vec![0u8; 4096]));
            }
            assert_eq!(spare(), 1, "a buffer no one else holds is kept for reuse");
        }
        assert!(chunks > 10, "{chunks} chunks");
        assert_eq!(lines_of(&lines), expected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_cut_short_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let (path, expected) = sample_file(dir.path());
        let mut src = FileSource::open(path.to_str().unwrap(), 64).await.unwrap();
        let mut got = Vec::new();
        let mut cut = 0;
        loop {
            // Each call is first given no time at all: the read it starts in the
            // background is picked up by the call after.
            let once = {
                let mut call = std::pin::pin!(src.next_chunk());
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                call.as_mut().poll(&mut cx)
            };
            let chunk = match once {
                std::task::Poll::Ready(chunk) => chunk.unwrap(),
                std::task::Poll::Pending => {
                    cut += 1;
                    src.next_chunk().await.unwrap()
                }
            };
            let Some(c) = chunk else { break };
            got.push(c);
        }
        assert!(cut > 0, "no call was cut short");
        assert_eq!(lines_of(&got), expected);
    }
}
