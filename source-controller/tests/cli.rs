//! The binary answers `--help` and `--version`, and refuses to pretend it reconciles.

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_source-controller"))
        .args(args)
        .output()
        .expect("run source-controller")
}

#[test]
fn help_and_version_print_and_exit_zero() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("GitRepository and Bucket"));
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("source-controller {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn starting_without_reconcilers_fails_with_a_clear_message() {
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not part of this build"));
}
