//! The pod's private `/etc/hosts`, in the layout the kubelet writes: localhost entries, then
//! the names the glue resolved (pod and Service DNS names in every form a pod may use),
//! then the spec's `hostAliases`. Statically linked Go programs such as `bao` read it
//! directly, which is how pods resolve `vault-0.vault-internal` without a DNS server.

use k8s_openapi::api::core::v1::HostAlias;
use std::net::IpAddr;

/// One line of the hosts file: an address and the names that resolve to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The address (a pod IP or a Service's cluster IP).
    pub ip: IpAddr,
    /// Names, most specific first (e.g. `vault-0.vault-internal.ns.svc.cluster.local`,
    /// `vault-0.vault-internal.ns.svc`, `vault-0.vault-internal.ns`,
    /// `vault-0.vault-internal`).
    pub names: Vec<String>,
}

/// Renders the hosts file. Names must be non-empty and free of whitespace; the glue
/// computes them, so a bad one is reported rather than written.
pub fn render_hosts_file(
    entries: &[HostEntry],
    aliases: &[HostAlias],
) -> Result<String, (String, String)> {
    let mut out = String::from(
        "# Kubernetes-managed hosts file.\n\
         127.0.0.1\tlocalhost\n\
         ::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\n\
         fe00::0\tip6-mcastprefix\n\
         fe00::1\tip6-allnodes\n\
         fe00::2\tip6-allrouters\n",
    );
    let valid = |n: &str| !n.is_empty() && !n.chars().any(|c| c.is_whitespace() || c == '#');
    for (i, e) in entries.iter().enumerate() {
        if let Some(bad) = e.names.iter().find(|n| !valid(n)) {
            return Err((
                format!("hosts[{i}].names"),
                format!("{bad:?} is not a host name (empty, whitespace or '#')"),
            ));
        }
        if e.names.is_empty() {
            continue;
        }
        out.push_str(&format!("{}\t{}\n", e.ip, e.names.join("\t")));
    }
    if !aliases.is_empty() {
        out.push_str("\n# Entries added by HostAliases.\n");
        for (i, a) in aliases.iter().enumerate() {
            let hostnames = a.hostnames.as_deref().unwrap_or_default();
            if a.ip.parse::<IpAddr>().is_err() {
                return Err((
                    format!("spec.hostAliases[{i}].ip"),
                    format!("{:?} is not an IP address", a.ip),
                ));
            }
            if let Some(bad) = hostnames.iter().find(|n| !valid(n)) {
                return Err((
                    format!("spec.hostAliases[{i}].hostnames"),
                    format!("{bad:?} is not a host name"),
                ));
            }
            out.push_str(&format!("{}\t{}\n", a.ip, hostnames.join("\t")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_lists_localhost_glue_entries_then_aliases() {
        let entries = vec![
            HostEntry {
                ip: "127.22.0.10".parse().unwrap(),
                names: vec![
                    "vault-0.vault-internal.vault.svc.cluster.local".into(),
                    "vault-0.vault-internal".into(),
                    "vault-0".into(),
                ],
            },
            HostEntry {
                ip: "127.22.0.11".parse().unwrap(),
                names: vec![],
            },
        ];
        let aliases = vec![HostAlias {
            ip: "127.22.9.9".into(),
            hostnames: Some(vec!["kms.example".into()]),
        }];
        let got = render_hosts_file(&entries, &aliases).unwrap();
        assert!(got.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(got.contains(
            "\n127.22.0.10\tvault-0.vault-internal.vault.svc.cluster.local\tvault-0.vault-internal\tvault-0\n"
        ));
        assert!(
            !got.contains("127.22.0.11"),
            "entries without names are skipped"
        );
        assert!(got.ends_with("# Entries added by HostAliases.\n127.22.9.9\tkms.example\n"));
    }

    #[test]
    fn bad_names_are_reported_with_their_field() {
        let entries = vec![HostEntry {
            ip: "127.22.0.10".parse().unwrap(),
            names: vec!["two words".into()],
        }];
        let (field, _) = render_hosts_file(&entries, &[]).unwrap_err();
        assert_eq!(field, "hosts[0].names");
        let aliases = vec![HostAlias {
            ip: "not-an-ip".into(),
            hostnames: None,
        }];
        let (field, _) = render_hosts_file(&[], &aliases).unwrap_err();
        assert_eq!(field, "spec.hostAliases[0].ip");
    }
}
