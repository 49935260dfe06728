//! The user-facing forms of a [`CommandResult`]: Kluctl's text report and the `-o yaml|json`
//! serialisation (the compacted result).
//!
//! Text layout (sections only when non-empty, each preceded by an empty line):
//!
//! ```text
//! New objects:            one "  ns/Kind/name" line per object
//! Changed objects:        refs, then (unless short) per object "Diff for object <ref>" and a
//!                         Path | Diff table with the unified diffs
//! Deleted objects:
//! Applied hooks:
//! Orphan objects:
//! Warnings:               "  <ref>: <message>" (no "<ref>: " for run-wide messages)
//! Errors:
//! ```
//!
//! The table is Kluctl's: the path column at most 60 wide, the diff column takes the rest of
//! the terminal width; longer lines wrap inside their cell. Colour (when asked for) marks
//! section headers bold and diff lines red/green/cyan; widths are measured without it.

use std::fmt::Write as _;

use gitops_api::kluctl::v1beta1::ObjectRef;

use super::yaml::to_yaml;
use crate::result::{Change, CommandResult, DeploymentError};

/// How to print the text report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputOptions {
    /// `--short-output`: no per-object diff tables.
    pub short: bool,
    /// ANSI colour (only when the caller decided the output is a terminal that wants it).
    pub color: bool,
    /// Terminal width in columns (Kluctl: `$COLUMNS`, the terminal, else 80).
    pub width: usize,
}

impl Default for OutputOptions {
    fn default() -> Self {
        Self {
            short: false,
            color: false,
            width: 80,
        }
    }
}

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// Kluctl's text report of a result.
///
/// ```
/// use gitops_api::kluctl::v1beta1::ObjectRef;
/// use kluctl_engine::diff::{OutputOptions, format_text};
/// use kluctl_engine::result::{CommandResult, ResultBuilder};
///
/// let cm = ObjectRef { version: "v1".into(), kind: "ConfigMap".into(), name: "c".into(),
///     namespace: "ns".into(), ..Default::default() };
/// let mut b = ResultBuilder::new();
/// b.set_rendered(&cm, serde_json::json!({}));
/// b.add_new(&cm);
/// let mut r = CommandResult::default();
/// b.finish(&mut r);
/// assert_eq!(format_text(&r, &OutputOptions::default()), "\nNew objects:\n  ns/ConfigMap/c\n");
/// ```
pub fn format_text(r: &CommandResult, opts: &OutputOptions) -> String {
    let mut out = String::new();
    let header = |out: &mut String, title: &str| {
        if opts.color {
            let _ = writeln!(out, "\n{BOLD}{title}{RESET}");
        } else {
            let _ = writeln!(out, "\n{title}");
        }
    };
    let refs = |out: &mut String, pick: &dyn Fn(&crate::result::ResultObject) -> bool| {
        for o in r.objects.iter().filter(|o| pick(o)) {
            let _ = writeln!(out, "  {}", o.object);
        }
    };
    if r.objects.iter().any(|o| o.new) {
        header(&mut out, "New objects:");
        refs(&mut out, &|o| o.new);
    }
    if r.objects.iter().any(|o| !o.changes.is_empty()) {
        header(&mut out, "Changed objects:");
        refs(&mut out, &|o| !o.changes.is_empty());
        if !opts.short {
            out.push('\n');
            for (i, o) in r.objects.iter().enumerate() {
                if o.changes.is_empty() {
                    continue;
                }
                if i != 0 {
                    out.push('\n');
                }
                out.push_str(&changes_table(&o.object, &o.changes, opts));
            }
        }
    }
    if r.objects.iter().any(|o| o.deleted) {
        header(&mut out, "Deleted objects:");
        refs(&mut out, &|o| o.deleted);
    }
    if r.objects.iter().any(|o| o.hook) {
        header(&mut out, "Applied hooks:");
        refs(&mut out, &|o| o.hook);
    }
    if r.objects.iter().any(|o| o.orphan) {
        header(&mut out, "Orphan objects:");
        refs(&mut out, &|o| o.orphan);
    }
    if !r.warnings.is_empty() {
        header(&mut out, "Warnings:");
        write_errors(&mut out, &r.warnings);
    }
    if !r.errors.is_empty() {
        header(&mut out, "Errors:");
        write_errors(&mut out, &r.errors);
    }
    out
}

/// Writes `list` one per line, each with its object when it has one (Kluctl's error sections).
pub(crate) fn write_errors(out: &mut String, list: &[DeploymentError]) {
    for e in list {
        let r = e.object_ref.to_string();
        if r.is_empty() {
            let _ = writeln!(out, "  {}", e.message);
        } else {
            let _ = writeln!(out, "  {r}: {}", e.message);
        }
    }
}

/// `Diff for object <ref>` and the Path | Diff table of its changes.
pub fn changes_table(object: &ObjectRef, changes: &[Change], opts: &OutputOptions) -> String {
    let mut rows = vec![("Path".to_owned(), "Diff".to_owned())];
    rows.extend(
        changes
            .iter()
            .map(|c| (c.json_path.clone(), c.unified_diff.clone())),
    );
    format!("Diff for object {object}\n{}", render_table(&rows, 60, opts))
}

fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Kluctl's two-column table: `+-...-+` separators, `| a | b |` lines, cells wrapped at their
/// width and at their own newlines.
fn render_table(rows: &[(String, String)], limit_first: usize, opts: &OutputOptions) -> String {
    let w0 = rows
        .iter()
        .flat_map(|r| r.0.split('\n'))
        .map(char_len)
        .max()
        .unwrap_or(0)
        .min(limit_first);
    // The last column takes what is left: width - first column - separators (3) - borders (4).
    let w1 = opts.width.saturating_sub(w0 + 3 + 4).max(1);
    let widths = [w0, w1];
    let hsep = format!("+-{}-+-{}-+\n", "-".repeat(w0), "-".repeat(w1));
    let mut out = hsep.clone();
    for (a, b) in rows {
        let cells: [Vec<char>; 2] = [a.chars().collect(), b.chars().collect()];
        let mut pos = [0usize; 2];
        // The diff marker of the line a cell segment belongs to (for colour after wrapping).
        let mut line_start = [0usize; 2];
        while (0..2).any(|i| pos[i] < cells[i].len()) {
            out.push_str("| ");
            for i in 0..2 {
                let cell = &cells[i];
                let end = (pos[i] + widths[i]).min(cell.len());
                let start = pos[i].min(cell.len());
                let mut seg: &[char] = &cell[start..end];
                let mut skip_newline = false;
                if let Some(nl) = seg.iter().position(|c| *c == '\n') {
                    seg = &seg[..nl];
                    skip_newline = true;
                }
                let text: String = seg.iter().collect();
                let marker = cell.get(line_start[i]).copied();
                if opts.color && i == 1 && !text.is_empty() {
                    let color = match marker {
                        Some('+') => Some(GREEN),
                        Some('-') => Some(RED),
                        Some('@') => Some(CYAN),
                        _ => None,
                    };
                    match color {
                        Some(c) => {
                            let _ = write!(out, "{c}{text}{RESET}");
                        }
                        None => out.push_str(&text),
                    }
                } else {
                    out.push_str(&text);
                }
                out.push_str(&" ".repeat(widths[i].saturating_sub(seg.len())));
                pos[i] += seg.len();
                if skip_newline {
                    pos[i] += 1;
                    line_start[i] = pos[i];
                }
                if i == 0 {
                    out.push_str(" | ");
                }
            }
            out.push_str(" |\n");
        }
        out.push_str(&hsep);
    }
    out
}

/// `-o yaml`: the compacted result as YAML.
pub fn format_yaml(r: &CommandResult) -> String {
    to_yaml(&serde_json::to_value(r.to_compacted()).unwrap_or_default())
}

/// `-o json`: the compacted result as indented JSON.
pub fn format_json(r: &CommandResult) -> String {
    let mut s = serde_json::to_string_pretty(&r.to_compacted()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::changes::diff_objects;
    use crate::result::{ResultBuilder, ResultObject};
    use serde_json::json;

    fn r(kind: &str, name: &str, ns: &str) -> ObjectRef {
        ObjectRef {
            version: "v1".into(),
            kind: kind.into(),
            name: name.into(),
            namespace: ns.into(),
            ..Default::default()
        }
    }

    fn sample() -> CommandResult {
        let mut b = ResultBuilder::new();
        b.set_rendered(&r("ConfigMap", "new", "ns"), json!({}));
        b.add_new(&r("ConfigMap", "new", "ns"));
        let changes = diff_objects(
            &json!({"data": {"a": "1", "b": "x"}}),
            &json!({"data": {"a": "2", "b": "x", "c": "l1\nl2\n"}}),
        );
        b.set_rendered(&r("ConfigMap", "changed", "ns"), json!({}));
        b.add_changed(&r("ConfigMap", "changed", "ns"), changes);
        b.add_deleted(&r("ConfigMap", "old", "ns"));
        b.set_rendered(&r("Job", "hook", "ns"), json!({}));
        b.add_hook(&r("Job", "hook", "ns"));
        b.add_orphan(&r("Namespace", "orphan", ""));
        b.add_warning(&ObjectRef::default(), "no discriminator configured");
        b.add_error(&r("ConfigMap", "bad", "ns"), "failed to apply");
        let mut res = CommandResult::default();
        b.finish(&mut res);
        res
    }

    #[test]
    fn text_report_has_kluctls_sections_and_table() {
        let text = format_text(&sample(), &OutputOptions::default());
        let expected = "
New objects:
  ns/ConfigMap/new

Changed objects:
  ns/ConfigMap/changed

Diff for object ns/ConfigMap/changed
+-----------+------------------------------------------------------------------+
| Path      | Diff                                                             |
+-----------+------------------------------------------------------------------+
| data[\"a\"] | -1                                                               |
|           | +2                                                               |
+-----------+------------------------------------------------------------------+
| data[\"c\"] | +l1                                                              |
|           | +l2                                                              |
+-----------+------------------------------------------------------------------+

Deleted objects:
  ns/ConfigMap/old

Applied hooks:
  ns/Job/hook

Orphan objects:
  Namespace/orphan

Warnings:
  no discriminator configured

Errors:
  ns/ConfigMap/bad: failed to apply
";
        assert_eq!(text, expected);
        assert!(
            text.lines()
                .filter(|l| l.starts_with('+') || l.starts_with('|'))
                .all(|l| l.chars().count() == 80)
        );
    }

    #[test]
    fn short_output_drops_the_tables_and_long_cells_wrap() {
        let res = sample();
        let short = format_text(
            &res,
            &OutputOptions {
                short: true,
                ..Default::default()
            },
        );
        assert!(
            !short.contains("Diff for object")
                && short.contains("Changed objects:\n  ns/ConfigMap/changed\n")
        );
        let mut one = CommandResult::default();
        one.objects.push(ResultObject {
            object: r("ConfigMap", "c", ""),
            changes: diff_objects(&json!({"k": "x"}), &json!({"k": "abcdefghij"})),
            ..Default::default()
        });
        let narrow = format_text(
            &one,
            &OutputOptions {
                width: 20,
                ..Default::default()
            },
        );
        assert!(
            narrow.ends_with(
                "| Path   | Diff    |\n+--------+---------+\n| $[\"k\"] | -x      |\n|        | +abcdef |\n|        | ghij    |\n+--------+---------+\n"
            ),
            "{narrow}"
        );
    }

    #[test]
    fn colour_is_added_only_when_asked() {
        let res = sample();
        assert!(!format_text(&res, &OutputOptions::default()).contains('\x1b'));
        let c = format_text(
            &res,
            &OutputOptions {
                color: true,
                ..Default::default()
            },
        );
        assert!(
            c.contains(&format!("{GREEN}+2{RESET}")) && c.contains(&format!("{BOLD}New objects:{RESET}")),
            "{c}"
        );
    }

    #[test]
    fn yaml_and_json_outputs_are_the_compacted_result() {
        let mut res = sample();
        res.objects[0].rendered = Some(json!({"kind": "ConfigMap"}));
        let y = format_yaml(&res);
        assert!(y.contains("compactedObjects:\n- "), "{y}");
        assert!(!y.contains("\nobjects:"), "{y}");
        assert!(y.contains("rendered: 'full: {\"kind\":\"ConfigMap\"}'"), "{y}");
        let j: serde_json::Value = serde_json::from_str(&format_json(&res)).unwrap();
        assert_eq!(j["compactedObjects"].as_array().unwrap().len(), res.objects.len());
        assert_eq!(j["errors"][0]["message"], json!("failed to apply"));
    }
}
