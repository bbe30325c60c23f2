//! Exec sessions and the exec audit. An exec runs argv inside a running container's mount,
//! UTS and PID namespaces, as the container's uid/gid with its environment and working
//! directory, with stdin/stdout/stderr as async pipes — what the `pods/exec` websocket
//! handler needs. Every argv the runtime runs inside a container (exec, exec probes,
//! lifecycle hooks) is recorded in the audit, so tests can prove no secret ever appears in
//! a command line.

use super::probes::ProbeKind;
use super::sandbox::{ExitStatus, Process};
use super::status::PodKey;
use jiff::Timestamp;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;

/// Who ran a command inside a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOrigin {
    /// A `pods/exec` request.
    Exec,
    /// An exec probe.
    Probe(ProbeKind),
    /// A `lifecycle.postStart` hook.
    PostStartHook,
    /// A `lifecycle.preStop` hook.
    PreStopHook,
}

/// One audited command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRecord {
    /// When it was requested.
    pub at: Timestamp,
    /// The pod.
    pub pod: PodKey,
    /// The container.
    pub container: String,
    /// The exact argv.
    pub argv: Vec<String>,
    /// Who asked.
    pub origin: ExecOrigin,
}

/// Options of an exec request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// Attach a stdin pipe (otherwise stdin is `/dev/null`).
    pub stdin: bool,
    /// Allocate a terminal (refused: the simulated kubelet has no tty support).
    pub tty: bool,
}

/// A running exec. Read `stdout`/`stderr` while the command runs (the pipes are bounded);
/// drop or shut down `stdin` to send EOF.
#[derive(Debug)]
pub struct ExecSession {
    /// The command's stdin, when requested.
    pub stdin: Option<pipe::Sender>,
    /// The command's stdout.
    pub stdout: pipe::Receiver,
    /// The command's stderr.
    pub stderr: pipe::Receiver,
    pub(crate) process: Arc<Process>,
}

/// Everything an exec produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
}

impl ExecSession {
    /// Waits for the command to exit.
    pub async fn wait(&self) -> ExitStatus {
        self.process.wait().await
    }

    /// Splits the session for a protocol relay (the `pods/exec` websocket): stdin, stdout,
    /// stderr, and a future that resolves to the exit status once the command ends.
    pub fn into_parts(
        self,
    ) -> (
        Option<pipe::Sender>,
        pipe::Receiver,
        pipe::Receiver,
        impl std::future::Future<Output = ExitStatus> + Send + 'static,
    ) {
        let process = self.process;
        (self.stdin, self.stdout, self.stderr, async move {
            process.wait().await
        })
    }

    /// The command's pid in the runtime's PID namespace (diagnostics).
    pub fn process_id(&self) -> i32 {
        self.process.pid()
    }

    /// Kills the command (SIGKILL).
    pub fn kill(&self) {
        let _ = self.process.signal(libc::SIGKILL);
    }

    /// Writes `input` to stdin (when attached), closes it, and collects all output.
    pub async fn output(mut self, input: &[u8]) -> std::io::Result<ExecOutput> {
        let stdin = self.stdin.take();
        let write = async move {
            if let Some(mut s) = stdin {
                // A command that exits without reading its input is not an error.
                let _ = s.write_all(input).await;
                let _ = s.shutdown().await;
            }
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (_, o, e) = tokio::join!(
            write,
            self.stdout.read_to_end(&mut out),
            self.stderr.read_to_end(&mut err)
        );
        o?;
        e?;
        let status = self.process.wait().await;
        Ok(ExecOutput {
            status,
            stdout: out,
            stderr: err,
        })
    }
}
