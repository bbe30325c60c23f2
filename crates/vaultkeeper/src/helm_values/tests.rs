use vaultkeeper_api::{TlsMode, UnsealType};

use super::*;

fn run(yaml: &str) -> Imported {
    let values = parse_values(yaml).expect("values");
    import(
        &values,
        &ImportOptions {
            release: "vault".to_owned(),
            namespace: None,
        },
    )
    .expect("imports")
}

fn paths(imported: &Imported) -> Vec<&str> {
    imported.leftovers.iter().map(|l| l.path.as_str()).collect()
}

#[test]
fn the_chart_defaults_parse() {
    let defaults: Value = serde_saphyr::from_str(CHART_DEFAULTS).expect("defaults parse");
    assert_eq!(defaults["server"]["ha"]["replicas"], json!(3));
}

#[test]
fn chart_defaults_import_as_a_standalone_cluster_without_tls() {
    let imported = run("");
    assert_eq!(imported.cluster.spec.replicas, 1);
    assert_eq!(imported.cluster.spec.tls.mode, TlsMode::Disabled);
    assert_eq!(
        paths(&imported),
        [
            "injector.enabled",
            "server.standalone.config storage \"file\""
        ]
    );
    assert!(imported.cluster.spec.pod.affinity.is_none());
    assert!(vaultkeeper_api::validate(&imported.cluster).is_ok());
}

#[test]
fn ha_raft_carries_replicas_and_names_odd_counts() {
    let imported =
        run("server:\n  ha:\n    enabled: true\n    replicas: 4\n    raft:\n      enabled: true\n");
    assert_eq!(imported.cluster.spec.replicas, 5);
    assert!(paths(&imported).contains(&"server.ha.replicas"));
}

#[test]
fn release_names_follow_the_chart_fullname() {
    let values = parse_values("").expect("values");
    let options = |release: &str| ImportOptions {
        release: release.to_owned(),
        namespace: Some("ns".to_owned()),
    };
    let name = |release: &str| {
        import(&values, &options(release))
            .expect("imports")
            .cluster
            .metadata
            .name
    };
    assert_eq!(name("vault").as_deref(), Some("vault"));
    assert_eq!(name("prod").as_deref(), Some("prod-vault"));
    assert_eq!(name("my-vault").as_deref(), Some("my-vault"));
    assert!(matches!(
        import(&values, &options("Bad_Name")),
        Err(NotVaultValues::BadValue { .. })
    ));
}

#[test]
fn files_that_are_not_vault_values_are_refused() {
    assert!(matches!(
        parse_values("a: [\n"),
        Err(NotVaultValues::NotYaml(_))
    ));
    assert!(matches!(
        parse_values("- 1\n"),
        Err(NotVaultValues::NotMapping(_))
    ));
    assert!(matches!(
        parse_values("42"),
        Err(NotVaultValues::NotMapping(_))
    ));
    let err = parse_values("replicaCount: 2\nimage: {}\n").expect_err("foreign");
    assert!(err.to_string().contains("\"replicaCount\""), "{err}");
}

#[test]
fn reserved_environment_is_named_not_carried() {
    let imported =
        run("server:\n  extraEnvironmentVars:\n    VAULT_CACERT: /x\n    http.proxy: p\n");
    assert_eq!(imported.cluster.spec.pod.env.len(), 1);
    assert_eq!(imported.cluster.spec.pod.env[0].name, "HTTP_PROXY");
    assert!(paths(&imported).contains(&"server.extraEnvironmentVars.VAULT_CACERT"));
}

fn raft_with(config_lines: &str, extra: &str) -> Imported {
    let config: String = config_lines
        .lines()
        .map(|l| format!("        {l}\n"))
        .collect();
    run(&format!(
        "server:\n  ha:\n    enabled: true\n    raft:\n      enabled: true\n      \
         config: |\n        storage \"raft\" {{}}\n{config}{extra}"
    ))
}

#[test]
fn seals_become_spec_unseal_without_their_credentials() {
    let imported = raft_with(
        "seal \"awskms\" {\n  region = \"eu-west-1\"\n  kms_key_id = \"alias/v\"\n  \
         secret_key = \"hunter2\"\n}",
        "",
    );
    let spec = &imported.cluster.spec;
    assert_eq!(spec.unseal.kind, UnsealType::AwsKms);
    assert_eq!(
        spec.unseal.aws_kms.as_ref().map(|k| k.kms_key_id.as_str()),
        Some("alias/v")
    );
    assert!(paths(&imported).contains(&"server.ha.raft.config seal \"awskms\".secret_key"));
    assert!(!format!("{imported:?}").contains("hunter2"));
    assert!(vaultkeeper_api::validate(&imported.cluster).is_ok());
}

#[test]
fn a_transit_seal_takes_its_token_from_the_charts_secret_environment() {
    let imported = raft_with(
        "seal \"transit\" {\n  address = \"https://transit:8200\"\n  key_name = \"unseal\"\n}",
        "  extraSecretEnvironmentVars:\n    - envName: VAULT_TOKEN\n      secretName: transit\n      \
         secretKey: token\n",
    );
    let transit = imported
        .cluster
        .spec
        .unseal
        .transit
        .as_ref()
        .expect("transit");
    assert_eq!(transit.token_secret.name, "transit");
    assert!(imported.cluster.spec.pod.env.is_empty());
    assert_eq!(paths(&imported), ["injector.enabled"]);
    assert!(vaultkeeper_api::validate(&imported.cluster).is_ok());
    // Without the Secret the seal is named, not half carried.
    let alone = raft_with(
        "seal \"transit\" {\n  address = \"https://transit:8200\"\n  key_name = \"unseal\"\n}",
        "",
    );
    assert_eq!(alone.cluster.spec.unseal.kind, UnsealType::Shamir);
    assert!(paths(&alone).contains(&"server.ha.raft.config seal \"transit\""));
}

#[test]
fn misspelled_settings_are_named_as_such() {
    let imported = run("server:\n  logLevl: debug\n");
    let typo = imported
        .leftovers
        .iter()
        .find(|l| l.path == "server.logLevl")
        .expect("named");
    assert!(typo.detail.contains("misspelling"), "{typo}");
}

#[test]
fn parse_errors_never_quote_the_configuration() {
    let imported = run(
        "server:\n  standalone:\n    config: |\n      seal \"awskms\" { secret_key = \"hunter2\" \n",
    );
    let config = imported
        .leftovers
        .iter()
        .find(|l| l.path == "server.standalone.config")
        .expect("named");
    assert!(!config.detail.contains("hunter2"), "{config}");
}

#[test]
fn dev_mode_is_named_and_becomes_one_real_server() {
    let imported = run("server:\n  dev:\n    enabled: true\n  ha:\n    enabled: true\n");
    assert_eq!(imported.cluster.spec.replicas, 1);
    assert!(paths(&imported).contains(&"server.dev.enabled"));
    assert!(vaultkeeper_api::validate(&imported.cluster).is_ok());
}

#[test]
fn templates_the_chart_cannot_resolve_here_are_named() {
    let imported = run("server:\n  annotations: |\n    a: {{ .Values.x }}\n");
    assert!(paths(&imported).contains(&"server.annotations"));
}
