//! The binary answers `--help` and `--version`, and fails clearly when it cannot start.

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
    assert!(String::from_utf8_lossy(&help.stdout).contains("GitRepository"));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--storage-adv-addr"));
    let version = run(&["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("source-controller {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unreadable_kubeconfig_fails_at_startup_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("sc-cli-{}", std::process::id()));
    let out = run(&[
        "--storage-path",
        &dir.to_string_lossy(),
        "--kubeconfig",
        "/nonexistent/kubeconfig",
        "--storage-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--health-addr",
        "127.0.0.1:0",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
    let _ = fs_err::remove_dir_all(dir);
}
