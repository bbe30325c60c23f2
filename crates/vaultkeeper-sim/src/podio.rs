//! What the API server needs from the kubelet to serve `pods/exec` and `pods/log`: the
//! HTTP side (websocket channels, chunked log streams) lives in the server, the process
//! side behind this trait, implemented by the kubelet glue over the pod runtime.

use crate::error::SimError;
use bytes::Bytes;
use futures::stream::BoxStream;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite};

/// A `pods/exec` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container (empty: the pod's only or first container, as the real kubelet picks).
    pub container: String,
    /// argv.
    pub command: Vec<String>,
    /// Attach stdin.
    pub stdin: bool,
    /// Allocate a TTY.
    pub tty: bool,
}

/// How an exec'd command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecExit {
    /// Exited with a code.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

/// The streams of a running exec.
pub struct ExecStreams {
    /// stdin, when requested.
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// stdout.
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    /// stderr.
    pub stderr: Pin<Box<dyn AsyncRead + Send>>,
    /// Resolves when the command exits.
    pub exit: Pin<Box<dyn std::future::Future<Output = ExecExit> + Send>>,
}

/// A `pods/log` request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRequest {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container (empty: the only container).
    pub container: String,
    /// Keep streaming new lines.
    pub follow: bool,
    /// The previous (terminated) instance of the container.
    pub previous: bool,
    /// Prefix lines with RFC 3339 timestamps.
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<i64>,
}

/// Process-side operations of the kubelet.
#[async_trait::async_trait]
pub trait PodIo: Send + Sync {
    /// Starts a command in a running container.
    async fn exec(&self, req: ExecRequest) -> Result<ExecStreams, SimError>;
    /// Streams a container's log.
    async fn logs(&self, req: LogRequest) -> Result<BoxStream<'static, Bytes>, SimError>;
}

/// The streams of an exec whose answer suffers `fault`: the command runs for real; its
/// stdout is collected, then held back, cut or replaced, and the exit status follows it.
pub fn with_answer_fault(
    streams: ExecStreams,
    fault: crate::faults::ExecAnswerFault,
) -> ExecStreams {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ExecStreams {
        stdin,
        mut stdout,
        stderr,
        exit,
    } = streams;
    let (mut writer, reader) = tokio::io::duplex(1 << 20);
    let (done, exited) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut answer = Vec::new();
        let _ = stdout.read_to_end(&mut answer).await;
        let code = exit.await;
        tokio::time::sleep(fault.delay).await;
        // The client may have gone (its own timeout): the answer is then lost, as from a
        // node that answered too late.
        let _ = writer.write_all(&fault.answer(answer)).await;
        drop(writer);
        let _ = done.send(code);
    });
    ExecStreams {
        stdin,
        stdout: Box::pin(reader),
        stderr,
        exit: Box::pin(async move { exited.await.unwrap_or(ExecExit::Code(-1)) }),
    }
}
