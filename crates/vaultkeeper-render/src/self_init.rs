//! OpenBao's declarative self-initialization (`initialize` stanzas, OpenBao >= 2.4).
//!
//! The stanza itself comes from the lifecycle library (`vaultkeeper_vault::selfinit`),
//! which knows what the operator's identity must be; the renderer places it. Two rules,
//! both learnt on real three-node clusters: only pod `-0` may carry it (on every pod, each
//! would initialize a cluster of its own), and it goes away once the cluster is initialized
//! (so a `-0` that lost its volume joins the cluster again instead of starting an empty one).
//! The ConfigMap carries it under its own key; the start script appends it on pod `-0` only.

/// The ConfigMap key holding the stanza.
pub const SELF_INIT_KEY: &str = "initialize.hcl";

/// The start-script lines that append the stanza on pod `-0`, when it is present.
pub(crate) fn start_script_lines(config_dir: &str) -> String {
    format!(
        "case \"${{HOSTNAME}}\" in *-0) [ -f {config_dir}/{SELF_INIT_KEY} ] && cat {config_dir}/{SELF_INIT_KEY} >> /tmp/storageconfig.hcl;; esac;\n"
    )
}
