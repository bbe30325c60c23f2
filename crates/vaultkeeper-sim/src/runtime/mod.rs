//! The pod runtime: runs a pod's containers as real processes, each in its own mount, UTS
//! and PID namespace, with the pod's volumes, hosts file and environment. The kubelet glue
//! resolves API objects and hands over everything concrete ([`PodLaunch`]); the runtime
//! applies the kubelet's semantics to it and reports back ([`PodStatus`], [`RuntimeEvent`]).
//!
//! # Interface (for the kubelet glue)
//!
//! ```text
//! let images = ImageMap::standard(bao, Some((repo, vaultkeeper))).with_shell(busybox);
//! let runtime = Runtime::new(RuntimeConfig::new(state_dir, images))?;
//! //   fails with RuntimeError::NotPrivileged (naming the privilege) unless root.
//! let mut events = runtime.subscribe();              // broadcast of RuntimeEvent
//! runtime.start_pod(PodLaunch { pod, pod_ip, host_ip, hosts, config_maps, secrets,
//!                               claims, tokens, service_env }).await?;
//! runtime.status(&key)          -> Option<PodStatus>  // .to_k8s() gives core::v1::PodStatus
//! runtime.exec(&key, "vault", argv, ExecOptions { stdin: true, tty: false }).await?
//!                               -> ExecSession { stdin, stdout, stderr } + .wait() / .output()
//!                                  .into_parts() -> (stdin, stdout, stderr, exit future)
//! runtime.logs(&key, "vault", LogOptions { follow, previous, timestamps, tail_lines, since,
//!                                          limit_bytes })? -> LogReader (.next().await)
//! runtime.update_hosts(&key, hosts)?                 // rewrite a running pod's /etc/hosts
//! runtime.refresh_volumes(&key, &launch)?            // ConfigMap/Secret/token changes -> files
//! runtime.delete_pod(&key, grace_override).await?    // preStop, SIGTERM, SIGKILL, cleanup
//! runtime.signal_container(&key, "vault", libc::SIGKILL)?   // fault injection
//! runtime.exec_audit()          -> Vec<ExecRecord>    // every argv run in any container
//! drop(runtime)                                      // kills everything it started
//! ```
//!
//! What the glue provides in [`PodLaunch`]:
//! - `pod`: the Pod as stored (metadata.uid must be set). Like a real kubelet, the runtime
//!   mounts only what the spec lists: the ServiceAccount admission step (adding the
//!   `kube-api-access-*` projected volume and its mounts) belongs to the API server.
//! - `pod_ip`/`host_ip`: loopback addresses; `hosts`: every name → IP line of the pod's
//!   `/etc/hosts` (the pod's own names included; the runtime adds localhost lines and the
//!   spec's `hostAliases`).
//! - `config_maps`/`secrets`: the objects the pod references (volumes, `env`, `envFrom`),
//!   by name; the runtime applies `items`, `mode`, `defaultMode`, `optional`.
//!   `kube-root-ca.crt` must be among them when the projected SA volume references it.
//! - `claims`: claim name → host directory that outlives the pod (created if missing).
//! - `tokens`: service-account JWTs for `serviceAccountToken` projections (default
//!   audience and per audience). Written without a trailing newline, as OpenBao needs.
//! - `service_env`: `KUBERNETES_SERVICE_HOST`/`_PORT` (+ service links if wanted). The API
//!   server must not listen on 127.0.0.1 or ::1: in a pod those mean the pod itself.
//!
//! Images: [`ImageMap::standard`] maps the Vault and OpenBao images to `bao` and the
//! project's image to `vaultkeeper`; [`ImageMap::with_shell`] gives pods a static busybox
//! as `/bin/sh`, as the Alpine-based Vault/OpenBao images have (the Helm chart's preStop
//! `kill -SIGTERM $(pidof vault)` needs busybox ash; Debian's dash rejects `-SIGTERM`).
//! Without it pods use the host's `/bin/sh`.
//!
//! Start-up failures the pod cannot recover from (a missing non-optional ConfigMap or
//! Secret for a volume, an unsupported volume type, an invalid mount, probe or hook) are
//! errors from `start_pod` naming the field; nothing keeps running. Problems the kubelet
//! reports on the container instead — an image with no local binary (`ErrImagePull`), an
//! env var whose ConfigMap/Secret key is missing or `runAsNonRoot` with uid 0
//! (`CreateContainerConfigError`) — leave that container `Waiting` with the reason and a
//! message, and emit a Warning event; the pod stays `Pending`.
//!
//! # Events and status
//!
//! [`RuntimeEvent`]s arrive on a broadcast channel: `StatusChanged` (re-read
//! [`Runtime::status`] and write it to the API server; a lagging receiver can miss some, so
//! treat it as a hint), `Event` (type, reason, message for a core Event: `Started`,
//! `Killing`, `Unhealthy`, `BackOff`, `Failed`, `Died`, `FailedPreStopHook`…) and `Deleted`.
//! [`PodStatus::to_k8s`] fills phase, pod/host IPs, start time, container statuses (state,
//! last state with exit code and signal, restart count, ready, started) and the
//! `PodReadyToStartContainers`, `Initialized`, `ContainersReady` and `Ready` conditions with
//! transition times. The glue adds `PodScheduled` and evaluates readiness gates.
//!
//! # Probes
//!
//! The runtime runs startup, liveness and readiness probes itself on the spec's periods
//! (initial delay, period, timeout, thresholds): exec probes inside the container through
//! the exec path (audited), `httpGet` (HTTP, or HTTPS without certificate verification, as
//! the kubelet) and `tcpSocket` against the pod IP. Results land in the container's
//! `ready`/`started` flags (a `StatusChanged` event follows each change); a failing liveness
//! or startup probe restarts the container per `restartPolicy`; every failure emits an
//! `Unhealthy` event. gRPC probes are refused at start.
//!
//! # Restarts, deletion, faults
//!
//! Containers restart per `restartPolicy` with the kubelet's crash-loop back-off (first
//! restart immediate, then 10 s doubling to 5 min; configurable through
//! [`RuntimeConfig::backoff`]). Init containers run in order before the containers.
//! `delete_pod` runs `preStop` hooks (exec, httpGet, sleep), sends SIGTERM, then SIGKILL at
//! the end of the grace period, waits for every process, and removes the pod's directory
//! (claim directories stay). `signal_container` delivers a signal to a container's PID 1.
//!
//! # How a pod's view is built (and why)
//!
//! Each container instance is PID 1 of a new PID namespace and has its own mount and UTS
//! namespace (as in Kubernetes without `shareProcessNamespace`). Its root file system is an
//! **overlay** whose lower layer is the host's `/` (read-only through the overlay) and
//! whose upper layer is a tmpfs private to the instance: any path a spec names
//! (`/vault/data`, `/vault/userconfig/x`, `/var/run/secrets/…`) can be created as a mount
//! point without ever touching the host, and whatever the container writes outside its
//! volumes is discarded when it exits, like a container's writable layer. The runtime then
//! `pivot_root`s into it — not `chroot`: after `pivot_root` the host's tree is detached
//! from the namespace entirely (a root process cannot climb out the way it can out of a
//! chroot), symlinks in mount paths (`/var/run` → `/run`) resolve inside the pod's root as
//! they would in a container, and an exec that joins the mount namespace lands in the pod's
//! root with no further step. On top come a fresh `/proc` (showing only the container's
//! processes), a minimal `/dev` (null, zero, full, random, urandom, tty, shm), a read-only
//! `/sys`, fresh tmpfs on `/tmp`, `/var/tmp`, `/run`, `/home` and `/root` (so nothing of
//! the host's shows there and `/run/secrets/kubernetes.io/serviceaccount` lives in the pod
//! only), the pod's `/etc/hosts` and `/etc/hostname`, the image's binary at
//! `/usr/local/bin/<name>` (`vault` and `bao` for the Vault/OpenBao images) plus its
//! `docker-entrypoint.sh`, and the volume mounts in spec order (`readOnly`, `subPath`,
//! `subPathExpr`). Then `sethostname`, `chdir(workingDir)`, `no_new_privs` when
//! `allowPrivilegeEscalation: false`, `setgroups(fsGroup + supplementalGroups)`,
//! `setgid(runAsGroup)`, `setuid(runAsUser)`, and `exec`. `readOnlyRootFilesystem`
//! remounts the overlay read-only.
//!
//! Volume files live under `state_dir/pods/<ns>_<name>_<uid>/`; with `fsGroup` they are
//! group-owned by it with the kubelet's permission masks. Nothing is ever mounted in the
//! host's namespace, so nothing appears at a pod's mount paths on the host.
//!
//! **Localhost is the pod.** Pods share the host's network namespace, each owning one
//! loopback address. A seccomp user-notification filter hands every `connect`/`bind` to
//! the runtime, which rewrites `127.0.0.1`/`::1` to the pod IP and binds of a fixed port on
//! the wildcard address to the pod IP (see `loopback`). So the Vault Helm chart's
//! `listener "tcp" { address = "[::]:8200" }` and `VAULT_ADDR=https://127.0.0.1:8200` work
//! unchanged in several pods at once.
//!
//! **No leaks.** All forks happen on one spawner thread; every pod process carries
//! `PR_SET_PDEATHSIG(SIGKILL)` tied to it, and dropping the [`Runtime`] kills and reaps
//! every process synchronously. Killing a container's PID 1 makes the kernel kill the rest
//! of its PID namespace, exec sessions included.
//!
//! **Root.** Mount namespaces, overlay and tmpfs mounts, `pivot_root`, `setuid`, chown of
//! volume files and the loopback translation all need root; [`Runtime::new`] checks first
//! and fails with an error naming what is missing ([`check_privileges`],
//! [`privilege_problem`]).
//!
//! Not simulated (refused with an error naming the field): hostPath, CSI, NFS, image and
//! generic ephemeral volumes, `resourceFieldRef`, gRPC probes, sidecar init containers,
//! `shareProcessNamespace`, host namespaces, Bidirectional mount propagation, exec with a
//! tty. Resource limits, capabilities and seccomp profiles of the spec are not enforced.

mod env;
mod error;
mod exec;
mod hosts;
mod image;
mod logs;
mod loopback;
mod mounts;
mod pod;
mod privilege;
mod probes;
mod restart;
mod sandbox;
mod status;
mod volumes;

pub use env::{
    EnvContext, EnvVar, FieldRefUse, ResolvedEnv, container_argv, expand, field_ref_value,
    format_map, process_env, resolve_container_env,
};
pub use error::{Result, RuntimeError};
pub use exec::{ExecOptions, ExecOrigin, ExecOutput, ExecRecord, ExecSession};
pub use hosts::{HostEntry, render_hosts_file};
pub use image::{
    DEFAULT_PATH, IMAGE_BIN_DIR, ImageFile, ImageMap, ImageRef, ImageRule, parse_image_reference,
};
pub use logs::{LogBuffer, LogLine, LogOptions, LogReader, LogStream};
pub use loopback::{SocketCall, translate as translate_loopback};
pub use mounts::{MountRequest, plan_container_mounts, resolve_mount_source};
pub use pod::{
    AUDIT_LIMIT, Clock, EventType, PodLaunch, Runtime, RuntimeConfig, RuntimeEvent,
    RuntimeEventKind,
};
pub use privilege::{Privileges, check_privileges, current_privileges, privilege_problem};
pub use probes::{
    ProbeAction, ProbeKind, ProbeOutcome, ProbeSpec, ProbeTracker, Scheme, http_probe, parse_probe,
    tcp_probe,
};
pub use restart::{Backoff, RestartPolicy, restart_delay, should_restart};
pub use sandbox::ExitStatus;
pub use status::{
    ContainerState, ContainerStatus, PodCondition, PodKey, PodPhase, PodStatus, pod_conditions,
    pod_phase,
};
pub use volumes::{
    DEFAULT_MODE, FsGroupPolicy, PlannedFile, ServiceAccountTokens, VolumeContent, VolumeInputs,
    VolumePlan, apply_fs_group, data_dir_stamp, fs_group_mode, plan_volumes, update_files_volume,
    validate_item_path, write_files_volume,
};
