//! "localhost" means the pod. In Kubernetes every pod has its own network namespace, so a
//! container that listens on `[::]:8200` and a CLI that talks to `https://127.0.0.1:8200`
//! (the Vault Helm chart's `VAULT_ADDR`) both mean *this pod*. Here all pods share the
//! host's loopback, where each pod owns one address (its pod IP, some `127.x.y.z`).
//!
//! A seccomp filter on every pod process hands its `connect` and `bind` calls to the
//! runtime (`SECCOMP_RET_USER_NOTIF`), which rewrites the socket address in place before
//! letting the call proceed (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`):
//! - `connect` to `127.0.0.1` / `::1` / `::ffff:127.0.0.1` goes to the pod IP instead;
//! - `bind` of a fixed port on the wildcard or loopback address binds the pod IP instead,
//!   so three pods can all "listen on `[::]:8200`" side by side.
//!
//! Everything else (other pods' and Services' addresses, port-0 binds of client sockets,
//! Unix sockets) passes untouched. This is an address translation, not a security
//! boundary: pods are trusted test workloads. The decision ([`translate`]) is pure and
//! tested by a table; the plumbing (filter, notification loop, memory access) is exercised
//! by every real pod test.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_SET_MODE_FILTER: libc::c_uint = 1;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
/// Largest socket address we look at (`sockaddr_in6`).
const SOCKADDR_IN6_LEN: usize = 28;
const SOCKADDR_IN_LEN: usize = 16;

/// The two system calls the filter hands to the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketCall {
    /// `connect(2)`.
    Connect,
    /// `bind(2)`.
    Bind,
}

fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The BPF program: `connect` and `bind` of the native architecture go to the listener,
/// everything else is allowed.
pub(crate) fn filter_program() -> Vec<libc::sock_filter> {
    vec![
        ins(BPF_LD_W_ABS, 0, 0, 4), // seccomp_data.arch
        ins(BPF_JEQ_K, 1, 0, AUDIT_ARCH),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ins(BPF_LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        ins(BPF_JEQ_K, 2, 0, libc::SYS_connect as u32),
        ins(BPF_JEQ_K, 1, 0, libc::SYS_bind as u32),
        ins(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ins(BPF_RET_K, 0, 0, libc::SECCOMP_RET_USER_NOTIF),
    ]
}

/// The rewritten socket address for this call, or `None` to leave it alone. `addr` is the
/// raw `sockaddr` the process passed (at most 28 bytes are looked at).
pub fn translate(call: SocketCall, addr: &[u8], pod_ip: Ipv4Addr) -> Option<Vec<u8>> {
    let family = u16::from_ne_bytes([*addr.first()?, *addr.get(1)?]) as libc::c_int;
    let port = u16::from_be_bytes([*addr.get(2)?, *addr.get(3)?]);
    let loopback_v4 = Ipv4Addr::LOCALHOST;
    match family {
        libc::AF_INET if addr.len() >= SOCKADDR_IN_LEN => {
            let ip = Ipv4Addr::new(addr[4], addr[5], addr[6], addr[7]);
            let rewrite = match call {
                SocketCall::Connect => ip == loopback_v4,
                SocketCall::Bind => port != 0 && (ip == loopback_v4 || ip.is_unspecified()),
            };
            if !rewrite || ip == pod_ip {
                return None;
            }
            let mut out = addr[..SOCKADDR_IN_LEN].to_vec();
            out[4..8].copy_from_slice(&pod_ip.octets());
            Some(out)
        }
        libc::AF_INET6 if addr.len() >= SOCKADDR_IN6_LEN => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addr[8..24]);
            let ip = std::net::Ipv6Addr::from(octets);
            let mapped = ip.to_ipv4_mapped();
            let is_loopback = ip.is_loopback() || mapped == Some(loopback_v4);
            let is_wildcard = ip.is_unspecified() || mapped == Some(Ipv4Addr::UNSPECIFIED);
            let rewrite = match call {
                SocketCall::Connect => is_loopback,
                SocketCall::Bind => port != 0 && (is_loopback || is_wildcard),
            };
            if !rewrite {
                return None;
            }
            let mut out = addr[..SOCKADDR_IN6_LEN].to_vec();
            out[8..24].copy_from_slice(&pod_ip.to_ipv6_mapped().octets());
            out[24..28].copy_from_slice(&[0, 0, 0, 0]); // scope id: none for v4-mapped
            Some(out)
        }
        _ => None,
    }
}

/// In the forked child: installs the filter and sends the listener fd to the runtime.
///
/// # Safety
/// Called between fork and exec; only system calls on memory owned by the caller.
pub(crate) unsafe fn install_filter_in_child(
    program: &[libc::sock_filter],
    socket: RawFd,
) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points at `program`, alive for the call.
    let listener = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    if listener < 0 {
        return Err(io::Error::last_os_error());
    }
    let listener = listener as RawFd;
    // One byte of payload plus the fd as SCM_RIGHTS, all on the stack.
    #[repr(C, align(8))]
    struct ControlBuffer([u8; 64]);
    let mut control = ControlBuffer([0; 64]);
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: zeroed msghdr is valid; every pointer set below outlives the sendmsg call.
    let sent = unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::copy_nonoverlapping(
            (&listener as *const RawFd).cast::<u8>(),
            libc::CMSG_DATA(cmsg),
            std::mem::size_of::<RawFd>(),
        );
        libc::sendmsg(socket, &msg, 0)
    };
    let result = if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    };
    // SAFETY: listener is our fd; the runtime now holds its own copy.
    unsafe { libc::close(listener) };
    result
}

/// A connected socket pair: the child's end goes into the plan, the runtime keeps the other.
pub(crate) fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Receives the listener fd the child sent (it is already there: spawn returns after exec).
pub(crate) fn receive_listener(socket: &OwnedFd) -> io::Result<OwnedFd> {
    #[repr(C, align(8))]
    struct ControlBuffer([u8; 64]);
    let mut control = ControlBuffer([0; 64]);
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // SAFETY: zeroed msghdr is valid; all pointers outlive the call; the cmsg is checked
    // before its data is read.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.0.as_mut_ptr().cast();
        msg.msg_controllen = control.0.len();
        let n = libc::recvmsg(
            socket.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        );
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other(
                "no listener fd received from the pod process",
            ));
        }
        let mut fd: RawFd = -1;
        std::ptr::copy_nonoverlapping(
            libc::CMSG_DATA(cmsg),
            (&mut fd as *mut RawFd).cast::<u8>(),
            std::mem::size_of::<RawFd>(),
        );
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn notif_id_valid(listener: RawFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads a u64 from a valid pointer.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
}

fn read_process_memory(pid: libc::pid_t, address: u64, buf: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: local points at `buf`; the kernel validates the remote range.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn write_process_memory(pid: libc::pid_t, address: u64, data: &[u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: local points at `data`; the kernel validates the remote range.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if n as usize == data.len() {
        Ok(())
    } else if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Err(io::Error::other("short write"))
    }
}

/// Receives and answers one notification (blocking until one is pending). `Ok(false)`
/// when none was there (cancelled by a signal, or the filter lost its last user).
fn handle_one(listener: RawFd, pod_ip: Ipv4Addr) -> io::Result<bool> {
    // SAFETY: zeroed seccomp_notif is what NOTIF_RECV expects.
    let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes a seccomp_notif into a valid pointer.
    let r = unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) };
    if r != 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::EINTR) => Ok(false),
            _ => Err(e),
        };
    }
    let call = if notif.data.nr as libc::c_long == libc::SYS_connect {
        Some(SocketCall::Connect)
    } else if notif.data.nr as libc::c_long == libc::SYS_bind {
        Some(SocketCall::Bind)
    } else {
        None
    };
    if let Some(call) = call {
        let address = notif.data.args[1];
        let len = (notif.data.args[2] as usize).min(SOCKADDR_IN6_LEN);
        let mut buf = [0u8; SOCKADDR_IN6_LEN];
        let pid = notif.pid as libc::pid_t;
        if len >= 2
            && let Ok(n) = read_process_memory(pid, address, &mut buf[..len])
            && let Some(rewritten) = translate(call, &buf[..n], pod_ip)
            && notif_id_valid(listener, notif.id)
        {
            // Still in the call: the memory is the argument buffer, so rewrite it. A failed
            // write leaves the call untranslated rather than failing it.
            let _ = write_process_memory(pid, address, &rewritten);
        }
    }
    let mut resp = libc::seccomp_notif_resp {
        id: notif.id,
        val: 0,
        error: 0,
        flags: libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    };
    // SAFETY: the ioctl reads a seccomp_notif_resp from a valid pointer. ENOENT (the
    // process left the call, e.g. a signal) is expected and harmless.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
    Ok(true)
}

/// True once no process uses the filter any more (the listener reports POLLHUP).
fn filter_unused(listener: RawFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: listener,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0
        && pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
        && pfd.revents & libc::POLLIN == 0
}

/// Serves one process tree's filter until every process using it has exited.
///
/// `SECCOMP_IOCTL_NOTIF_RECV` blocks (it ignores `O_NONBLOCK`), so each listener gets a
/// small thread of its own rather than a slot on the async runtime; the kernel wakes it
/// with `ENOENT` once the filter's last process is gone, and the thread ends.
pub(crate) fn serve(listener: OwnedFd, pod_ip: Ipv4Addr) -> io::Result<()> {
    std::thread::Builder::new()
        .name("pod-loopback".to_string())
        .spawn(move || {
            let raw = listener.as_raw_fd();
            loop {
                match handle_one(raw, pod_ip) {
                    Ok(true) => {}
                    Ok(false) if filter_unused(raw) => return,
                    Ok(false) => {}
                    Err(_) => return,
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(ip: [u8; 4], port: u16) -> Vec<u8> {
        let mut b = vec![0u8; SOCKADDR_IN_LEN];
        b[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&ip);
        b
    }

    fn v6(ip: std::net::Ipv6Addr, port: u16) -> Vec<u8> {
        let mut b = vec![0u8; SOCKADDR_IN6_LEN];
        b[..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[8..24].copy_from_slice(&ip.octets());
        b
    }

    #[test]
    fn localhost_means_the_pod() {
        let pod = Ipv4Addr::new(127, 22, 0, 10);
        let mapped_pod = pod.to_ipv6_mapped();
        use SocketCall::{Bind, Connect};
        let cases: Vec<(SocketCall, Vec<u8>, Option<Vec<u8>>)> = vec![
            // The chart's VAULT_ADDR and a CLI talking to its own server.
            (
                Connect,
                v4([127, 0, 0, 1], 8200),
                Some(v4([127, 22, 0, 10], 8200)),
            ),
            (
                Connect,
                v6("::1".parse().unwrap(), 8200),
                Some(v6(mapped_pod, 8200)),
            ),
            (
                Connect,
                v6("::ffff:127.0.0.1".parse().unwrap(), 8200),
                Some(v6(mapped_pod, 8200)),
            ),
            // Other pods, Services and the API server are left alone.
            (Connect, v4([127, 22, 0, 11], 8201), None),
            (Connect, v4([127, 0, 0, 2], 8200), None),
            (Connect, v4([10, 0, 0, 1], 443), None),
            // Listeners on the wildcard or loopback address bind the pod IP.
            (
                Bind,
                v4([0, 0, 0, 0], 8200),
                Some(v4([127, 22, 0, 10], 8200)),
            ),
            (
                Bind,
                v4([127, 0, 0, 1], 8200),
                Some(v4([127, 22, 0, 10], 8200)),
            ),
            (
                Bind,
                v6("::".parse().unwrap(), 8201),
                Some(v6(mapped_pod, 8201)),
            ),
            (
                Bind,
                v6("::1".parse().unwrap(), 8201),
                Some(v6(mapped_pod, 8201)),
            ),
            // Already the pod IP, an explicit other address, or a client's port-0 bind.
            (Bind, v4([127, 22, 0, 10], 8200), None),
            (Bind, v4([127, 22, 0, 99], 8200), None),
            (Bind, v4([0, 0, 0, 0], 0), None),
            (Bind, v6("::".parse().unwrap(), 0), None),
            // Truncated addresses and other families.
            (Connect, vec![2, 0], None),
            (Connect, vec![1, 0, b'/', b't', b'm', b'p'], None),
        ];
        for (call, addr, want) in cases {
            assert_eq!(translate(call, &addr, pod), want, "{call:?} {addr:?}");
        }
    }

    #[test]
    fn filter_traps_only_connect_and_bind() {
        let p = filter_program();
        assert_eq!(p.len(), 8);
        assert_eq!(p[4].k, libc::SYS_connect as u32);
        assert_eq!(p[5].k, libc::SYS_bind as u32);
        // Both jumps land on the USER_NOTIF return.
        assert_eq!(4 + 1 + p[4].jt as usize, 7);
        assert_eq!(5 + 1 + p[5].jt as usize, 7);
        assert_eq!(p[7].k, libc::SECCOMP_RET_USER_NOTIF);
    }
}
