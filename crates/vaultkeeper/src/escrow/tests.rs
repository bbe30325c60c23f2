use super::*;
use vaultkeeper_vault::keys::KeyKind;
use vaultkeeper_vault::secret::{KeyShare, Token};

fn sample() -> InitKeys {
    InitKeys {
        kind: KeyKind::Unseal,
        threshold: 2,
        shares: vec![
            KeyShare::new("c2hhcmUtb25l".into()),
            KeyShare::new("c2hhcmUtdHdv".into()),
            KeyShare::new("c2hhcmUtdGhyZWU=".into()),
        ],
        root_token: Some(Token::new("s.rootTokenValue".into())),
        next: None,
        previous: None,
    }
}

fn identity() -> (age::x25519::Identity, String) {
    let (secret, public) = generate_identity();
    let identity = parse_identities("--identity", &secret).expect("own identity parses");
    (identity.into_iter().next().expect("one"), public)
}

#[test]
fn the_record_round_trips_through_any_one_recipient() {
    let (alice, alice_public) = identity();
    let (bob, bob_public) = identity();
    let record = sample().to_json().expect("record");
    let ciphertext =
        encrypt(record.expose_secret(), &[alice_public, bob_public]).expect("encrypts");
    for secret in ["c2hhcmUtb25l", "s.rootTokenValue"] {
        assert!(
            !String::from_utf8_lossy(&ciphertext).contains(secret),
            "ciphertext holds no plaintext"
        );
    }
    for who in [alice, bob] {
        let plain = decrypt(&ciphertext, &[who]).expect("decrypts");
        let keys = InitKeys::from_json(plain.expose_secret()).expect("the record parses");
        assert_eq!(keys.summary(), sample().summary());
        assert_eq!(keys.shares[2].expose_secret(), "c2hhcmUtdGhyZWU=");
    }
}

#[test]
fn a_stranger_cannot_decrypt_and_the_error_says_why_without_the_record() {
    let (_, alice_public) = identity();
    let (mallory, _) = identity();
    let record = sample().to_json().expect("record");
    let ciphertext = encrypt(record.expose_secret(), &[alice_public]).expect("encrypts");
    let err = decrypt(&ciphertext, &[mallory])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("none of the identities"), "{err}");
    let err = decrypt(b"not age at all", &[identity().0])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("not an age file"), "{err}");
}

#[test]
fn fingerprints_are_stable_and_ignore_recipient_order() {
    let record = sample().to_json().expect("record");
    let again = sample().to_json().expect("record");
    assert_eq!(
        fingerprint(record.expose_secret()),
        fingerprint(again.expose_secret())
    );
    assert_eq!(fingerprint(record.expose_secret()).len(), 64);
    let mut rotated = sample();
    rotated.root_token = None;
    let rotated = rotated.to_json().expect("record");
    assert_ne!(
        fingerprint(record.expose_secret()),
        fingerprint(rotated.expose_secret())
    );
    // SHA-256 of "abc", the standard test vector.
    assert_eq!(
        fingerprint(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let a = vec!["age1b".to_owned(), "age1a".to_owned()];
    let b = vec!["age1a".to_owned(), "age1b".to_owned(), "age1a".to_owned()];
    assert_eq!(recipients_fingerprint(&a), recipients_fingerprint(&b));
    assert_ne!(recipients_fingerprint(&a), recipients_fingerprint(&a[..1]));
}

#[test]
fn identity_files_accept_comments_and_name_a_bad_line_without_its_text() {
    let (secret, public) = generate_identity();
    let file = format!(
        "# created: today\n# public key: {public}\n{}\n",
        secret.expose_secret()
    );
    let parsed = parse_identities(
        "--identity",
        &vaultkeeper_vault::secret::secret_string(file),
    )
    .expect("parses");
    assert_eq!(parsed[0].to_public().to_string(), public);
    let bad =
        vaultkeeper_vault::secret::secret_string("# c\nAGE-SECRET-KEY-1NOTREALLYAKEY\n".into());
    let err = parse_identities("--identity", &bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.starts_with("--identity: line 2"), "{err}");
    assert!(!err.contains("NOTREALLY"), "{err}");
    let empty = vaultkeeper_vault::secret::secret_string("# nothing\n".into());
    assert!(parse_identities("--identity", &empty).is_err());
}

fn target(object: bool, secret: bool) -> Target {
    Target {
        fingerprint: "f1".into(),
        recipients_fingerprint: "r1".into(),
        recipients: 2,
        object_store: object.then(|| ("bucket".to_owned(), "p/escrow/vault/".to_owned())),
        secret: secret.then(|| "vault-escrow/vault".to_owned()),
    }
}

fn escrowed(
    fingerprint: &str,
    recipients: &str,
    object: Option<&str>,
    secret: Option<&str>,
) -> EscrowStatus {
    EscrowStatus {
        fingerprint: fingerprint.into(),
        recipients_fingerprint: recipients.into(),
        recipients: 2,
        written_at: None,
        bucket: object.map(|_| "bucket".to_owned()),
        object: object.map(str::to_owned),
        secret: secret.map(str::to_owned),
    }
}

#[test]
fn escrow_is_written_only_where_status_does_not_hold_the_current_record() {
    use Destination::{Object, Secret};
    let object = Some("p/escrow/vault/20260101T000000Z-f1.age");
    let cases: Vec<(&str, Target, Option<EscrowStatus>, Vec<Destination>)> = vec![
        (
            "first escrow after init",
            target(true, true),
            None,
            vec![Object, Secret],
        ),
        (
            "up to date",
            target(true, true),
            Some(escrowed("f1", "r1", object, Some("vault-escrow/vault"))),
            vec![],
        ),
        (
            "the record changed (rekey)",
            target(true, true),
            Some(escrowed("f0", "r1", object, Some("vault-escrow/vault"))),
            vec![Object, Secret],
        ),
        (
            "a recipient was replaced",
            target(true, false),
            Some(escrowed("f1", "r0", object, None)),
            vec![Object],
        ),
        (
            "the Secret write failed last pass",
            target(true, true),
            Some(escrowed("f1", "r1", object, None)),
            vec![Secret],
        ),
        (
            "the Secret moved",
            target(false, true),
            Some(escrowed("f1", "r1", None, Some("other/vault"))),
            vec![Secret],
        ),
        (
            "the backup prefix moved",
            target(true, false),
            Some(escrowed("f1", "r1", Some("old/escrow/vault/x.age"), None)),
            vec![Object],
        ),
        (
            "object store turned off: nothing to write",
            target(false, false),
            Some(escrowed("f0", "r1", object, None)),
            vec![],
        ),
    ];
    for (case, target, status, expected) in cases {
        assert_eq!(writes_needed(&target, status.as_ref()), expected, "{case}");
    }
}

#[test]
fn only_a_secret_labelled_as_this_clusters_escrow_is_overwritten() {
    let with = |labels: BTreeMap<String, String>| Secret {
        metadata: ObjectMeta {
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    };
    assert!(is_own_escrow(
        &with(secret_labels("team-a", "vault")),
        "team-a",
        "vault"
    ));
    assert!(!is_own_escrow(
        &with(secret_labels("team-b", "vault")),
        "team-a",
        "vault"
    ));
    assert!(!is_own_escrow(
        &with(secret_labels("team-a", "other")),
        "team-a",
        "vault"
    ));
    assert!(!is_own_escrow(&with(BTreeMap::new()), "team-a", "vault"));
}
