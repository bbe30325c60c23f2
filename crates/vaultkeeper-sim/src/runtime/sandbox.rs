//! Starting processes inside a pod's private view. This is the only module with `unsafe`
//! code, and the unsafe part is small: after `fork`, the child runs a precomputed list of
//! [`Step`]s (mounts, `pivot_root`, `setns`, `setuid`…) made only of system calls on
//! strings built before the fork — no allocation, no locks, nothing that is unsafe in the
//! child of a multi-threaded process — then `exec`s.
//!
//! PID namespaces are per-thread state for the *children* of a thread (`unshare` and
//! `setns` with `CLONE_NEWPID` only affect processes forked afterwards). So every fork
//! happens on one dedicated spawner thread, which enters the target PID namespace, forks,
//! and returns to the host namespace. A container's process is therefore PID 1 of its own
//! PID namespace (as in Kubernetes without `shareProcessNamespace`): `pidof vault` in a
//! preStop hook sees only its own pod, and when PID 1 dies the kernel kills everything
//! else the container started. Every child also gets `PR_SET_PDEATHSIG(SIGKILL)` tied to
//! the spawner thread, so even a test binary killed outright leaves no pod process behind.
//!
//! Processes are tracked through pidfds: waiting, signalling and reaping never race with
//! pid reuse.

use super::env::EnvVar;
use secrecy::ExposeSecret;
use std::ffi::{CString, OsStr, OsString};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code, when the process exited.
    pub code: Option<i32>,
    /// Signal number, when a signal killed it.
    pub signal: Option<i32>,
}

impl ExitStatus {
    /// The exit code as Kubernetes reports it: the code, or 128 + the signal number.
    pub fn kubernetes_exit_code(&self) -> i32 {
        match (self.code, self.signal) {
            (Some(c), _) => c,
            (None, Some(s)) => 128 + s,
            (None, None) => 128,
        }
    }

    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "killed by signal {s}"),
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

/// One system call the child makes between `fork` and `exec`. Strings are C strings built
/// before the fork.
#[derive(Debug)]
pub(crate) enum Step {
    /// `unshare(flags)` (new mount/UTS namespace for a container).
    Unshare { flags: libc::c_int },
    /// `setns(fd, nstype)` (an exec joining its container's namespaces).
    SetNs {
        fd: RawFd,
        nstype: libc::c_int,
        what: &'static str,
    },
    /// Makes every mount private so nothing propagates back to the host.
    MakeRootPrivate,
    /// `mount -t tmpfs`.
    MountTmpfs {
        target: CString,
        data: CString,
        flags: libc::c_ulong,
    },
    /// `mount -t proc`.
    MountProc { target: CString },
    /// `mount -t overlay`.
    MountOverlay { target: CString, data: CString },
    /// `mkdir`, an existing directory is fine.
    Mkdir { path: CString, mode: libc::mode_t },
    /// Creates an empty file to bind a file over, an existing one is fine.
    CreateFile { path: CString },
    /// Replaces whatever is at `path` (a symlink, typically) with an empty file.
    ReplaceWithFile { path: CString },
    /// `symlink`, an existing entry is fine.
    Symlink { target: CString, link: CString },
    /// `mount --bind`.
    Bind {
        source: CString,
        target: CString,
        what: String,
    },
    /// Remounts a mount read-only (bind remount).
    RemountReadOnly {
        target: CString,
        flags: libc::c_ulong,
    },
    /// `pivot_root(new_root, put_old)` then `chdir("/")`.
    PivotRoot { new_root: CString, put_old: CString },
    /// `umount2(target, MNT_DETACH)`.
    Detach { target: CString },
    /// `rmdir`.
    Rmdir { path: CString },
    /// `chown`.
    Chown {
        path: CString,
        uid: libc::uid_t,
        gid: libc::gid_t,
    },
    /// `sethostname`.
    SetHostname { name: CString },
    /// `chdir`.
    Chdir { path: CString },
    /// `PR_SET_NO_NEW_PRIVS` (`allowPrivilegeEscalation: false`).
    NoNewPrivs,
    /// `setgroups`, `setgid`, `setuid`.
    SetIdentity {
        uid: libc::uid_t,
        gid: libc::gid_t,
        groups: Vec<libc::gid_t>,
    },
    /// `PR_SET_PDEATHSIG(SIGKILL)` (after `setuid`, which clears it).
    DieWithSpawner,
    /// Installs the loopback-translation seccomp filter and sends its listener fd to the
    /// runtime over `socket`.
    LoopbackFilter {
        program: Vec<libc::sock_filter>,
        socket: RawFd,
    },
}

// SAFETY: the raw fds and sock_filter arrays are plain data; the fds stay owned by the
// runtime for as long as the step exists.
unsafe impl Send for Step {}
unsafe impl Sync for Step {}

/// C string from a path or text; an interior NUL is reported, never panics.
pub(crate) fn cstr(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{:?} contains a NUL byte", s.as_ref()),
        )
    })
}

impl Step {
    /// What the step does, for error messages.
    pub(crate) fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Step::Unshare { .. } => "creating the container's mount and UTS namespaces".into(),
            Step::SetNs { what, .. } => format!("entering the container's {what} namespace"),
            Step::MakeRootPrivate => "making mounts private".into(),
            Step::MountTmpfs { target, .. } => format!("mounting tmpfs at {}", s(target)),
            Step::MountProc { target } => format!("mounting proc at {}", s(target)),
            Step::MountOverlay { target, .. } => {
                format!("mounting the root overlay at {}", s(target))
            }
            Step::Mkdir { path, .. } => format!("creating directory {}", s(path)),
            Step::CreateFile { path } | Step::ReplaceWithFile { path } => {
                format!("creating mount point {}", s(path))
            }
            Step::Symlink { link, .. } => format!("creating symlink {}", s(link)),
            Step::Bind { what, .. } => what.clone(),
            Step::RemountReadOnly { target, .. } => format!("making {} read-only", s(target)),
            Step::PivotRoot { .. } => "pivot_root into the pod's root".into(),
            Step::Detach { target } => format!("detaching {}", s(target)),
            Step::Rmdir { path } => format!("removing {}", s(path)),
            Step::Chown { path, .. } => format!("chown {}", s(path)),
            Step::SetHostname { .. } => "setting the hostname".into(),
            Step::Chdir { path } => format!("changing to working directory {}", s(path)),
            Step::NoNewPrivs => "setting no_new_privs".into(),
            Step::SetIdentity { uid, gid, .. } => format!("switching to uid {uid} gid {gid}"),
            Step::DieWithSpawner => "setting the parent-death signal".into(),
            Step::LoopbackFilter { .. } => "installing the loopback translation filter".into(),
        }
    }

    /// Runs the step in the child. Only system calls on data prepared before the fork.
    fn apply(&self) -> io::Result<()> {
        // SAFETY (whole function): every pointer passed below comes from a CString or Vec
        // owned by `self`, alive for the call; the calls are async-signal-safe.
        unsafe {
            let ok = |r: libc::c_int| {
                if r == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            };
            let ok_exists = |r: libc::c_int| {
                if r == 0 {
                    return Ok(());
                }
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EEXIST) {
                    Ok(())
                } else {
                    Err(e)
                }
            };
            let null = std::ptr::null::<libc::c_char>();
            match self {
                Step::Unshare { flags } => ok(libc::unshare(*flags)),
                Step::SetNs { fd, nstype, .. } => ok(libc::setns(*fd, *nstype)),
                Step::MakeRootPrivate => ok(libc::mount(
                    null,
                    c"/".as_ptr(),
                    null,
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )),
                Step::MountTmpfs {
                    target,
                    data,
                    flags,
                } => ok(libc::mount(
                    c"tmpfs".as_ptr(),
                    target.as_ptr(),
                    c"tmpfs".as_ptr(),
                    *flags,
                    data.as_ptr().cast(),
                )),
                Step::MountProc { target } => ok(libc::mount(
                    c"proc".as_ptr(),
                    target.as_ptr(),
                    c"proc".as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                )),
                Step::MountOverlay { target, data } => ok(libc::mount(
                    c"overlay".as_ptr(),
                    target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    data.as_ptr().cast(),
                )),
                Step::Mkdir { path, mode } => ok_exists(libc::mkdir(path.as_ptr(), *mode)),
                Step::CreateFile { path } => {
                    // An existing file is used as is (opening it for writing would copy it
                    // up into the overlay for nothing).
                    let mut st: libc::stat = std::mem::zeroed();
                    if libc::stat(path.as_ptr(), &mut st) == 0 {
                        return Ok(());
                    }
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644 as libc::c_uint,
                    );
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    libc::close(fd);
                    Ok(())
                }
                Step::ReplaceWithFile { path } => {
                    if libc::unlink(path.as_ptr()) != 0 {
                        let e = io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::ENOENT) {
                            return Err(e);
                        }
                    }
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o755 as libc::c_uint,
                    );
                    if fd < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    libc::close(fd);
                    Ok(())
                }
                Step::Symlink { target, link } => {
                    ok_exists(libc::symlink(target.as_ptr(), link.as_ptr()))
                }
                Step::Bind { source, target, .. } => ok(libc::mount(
                    source.as_ptr(),
                    target.as_ptr(),
                    null,
                    libc::MS_BIND,
                    std::ptr::null(),
                )),
                Step::RemountReadOnly { target, flags } => ok(libc::mount(
                    null,
                    target.as_ptr(),
                    null,
                    libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | *flags,
                    std::ptr::null(),
                )),
                Step::PivotRoot { new_root, put_old } => {
                    let r =
                        libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr());
                    if r != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    ok(libc::chdir(c"/".as_ptr()))
                }
                Step::Detach { target } => ok(libc::umount2(target.as_ptr(), libc::MNT_DETACH)),
                Step::Rmdir { path } => ok(libc::rmdir(path.as_ptr())),
                Step::Chown { path, uid, gid } => ok(libc::chown(path.as_ptr(), *uid, *gid)),
                Step::SetHostname { name } => {
                    ok(libc::sethostname(name.as_ptr(), name.as_bytes().len()))
                }
                Step::Chdir { path } => ok(libc::chdir(path.as_ptr())),
                Step::NoNewPrivs => ok(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)),
                Step::SetIdentity { uid, gid, groups } => {
                    ok(libc::setgroups(groups.len(), groups.as_ptr()))?;
                    ok(libc::setgid(*gid))?;
                    ok(libc::setuid(*uid))
                }
                Step::DieWithSpawner => {
                    ok(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0))
                }
                Step::LoopbackFilter { program, socket } => {
                    super::loopback::install_filter_in_child(program, *socket)
                }
            }
        }
    }
}

/// Which PID namespace the new process lives in.
#[derive(Debug, Clone)]
pub(crate) enum PidNamespace {
    /// A fresh one: the process is its PID 1 (a container).
    New,
    /// An existing container's (an exec, a probe, a hook).
    Join(Arc<OwnedFd>),
}

/// Everything needed to start one process.
#[derive(Debug)]
pub(crate) struct ProcessPlan {
    /// argv; argv\[0\] is looked up on the process's `PATH` inside its root.
    pub argv: Vec<OsString>,
    /// The full environment.
    pub env: Vec<EnvVar>,
    /// Whether stdin is a pipe (else `/dev/null`).
    pub stdin: bool,
    /// PID namespace.
    pub pid_namespace: PidNamespace,
    /// What the child does before `exec`.
    pub steps: Vec<Step>,
    /// Fds the steps use; kept open until the fork is done.
    pub keep_open: Vec<Arc<OwnedFd>>,
}

/// Why a spawn failed: at which step (if one of ours) and the system error.
#[derive(Debug)]
pub(crate) struct SpawnFailure {
    /// Description of the failed step, or `None` when `exec` itself failed.
    pub step: Option<String>,
    /// The error.
    pub source: io::Error,
}

/// A started process: its pidfd-backed handle and the parent ends of its pipes.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub process: Arc<Process>,
    pub stdin: Option<OwnedFd>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// A child process tracked through its pidfd.
#[derive(Debug)]
pub(crate) struct Process {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    exit: watch::Sender<Option<ExitStatus>>,
    reap_lock: Mutex<()>,
}

impl Process {
    /// The process id in the runtime's PID namespace.
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Sends a signal; a process that already exited is not an error.
    pub(crate) fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: the pidfd is owned by self and open.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            Ok(())
        } else {
            Err(e)
        }
    }

    /// The exit status once known (None while running).
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits for the process to exit.
    pub(crate) async fn wait(&self) -> ExitStatus {
        let mut rx = self.exit.subscribe();
        loop {
            if let Some(status) = *rx.borrow_and_update() {
                return status;
            }
            if rx.changed().await.is_err() {
                // The sender lives in self, so this cannot happen while self exists.
                return self.exit_status().unwrap_or(ExitStatus {
                    code: None,
                    signal: None,
                });
            }
        }
    }

    /// Reaps the process if it has exited (non-blocking); publishes the status.
    pub(crate) fn try_reap(&self) -> Option<ExitStatus> {
        let _guard = self.reap_lock.lock().ok()?;
        if let Some(s) = self.exit_status() {
            return Some(s);
        }
        // SAFETY: zeroed siginfo is a valid out-parameter; the pidfd is open.
        let status = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let r = libc::waitid(
                libc::P_PIDFD,
                self.pidfd.as_raw_fd() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG,
            );
            if r != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ECHILD) {
                    // Someone else reaped it; the status is lost but the process is gone.
                    Some(ExitStatus {
                        code: None,
                        signal: Some(libc::SIGKILL),
                    })
                } else {
                    None
                }
            } else if info.si_pid() == 0 {
                None
            } else {
                match info.si_code {
                    libc::CLD_EXITED => Some(ExitStatus {
                        code: Some(info.si_status()),
                        signal: None,
                    }),
                    _ => Some(ExitStatus {
                        code: None,
                        signal: Some(info.si_status()),
                    }),
                }
            }
        };
        if let Some(s) = status {
            self.exit.send_replace(Some(s));
        }
        status
    }

    /// Kills the process and reaps it, waiting at most `deadline` (for `Drop`).
    pub(crate) fn kill_and_reap_blocking(&self, deadline: std::time::Duration) {
        let _ = self.signal(libc::SIGKILL);
        let start = std::time::Instant::now();
        while self.try_reap().is_none() && start.elapsed() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// Watches the pidfd and reaps the process when it exits.
fn start_reaper(process: Arc<Process>) -> io::Result<()> {
    // SAFETY: F_DUPFD_CLOEXEC on an open fd returns a new fd we own.
    let dup = unsafe { libc::fcntl(process.pidfd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: dup is a fresh fd owned by nobody else.
    let owned = unsafe { OwnedFd::from_raw_fd(dup) };
    // SAFETY: the OwnedFd moves into the AsyncFd and stays open for its whole life.
    let async_fd =
        unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }?;
    tokio::spawn(async move {
        loop {
            if process.try_reap().is_some() {
                return;
            }
            match async_fd.readable().await {
                Ok(mut guard) => {
                    if process.try_reap().is_some() {
                        return;
                    }
                    guard.clear_ready();
                }
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    Ok(())
}

type Job = Box<dyn FnOnce(&SpawnerThread) + Send>;

struct SpawnerThread {
    host_pid_namespace: OwnedFd,
    broken: std::cell::Cell<bool>,
}

/// The dedicated thread that forks every pod process (see the module docs for why).
pub(crate) struct Spawner {
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    /// Starts the spawner thread.
    pub(crate) fn start() -> io::Result<Spawner> {
        let host = std::fs::File::open("/proc/thread-self/ns/pid")?;
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("pod-spawner".to_string())
            .spawn(move || {
                let ctx = SpawnerThread {
                    host_pid_namespace: host.into(),
                    broken: std::cell::Cell::new(false),
                };
                while let Ok(job) = rx.recv() {
                    job(&ctx);
                }
            })?;
        Ok(Spawner {
            jobs: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Starts a process; returns once it has `exec`ed (or failed to).
    pub(crate) async fn spawn(&self, plan: ProcessPlan) -> Result<Spawned, SpawnFailure> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |ctx: &SpawnerThread| {
            let _ = tx.send(ctx.spawn(plan));
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.as_ref().map(|j| j.send(job).is_ok()).unwrap_or(false),
            Err(_) => false,
        };
        if !sent {
            return Err(SpawnFailure {
                step: Some("handing the process to the spawner thread".into()),
                source: io::Error::other("the pod runtime has shut down"),
            });
        }
        let raw = rx.await.map_err(|_| SpawnFailure {
            step: Some("waiting for the spawner thread".into()),
            source: io::Error::other("the spawner thread stopped"),
        })??;
        start_reaper(raw.process.clone()).map_err(|e| SpawnFailure {
            step: Some("watching the new process".into()),
            source: e,
        })?;
        Ok(raw)
    }

    /// Stops the thread. Processes it forked receive SIGKILL (their parent-death signal).
    pub(crate) fn stop(&self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Ok(mut t) = self.thread.lock()
            && let Some(t) = t.take()
        {
            let _ = t.join();
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.stop();
    }
}

impl SpawnerThread {
    fn spawn(&self, plan: ProcessPlan) -> Result<Spawned, SpawnFailure> {
        let fail = |step: &str, source: io::Error| SpawnFailure {
            step: Some(step.to_string()),
            source,
        };
        if self.broken.get() {
            return Err(fail(
                "using the spawner thread",
                io::Error::other("a previous spawn left it in a foreign PID namespace"),
            ));
        }
        // SAFETY: unshare/setns on this thread only change the PID namespace of the
        // processes it forks next; the fd is open for the call.
        let entered = unsafe {
            match &plan.pid_namespace {
                PidNamespace::New => libc::unshare(libc::CLONE_NEWPID),
                PidNamespace::Join(fd) => libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID),
            }
        };
        if entered != 0 {
            let e = io::Error::last_os_error();
            let step = match plan.pid_namespace {
                PidNamespace::New => "creating a PID namespace",
                // A dead PID namespace cannot be joined: the container's PID 1 exited.
                PidNamespace::Join(_) => "entering the container's PID namespace",
            };
            return Err(fail(step, e));
        }
        let result = fork_exec(plan);
        // SAFETY: returning to our own active PID namespace is always allowed.
        let back = unsafe { libc::setns(self.host_pid_namespace.as_raw_fd(), libc::CLONE_NEWPID) };
        if back != 0 {
            self.broken.set(true);
        }
        result
    }
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 returned two fresh fds that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn fork_exec(plan: ProcessPlan) -> Result<Spawned, SpawnFailure> {
    let fail = |step: &str, source: io::Error| SpawnFailure {
        step: Some(step.to_string()),
        source,
    };
    let Some((program, args)) = plan.argv.split_first() else {
        return Err(fail(
            "building the command line",
            io::Error::new(io::ErrorKind::InvalidInput, "empty argv"),
        ));
    };
    let (report_read, report_write) = pipe_cloexec().map_err(|e| fail("creating a pipe", e))?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .stdin(if plan.stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in &plan.env {
        cmd.env(&v.name, OsStr::from_bytes(v.value.expose_secret()));
    }
    let steps = plan.steps;
    let descriptions: Vec<String> = steps.iter().map(Step::describe).collect();
    let report_fd = report_write.as_raw_fd();
    // SAFETY: the closure runs in the forked child; it only iterates a Vec built before the
    // fork and makes async-signal-safe system calls (see Step::apply).
    unsafe {
        cmd.pre_exec(move || {
            for (i, step) in steps.iter().enumerate() {
                if let Err(e) = step.apply() {
                    let index = (i as u32).to_ne_bytes();
                    libc::write(report_fd, index.as_ptr().cast(), index.len());
                    return Err(e);
                }
            }
            Ok(())
        });
    }
    let spawned = cmd.spawn();
    drop(report_write);
    drop(plan.keep_open);
    let mut child = match spawned {
        Ok(child) => child,
        Err(source) => {
            let mut buf = [0u8; 4];
            let mut file = std::fs::File::from(report_read);
            let step = match file.read_exact(&mut buf) {
                Ok(()) => Some(u32::from_ne_bytes(buf) as usize),
                Err(_) => None,
            };
            return Err(SpawnFailure {
                step: step.map(|i| {
                    descriptions
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("step {i}"))
                }),
                source,
            });
        }
    };
    let pid = child.id() as libc::pid_t;
    // SAFETY: the child is ours and not yet reaped, so its pid cannot have been reused.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        let e = io::Error::last_os_error();
        // SAFETY: kill on our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.wait();
        return Err(fail("opening a pidfd", e));
    }
    // SAFETY: pidfd_open returned a fresh fd we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    let (exit, _) = watch::channel(None);
    let process = Arc::new(Process {
        pid,
        pidfd,
        exit,
        reap_lock: Mutex::new(()),
    });
    let stdin = child.stdin.take().map(OwnedFd::from);
    let stdout = child.stdout.take().map(OwnedFd::from);
    let stderr = child.stderr.take().map(OwnedFd::from);
    match (stdout, stderr) {
        (Some(stdout), Some(stderr)) => Ok(Spawned {
            process,
            stdin,
            stdout,
            stderr,
        }),
        _ => {
            process.kill_and_reap_blocking(std::time::Duration::from_secs(1));
            Err(fail(
                "taking the process's output pipes",
                io::Error::other("missing stdout/stderr pipe"),
            ))
        }
    }
}

/// Opens `/proc/<pid>/ns/<kind>` of a running process.
pub(crate) fn open_namespace(pid: libc::pid_t, kind: &str) -> io::Result<OwnedFd> {
    let f = std::fs::File::open(
        Path::new("/proc")
            .join(pid.to_string())
            .join("ns")
            .join(kind),
    )?;
    Ok(f.into())
}
