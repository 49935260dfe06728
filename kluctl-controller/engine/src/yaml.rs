//! YAML read the way Go's yaml does (go-yaml v3, the parser of kustomize, Helm and Kluctl):
//! parser options and multi-document streams. Shared by `helm`, `kustomize` and `render`, so
//! none of them depends on another for it.

use crate::Object;

/// Parser options that resolve plain scalars as go-yaml v3 does (the parser of kustomize and Kluctl):
/// only `true`/`false` spellings are booleans (`yes`, `on` stay strings) and `0`-prefixed integers
/// are octal (`017` is 15). Pinned by the `scalars` fixture of the differential test.
///
/// The parse budget is raised well above serde-saphyr's defaults (1,024 documents, 250,000 nodes):
/// one deployment item may hold thousands of objects or large CRD bundles. Alias-expansion limits
/// stay in force.
pub fn go_yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        legacy_octal_numbers: true,
        budget: serde_saphyr::budget! {
            max_documents: 10_000_000,
            max_nodes: 100_000_000,
            max_events: 400_000_000,
            max_depth: 256,
        },
    }
}

/// Parses a multi-document YAML stream into objects; empty and `null` documents are skipped.
///
/// # Errors
/// A message when the text is not YAML or a document is not a mapping.
pub fn parse_multi_doc(text: &str) -> Result<Vec<Object>, String> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(text, go_yaml_options()).map_err(|e| e.to_string())?;
    docs.into_iter()
        .enumerate()
        .filter(|(_, d)| !d.is_null())
        .map(|(i, d)| match d {
            serde_json::Value::Object(m) => Ok(m),
            other => Err(format!(
                "document {} is not a mapping but {}",
                i + 1,
                json_kind(&other)
            )),
        })
        .collect()
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a sequence",
        serde_json::Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_doc_parsing_handles_many_documents_and_go_yaml_scalars() {
        let text = "---\nkind: A\nv: yes\no: 017\n".repeat(5000);
        let docs = parse_multi_doc(&text).unwrap();
        assert_eq!(docs.len(), 5000);
        assert_eq!(docs[0]["v"], "yes");
        assert_eq!(docs[0]["o"], 15);
    }

    #[test]
    fn multi_doc_parsing_rejects_duplicate_keys_and_scalar_documents() {
        assert!(parse_multi_doc("a: 1\na: 2\n").is_err());
        let err = parse_multi_doc("a: 1\n---\n- x\n").unwrap_err();
        assert!(err.contains("document 2 is not a mapping"), "{err}");
    }
}
