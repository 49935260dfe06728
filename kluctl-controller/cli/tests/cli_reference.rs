//! `docs/cli/reference.md` is generated from the clap definitions, so the reference cannot drift
//! from the binary: this test renders it and fails when the file differs.
//!
//! Regenerate with `make generate` (or `UPDATE_CLI_REFERENCE=1 cargo test -p kluctl --test
//! cli_reference`).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::CommandFactory as _;
use kluctl::KluctlArgs;

fn reference_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli/reference.md")
}

/// One command's section, then its subcommands', depth first.
fn render(cmd: &mut clap::Command, path: &str, out: &mut String) {
    let name = if path.is_empty() {
        cmd.get_name().to_owned()
    } else {
        format!("{path} {}", cmd.get_name())
    };
    let _ = writeln!(out, "## `{name}`\n");
    if let Some(about) = cmd.get_long_about().or_else(|| cmd.get_about()) {
        let _ = writeln!(out, "{about}\n");
    }
    let usage = cmd.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ").trim();
    let _ = writeln!(out, "```text\n{usage}\n```\n");
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help" && a.get_id() != "version")
        .collect();
    if !args.is_empty() {
        let _ = writeln!(out, "| flag | default | description |\n|---|---|---|");
        for a in args {
            let mut flag = match (a.get_short(), a.get_long()) {
                (Some(s), Some(l)) => format!("`-{s}`, `--{l}`"),
                (None, Some(l)) => format!("`--{l}`"),
                (Some(s), None) => format!("`-{s}`"),
                (None, None) => format!("`<{}>`", a.get_id().as_str().to_uppercase()),
            };
            if let Some(aliases) = a.get_visible_aliases() {
                for alias in aliases {
                    let _ = write!(flag, ", `--{alias}`");
                }
            }
            let default = a
                .get_default_values()
                .iter()
                .map(|v| format!("`{}`", v.to_string_lossy()))
                .collect::<Vec<_>>()
                .join(", ");
            let help = a
                .get_long_help()
                .or_else(|| a.get_help())
                .map(|h| h.to_string().replace('\n', " ").replace('|', "\\|"))
                .unwrap_or_default();
            let _ = writeln!(out, "| {flag} | {default} | {help} |");
        }
        out.push('\n');
    }
    let mut subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    for sub in &mut subs {
        if sub.get_name() != "help" {
            render(sub, &name, out);
        }
    }
}

fn reference() -> String {
    let mut cmd = KluctlArgs::command();
    cmd.build();
    let mut out = String::from(
        "# `kluctl` command reference\n\n\
         Generated from the command-line definitions by `kluctl-controller/cli/tests/cli_reference.rs`\n\
         (`make generate`); do not edit by hand. The guides: [gitops.md](gitops.md), [get.md](get.md),\n\
         [../install.md](../install.md).\n\n",
    );
    render(&mut cmd, "", &mut out);
    out.trim_end().to_owned() + "\n"
}

#[test]
fn the_cli_reference_is_up_to_date() {
    let want = reference();
    let path = reference_path();
    if std::env::var_os("UPDATE_CLI_REFERENCE").is_some() {
        fs_err::write(&path, &want).expect("write docs/cli/reference.md");
        return;
    }
    let have = fs_err::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "{} is stale: run `make generate` (UPDATE_CLI_REFERENCE=1 cargo test -p kluctl --test cli_reference)",
        path.display()
    );
}

#[test]
fn the_reference_names_every_top_level_command() {
    let text = reference();
    for cmd in KluctlArgs::command().get_subcommands() {
        if cmd.is_hide_set() || cmd.get_name() == "help" {
            continue;
        }
        assert!(
            text.contains(&format!("## `kluctl {}`", cmd.get_name())),
            "no section for {}",
            cmd.get_name()
        );
    }
}
