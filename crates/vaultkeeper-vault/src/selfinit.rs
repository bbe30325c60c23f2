//! OpenBao's declarative self-initialization (`initialize` stanzas, OpenBao >= 2.4).
//!
//! With an auto-unseal seal, OpenBao can initialize itself on first start from requests in
//! its configuration: it generates no recovery keys, runs the requests as a root token, and
//! revokes that token. The operator then never calls `sys/init`; it observes, and it
//! bootstraps with the identity the stanza created for it.
//!
//! The stanza rendered here creates exactly that identity and nothing more: the Kubernetes
//! auth method, its configuration, the operator's policy and the operator's role. Everything
//! else (backup, metrics and restore identities) is written by the operator's normal,
//! idempotent bootstrap, so both init modes end in the same state through the same code.

use crate::bootstrap::{BootstrapSpec, hcl_string, operator_policy, operator_role};
use crate::error::Result;

fn hcl_list(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| hcl_string(v)).collect();
    format!("[{}]", items.join(", "))
}

/// The `initialize` stanza (HCL) for the server configuration. Pure; the renderer puts it
/// into the config file next to the seal stanza.
pub fn initialize_stanza(spec: &BootstrapSpec) -> Result<String> {
    spec.validate()?;
    let mount = &spec.kubernetes_mount;
    let k = &spec.kubernetes;
    let role = operator_role(spec);
    let mut config = vec![
        format!("      kubernetes_host = {}", hcl_string(&k.kubernetes_host)),
        "      disable_iss_validation = false".to_string(),
        format!("      disable_local_ca_jwt = {}", k.disable_local_ca_jwt),
    ];
    if let Some(ca) = &k.kubernetes_ca_cert {
        config.push(format!("      kubernetes_ca_cert = {}", hcl_string(ca)));
    }
    if let Some(issuer) = &k.issuer {
        config.push(format!("      issuer = {}", hcl_string(issuer)));
    }
    Ok(format!(
        r#"initialize "vaultkeeper-operator-identity" {{
  request "enable-kubernetes-auth" {{
    operation = "update"
    path = "sys/auth/{mount}"
    data = {{
      type = "kubernetes"
    }}
  }}
  request "configure-kubernetes-auth" {{
    operation = "update"
    path = "auth/{mount}/config"
    data = {{
{config}
    }}
  }}
  request "operator-policy" {{
    operation = "update"
    path = "sys/policy/{policy_name}"
    data = {{
      policy = {policy}
    }}
  }}
  request "operator-role" {{
    operation = "update"
    path = "auth/{mount}/role/{role_name}"
    data = {{
      bound_service_account_names = {names}
      bound_service_account_namespaces = {namespaces}
      audience = {audience}
      token_policies = {policies}
      token_ttl = "{ttl}s"
      token_max_ttl = "{max_ttl}s"
      token_no_default_policy = {no_default}
    }}
  }}
}}
"#,
        config = config.join("\n"),
        policy_name = spec.operator.policy,
        policy = hcl_string(&operator_policy(spec)),
        role_name = role.name,
        names = hcl_list(&role.bound_service_account_names),
        namespaces = hcl_list(&role.bound_service_account_namespaces),
        audience = hcl_string(&role.audience),
        policies = hcl_list(&role.token_policies),
        ttl = role.token_ttl_seconds,
        max_ttl = role.token_max_ttl_seconds,
        no_default = role.token_no_default_policy,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bootstrap::{ExampleSpec, Identity};

    #[test]
    fn the_stanza_for_the_default_names_is_stable() -> Result<()> {
        let spec = ExampleSpec::spec();
        insta::assert_snapshot!(initialize_stanza(&spec)?);
        Ok(())
    }

    #[test]
    fn the_stanza_refuses_an_invalid_spec() {
        let mut spec = ExampleSpec::spec();
        spec.operator = Identity {
            service_account: "-bad".into(),
            role: "r".into(),
            policy: "p".into(),
        };
        assert!(initialize_stanza(&spec).is_err());
    }
}
