//! Command-line flag helpers shared by both controller binaries.
//!
//! Flux's manifests pass boolean flags the way Go's `flag`/`pflag` packages read them: bare
//! (`--enable-leader-election`) or with a value after `=` in any of `strconv.ParseBool`'s spellings
//! (`--watch-all-namespaces=false`). A clap field accepts all of these, and the same values from its
//! environment variable, with:
//!
//! ```
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Args {
//!     /// Elect a leader through a Lease.
//!     #[arg(
//!         long,
//!         env = "ENABLE_LEADER_ELECTION",
//!         default_value_t = false,
//!         num_args = 0..=1,
//!         default_missing_value = "true",
//!         action = clap::ArgAction::Set,
//!         value_parser = gitops_api::flags::parse_bool,
//!     )]
//!     enable_leader_election: bool,
//! }
//!
//! let bare = Args::try_parse_from(["ctl", "--enable-leader-election"]).unwrap();
//! assert!(bare.enable_leader_election);
//! let off = Args::try_parse_from(["ctl", "--enable-leader-election=F"]).unwrap();
//! assert!(!off.enable_leader_election);
//! ```
//!
//! # Caveats
//! Unlike Go, a value given as the next argument (`--flag false`) is taken as the flag's value
//! rather than left as a positional argument; neither controller takes positional arguments, so
//! Go would reject or ignore such a command line anyway.

/// Parses a boolean flag value as Go's `strconv.ParseBool` does: `1`, `t`, `T`, `TRUE`, `true`,
/// `True` are true; `0`, `f`, `F`, `FALSE`, `false`, `False` are false.
///
/// # Errors
/// Any other spelling (including `yes`, `on` and the empty string), naming the accepted ones.
///
/// ```
/// use gitops_api::flags::parse_bool;
/// assert_eq!(parse_bool("True"), Ok(true));
/// assert_eq!(parse_bool("0"), Ok(false));
/// assert!(parse_bool("yes").is_err());
/// ```
pub fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "invalid boolean '{value}': use true or false (also 1, t, T, TRUE, True, 0, f, F, FALSE, False)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_go_spelling_parses_and_nothing_else_does() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["", "yes", "no", "on", "tRUE", " true", "2"] {
            let err = parse_bool(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }
}
