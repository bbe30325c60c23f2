//! Reading VaultCluster manifests written by people: YAML, possibly several documents,
//! with errors that name the field (`spec.replicas: invalid type…`) and refuse unknown
//! fields (`spec.replica` is a typo, not something to ignore silently).

use crate::VaultCluster;

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML at all.
    #[error("document {document}: not valid YAML: {detail}")]
    Yaml {
        /// 1-based document number.
        document: usize,
        /// The parser's message.
        detail: String,
    },
    /// A field has the wrong type or value.
    #[error("document {document}: {field}: {detail}")]
    Field {
        /// 1-based document number.
        document: usize,
        /// The field, e.g. `spec.replicas`.
        field: String,
        /// What is wrong.
        detail: String,
    },
    /// Fields the VaultCluster type does not have.
    #[error(
        "document {document}: unknown field{} {}: check the spelling against `kubectl explain vaultcluster.spec`",
        if fields.len() == 1 { "" } else { "s" },
        fields.join(", ")
    )]
    UnknownFields {
        /// 1-based document number.
        document: usize,
        /// The unknown fields' paths.
        fields: Vec<String>,
    },
    /// The document is some other kind of object.
    #[error(
        "document {document}: expected kind VaultCluster (apiVersion vaultkeeper.io/v1alpha1), found {found}"
    )]
    WrongKind {
        /// 1-based document number.
        document: usize,
        /// What the document says it is.
        found: String,
    },
    /// Nothing in the input.
    #[error("no VaultCluster in the input")]
    Empty,
}

/// Reads every VaultCluster in a YAML stream. Documents of other kinds are an error:
/// the input is meant to be VaultCluster manifests.
pub fn parse_manifests(yaml: &str) -> Result<Vec<VaultCluster>, ManifestError> {
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| ManifestError::Yaml {
            document: 1,
            detail: e.to_string(),
        })?;
    let mut clusters = Vec::new();
    for (index, value) in documents.into_iter().enumerate() {
        let document = index + 1;
        if value.is_null() {
            continue;
        }
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
        if kind != "VaultCluster" || api_version != "vaultkeeper.io/v1alpha1" {
            return Err(ManifestError::WrongKind {
                document,
                found: format!("{api_version} {kind}").trim().to_owned(),
            });
        }
        clusters.push(parse_one(document, value)?);
    }
    if clusters.is_empty() {
        return Err(ManifestError::Empty);
    }
    Ok(clusters)
}

fn parse_one(document: usize, value: serde_json::Value) -> Result<VaultCluster, ManifestError> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        let path = path.to_string();
        // Type fields were checked above; metadata and status are not ours to police.
        let ours = !matches!(path.as_str(), "apiVersion" | "kind")
            && !path.starts_with("metadata")
            && !path.starts_with("status");
        if ours {
            unknown.push(path);
        }
    };
    let ignored = serde_ignored::Deserializer::new(&value, &mut record);
    let parsed: Result<VaultCluster, _> = serde_path_to_error::deserialize(ignored);
    match parsed {
        Err(e) => Err(ManifestError::Field {
            document,
            field: e.path().to_string(),
            detail: e.into_inner().to_string(),
        }),
        Ok(_) if !unknown.is_empty() => Err(ManifestError::UnknownFields {
            document,
            fields: unknown,
        }),
        Ok(cluster) => Ok(cluster),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_type_names_the_field() {
        let err = parse_manifests(
            "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: v}\nspec: {replicas: three}\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, ManifestError::Field { field, .. } if field == "spec.replicas"),
            "{err}"
        );
    }

    #[test]
    fn a_misspelled_field_is_refused_with_its_path() {
        let err = parse_manifests(
            "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: v}\nspec: {replica: 3, unseal: {shamirr: {}}}\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            ManifestError::UnknownFields {
                document: 1,
                fields: vec!["spec.replica".into(), "spec.unseal.shamirr".into()]
            }
        );
    }

    #[test]
    fn other_kinds_are_refused() {
        let err =
            parse_manifests("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n").unwrap_err();
        assert!(
            err.to_string().contains("expected kind VaultCluster"),
            "{err}"
        );
    }

    #[test]
    fn several_documents_are_read() {
        let two = "apiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: a}\nspec: {}\n---\napiVersion: vaultkeeper.io/v1alpha1\nkind: VaultCluster\nmetadata: {name: b}\nspec: {}\n";
        let clusters = parse_manifests(two).expect("parses");
        assert_eq!(clusters.len(), 2);
    }
}
