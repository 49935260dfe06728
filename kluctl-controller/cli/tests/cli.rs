//! `kluctl` answers `--help` and `--version`, rejects unknown commands, and prints the help for
//! no command.

use std::process::Command;

fn run(bin: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin).args(args).output().expect("run binary")
}

#[test]
fn kluctl_help_version_and_unknown_command() {
    let bin = env!("CARGO_BIN_EXE_kluctl");
    let help = run(bin, &["--help"]);
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("Kluctl projects"));
    let version = run(bin, &["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("kluctl {}", env!("CARGO_PKG_VERSION"))
    );
    let bad = run(bin, &["frobnicate"]);
    assert_eq!(bad.status.code(), Some(2), "clap usage errors exit 2");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("frobnicate"));
    let none = run(bin, &[]);
    assert_eq!(none.status.code(), Some(2), "no command is a usage error");
    assert!(String::from_utf8_lossy(&none.stderr).contains("Usage: kluctl <COMMAND>"));
}
