//! Where and how `kluctl` writes what it produces: the `-o` values resolved into
//! [`ResultOutput`] / [`ListOutput`] while the flags are parsed (so `deploy -y -o xml` fails
//! before anything is rendered), and the writers that send each rendering to stdout or a file.
//!
//! ```text
//! deploy, diff, prune, delete, poke-images:  -o text|yaml|json[=PATH]   (default: text)
//! validate:                                   -o text|yaml[=PATH]        (default: text)
//! list-targets, list-images:                  -o FILE | - | yaml|json[=FILE]
//!                                             (FILE and '-' get Kluctl's output: YAML, or plain
//!                                              names with --only-names; default: '-')
//! ```

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;

/// Where one output goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Destination {
    /// Standard output.
    Stdout,
    /// A file (created or truncated).
    File(PathBuf),
}

/// The format of a command result or validate result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Kluctl's human-readable text.
    Text,
    /// YAML (the compacted result, as Kluctl writes it).
    Yaml,
    /// JSON (not a Kluctl format; the same document as YAML).
    Json,
}

/// One `-o`: a format and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output<F> {
    /// The format.
    pub format: F,
    /// Where it goes.
    pub to: Destination,
}

/// One `-o FORMAT[=PATH]` of the commands that print a result.
pub type ResultOutput = Output<Format>;

/// The format of a `list-targets` / `list-images` output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListFormat {
    /// What Kluctl writes: YAML, or one name per line for `list-targets --only-names`.
    Kluctl,
    /// YAML.
    Yaml,
    /// JSON.
    Json,
}

/// One `-o` of `list-targets` / `list-images`.
pub type ListOutput = Output<ListFormat>;

/// Parses `-o FORMAT[=PATH]` of `deploy`, `diff`, `prune`, `delete` and `poke-images`.
///
/// # Errors
/// An unknown format or an empty path, as the usage message clap prints.
pub fn parse_result_output(s: &str) -> Result<ResultOutput, String> {
    parse_format_output(
        s,
        &[
            ("text", Format::Text),
            ("yaml", Format::Yaml),
            ("json", Format::Json),
        ],
    )
}

/// Parses `-o FORMAT[=PATH]` of `validate` (Kluctl has no JSON for it).
///
/// # Errors
/// An unknown format or an empty path.
pub fn parse_validate_output(s: &str) -> Result<ResultOutput, String> {
    parse_format_output(s, &[("text", Format::Text), ("yaml", Format::Yaml)])
}

fn parse_format_output(s: &str, formats: &[(&str, Format)]) -> Result<ResultOutput, String> {
    let (name, path) = match s.split_once('=') {
        Some((name, path)) => (name, Some(path)),
        None => (s, None),
    };
    let Some(&(_, format)) = formats.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = formats.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "unknown format '{name}': expected {}, optionally followed by '=PATH'",
            names.join(", ")
        ));
    };
    Ok(ResultOutput {
        format,
        to: destination(path)?,
    })
}

/// Parses `-o` of `list-targets` / `list-images`: `yaml`, `json`, `yaml=FILE`, `json=FILE`, or
/// (as in Kluctl) a file, `-` being stdout.
///
/// # Errors
/// An empty value or an empty path after `yaml=` / `json=`.
pub fn parse_list_output(s: &str) -> Result<ListOutput, String> {
    let (head, path) = match s.split_once('=') {
        Some((head, path)) => (head, Some(path)),
        None => (s, None),
    };
    let (format, path) = match head {
        "yaml" => (ListFormat::Yaml, path),
        "json" => (ListFormat::Json, path),
        "" if path.is_none() => return Err("empty output: expected a file, '-', 'yaml' or 'json'".to_owned()),
        _ => (ListFormat::Kluctl, Some(s)),
    };
    Ok(ListOutput {
        format,
        to: destination(path)?,
    })
}

/// `None` and `-` are stdout; an empty path is an error.
fn destination(path: Option<&str>) -> Result<Destination, String> {
    match path {
        None | Some("-") => Ok(Destination::Stdout),
        Some("") => Err("empty path after '='".to_owned()),
        Some(p) => Ok(Destination::File(PathBuf::from(p))),
    }
}

/// The files among `outputs` (for the hint of a failed command).
pub fn files<'a>(outputs: impl IntoIterator<Item = &'a Destination>) -> Vec<&'a PathBuf> {
    outputs
        .into_iter()
        .filter_map(|d| match d {
            Destination::File(p) => Some(p),
            Destination::Stdout => None,
        })
        .collect()
}

/// Writes each output, or `default` on stdout without any; `render` gives the text of a format
/// (every output gets the whole content).
///
/// # Errors
/// When rendering fails or a file cannot be written (naming the file).
pub fn write_outputs<F: Copy>(
    outputs: &[Output<F>],
    default: F,
    render: &dyn Fn(F) -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    if outputs.is_empty() {
        return write_to(&Destination::Stdout, render(default)?);
    }
    for o in outputs {
        write_to(&o.to, render(o.format)?)?;
    }
    Ok(())
}

/// Writes `text` (with a final newline when it has none) to stdout or a file.
fn write_to(to: &Destination, mut text: String) -> anyhow::Result<()> {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    match to {
        Destination::File(p) => fs_err::write(p, text)?,
        Destination::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .context("failed to write to stdout")?;
        }
    }
    Ok(())
}

/// Whether stdout gets colours: a terminal, and `NO_COLOR` unset.
pub fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(p: &str) -> Destination {
        Destination::File(PathBuf::from(p))
    }

    #[test]
    fn result_outputs_resolve_format_and_destination_and_reject_unknown_formats() {
        let out = |format, to| ResultOutput { format, to };
        assert_eq!(
            parse_result_output("text"),
            Ok(out(Format::Text, Destination::Stdout))
        );
        assert_eq!(
            parse_result_output("yaml=-"),
            Ok(out(Format::Yaml, Destination::Stdout))
        );
        assert_eq!(
            parse_result_output("json=r.json"),
            Ok(out(Format::Json, file("r.json")))
        );
        assert_eq!(
            parse_result_output("yaml=dir/a=b.yaml"),
            Ok(out(Format::Yaml, file("dir/a=b.yaml"))),
            "only the first '=' separates"
        );
        let err = parse_result_output("xml").unwrap_err();
        assert!(
            err.contains("unknown format 'xml'") && err.contains("text, yaml, json"),
            "{err}"
        );
        assert!(parse_result_output("xml=out").is_err());
        assert!(parse_result_output("yaml=").unwrap_err().contains("empty path"));
        assert!(parse_result_output("").is_err());
        // validate has no JSON, as in Kluctl.
        assert!(parse_validate_output("yaml=v.yaml").is_ok());
        assert!(
            parse_validate_output("json")
                .unwrap_err()
                .contains("expected text, yaml")
        );
    }

    #[test]
    fn list_outputs_are_files_as_in_kluctl_or_a_yaml_or_json_format() {
        let out = |format, to| ListOutput { format, to };
        assert_eq!(
            parse_list_output("-"),
            Ok(out(ListFormat::Kluctl, Destination::Stdout))
        );
        assert_eq!(
            parse_list_output("targets.txt"),
            Ok(out(ListFormat::Kluctl, file("targets.txt")))
        );
        assert_eq!(
            parse_list_output("json"),
            Ok(out(ListFormat::Json, Destination::Stdout))
        );
        assert_eq!(
            parse_list_output("yaml=t.yaml"),
            Ok(out(ListFormat::Yaml, file("t.yaml")))
        );
        assert_eq!(
            parse_list_output("a=b"),
            Ok(out(ListFormat::Kluctl, file("a=b"))),
            "any other value is a file, '=' or not"
        );
        assert!(parse_list_output("").is_err());
        assert!(parse_list_output("json=").is_err());
    }

    #[test]
    fn every_output_gets_the_whole_content() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let outputs = [
            ListOutput {
                format: ListFormat::Kluctl,
                to: Destination::File(a.clone()),
            },
            ListOutput {
                format: ListFormat::Json,
                to: Destination::File(b.clone()),
            },
        ];
        write_outputs(&outputs, ListFormat::Kluctl, &|f| Ok(format!("{f:?}: t1\nt2"))).unwrap();
        assert_eq!(fs_err::read_to_string(a).unwrap(), "Kluctl: t1\nt2\n");
        assert_eq!(fs_err::read_to_string(b).unwrap(), "Json: t1\nt2\n");
    }
}
