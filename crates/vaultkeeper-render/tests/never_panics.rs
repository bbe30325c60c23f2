//! Arbitrary specs never panic anywhere between parsing and rendering: whatever a person
//! or a controller writes, validation answers with violations or rendering answers with
//! objects (or a clear error), and the server configuration it renders is valid HCL.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use vaultkeeper_api::{VaultCluster, validate};
use vaultkeeper_render::{PkiMaterial, RenderContext, pki, render};

/// Every property name the CRD schema declares, so generated objects hit real fields.
fn vocabulary() -> &'static Vec<String> {
    static WORDS: OnceLock<Vec<String>> = OnceLock::new();
    WORDS.get_or_init(|| {
        let crd = serde_json::to_value(vaultkeeper_api::crd()).expect("crd");
        let mut words = BTreeSet::new();
        collect(&crd, &mut words);
        // Plus keys spec.config refuses and Vault configuration keys people use.
        for extra in [
            "storage",
            "listener",
            "seal",
            "ui",
            "log_level",
            "telemetry",
            "user_lockout",
        ] {
            words.insert(extra.to_owned());
        }
        words.into_iter().collect()
    })
}

fn collect(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Object(props)) = map.get("properties") {
                out.extend(props.keys().cloned());
            }
            map.values().for_each(|v| collect(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn pki_material() -> &'static PkiMaterial {
    static MATERIAL: OnceLock<PkiMaterial> = OnceLock::new();
    MATERIAL.get_or_init(|| {
        let request = vaultkeeper_render::CertificateRequest {
            dns_names: vec!["vault".into()],
            ip_addresses: vec![],
        };
        let now = OffsetDateTime::now_utc();
        pki::issue(
            &pki::plan(None, &request, now),
            None,
            "vault",
            &request,
            now,
        )
        .expect("pki")
    })
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(1),
            Just(3),
            Just(5),
            Just(7),
            Just(-1),
            Just(256),
            any::<i64>()
        ]
        .prop_map(Value::from),
        prop_oneof![
            Just("Shamir".to_owned()),
            Just("Transit".to_owned()),
            Just("Static".to_owned()),
            Just("SelfSigned".to_owned()),
            Just("OpenBao".to_owned()),
            Just("0 */6 * * *".to_owned()),
            Just("30d".to_owned()),
            Just("".to_owned()),
            "[a-z0-9 ${}\"\\\\\n/:.*-]{0,24}",
        ]
        .prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0..vocabulary().len()).prop_map(|i| vocabulary()[i].clone()),
        1 => "[a-zA-Z_][a-zA-Z0-9_-]{0,8}",
        1 => "[ -~]{0,6}",
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn cluster_object() -> impl Strategy<Value = Value> {
    (
        prop_oneof![Just("vault".to_owned()), "[a-z0-9-]{0,50}"],
        prop::collection::btree_map(key(), tree(), 0..8),
    )
        .prop_map(|(name, spec)| {
            json!({
                "apiVersion": "vaultkeeper.io/v1alpha1",
                "kind": "VaultCluster",
                "metadata": {"name": name, "namespace": "ns", "uid": "u"},
                "spec": Value::Object(spec.into_iter().collect()),
            })
        })
}

/// Runs one generated object through parse → validate → render; returns how far it got.
fn exercise(object: Value) -> Result<Stage, TestCaseError> {
    let Ok(cluster) = serde_json::from_value::<VaultCluster>(object) else {
        return Ok(Stage::NotParsed);
    };
    if validate(&cluster).is_err() {
        return Ok(Stage::Invalid);
    }
    let ctx = RenderContext::new("ns", Some(pki_material()));
    let Ok(manifests) = render(&cluster, &ctx) else {
        return Ok(Stage::RenderRefused);
    };
    let config = manifests
        .iter()
        .find(|m| m.kind == "ConfigMap" && m.name.ends_with("-config"))
        .and_then(|m| m.object["data"].as_object())
        .and_then(|d| d.values().next())
        .and_then(Value::as_str)
        .map(str::to_owned);
    prop_assert!(
        config.is_some(),
        "a valid cluster renders its configuration"
    );
    let config = config.unwrap_or_default();
    prop_assert!(
        hcl::parse(&config).is_ok(),
        "rendered configuration is not HCL:\n{config}"
    );
    Ok(Stage::Rendered)
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    NotParsed,
    Invalid,
    RenderRefused,
    Rendered,
}

/// Half the objects start from a valid cluster and change a few fields, so that many
/// reach rendering; the other half are anything at all.
fn mixed_object() -> impl Strategy<Value = Value> {
    prop_oneof![
        cluster_object(),
        prop::collection::btree_map(key(), tree(), 0..3).prop_map(|changes| {
            let mut spec = json!({"backup": {"enabled": false}});
            for (k, v) in changes {
                spec[k] = v;
            }
            json!({
                "apiVersion": "vaultkeeper.io/v1alpha1",
                "kind": "VaultCluster",
                "metadata": {"name": "vault", "namespace": "ns", "uid": "u"},
                "spec": spec,
            })
        }),
    ]
}

#[test]
fn validate_then_render_never_panics_and_renders_valid_hcl() {
    use proptest::test_runner::{Config, TestRunner};
    use std::sync::Mutex;
    let stages = Mutex::new(Vec::new());
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    runner
        .run(&mixed_object(), |object| {
            let stage = exercise(object)?;
            stages
                .lock()
                .map_err(|e| TestCaseError::fail(e.to_string()))?
                .push(stage);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let stages = stages.into_inner().expect("stages");
    let rendered = stages.iter().filter(|s| **s == Stage::Rendered).count();
    let invalid = stages.iter().filter(|s| **s == Stage::Invalid).count();
    // The generator must actually reach rendering, or this test would prove nothing.
    assert!(
        rendered >= 30,
        "only {rendered} of {} cases rendered",
        stages.len()
    );
    assert!(invalid >= 15, "only {invalid} cases were invalid");
}
