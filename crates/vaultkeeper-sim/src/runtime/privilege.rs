//! The runtime needs root: it creates mount, UTS and PID namespaces, mounts overlay and
//! tmpfs file systems, pivots into a pod's root, hands volume files to a pod's `fsGroup`,
//! drops processes to a pod's uid and reads/writes a pod process's memory to translate its
//! loopback addresses. [`privilege_problem`] decides from the process's credentials (a pure
//! function, tested by a table); [`check_privileges`] reads the real ones.

use super::error::{Result, RuntimeError};

/// Capability bits (linux/capability.h) the runtime uses, with why.
const REQUIRED_CAPABILITIES: &[(u32, &str)] = &[
    (
        21,
        "CAP_SYS_ADMIN (mount namespaces, mounts, pivot_root, setns, sethostname)",
    ),
    (18, "CAP_SYS_CHROOT (entering a pod's mount namespace)"),
    (
        6,
        "CAP_SETGID (running a pod as its runAsGroup and fsGroup)",
    ),
    (7, "CAP_SETUID (running a pod as its runAsUser)"),
    (0, "CAP_CHOWN (handing volume files to the pod's fsGroup)"),
    (
        5,
        "CAP_KILL (stopping pod processes that run as another uid)",
    ),
    (
        19,
        "CAP_SYS_PTRACE (translating a pod process's loopback addresses)",
    ),
];

/// The credentials that decide whether the runtime can work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privileges {
    /// Effective uid.
    pub euid: u32,
    /// Effective capability set (`CapEff` in `/proc/self/status`).
    pub effective_capabilities: u64,
}

/// Why these credentials are not enough, or `None` when they are.
pub fn privilege_problem(p: &Privileges) -> Option<RuntimeError> {
    if p.euid != 0 {
        return Some(RuntimeError::NotPrivileged {
            euid: p.euid,
            missing: "root (uid 0): pods get mount namespaces and their own root file system"
                .to_string(),
        });
    }
    let missing: Vec<&str> = REQUIRED_CAPABILITIES
        .iter()
        .filter(|(bit, _)| p.effective_capabilities & (1u64 << bit) == 0)
        .map(|(_, name)| *name)
        .collect();
    if missing.is_empty() {
        None
    } else {
        Some(RuntimeError::NotPrivileged {
            euid: p.euid,
            missing: format!("missing capabilities: {}", missing.join(", ")),
        })
    }
}

/// This process's credentials.
pub fn current_privileges() -> Result<Privileges> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| RuntimeError::io("reading /proc/self/status for capabilities", e))?;
    let effective_capabilities = parse_effective_capabilities(&status).ok_or_else(|| {
        RuntimeError::io(
            "reading /proc/self/status for capabilities",
            std::io::Error::new(std::io::ErrorKind::InvalidData, "no CapEff line"),
        )
    })?;
    Ok(Privileges {
        euid,
        effective_capabilities,
    })
}

/// Fails with an error naming the missing privilege unless this process can run pods.
pub fn check_privileges() -> Result<()> {
    match privilege_problem(&current_privileges()?) {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

fn parse_effective_capabilities(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: u64 = 0x0000_01ff_ffff_ffff;

    #[test]
    fn only_full_root_may_run_pods() {
        let cases: &[(u32, u64, Option<&str>)] = &[
            (0, ALL, None),
            (1000, ALL, Some("root (uid 0)")),
            (1000, 0, Some("root (uid 0)")),
            (0, ALL & !(1 << 21), Some("CAP_SYS_ADMIN")),
            (0, ALL & !(1 << 7), Some("CAP_SETUID")),
            (0, 0, Some("CAP_SYS_ADMIN")),
        ];
        for (euid, caps, want) in cases {
            let got = privilege_problem(&Privileges {
                euid: *euid,
                effective_capabilities: *caps,
            });
            match (want, got) {
                (None, None) => {}
                (Some(needle), Some(err)) => {
                    let msg = err.to_string();
                    assert!(msg.contains(needle), "{euid}/{caps:x}: {msg}");
                    assert!(msg.contains("needs root"), "{msg}");
                }
                (want, got) => panic!("{euid}/{caps:x}: want {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn capabilities_are_read_from_proc_status() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
        assert_eq!(parse_effective_capabilities(status), Some(ALL));
        assert_eq!(parse_effective_capabilities("Name: x\n"), None);
    }
}
