//! Flags from the environment, as Kluctl reads them: every flag `--some-flag` of the command
//! being run can also come from `KLUCTL_SOME_FLAG`, and repeatable flags additionally from
//! `KLUCTL_SOME_FLAG_<n>` (ordered by `n`, the unsuffixed one first).
//!
//! ```text
//! repeatable flag:  env values first, then command-line values (later ones win in merges)
//! single flag:      command line if given, else the environment
//! switch:           set when the environment holds a true value (Go's ParseBool)
//! ```
//!
//! clap reads one variable per flag at most, and cannot express the numbered list or the
//! ordering, hence this pass: it re-parses, then rebuilds the argument list of the selected
//! subcommand with the environment values inserted where Kluctl puts them.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::{ArgAction, ArgMatches, Command, parser::ValueSource};

/// The environment variable name Kluctl uses for a long flag name.
#[must_use]
pub fn env_name(long: &str) -> String {
    format!("KLUCTL_{}", long.replace('-', "_").to_uppercase())
}

/// Values of `name` and `name_<n>` in `env`, the unsuffixed one first, then by `n`.
fn env_list(env: &BTreeMap<String, String>, name: &str) -> Vec<String> {
    let mut found: Vec<(i64, String)> = env
        .iter()
        .filter_map(|(k, v)| {
            if k == name {
                return Some((-1, v.clone()));
            }
            let n = k.strip_prefix(name)?.strip_prefix('_')?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse().ok().map(|n| (n, v.clone())))
                .flatten()
        })
        .collect();
    found.sort_by_key(|(n, _)| *n);
    found.into_iter().map(|(_, v)| v).collect()
}

/// Returns `argv` with environment values for the flags of the selected subcommand inserted.
/// `env` is the process environment (or a test's).
///
/// When `argv` does not parse, it is returned unchanged so that clap reports the error as usual.
#[must_use]
pub fn with_env_flags(cmd: &Command, argv: Vec<OsString>, env: &BTreeMap<String, String>) -> Vec<OsString> {
    let Ok(matches) = cmd.clone().try_get_matches_from(&argv) else {
        return argv;
    };
    let mut out = vec![argv.first().cloned().unwrap_or_default()];
    let mut command = cmd.clone();
    let mut matches = &matches;
    add_args(&command, matches, env, &mut out);
    while let Some((name, sub)) = matches.subcommand() {
        let Some(next) = command.find_subcommand(name).cloned() else {
            return argv;
        };
        out.push(name.into());
        add_args(&next, sub, env, &mut out);
        command = next;
        matches = sub;
    }
    out
}

fn add_args(cmd: &Command, matches: &ArgMatches, env: &BTreeMap<String, String>, out: &mut Vec<OsString>) {
    let mut positionals = Vec::new();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        let from_cli = matches.value_source(id) == Some(ValueSource::CommandLine);
        let cli_values: Vec<OsString> = if from_cli {
            matches
                .get_raw(id)
                .map(|r| r.map(ToOwned::to_owned).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let Some(long) = arg.get_long() else {
            positionals.extend(cli_values);
            continue;
        };
        let flag = format!("--{long}");
        let env_values = env_list(env, &env_name(long));
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                let env_true = env_values
                    .last()
                    .and_then(|v| kluctl_engine::values::parse_go_bool(v))
                    .unwrap_or(false);
                if from_cli || env_true {
                    out.push(flag.into());
                }
            }
            ArgAction::Count => {
                if from_cli {
                    for _ in 0..matches.get_count(id) {
                        out.push(flag.clone().into());
                    }
                }
            }
            ArgAction::Append => {
                for v in env_values.into_iter().map(OsString::from).chain(cli_values) {
                    out.push(with_value(&flag, &v));
                }
            }
            _ => {
                if from_cli {
                    for v in cli_values {
                        out.push(with_value(&flag, &v));
                    }
                } else if let Some(v) = env_values.last() {
                    out.push(with_value(&flag, &OsString::from(v)));
                }
            }
        }
    }
    if !positionals.is_empty() {
        out.push("--".into());
        out.extend(positionals);
    }
}

fn with_value(flag: &str, value: &OsString) -> OsString {
    let mut s = OsString::from(format!("{flag}="));
    s.push(value);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, Command};

    fn cmd() -> Command {
        Command::new("kluctl").subcommand(
            Command::new("render")
                .arg(Arg::new("arg").short('a').long("arg").action(ArgAction::Append))
                .arg(Arg::new("target").short('t').long("target"))
                .arg(Arg::new("print-all").long("print-all").action(ArgAction::SetTrue)),
        )
    }

    fn run(argv: &[&str], env: &[(&str, &str)]) -> Vec<String> {
        let env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        with_env_flags(&cmd(), argv.iter().map(OsString::from).collect(), &env)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn numbered_env_values_come_before_command_line_values() {
        let out = run(
            &["kluctl", "render", "-a", "b=b", "-a", "c=c2"],
            &[
                ("KLUCTL_ARG_2", "c=c"),
                ("KLUCTL_ARG_1", "a=a"),
                ("KLUCTL_ARG", "z=z"),
                ("KLUCTL_ARGX", "no"),
            ],
        );
        assert_eq!(
            out,
            [
                "kluctl",
                "render",
                "--arg=z=z",
                "--arg=a=a",
                "--arg=c=c",
                "--arg=b=b",
                "--arg=c=c2"
            ]
        );
    }

    #[test]
    fn single_flags_prefer_the_command_line() {
        assert_eq!(
            run(&["kluctl", "render"], &[("KLUCTL_TARGET", "prod")]),
            ["kluctl", "render", "--target=prod"]
        );
        assert_eq!(
            run(&["kluctl", "render", "-t", "dev"], &[("KLUCTL_TARGET", "prod")]),
            ["kluctl", "render", "--target=dev"]
        );
    }

    #[test]
    fn switches_follow_go_bool_values() {
        assert_eq!(
            run(&["kluctl", "render"], &[("KLUCTL_PRINT_ALL", "true")]),
            ["kluctl", "render", "--print-all"]
        );
        assert_eq!(
            run(&["kluctl", "render"], &[("KLUCTL_PRINT_ALL", "false")]),
            ["kluctl", "render"]
        );
    }

    #[test]
    fn unparsable_argv_is_returned_unchanged() {
        assert_eq!(
            run(&["kluctl", "render", "--nope"], &[]),
            ["kluctl", "render", "--nope"]
        );
    }
}
