//! `crdgen` writes, checks and strips: stale files are named, CEL-free output has no rules.

use std::process::Command;

fn crdgen(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crdgen"))
        .args(args)
        .output()
        .expect("run crdgen")
}

#[test]
fn write_then_check_passes_and_an_edit_is_reported_stale() {
    let dir = std::env::temp_dir().join(format!("crdgen-test-{}", std::process::id()));
    let root = dir.to_string_lossy().into_owned();
    assert!(crdgen(&["--root", &root]).status.success());
    let check = crdgen(&["--root", &root, "--check"]);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let file = dir.join("config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml");
    fs_err::write(&file, "edited\n").unwrap();
    fs_err::write(dir.join("docs/api/leftover.md"), "x").unwrap();
    let check = crdgen(&["--root", &root, "--check"]);
    assert!(!check.status.success());
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(
        err.contains("source.toolkit.fluxcd.io_gitrepositories.yaml: differs"),
        "{err}"
    );
    assert!(err.contains("leftover.md: not generated"), "{err}");
    fs_err::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_cel_output_has_no_validation_rules() {
    let dir = std::env::temp_dir().join(format!("crdgen-nocel-{}", std::process::id()));
    let out = dir.to_string_lossy().into_owned();
    assert!(crdgen(&["--no-cel", "--out", &out]).status.success());
    let mut n = 0;
    for entry in fs_err::read_dir(&dir).unwrap() {
        let text = fs_err::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!text.contains("x-kubernetes-validations"));
        assert!(text.contains("openAPIV3Schema"));
        n += 1;
    }
    assert_eq!(n, 7, "one file per CRD");
    fs_err::remove_dir_all(&dir).unwrap();
}
