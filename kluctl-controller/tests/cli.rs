//! `kluctl-controller` answers `--help` and `--version`, and refuses bad flags and an unreadable
//! kubeconfig with a message naming them (before binding any port).

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin)
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("run binary")
}

#[test]
fn controller_help_and_version() {
    let bin = env!("CARGO_BIN_EXE_kluctl-controller");
    let help = run(bin, &["--help"]);
    assert!(help.status.success());
    for flag in [
        "--controller-namespace",
        "--concurrency",
        "--leader-elect",
        "--metrics-bind-address",
    ] {
        assert!(
            String::from_utf8_lossy(&help.stdout).contains(flag),
            "--help lacks {flag}"
        );
    }
    let version = run(bin, &["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("kluctl-controller {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_flags_and_an_unreadable_kubeconfig_are_named() {
    let bin = env!("CARGO_BIN_EXE_kluctl-controller");
    let out = run(bin, &["--cache-max-size=2GB"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown unit 'GB'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        bin,
        &[
            "--kubeconfig",
            "/nonexistent/kubeconfig",
            "--metrics-bind-address",
            "127.0.0.1:0",
            "--health-probe-bind-address",
            "127.0.0.1:0",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failed to read kubeconfig '/nonexistent/kubeconfig'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
