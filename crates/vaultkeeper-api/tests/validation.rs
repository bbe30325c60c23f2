//! Validation, one case per rule: the Rust layer names the field, and the CRD's CEL rules
//! (evaluated by a real CEL interpreter on the generated schema, after the schema's
//! defaults are applied as the API server does) reject the same manifests with the same
//! messages.

use std::collections::BTreeSet;

use kube::core::cel::Validator;
use serde_json::{Value, json};
use vaultkeeper_api::{VaultCluster, crd, rules, validate};

/// A valid cluster that opts out of backups; each case patches it.
fn base() -> Value {
    json!({
        "apiVersion": "vaultkeeper.io/v1alpha1",
        "kind": "VaultCluster",
        "metadata": {"name": "vault", "namespace": "secrets"},
        "spec": {"backup": {"enabled": false}}
    })
}

/// RFC 7386 merge patch, enough to write cases as small YAML fragments.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

fn manifest(patch_yaml: &str) -> Value {
    let mut object = base();
    let patch: Value = serde_saphyr::from_str(patch_yaml).expect("case YAML parses");
    merge(&mut object, &patch);
    object
}

fn schema() -> Value {
    let crd = crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the CRD has a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Messages of the CEL rules that reject the object.
fn cel_messages(object: &Value) -> BTreeSet<String> {
    match Validator::new().validate(&schema(), object, None) {
        Ok(()) => BTreeSet::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

/// (field, message) of every Rust violation.
fn rust_violations(object: &Value) -> Vec<(String, String)> {
    let vc: VaultCluster = serde_json::from_value(object.clone()).expect("case deserializes");
    match validate(&vc) {
        Ok(()) => Vec::new(),
        Err(invalid) => invalid
            .violations
            .into_iter()
            .map(|v| (v.field, v.message))
            .collect(),
    }
}

/// Every message any CRD rule can produce, to tell rule violations from operator-only ones.
fn all_rule_messages() -> BTreeSet<String> {
    let yaml = vaultkeeper_api::crd_yaml().expect("CRD serializes");
    let crd: Value = serde_saphyr::from_str(&yaml).expect("CRD parses");
    let mut messages = BTreeSet::new();
    collect_messages(&crd, &mut messages);
    messages
}

fn collect_messages(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                for rule in rules {
                    if let Some(Value::String(m)) = rule.get("message") {
                        out.insert(m.clone());
                    }
                }
            }
            map.values().for_each(|v| collect_messages(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_messages(v, out)),
        _ => {}
    }
}

const AWS_KMS: &str = "{region: eu-west-1, kmsKeyId: alias/vault}";

/// (case name, patch, the field the error must name).
fn invalid_cases() -> Vec<(&'static str, String, &'static str)> {
    let mut cases: Vec<(&'static str, String, &'static str)> = vec![
        ("even replicas", "spec: {replicas: 2}".into(), "spec.replicas"),
        ("too many replicas", "spec: {replicas: 9}".into(), "spec.replicas"),
        (
            "name too long for the metrics CronJob",
            format!("metadata: {{name: {}}}", "v".repeat(45)),
            "metadata.name",
        ),
        ("name starting with a digit", "metadata: {name: 1vault}".into(), "metadata.name"),
        (
            "threshold above shares",
            "spec: {unseal: {shamir: {shares: 3, threshold: 4}}}".into(),
            "spec.unseal.shamir",
        ),
        (
            "threshold 1 with several shares",
            "spec: {unseal: {shamir: {shares: 5, threshold: 1}}}".into(),
            "spec.unseal.shamir",
        ),
        (
            "recovery threshold above shares",
            format!("spec: {{unseal: {{type: AwsKms, awsKms: {AWS_KMS}, recovery: {{shares: 2, threshold: 3}}}}}}"),
            "spec.unseal.recovery",
        ),
        (
            "auto-unseal without its seal stanza",
            "spec: {unseal: {type: Transit}}".into(),
            "spec.unseal",
        ),
        (
            "seal stanza for another type",
            format!("spec: {{unseal: {{awsKms: {AWS_KMS}}}}}"),
            "spec.unseal",
        ),
        (
            "auto-unseal given Shamir shares instead of recovery shares",
            format!("spec: {{unseal: {{type: AwsKms, awsKms: {AWS_KMS}, shamir: {{shares: 5, threshold: 3}}}}}}"),
            "spec.unseal.shamir",
        ),
        (
            "Shamir given recovery shares",
            "spec: {unseal: {recovery: {shares: 5, threshold: 3}}}".into(),
            "spec.unseal.recovery",
        ),
        (
            "static seal on Vault",
            "spec: {unseal: {type: Static, static: {keySecret: {name: seal-key}}}}".into(),
            "spec.flavor",
        ),
        (
            "self-init on Vault",
            format!("spec: {{keys: {{initialization: SelfInit}}, unseal: {{type: AwsKms, awsKms: {AWS_KMS}}}}}"),
            "spec.flavor",
        ),
        (
            "self-init with Shamir",
            "spec: {flavor: OpenBao, keys: {initialization: SelfInit}}".into(),
            "spec.keys.initialization",
        ),
        (
            "rekey of an auto-unseal cluster",
            format!("spec: {{keys: {{rotation: {{rekey: '2026-12-06'}}}}, unseal: {{type: AwsKms, awsKms: {AWS_KMS}}}}}"),
            "spec.keys.rotation.rekey",
        ),
        (
            "backups on by default without a bucket",
            "spec: {backup: null}".into(),
            "spec.backup.s3.bucket",
        ),
        (
            "backup without credentials",
            "spec: {backup: {enabled: true, s3: {bucket: snapshots}}}".into(),
            "spec.backup.s3.credentialsSecret",
        ),
        (
            "backup to two stores",
            "spec: {backup: {enabled: true, s3: {bucket: b, useAmbientCredentials: true}, gcs: {bucket: g, useAmbientCredentials: true}}}".into(),
            "spec.backup",
        ),
        (
            "backup to three stores, even when off",
            "spec: {backup: {enabled: false, s3: {bucket: b}, gcs: {bucket: g}, azure: {account: a, container: c}}}".into(),
            "spec.backup",
        ),
        (
            "GCS backup without credentials",
            "spec: {backup: {enabled: true, gcs: {bucket: snapshots}}}".into(),
            "spec.backup.gcs.credentialsSecret",
        ),
        (
            "GCS backup with an empty bucket",
            "spec: {backup: {enabled: true, gcs: {bucket: '', useAmbientCredentials: true}}}".into(),
            "spec.backup.s3.bucket",
        ),
        (
            "Azure backup without credentials",
            "spec: {backup: {enabled: true, azure: {account: a, container: c}}}".into(),
            "spec.backup.azure.credentialsSecret",
        ),
        (
            "backup schedule in words",
            "spec: {backup: {schedule: every day}}".into(),
            "spec.backup.schedule",
        ),
        (
            "backup schedule minute out of range",
            "spec: {backup: {schedule: '61 * * * *'}}".into(),
            "spec.backup.schedule",
        ),
        (
            "backup schedule with a seconds field",
            "spec: {backup: {schedule: '0 0 13 * * 4'}}".into(),
            "spec.backup.schedule",
        ),
        (
            "token renewal schedule that does not parse",
            "spec: {monitoring: {tokenRenewSchedule: 'thursday 13:00'}}".into(),
            "spec.monitoring.tokenRenewSchedule",
        ),
        (
            "token period that is not a duration",
            "spec: {monitoring: {tokenPeriod: two weeks}}".into(),
            "spec.monitoring.tokenPeriod",
        ),
        (
            "retention that keeps nothing",
            "spec: {backup: {retention: {}}}".into(),
            "spec.backup.retention",
        ),
        (
            "retention age in words",
            "spec: {backup: {retention: {maxAge: 30 days}}}".into(),
            "spec.backup.retention.maxAge",
        ),
        (
            "retention age with its units out of order",
            "spec: {backup: {retention: {maxAge: 30m1h}}}".into(),
            "spec.backup.retention.maxAge",
        ),
        (
            "token period with an unknown unit",
            "spec: {monitoring: {tokenPeriod: 2x}}".into(),
            "spec.monitoring.tokenPeriod",
        ),
        (
            "TLS Secret mode without a Secret",
            "spec: {tls: {mode: Secret}}".into(),
            "spec.tls.secretName",
        ),
        (
            "TLS Secret name without Secret mode",
            "spec: {tls: {secretName: my-tls}}".into(),
            "spec.tls.secretName",
        ),
        (
            "cert-manager mode without an issuer",
            "spec: {tls: {mode: CertManager}}".into(),
            "spec.tls.certManager",
        ),
        (
            "cert-manager issuer without cert-manager mode",
            "spec: {tls: {certManager: {issuerName: ca}}}".into(),
            "spec.tls.certManager",
        ),
        (
            "ingress without hosts",
            "spec: {ingress: {enabled: true}}".into(),
            "spec.ingress.hosts",
        ),
        (
            "passthrough with cert-manager at the ingress",
            "spec: {ingress: {enabled: true, hosts: [vault.example.com], tls: {passthrough: true, certManager: {issuerName: le}}}}".into(),
            "spec.ingress.tls.certManager",
        ),
        (
            "passthrough with TLS disabled",
            "spec: {tls: {mode: Disabled}, ingress: {enabled: true, hosts: [vault.example.com], tls: {passthrough: true}}}".into(),
            "spec.ingress.tls.passthrough",
        ),
    ];
    cases.push((
        "HTTP transport without TLS",
        "spec: {transport: Http, tls: {mode: Disabled}}".into(),
        "spec.transport",
    ));
    cases.extend([
        (
            "an extra argument that is not a flag",
            "spec: {pod: {extraArgs: [-log-level, debug]}}".into(),
            "spec.pod.extraArgs",
        ),
        (
            "an extra argument with a shell command after it",
            "spec: {pod: {extraArgs: ['-log-level=debug; cat /etc/passwd', 'x; id']}}".into(),
            "spec.pod.extraArgs",
        ),
        (
            "a second configuration file",
            "spec: {pod: {extraArgs: [-log-level=debug, -config=/tmp/other.hcl]}}".into(),
            "spec.pod.extraArgs",
        ),
        (
            "the dev server",
            "spec: {pod: {extraArgs: [--dev-root-token-id=root]}}".into(),
            "spec.pod.extraArgs",
        ),
        (
            "recovery mode",
            "spec: {pod: {extraArgs: [-recovery]}}".into(),
            "spec.pod.extraArgs",
        ),
        (
            "an extra port on the API port",
            "spec: {pod: {extraPorts: [{containerPort: 8200, name: other}]}}".into(),
            "spec.pod.extraPorts",
        ),
        (
            "an extra port named like a rendered one",
            "spec: {pod: {extraPorts: [{containerPort: 9000, name: https-internal}]}}".into(),
            "spec.pod.extraPorts",
        ),
        (
            "an extra port on the node",
            "spec: {pod: {extraPorts: [{containerPort: 9000, name: extra, hostPort: 9000}]}}"
                .into(),
            "spec.pod.extraPorts",
        ),
        (
            "a host alias for an in-cluster Service",
            "spec: {pod: {hostAliases: [{ip: 10.0.0.9, hostnames: [kms.example.com, vault-0.vault-internal.secrets.svc.cluster.local]}]}}".into(),
            "spec.pod.hostAliases",
        ),
        (
            "a host alias for localhost",
            "spec: {pod: {hostAliases: [{ip: 10.0.0.9, hostnames: [localhost]}]}}".into(),
            "spec.pod.hostAliases",
        ),
        (
            "a liveness probe needing two successes",
            "spec: {pod: {livenessProbe: {enabled: true, successThreshold: 2}}}".into(),
            "spec.pod.livenessProbe.successThreshold",
        ),
        (
            "a relative readiness path",
            "spec: {pod: {readinessProbe: {path: v1/sys/health}}}".into(),
            "spec.pod.readinessProbe.path",
        ),
        (
            "a relative liveness path",
            "spec: {pod: {livenessProbe: {enabled: true, path: health}}}".into(),
            "spec.pod.livenessProbe.path",
        ),
        (
            "a disruption budget that lets a drain break the quorum",
            "spec: {replicas: 3, pod: {disruptionBudget: {maxUnavailable: 2}}}".into(),
            "spec.pod.disruptionBudget.maxUnavailable",
        ),
        (
            "a disruption budget for one replica",
            "spec: {replicas: 1, unseal: {shamir: {shares: 1, threshold: 1}}, pod: {disruptionBudget: {maxUnavailable: 1}}}".into(),
            "spec.pod.disruptionBudget.maxUnavailable",
        ),
        (
            "the data volume over the configuration",
            "spec: {storage: {mountPath: /vault/config}}".into(),
            "spec.storage.mountPath",
        ),
        (
            "the data volume above the configuration",
            "spec: {storage: {mountPath: /vault}}".into(),
            "spec.storage.mountPath",
        ),
        (
            "a relative data path",
            "spec: {storage: {mountPath: vault/data}}".into(),
            "spec.storage.mountPath",
        ),
        (
            "a data path climbing out",
            "spec: {storage: {mountPath: /vault/data/../config}}".into(),
            "spec.storage.mountPath",
        ),
        (
            "the audit volume over the ServiceAccount token",
            "spec: {storage: {audit: {mountPath: /var/run/secrets/kubernetes.io}}}".into(),
            "spec.storage.audit.mountPath",
        ),
        (
            "the audit volume inside the data volume",
            "spec: {storage: {mountPath: /data, audit: {mountPath: /data/audit}}}".into(),
            "spec.storage.audit.mountPath",
        ),
        (
            "a claim annotation of the volume controllers",
            "spec: {storage: {annotations: {pv.kubernetes.io/bind-completed: 'yes'}}}".into(),
            "spec.storage.annotations",
        ),
        (
            "an audit claim annotation of the volume controllers",
            "spec: {storage: {audit: {annotations: {volume.beta.kubernetes.io/storage-provisioner: x}}}}".into(),
            "spec.storage.audit.annotations",
        ),
        (
            "a StatefulSet annotation under the operator's prefix",
            "spec: {pod: {statefulSetAnnotations: {vaultkeeper.io/config-hash: x}}}".into(),
            "spec.pod.statefulSetAnnotations",
        ),
    ]);
    for (key, _) in rules::RENDERED_CONFIG_KEYS {
        let patch = format!("spec: {{config: {{ui: true, {key}: {{}}}}}}");
        cases.push(("config overriding a rendered key", patch, "spec.config"));
    }
    cases
}

#[test]
fn every_invalid_case_names_its_field_in_both_layers_with_the_same_message() {
    let rule_messages = all_rule_messages();
    for (case, patch, field) in invalid_cases() {
        let object = manifest(&patch);
        let rust = rust_violations(&object);
        assert!(
            rust.iter().any(|(f, _)| f == field),
            "{case}: Rust validation should name {field}, got {rust:?}"
        );
        for (f, message) in &rust {
            assert!(
                message.contains(f.as_str()) || message.contains(field),
                "{case}: the message should name the field: {message}"
            );
        }
        // The CEL layer rejects the same object with exactly the rule messages Rust gave.
        let rust_rule_messages: BTreeSet<String> = rust
            .iter()
            .map(|(_, m)| m.clone())
            .filter(|m| rule_messages.contains(m))
            .collect();
        assert!(
            !rust_rule_messages.is_empty(),
            "{case}: no CRD rule covers it: {rust:?}"
        );
        assert_eq!(cel_messages(&object), rust_rule_messages, "{case}");
    }
}

#[test]
fn config_override_names_the_key_it_refuses() {
    for (key, _) in rules::RENDERED_CONFIG_KEYS {
        let object = manifest(&format!("spec: {{config: {{{key}: {{}}}}}}"));
        let rust = rust_violations(&object);
        assert_eq!(rust.len(), 1, "{key}: {rust:?}");
        assert!(
            rust[0].1.contains(&format!("spec.config.{key}")),
            "{rust:?}"
        );
    }
}

/// Checks the CRD's rules cannot express; the operator reports them as SpecValid=False.
#[test]
fn operator_only_checks_catch_what_cel_cannot() {
    let cases = [
        (
            "a token period shorter than two renewal gaps",
            "spec: {monitoring: {tokenPeriod: 24h}}",
            "spec.monitoring.tokenPeriod",
        ),
        (
            "a schedule on a date that never comes",
            "spec: {backup: {schedule: '0 0 30 2 *'}}",
            "spec.backup.schedule",
        ),
        (
            "more shares than Shamir allows",
            "spec: {unseal: {shamir: {shares: 300, threshold: 3}}}",
            "spec.unseal.shamir.shares",
        ),
        (
            "an escrow recipient that is not an age public key",
            "spec: {backup: {enabled: true, s3: {bucket: b, useAmbientCredentials: true}}, keys: {escrow: {recipients: [age1vj44rkrdhxu04zxlm2g4yyay8dx0er0s3eu500g5fcne5s7vrf7qv4pt7e, age1notakey]}}}",
            "spec.keys.escrow.recipients[1]",
        ),
        (
            "an escrow recipient that is a secret key",
            "spec: {backup: {enabled: true, s3: {bucket: b, useAmbientCredentials: true}}, keys: {escrow: {recipients: [AGE-SECRET-KEY-1QQQQ]}}}",
            "spec.keys.escrow.recipients[0]",
        ),
        (
            "escrow to the object store without a backup bucket",
            "spec: {keys: {escrow: {recipients: [age1vj44rkrdhxu04zxlm2g4yyay8dx0er0s3eu500g5fcne5s7vrf7qv4pt7e]}}}",
            "spec.keys.escrow.objectStore",
        ),
        (
            "a host alias for the cluster's own pods",
            "spec: {pod: {hostAliases: [{ip: 10.0.0.9, hostnames: [vault-0.vault-internal]}]}}",
            "spec.pod.hostAliases",
        ),
        (
            "a host alias for the cluster's Service by its short name",
            "spec: {pod: {hostAliases: [{ip: 10.0.0.9, hostnames: [vault-active]}]}}",
            "spec.pod.hostAliases",
        ),
        (
            "a probe timing below the schema's minimum",
            "spec: {pod: {readinessProbe: {periodSeconds: 0}}}",
            "spec.pod.readinessProbe.periodSeconds",
        ),
        (
            "a probe port beyond the last port",
            "spec: {pod: {livenessProbe: {enabled: true, port: 70000}}}",
            "spec.pod.livenessProbe.port",
        ),
        (
            "a negative grace period",
            "spec: {pod: {terminationGracePeriodSeconds: -1}}",
            "spec.pod.terminationGracePeriodSeconds",
        ),
        (
            "a data path on the audit volume's default",
            "spec: {storage: {mountPath: /vault/audit, audit: {size: 1Gi}}}",
            "spec.storage.audit.mountPath",
        ),
        (
            "escrow that writes nowhere",
            "spec: {keys: {escrow: {recipients: [age1vj44rkrdhxu04zxlm2g4yyay8dx0er0s3eu500g5fcne5s7vrf7qv4pt7e], objectStore: false}}}",
            "spec.keys.escrow",
        ),
    ];
    for (case, patch, field) in cases {
        let object = manifest(patch);
        let rust = rust_violations(&object);
        assert!(rust.iter().any(|(f, _)| f == field), "{case}: {rust:?}");
        // The message names the field and never echoes a secret key pasted by mistake.
        assert!(
            rust.iter()
                .all(|(_, m)| !m.contains("AGE-SECRET-KEY-1QQQQ")),
            "{case}: {rust:?}"
        );
        assert!(
            cel_messages(&object).is_empty(),
            "{case}: CEL should not catch it"
        );
    }
}

#[test]
fn valid_variants_pass_both_layers() {
    let cases = [
        "spec: {}",
        "spec: {replicas: 1, unseal: {shamir: {shares: 1, threshold: 1}}}",
        "spec: {replicas: 5, unseal: {shamir: {shares: 7, threshold: 4}}}",
        "spec: {replicas: 7}",
        "spec: {unseal: {type: AwsKms, awsKms: {region: eu-west-1, kmsKeyId: alias/vault}, recovery: {shares: 3, threshold: 2}}}",
        "spec: {flavor: OpenBao, unseal: {type: Static, static: {keySecret: {name: k}}}, keys: {initialization: SelfInit}}",
        "spec: {backup: {enabled: true, schedule: '@daily', s3: {bucket: b, useAmbientCredentials: true}}}",
        "spec: {backup: {enabled: true, schedule: '*/15 1-5 * JAN-MAR MON-FRI', s3: {bucket: b, credentialsSecret: {name: s3}}, retention: {maxAge: 30d}}}",
        "spec: {monitoring: {tokenRenewSchedule: '@weekly', tokenPeriod: 336h}}",
        "spec: {monitoring: {tokenRenewSchedule: '@weekly', tokenPeriod: 2w}}",
        "spec: {backup: {enabled: true, s3: {bucket: b, useAmbientCredentials: true}, retention: {maxAge: 1h30m}}}",
        "spec: {tls: {mode: CertManager, certManager: {issuerName: ca, issuerKind: ClusterIssuer}}}",
        "spec: {tls: {mode: Secret, secretName: my-tls}}",
        "spec: {config: {ui: true, log_level: debug, telemetry: {disable_hostname: true}}}",
        "spec: {ingress: {enabled: true, hosts: [vault.example.com], tls: {passthrough: true}}}",
        "spec: {backup: {enabled: true, s3: {bucket: b, useAmbientCredentials: true}}, keys: {escrow: {recipients: [age1vj44rkrdhxu04zxlm2g4yyay8dx0er0s3eu500g5fcne5s7vrf7qv4pt7e]}}}",
        "spec: {keys: {escrow: {recipients: [age1vj44rkrdhxu04zxlm2g4yyay8dx0er0s3eu500g5fcne5s7vrf7qv4pt7e], objectStore: false, secret: {namespace: vault-escrow, name: vault}}}}",
        "spec: {pod: {extraArgs: [-log-level=debug, --exit-on-core-shutdown, -log-file=/vault/audit/server.log, -configure-me]}}",
        "spec: {pod: {extraPorts: [{containerPort: 8300, name: metrics, protocol: TCP}], hostAliases: [{ip: 10.0.0.9, hostnames: [kms.example.com, vault-kms.corp]}]}}",
        "spec: {pod: {terminationGracePeriodSeconds: 30, preStopSleepSeconds: 0, readinessProbe: {enabled: false}}}",
        "spec: {pod: {readinessProbe: {path: '/v1/sys/health?standbyok=true', port: 8200, initialDelaySeconds: 0, periodSeconds: 10, timeoutSeconds: 5, successThreshold: 2, failureThreshold: 3}, livenessProbe: {enabled: true, successThreshold: 1}}}",
        "spec: {storage: {mountPath: /vault/file, accessMode: ReadWriteOncePod, labels: {tier: data}, annotations: {example.com/backup: daily}, audit: {mountPath: /vault/logs, accessMode: ReadWriteMany, labels: {tier: audit}}}}",
        "spec: {storage: {mountPath: /vault/configuration}}",
        "spec: {replicas: 5, pod: {disruptionBudget: {maxUnavailable: 2}}}",
        "spec: {pod: {disruptionBudget: {enabled: false}}}",
        "spec: {pod: {disruptionBudget: {maxUnavailable: 0}}}",
        "spec: {pod: {statefulSetAnnotations: {example.com/owner: platform, vaultkeeper.io.example.com/x: z}}}",
    ];
    for patch in cases {
        let object = manifest(patch);
        assert_eq!(rust_violations(&object), Vec::new(), "{patch}");
        assert_eq!(cel_messages(&object), BTreeSet::new(), "{patch}");
    }
    let longest = manifest(&format!("metadata: {{name: {}}}", "v".repeat(44)));
    assert!(rust_violations(&longest).is_empty());
    assert!(cel_messages(&longest).is_empty());
}

#[test]
fn serde_defaults_match_the_schema_defaults() {
    // The API server fills in the schema's defaults; the operator deserializes with
    // serde's. Both must produce the same spec from the same minimal manifest.
    let object = manifest("spec: {}");
    let served = kube::core::cel::apply_defaults(&schema(), &object);
    let from_server: VaultCluster = serde_json::from_value(served).expect("defaulted object");
    let from_serde: VaultCluster = serde_json::from_value(object).expect("raw object");
    assert_eq!(from_server.spec, from_serde.spec);
}

/// The API server compiles every rule against the schema and refuses the whole CRD when a
/// rule names a field the schema does not declare where the rule sits (fields kept by
/// `x-kubernetes-preserve-unknown-fields` are invisible to CEL). The CEL interpreter used
/// above is more lenient, so check the paths here.
#[test]
fn every_field_a_rule_names_is_declared_where_the_rule_sits() {
    let path = regex::Regex::new(r"self((\.[A-Za-z_][A-Za-z0-9_]*)+)").expect("regex");
    let mut checked = 0;
    let mut stack = vec![(schema(), true)];
    while let Some((node, is_root)) = stack.pop() {
        if let Some(Value::Array(rules)) = node.get("x-kubernetes-validations") {
            for rule in rules {
                let text = rule["rule"].as_str().expect("rule text");
                for found in path.captures_iter(text) {
                    let mut segments: Vec<&str> =
                        found[1].trim_start_matches('.').split('.').collect();
                    // `self.hosts.size()`: the last segment is a method, not a field.
                    let end = found.get(0).map_or(0, |m| m.end());
                    if text[end..].starts_with('(') {
                        segments.pop();
                    }
                    if is_root && segments == ["metadata", "name"] {
                        checked += 1;
                        continue;
                    }
                    let mut at = &node;
                    for segment in &segments {
                        at = at
                            .get("properties")
                            .and_then(|p| p.get(*segment))
                            .unwrap_or_else(|| {
                                panic!("rule {text:?} names undeclared field {segment}")
                            });
                    }
                    checked += 1;
                }
            }
        }
        if let Some(Value::Object(properties)) = node.get("properties") {
            stack.extend(properties.values().map(|p| (p.clone(), false)));
        }
        if let Some(items) = node.get("items") {
            stack.push((items.clone(), false));
        }
    }
    assert!(checked > 30, "only {checked} field references checked");
}

/// Messages of the CEL rules that reject `new` as an update of `old` (transition rules
/// see `oldSelf`).
fn cel_update_messages(old: &Value, new: &Value) -> BTreeSet<String> {
    let schema = schema();
    let old = kube::core::cel::apply_defaults(&schema, old);
    let new = kube::core::cel::apply_defaults(&schema, new);
    match Validator::new().validate(&schema, &new, Some(&old)) {
        Ok(()) => BTreeSet::new(),
        Err(errors) => errors.into_vec().into_iter().map(|e| e.message).collect(),
    }
}

/// The Rust check of the same update: the fixed fields of `new` against `old`'s.
fn rust_fixed_violations(old: &Value, new: &Value) -> Vec<(String, String)> {
    let old: VaultCluster = serde_json::from_value(old.clone()).expect("old deserializes");
    let new: VaultCluster = serde_json::from_value(new.clone()).expect("new deserializes");
    let fixed = |vc: &VaultCluster| vaultkeeper_api::fixed_fields("vault", &vc.spec);
    vaultkeeper_api::validate_fixed(&fixed(&old), &fixed(&new))
        .into_iter()
        .map(|v| (v.field, v.message))
        .collect()
}

#[test]
fn reserved_env_names_are_refused_in_both_layers_naming_the_entry() {
    for name in [
        "VAULT_ADDR",
        "BAO_ADDR",
        "VAULT_SKIP_VERIFY",
        "BAO_CACERT",
        "VAULT_AGENT_ADDR",
        "VAULT_HTTP_PROXY",
        "VAULT_WRAP_TTL",
        "VAULT_NAMESPACE",
        "VAULT_TOKEN",
        "BAO_CONFIG_PATH",
    ] {
        let object = manifest(&format!(
            "spec: {{pod: {{env: [{{name: GOMAXPROCS, value: '2'}}, {{name: {name}, value: x}}]}}}}"
        ));
        let rust = rust_violations(&object);
        assert_eq!(rust.len(), 1, "{name}: {rust:?}");
        let (field, message) = &rust[0];
        assert_eq!(field, "spec.pod.env[1].name", "{name}");
        let rule = rules::pod_env_not_reserved().message;
        assert_eq!(
            message,
            &format!("spec.pod.env[1].name is {name}: {rule}"),
            "the message names the entry, the variable and the fix"
        );
        assert!(message.contains("spec.config"), "the fix: {message}");
        assert_eq!(
            cel_messages(&object),
            BTreeSet::from([rule]),
            "{name}: the CRD refuses it with the rule's message"
        );
    }
}

#[test]
fn server_settings_and_proxies_stay_allowed_in_pod_env() {
    let mut names: Vec<&str> = rules::ALLOWED_VAULT_ENV.to_vec();
    names.extend([
        "HTTPS_PROXY",
        "NO_PROXY",
        "AWS_REGION",
        "GOMAXPROCS",
        "MY_VAULT_ADDR",
    ]);
    for name in names {
        let object = manifest(&format!(
            "spec: {{pod: {{env: [{{name: {name}, value: x}}]}}}}"
        ));
        assert_eq!(rust_violations(&object), Vec::new(), "{name}");
        assert_eq!(cel_messages(&object), BTreeSet::new(), "{name}");
    }
}

#[test]
fn fields_fixed_at_creation_cannot_change_in_either_layer() {
    let cases = [
        (
            "flavor OpenBao to Vault",
            "spec: {flavor: OpenBao}",
            "spec: {flavor: Vault}",
            "spec.flavor",
        ),
        (
            "flavor removed",
            "spec: {flavor: OpenBao}",
            "spec: {flavor: null}",
            "spec.flavor",
        ),
        (
            "Shamir to a KMS seal",
            "spec: {}",
            &format!("spec: {{unseal: {{type: AwsKms, awsKms: {AWS_KMS}}}}}"),
            "spec.unseal.type",
        ),
        (
            "keys Secret renamed",
            "spec: {keys: {secretName: vault-keys}}",
            "spec: {keys: {secretName: other-clusters-keys}}",
            "spec.keys.secretName",
        ),
        (
            "keys Secret named where the default was used",
            "spec: {}",
            "spec: {keys: {secretName: other-clusters-keys}}",
            "spec.keys.secretName",
        ),
        (
            "initialization mode",
            "spec: {flavor: OpenBao, unseal: {type: Static, static: {keySecret: {name: k}}}}",
            "spec: {flavor: OpenBao, unseal: {type: Static, static: {keySecret: {name: k}}}, keys: {initialization: SelfInit}}",
            "spec.keys.initialization",
        ),
    ];
    for (case, before, after, field) in cases {
        let (old, new) = (manifest(before), manifest(after));
        let rust = rust_fixed_violations(&old, &new);
        assert_eq!(
            rust.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
            [field],
            "{case}"
        );
        assert!(rust[0].1.contains(field) && rust[0].1.contains("new VaultCluster"));
        assert_eq!(
            cel_update_messages(&old, &new),
            BTreeSet::from([rust[0].1.clone()]),
            "{case}: the CRD's transition rule refuses it with the same message"
        );
        // A new object has no old self: the transition rules do not apply.
        assert_eq!(cel_messages(&new), BTreeSet::new(), "{case}");
    }
}

#[test]
fn unrelated_updates_pass_the_transition_rules() {
    let cases = [
        ("spec: {}", "spec: {replicas: 5}"),
        ("spec: {}", "spec: {unseal: {type: Shamir}}"),
        ("spec: {}", "spec: {flavor: Vault}"),
        (
            "spec: {flavor: OpenBao, keys: {secretName: k}}",
            "spec: {flavor: OpenBao, keys: {secretName: k, rootToken: Keep}, image: quay.io/openbao/openbao:2.7.3}",
        ),
    ];
    for (before, after) in cases {
        let (old, new) = (manifest(before), manifest(after));
        assert_eq!(
            cel_update_messages(&old, &new),
            BTreeSet::new(),
            "{before} -> {after}"
        );
        assert_eq!(
            rust_fixed_violations(&old, &new),
            Vec::new(),
            "{before} -> {after}"
        );
    }
}

/// The API server refuses a CRD whose rule could cost more than its budget on the largest
/// object the schema allows, so every list and string a new `spec.pod` rule walks is
/// bounded in the schema (the API server derives the worst case from these bounds).
#[test]
fn lists_and_strings_the_pod_rules_walk_are_bounded() {
    let pod = &schema()["properties"]["spec"]["properties"]["pod"]["properties"];
    let bounded = [
        (&pod["extraArgs"], "maxItems"),
        (&pod["extraArgs"]["items"], "maxLength"),
        (&pod["extraPorts"], "maxItems"),
        (
            &pod["extraPorts"]["items"]["properties"]["name"],
            "maxLength",
        ),
        (
            &pod["extraPorts"]["items"]["properties"]["hostIP"],
            "maxLength",
        ),
        (&pod["hostAliases"], "maxItems"),
        (
            &pod["hostAliases"]["items"]["properties"]["hostnames"],
            "maxItems",
        ),
        (
            &pod["hostAliases"]["items"]["properties"]["hostnames"]["items"],
            "maxLength",
        ),
        (&pod["statefulSetAnnotations"], "maxProperties"),
        (&pod["readinessProbe"]["properties"]["path"], "maxLength"),
    ];
    let storage = &schema()["properties"]["spec"]["properties"]["storage"]["properties"];
    for (node, bound) in [
        (&storage["mountPath"], "maxLength"),
        (&storage["annotations"], "maxProperties"),
        (&storage["audit"]["properties"]["mountPath"], "maxLength"),
        (
            &storage["audit"]["properties"]["annotations"],
            "maxProperties",
        ),
    ] {
        assert!(node.get(bound).is_some(), "{bound} missing in {node}");
    }
    for (index, (node, bound)) in bounded.iter().enumerate() {
        assert!(
            node.get(*bound).and_then(Value::as_u64).is_some(),
            "entry {index}: {bound} missing in {node}"
        );
    }
}
