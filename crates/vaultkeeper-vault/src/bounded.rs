//! A cap on every read of bytes a pod controls.
//!
//! A Vault pod runs whatever image the person who wrote the VaultCluster chose, so what it
//! sends back (an HTTP answer, the output of a command run in it, a Job's log) may be
//! hostile. Read whole, one answer of a gigabyte would exhaust the operator's memory and
//! stop it for every cluster it serves. Every such read therefore goes through this module
//! with a named [`Limit`]: it reads at most one byte past the limit, leaves the rest unread
//! (the caller then closes the stream), wipes what it read, and reports which limit was
//! hit, so the error a person sees names the limit and what was being read.

use std::fmt;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use zeroize::Zeroize;

/// One mebibyte: the default cap. A Vault API answer, a CLI's JSON output or the outcome
/// line of a job is a few kilobytes; a megabyte leaves room for a large raft configuration
/// and still bounds the operator's memory by the number of calls in flight.
pub const MIB: usize = 1024 * 1024;

/// How much of one kind of pod-controlled input is read before giving up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit {
    /// The most bytes accepted.
    pub bytes: usize,
    /// What is being read, for the error (e.g. "a Vault API answer").
    pub what: &'static str,
}

/// The body of one answer of the Vault HTTP API (JSON calls and error answers).
pub const VAULT_API_ANSWER: Limit = Limit {
    bytes: MIB,
    what: "a Vault API answer",
};

/// The standard output of one command run in a pod over the exec transport.
pub const EXEC_STDOUT: Limit = Limit {
    bytes: MIB,
    what: "the standard output of a command run in the pod",
};

/// The standard error of one command run in a pod over the exec transport.
pub const EXEC_STDERR: Limit = Limit {
    bytes: MIB,
    what: "the standard error of a command run in the pod",
};

/// The log tail of a backup or metrics-token Job's pod, read for its outcome line.
pub const JOB_LOG: Limit = Limit {
    bytes: MIB,
    what: "the log of a Job's pod",
};

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the {} limit on {}", size(self.bytes), self.what)
    }
}

/// A size in the largest whole binary unit, e.g. `1 MiB`, `64 KiB`, `100 bytes`.
fn size(bytes: usize) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Why a capped read gave no bytes.
#[derive(Debug)]
pub enum CappedRead<E> {
    /// More arrived (or was announced) than the limit allows; the rest was not read.
    TooLarge(Limit),
    /// The read itself failed.
    Failed(E),
}

impl<E: fmt::Display> fmt::Display for CappedRead<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CappedRead::TooLarge(limit) => write!(
                f,
                "it sent more than {limit}; the rest was not read (a Vault server never \
                 sends that much: check the image the pod runs)"
            ),
            CappedRead::Failed(e) => e.fmt(f),
        }
    }
}

/// Reads `reader` to its end, or fails as soon as it has given more than `limit.bytes`.
pub async fn read_to_limit<R>(
    reader: R,
    limit: Limit,
) -> Result<Vec<u8>, CappedRead<std::io::Error>>
where
    R: AsyncRead + Unpin,
{
    let mut read = Vec::new();
    let outcome = reader.take(allowed(limit)).read_to_end(&mut read).await;
    within(read, outcome, limit)
}

/// [`read_to_limit`] for a reader of the `futures` family (e.g. a pod log stream).
pub async fn read_futures_to_limit<R>(
    reader: R,
    limit: Limit,
) -> Result<Vec<u8>, CappedRead<std::io::Error>>
where
    R: futures::AsyncRead + Unpin,
{
    use futures::AsyncReadExt as _;
    let mut read = Vec::new();
    let outcome = reader.take(allowed(limit)).read_to_end(&mut read).await;
    within(read, outcome, limit)
}

/// How much to read: one byte past the limit tells "exactly at the limit" from "over it".
fn allowed(limit: Limit) -> u64 {
    u64::try_from(limit.bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// What a read that stopped at [`allowed`] gave: the bytes, or why not (wiping them).
fn within(
    mut read: Vec<u8>,
    outcome: std::io::Result<usize>,
    limit: Limit,
) -> Result<Vec<u8>, CappedRead<std::io::Error>> {
    if let Err(e) = outcome {
        read.zeroize();
        return Err(CappedRead::Failed(e));
    }
    if read.len() > limit.bytes {
        read.zeroize();
        return Err(CappedRead::TooLarge(limit));
    }
    Ok(read)
}

/// Collects a body that arrives in chunks, refusing it up front when its declared length
/// (`Content-Length`) is over the limit and as soon as the chunks pass it otherwise.
pub async fn collect_to_limit<S, E>(
    mut chunks: S,
    declared: Option<u64>,
    limit: Limit,
) -> Result<Vec<u8>, CappedRead<E>>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    let declared = declared.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if declared.is_some_and(|n| n > limit.bytes) {
        return Err(CappedRead::TooLarge(limit));
    }
    // Sized once from the declared length (already within the limit), so the buffer is
    // not reallocated and no unwiped copy of a secret is left behind.
    let mut body = Vec::with_capacity(declared.unwrap_or(0));
    while let Some(chunk) = chunks.next().await {
        let chunk = match chunk {
            Ok(chunk) => chunk,
            Err(e) => {
                body.zeroize();
                return Err(CappedRead::Failed(e));
            }
        };
        if body.len().saturating_add(chunk.len()) > limit.bytes {
            body.zeroize();
            return Err(CappedRead::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limit = Limit {
        bytes: 10,
        what: "a test answer",
    };

    /// An endless reader that counts what was taken from it.
    struct Endless {
        given: usize,
    }

    impl AsyncRead for Endless {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = buf.remaining();
            buf.put_slice(&vec![b'x'; n]);
            self.given += n;
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_reader_within_the_limit_is_read_whole() {
        let read = read_to_limit(&b"0123456789"[..], SMALL)
            .await
            .expect("fits");
        assert_eq!(read, b"0123456789");
        let read = read_to_limit(&b""[..], SMALL).await.expect("empty fits");
        assert!(read.is_empty());
    }

    #[tokio::test]
    async fn a_reader_past_the_limit_fails_after_one_byte_more() {
        let mut endless = Endless { given: 0 };
        match read_to_limit(&mut endless, SMALL).await {
            Err(CappedRead::TooLarge(limit)) => assert_eq!(limit, SMALL),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(endless.given, 11, "nothing is read past the limit");
        let eleven = read_to_limit(&b"0123456789A"[..], SMALL).await;
        assert!(matches!(eleven, Err(CappedRead::TooLarge(_))));
        let eleven = read_futures_to_limit(&b"0123456789A"[..], SMALL).await;
        assert!(matches!(eleven, Err(CappedRead::TooLarge(_))));
        let ten = read_futures_to_limit(&b"0123456789"[..], SMALL).await;
        assert_eq!(ten.expect("fits"), b"0123456789");
    }

    fn chunks(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn chunks_within_the_limit_are_joined() {
        let body = collect_to_limit(chunks(&[b"01234", b"56789"]), Some(10), SMALL)
            .await
            .expect("fits");
        assert_eq!(body, b"0123456789");
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let mut polled = false;
        let stream = futures::stream::poll_fn(|_| {
            polled = true;
            std::task::Poll::Ready(None::<Result<Bytes, String>>)
        });
        let outcome = collect_to_limit(stream, Some(1 << 30), SMALL).await;
        assert!(matches!(outcome, Err(CappedRead::TooLarge(_))));
        assert!(!polled, "the body is not touched");
    }

    #[tokio::test]
    async fn chunks_past_the_limit_stop_the_read_even_without_a_declared_length() {
        let mut taken = 0;
        let endless = futures::stream::repeat_with(|| Ok::<_, String>(Bytes::from_static(b"xxxx")))
            .inspect(|_| taken += 1);
        let outcome = collect_to_limit(endless, None, SMALL).await;
        assert!(matches!(outcome, Err(CappedRead::TooLarge(_))));
        assert_eq!(
            taken, 3,
            "the chunk that passes the limit is the last one taken"
        );
    }

    #[tokio::test]
    async fn a_failed_read_is_reported_as_such() {
        let broken = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"01")),
            Err("connection reset".to_owned()),
        ]);
        match collect_to_limit(broken, None, SMALL).await {
            Err(CappedRead::Failed(e)) => assert_eq!(e, "connection reset"),
            other => panic!("expected Failed, got {other:?}"),
        }
    }

    #[test]
    fn the_error_names_the_limit_and_what_was_read() {
        let text = CappedRead::<String>::TooLarge(VAULT_API_ANSWER).to_string();
        assert!(text.contains("1 MiB limit on a Vault API answer"), "{text}");
        assert_eq!(size(64 * 1024), "64 KiB");
        assert_eq!(size(10), "10 bytes");
    }
}
