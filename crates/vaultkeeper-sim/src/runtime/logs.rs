//! Container logs: each container instance writes stdout and stderr into a bounded buffer of
//! timestamped lines (oldest lines are dropped past the limit, like a rotated log file).
//! Readers get the lines the way `pods/log` serves them: optionally only the last N lines
//! or those since a time, optionally with RFC 3339 timestamps, optionally following until
//! the instance exits. The previous instance's buffer is kept for `previous=true`.

use jiff::Timestamp;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One captured line (without its newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Position in the instance's log (monotonic, survives eviction).
    pub seq: u64,
    /// When the runtime read it.
    pub time: Timestamp,
    /// Stdout or stderr.
    pub stream: LogStream,
    /// The bytes of the line.
    pub content: Vec<u8>,
}

impl LogLine {
    /// The line as `pods/log` serves it, newline included.
    pub fn render(&self, timestamps: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.content.len() + 40);
        if timestamps {
            out.extend_from_slice(
                self.time
                    .strftime("%Y-%m-%dT%H:%M:%S%.fZ ")
                    .to_string()
                    .as_bytes(),
            );
        }
        out.extend_from_slice(&self.content);
        out.push(b'\n');
        out
    }
}

/// Lines longer than this are split, as container runtimes split partial lines.
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug)]
struct Inner {
    lines: VecDeque<LogLine>,
    bytes: usize,
    next_seq: u64,
    closed: bool,
}

/// One container instance's log.
#[derive(Debug)]
pub struct LogBuffer {
    limit: usize,
    inner: Mutex<Inner>,
    changed: Notify,
}

impl LogBuffer {
    /// An empty log holding at most `limit` bytes of line content.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(LogBuffer {
            limit: limit.max(1),
            inner: Mutex::new(Inner {
                lines: VecDeque::new(),
                bytes: 0,
                next_seq: 0,
                closed: false,
            }),
            changed: Notify::new(),
        })
    }

    /// Appends a line, dropping the oldest lines beyond the limit.
    pub fn push(&self, time: Timestamp, stream: LogStream, content: Vec<u8>) {
        if let Ok(mut inner) = self.inner.lock() {
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.bytes += content.len();
            inner.lines.push_back(LogLine {
                seq,
                time,
                stream,
                content,
            });
            while inner.bytes > self.limit && inner.lines.len() > 1 {
                if let Some(old) = inner.lines.pop_front() {
                    inner.bytes -= old.content.len();
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// Marks the instance as ended: followers finish after the last line.
    pub fn close(&self) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.closed = true;
        }
        self.changed.notify_waiters();
    }

    /// True once the instance has ended.
    pub fn is_closed(&self) -> bool {
        self.inner.lock().map(|i| i.closed).unwrap_or(true)
    }

    /// Every line currently held.
    pub fn lines(&self) -> Vec<LogLine> {
        self.inner
            .lock()
            .map(|i| i.lines.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// All held content as text (for tests and quick looks).
    pub fn text(&self) -> String {
        let mut out = Vec::new();
        for l in self.lines() {
            out.extend_from_slice(&l.render(false));
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    fn lines_from(&self, seq: u64) -> (Vec<LogLine>, bool) {
        match self.inner.lock() {
            Ok(i) => (
                i.lines.iter().filter(|l| l.seq >= seq).cloned().collect(),
                i.closed,
            ),
            Err(_) => (Vec::new(), true),
        }
    }

    fn first_seq_of_tail(&self, n: usize) -> u64 {
        self.inner
            .lock()
            .map(|i| {
                let skip = i.lines.len().saturating_sub(n);
                i.lines.get(skip).map_or(i.next_seq, |l| l.seq)
            })
            .unwrap_or(0)
    }
}

/// `pods/log` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new lines until the container instance exits.
    pub follow: bool,
    /// Read the previous (terminated) instance instead of the current one.
    pub previous: bool,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail_lines: Option<usize>,
    /// Only lines at or after this time.
    pub since: Option<Timestamp>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<usize>,
}

/// Reads one instance's log with [`LogOptions`].
#[derive(Debug)]
pub struct LogReader {
    buffer: Arc<LogBuffer>,
    next_seq: u64,
    options: LogOptions,
    sent_bytes: usize,
    pending: VecDeque<LogLine>,
}

impl LogReader {
    /// A reader over `buffer`.
    pub fn new(buffer: Arc<LogBuffer>, options: LogOptions) -> Self {
        let next_seq = match options.tail_lines {
            Some(n) => buffer.first_seq_of_tail(n),
            None => 0,
        };
        LogReader {
            buffer,
            next_seq,
            options,
            sent_bytes: 0,
            pending: VecDeque::new(),
        }
    }

    /// The next rendered chunk (one line), or `None` at the end.
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(limit) = self.options.limit_bytes
                && self.sent_bytes >= limit
            {
                return None;
            }
            if let Some(line) = self.pending.pop_front() {
                self.next_seq = line.seq + 1;
                if self.options.since.is_some_and(|s| line.time < s) {
                    continue;
                }
                let mut out = line.render(self.options.timestamps);
                if let Some(limit) = self.options.limit_bytes {
                    out.truncate(limit - self.sent_bytes);
                }
                self.sent_bytes += out.len();
                return Some(out);
            }
            // Register interest before looking, so a line pushed in between is not missed.
            let notified = self.buffer.changed.notified();
            let (lines, closed) = self.buffer.lines_from(self.next_seq);
            if !lines.is_empty() {
                self.pending.extend(lines);
                continue;
            }
            if closed || !self.options.follow {
                return None;
            }
            notified.await;
        }
    }

    /// Reads everything up to the end (for non-follow reads and tests).
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk);
        }
        out
    }
}

/// Copies a process's output pipe into the log, line by line, until EOF.
pub(crate) async fn capture<R: tokio::io::AsyncRead + Unpin>(
    mut reader: R,
    stream: LogStream,
    buffer: Arc<LogBuffer>,
    now: Arc<dyn Fn() -> Timestamp + Send + Sync>,
) {
    let mut chunk = vec![0u8; 8192];
    let mut line = Vec::new();
    loop {
        let n = match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &chunk[..n] {
            if b == b'\n' {
                buffer.push(now(), stream, std::mem::take(&mut line));
            } else {
                line.push(b);
                if line.len() >= MAX_LINE {
                    buffer.push(now(), stream, std::mem::take(&mut line));
                }
            }
        }
    }
    if !line.is_empty() {
        buffer.push(now(), stream, line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    #[tokio::test]
    async fn buffer_is_bounded_and_readers_apply_options() {
        let buf = LogBuffer::new(12);
        for (i, l) in ["one", "two", "three", "four"].iter().enumerate() {
            buf.push(t(i as i64), LogStream::Stdout, l.as_bytes().to_vec());
        }
        // 3+3+5+4 = 15 > 12: "one" was dropped.
        assert_eq!(buf.text(), "two\nthree\nfour\n");
        let read = |o: LogOptions| {
            let buf = buf.clone();
            async move { String::from_utf8(LogReader::new(buf, o).read_to_end().await).unwrap() }
        };
        assert_eq!(
            read(LogOptions {
                tail_lines: Some(1),
                ..Default::default()
            })
            .await,
            "four\n"
        );
        assert_eq!(
            read(LogOptions {
                since: Some(t(2)),
                ..Default::default()
            })
            .await,
            "three\nfour\n"
        );
        assert_eq!(
            read(LogOptions {
                limit_bytes: Some(6),
                ..Default::default()
            })
            .await,
            "two\nth"
        );
        let stamped = read(LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        })
        .await;
        assert_eq!(stamped, "2023-11-14T22:13:23Z four\n");
    }

    #[tokio::test]
    async fn follow_streams_until_the_instance_ends() {
        let buf = LogBuffer::new(1024);
        buf.push(t(0), LogStream::Stdout, b"first".to_vec());
        let mut reader = LogReader::new(
            buf.clone(),
            LogOptions {
                follow: true,
                ..Default::default()
            },
        );
        assert_eq!(reader.next().await.unwrap(), b"first\n");
        let writer = {
            let buf = buf.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                buf.push(t(1), LogStream::Stderr, b"second".to_vec());
                buf.close();
            })
        };
        assert_eq!(reader.next().await.unwrap(), b"second\n");
        assert_eq!(reader.next().await, None);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn capture_splits_lines_and_keeps_a_trailing_partial_line() {
        let buf = LogBuffer::new(1 << 20);
        let input: &[u8] = b"a\nbb\npartial";
        capture(
            input,
            LogStream::Stdout,
            buf.clone(),
            Arc::new(Timestamp::now),
        )
        .await;
        assert_eq!(buf.text(), "a\nbb\npartial\n");
        let long = vec![b'x'; MAX_LINE + 5];
        let buf = LogBuffer::new(1 << 20);
        capture(
            &long[..],
            LogStream::Stdout,
            buf.clone(),
            Arc::new(Timestamp::now),
        )
        .await;
        let lines = buf.lines();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].content.len(), MAX_LINE);
    }
}
