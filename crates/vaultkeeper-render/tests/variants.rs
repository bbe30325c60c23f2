//! What the examples do not show: the cloud KMS seals, TLS passthrough at the ingress, a
//! TLS Secret of your own, and every name the internal certificate must carry, with a
//! cluster domain of your own, and a PodDisruptionBudget tuned or left out.

use serde_json::Value;
use time::OffsetDateTime;
use vaultkeeper_api::{TlsMode, VaultCluster, parse_manifests, validate};
use vaultkeeper_render::{Manifest, RenderContext, pki, render};

fn cluster(spec: &str) -> VaultCluster {
    let yaml = format!(
        "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata:\n  name: vault\n  \
         namespace: vault\nspec:\n  backup:\n    enabled: false\n{spec}"
    );
    let cluster = parse_manifests(&yaml)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
        .remove(0);
    validate(&cluster).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    cluster
}

fn rendered(cluster: &VaultCluster) -> Vec<Manifest> {
    let material = (cluster.spec.tls.mode == TlsMode::SelfSigned)
        .then(|| pki::issue_new(cluster, "vault", OffsetDateTime::now_utc()).expect("pki"));
    render(cluster, &RenderContext::new("vault", material.as_ref())).expect("renders")
}

fn object<'a>(manifests: &'a [Manifest], kind: &str, name: &str) -> &'a Value {
    &manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .object
}

/// The seal block of the rendered server configuration, parsed back from its HCL.
fn seal(manifests: &[Manifest]) -> (String, hcl::Body) {
    let config =
        object(manifests, "ConfigMap", "vault-config")["data"]["extraconfig-from-values.hcl"]
            .as_str()
            .expect("config");
    let body: hcl::Body = hcl::from_str(config).expect("the config is HCL");
    let block = body
        .blocks()
        .find(|b| b.identifier() == "seal")
        .expect("a seal block")
        .clone();
    let label = block.labels()[0].as_str().to_owned();
    (label, block.body().clone())
}

fn attribute(body: &hcl::Body, key: &str) -> Option<String> {
    body.attributes()
        .find(|a| a.key() == key)
        .map(|a| match a.expr() {
            hcl::Expression::String(s) => s.clone(),
            other => other.to_string(),
        })
}

fn container_env(manifests: &[Manifest]) -> Vec<Value> {
    object(manifests, "StatefulSet", "vault")["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn env_from_secret(env: &[Value], name: &str) -> Option<(String, String)> {
    env.iter().find(|e| e["name"] == name).map(|e| {
        let r = &e["valueFrom"]["secretKeyRef"];
        (
            r["name"].as_str().unwrap_or_default().to_owned(),
            r["key"].as_str().unwrap_or_default().to_owned(),
        )
    })
}

#[test]
fn aws_kms_seal_names_the_key_and_takes_credentials_from_the_secret_as_env() {
    let manifests = rendered(&cluster(
        "  unseal:\n    type: AwsKms\n    awsKms:\n      region: eu-central-1\n      \
         kmsKeyId: alias/vault\n      endpoint: https://kms.eu-central-1.amazonaws.com\n      \
         credentialsSecret: vault-aws\n",
    ));
    let (kind, body) = seal(&manifests);
    assert_eq!(kind, "awskms");
    assert_eq!(attribute(&body, "region").as_deref(), Some("eu-central-1"));
    assert_eq!(
        attribute(&body, "kms_key_id").as_deref(),
        Some("alias/vault")
    );
    assert_eq!(
        attribute(&body, "endpoint").as_deref(),
        Some("https://kms.eu-central-1.amazonaws.com")
    );
    // Credentials never in the config: the pod reads them from the Secret.
    assert!(attribute(&body, "access_key").is_none());
    assert!(attribute(&body, "secret_key").is_none());
    let env = container_env(&manifests);
    for var in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert_eq!(
            env_from_secret(&env, var),
            Some(("vault-aws".to_owned(), var.to_owned())),
            "{var}"
        );
    }
}

#[test]
fn gcp_ckms_seal_reads_its_credentials_file_from_the_mounted_secret() {
    let manifests = rendered(&cluster(
        "  unseal:\n    type: GcpCkms\n    gcpCkms:\n      project: prod\n      region: \
         global\n      keyRing: vault\n      cryptoKey: unseal\n      credentialsSecret:\n        \
         name: vault-gcp\n        key: credentials.json\n",
    ));
    let (kind, body) = seal(&manifests);
    assert_eq!(kind, "gcpckms");
    for (key, value) in [
        ("project", "prod"),
        ("region", "global"),
        ("key_ring", "vault"),
        ("crypto_key", "unseal"),
    ] {
        assert_eq!(attribute(&body, key).as_deref(), Some(value), "{key}");
    }
    let credentials = attribute(&body, "credentials").expect("credentials path");
    assert!(
        credentials.ends_with("/userconfig/vault-gcp/credentials.json"),
        "{credentials}"
    );
    // The file is there because the Secret is mounted where the path points.
    let pod = &object(&manifests, "StatefulSet", "vault")["spec"]["template"]["spec"];
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| {
            credentials.starts_with(m["mountPath"].as_str().unwrap_or("-"))
                && m["mountPath"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("vault-gcp"))
        })
        .unwrap_or_else(|| panic!("nothing mounted at {credentials}"));
    let volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mount's volume");
    assert_eq!(volume["secret"]["secretName"], "vault-gcp");
}

#[test]
fn azure_key_vault_seal_names_the_vault_and_key_and_takes_the_client_from_env() {
    let manifests = rendered(&cluster(
        "  unseal:\n    type: AzureKeyVault\n    azureKeyVault:\n      tenantId: \
         00000000-1111-2222-3333-444444444444\n      vaultName: prod-kv\n      keyName: \
         vault-unseal\n      environment: AZUREPUBLICCLOUD\n      credentialsSecret: \
         vault-azure\n",
    ));
    let (kind, body) = seal(&manifests);
    assert_eq!(kind, "azurekeyvault");
    assert_eq!(
        attribute(&body, "tenant_id").as_deref(),
        Some("00000000-1111-2222-3333-444444444444")
    );
    assert_eq!(attribute(&body, "vault_name").as_deref(), Some("prod-kv"));
    assert_eq!(
        attribute(&body, "key_name").as_deref(),
        Some("vault-unseal")
    );
    assert_eq!(
        attribute(&body, "environment").as_deref(),
        Some("AZUREPUBLICCLOUD")
    );
    assert!(attribute(&body, "client_secret").is_none());
    let env = container_env(&manifests);
    for var in ["AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"] {
        assert_eq!(
            env_from_secret(&env, var),
            Some(("vault-azure".to_owned(), var.to_owned())),
            "{var}"
        );
    }
}

#[test]
fn tls_passthrough_hands_the_stream_to_vault_and_terminates_nothing_at_the_ingress() {
    let manifests = rendered(&cluster(
        "  ingress:\n    enabled: true\n    hosts: [vault.example.com]\n    tls:\n      \
         passthrough: true\n",
    ));
    let ingress = object(&manifests, "Ingress", "vault");
    let annotations = &ingress["metadata"]["annotations"];
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/ssl-passthrough"],
        "true"
    );
    assert!(
        annotations["nginx.ingress.kubernetes.io/backend-protocol"].is_null(),
        "with passthrough the ingress does not speak to the backend itself"
    );
    assert!(
        ingress["spec"]["tls"].is_null(),
        "no certificate at the ingress: {}",
        ingress["spec"]["tls"]
    );
    assert_eq!(
        ingress["spec"]["rules"][0]["host"], "vault.example.com",
        "{ingress}"
    );
    // Clients see Vault's own certificate, so it must carry the external name.
    let request = pki::server_certificate_request(
        &cluster(
            "  ingress:\n    enabled: true\n    hosts: [vault.example.com]\n    tls:\n      \
             passthrough: true\n",
        ),
        "vault",
    );
    assert!(request.dns_names.contains(&"vault.example.com".to_owned()));
}

#[test]
fn a_tls_secret_of_your_own_is_mounted_and_no_internal_pki_is_rendered() {
    let manifests = rendered(&cluster(
        "  tls:\n    mode: Secret\n    secretName: vault-server-tls\n",
    ));
    assert!(
        !manifests.iter().any(|m| m.name == "vault-ca-internal"),
        "no internal CA when the certificate is yours"
    );
    let pod = &object(&manifests, "StatefulSet", "vault")["spec"]["template"]["spec"];
    let volumes = pod["volumes"].as_array().expect("volumes");
    assert!(
        volumes
            .iter()
            .any(|v| v["secret"]["secretName"] == "vault-server-tls"),
        "{volumes:?}"
    );
    let config =
        object(&manifests, "ConfigMap", "vault-config")["data"]["extraconfig-from-values.hcl"]
            .as_str()
            .expect("config");
    assert!(
        config.contains("userconfig/vault-server-tls/tls.crt")
            && config.contains("userconfig/vault-server-tls/tls.key"),
        "the listener reads the Secret's tls.crt and tls.key: {config}"
    );
}

#[test]
fn the_internal_certificate_names_every_service_and_pod_in_the_cluster_domain() {
    let cluster = cluster("  clusterDomain: corp.internal\n");
    let request = pki::server_certificate_request(&cluster, "vault");
    let names = &request.dns_names;
    for service in [
        "vault",
        "vault-active",
        "vault-standby",
        "vault-internal",
        "vault-ui",
    ] {
        for form in [
            service.to_owned(),
            format!("{service}.vault"),
            format!("{service}.vault.svc"),
            format!("{service}.vault.svc.corp.internal"),
        ] {
            assert!(names.contains(&form), "{form} missing from {names:?}");
        }
    }
    // Every pod a cluster can have (up to 7), so scaling never needs a new certificate.
    for ordinal in 0..7 {
        let pod = format!("vault-{ordinal}.vault-internal.vault.svc.corp.internal");
        assert!(names.contains(&pod), "{pod}");
    }
    assert!(!names.iter().any(|n| n.ends_with("cluster.local")));
    assert_eq!(
        request.ip_addresses,
        vec![std::net::IpAddr::from([127, 0, 0, 1])]
    );
    let unique: std::collections::BTreeSet<_> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "no name twice");

    // And the issued certificate carries them.
    let now = OffsetDateTime::now_utc();
    let material = pki::issue(
        &pki::plan(None, &request, now),
        None,
        "vault",
        &request,
        now,
    )
    .expect("pki");
    let (_, der) =
        x509_parser::pem::parse_x509_pem(material.server_cert_pem.as_bytes()).expect("PEM");
    let certificate = der.parse_x509().expect("X.509");
    let san = certificate
        .subject_alternative_name()
        .expect("SAN extension")
        .expect("a SAN");
    let dns: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(&dns, names);
}

#[test]
fn the_disruption_budget_can_be_tuned_or_left_out() {
    let budget = |manifests: &[Manifest]| {
        manifests
            .iter()
            .find(|m| m.kind == "PodDisruptionBudget")
            .map(|m| m.object["spec"]["maxUnavailable"].clone())
    };
    let default = rendered(&cluster("  replicas: 5\n"));
    assert_eq!(budget(&default), Some(Value::from(2)));
    let tuned = rendered(&cluster(
        "  replicas: 5\n  pod:\n    disruptionBudget:\n      maxUnavailable: 0\n",
    ));
    assert_eq!(budget(&tuned), Some(Value::from(0)));
    let off = rendered(&cluster(
        "  pod:\n    disruptionBudget:\n      enabled: false\n",
    ));
    assert_eq!(budget(&off), None);
}
