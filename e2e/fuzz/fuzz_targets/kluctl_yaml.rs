//! The Kluctl YAML loaders of the engine: `.kluctl.yaml` (`parse_kluctl_project`),
//! `deployment.yaml` (`parse_deployment_project`, root and nested), vars files (`vars::parse_yaml`,
//! single and multi-document), rendered manifests (`yaml::parse_multi_doc`) and vars target paths
//! (`parse_target_path`). Every one takes text from the user's repository.
//!
//! Checked beyond "no panic": a loader error names the file it was given; a config that loads
//! round-trips: printed as JSON (which is YAML) and loaded again by the same loader, it is equal.
#![no_main]

use kluctl_engine::project::config::{parse_deployment_project, parse_kluctl_project};
use kluctl_engine::project::vars::{parse_target_path, parse_yaml};
use kluctl_engine::yaml::parse_multi_doc;
use libfuzzer_sys::fuzz_target;

const PROJECT_FILE: &str = "fuzz/.kluctl.yaml";
const DEPLOYMENT_FILE: &str = "fuzz/deployment.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_kluctl_project(text, PROJECT_FILE) {
        Ok(config) => {
            let json = serde_json::to_string(&config).expect("a loaded .kluctl.yaml serializes");
            let again = parse_kluctl_project(&json, PROJECT_FILE)
                .unwrap_or_else(|e| panic!("{text:?} loads, its JSON {json} does not: {e}"));
            assert_eq!(again, config, "{text:?} does not round-trip through {json}");
        }
        Err(e) => assert!(
            e.to_string().contains(PROJECT_FILE),
            "error does not name the file: {e}"
        ),
    }
    for is_root in [true, false] {
        match parse_deployment_project(text, DEPLOYMENT_FILE, is_root) {
            Ok(config) => {
                let json = serde_json::to_string(&config).expect("a loaded deployment.yaml serializes");
                let again = parse_deployment_project(&json, DEPLOYMENT_FILE, is_root)
                    .unwrap_or_else(|e| panic!("{text:?} loads, its JSON {json} does not: {e}"));
                assert_eq!(again, config, "{text:?} does not round-trip through {json}");
            }
            Err(e) => assert!(
                e.to_string().contains(DEPLOYMENT_FILE),
                "error does not name the file: {e}"
            ),
        }
    }
    let _ = parse_yaml(text, false);
    let _ = parse_yaml(text, true);
    let _ = parse_multi_doc(text);
    if text.len() < 256 {
        let _ = parse_target_path(text);
    }
});
