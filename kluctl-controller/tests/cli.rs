//! `kluctl-controller` answers `--help` and `--version`, and says it cannot reconcile yet.

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin).args(args).output().expect("run binary")
}

#[test]
fn controller_help_and_version() {
    let bin = env!("CARGO_BIN_EXE_kluctl-controller");
    assert!(run(bin, &["--help"]).status.success());
    let version = run(bin, &["--version"]);
    assert!(version.status.success());
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("kluctl-controller {}", env!("CARGO_PKG_VERSION"))
    );
    let out = run(bin, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not part of this build"));
}
