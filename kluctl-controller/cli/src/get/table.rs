//! The pure half of `kluctl get`, `events`, `trace`: rows from objects, ages as kubectl writes
//! them, one-line messages and aligned columns. Nothing here talks to a cluster, so every
//! column is unit-tested.

use gitops_api::meta::Condition;
use jiff::{SignedDuration, Timestamp};

/// The longest MESSAGE printed in a table; longer ones end in `...`.
pub const MAX_MESSAGE: usize = 100;

/// Spaces between two columns (kubectl's tabwriter padding).
const GAP: usize = 3;

/// Renders `rows` under `headers`, each column as wide as its widest cell; the last column is
/// not padded (no trailing spaces).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let widths = widths(headers, rows);
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        out.push_str(&render_row(&widths, row));
        out.push('\n');
    }
    out
}

/// The width of each column: its widest cell, header included.
pub fn widths(headers: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    widths
}

/// One line of cells padded to `widths` (a cell wider than its column pushes the rest right).
pub fn render_row(widths: &[usize], row: &[String]) -> String {
    let mut line = String::new();
    for (i, cell) in row.iter().enumerate() {
        line.push_str(cell);
        if i + 1 < row.len() {
            let width = widths.get(i).copied().unwrap_or(0);
            let pad = width.saturating_sub(cell.chars().count()) + GAP;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    // An empty last cell must not leave the padding of the one before it.
    line.truncate(line.trim_end().len());
    line
}

/// `message` on one line (newlines and runs of whitespace become one space), cut to `max`
/// characters with `...` at the end when longer.
pub fn one_line(message: &str, max: usize) -> String {
    let joined = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() <= max {
        return joined;
    }
    let keep = max.saturating_sub(3);
    let mut cut: String = joined.chars().take(keep).collect();
    cut.push_str("...");
    cut
}

/// The age of something created at `then`, seen at `now`, as kubectl's `HumanDuration`
/// writes it: `45s`, `3m20s`, `15m`, `2h10m`, `20h`, `2d5h`, `30d`, `2y40d`, `9y`.
pub fn age(now: Timestamp, then: Timestamp) -> String {
    human_duration(now.duration_since(then))
}

/// kubectl's `duration.HumanDuration` (k8s.io/apimachinery/pkg/util/duration).
pub fn human_duration(d: SignedDuration) -> String {
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        let days = hours / 24;
        return if h == 0 {
            format!("{days}d")
        } else {
            format!("{days}d{h}h")
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = hours / 24;
        let dy = days % 365;
        let years = days / 365;
        return if dy == 0 {
            format!("{years}y")
        } else {
            format!("{years}y{dy}d")
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// READY and MESSAGE as `flux get` shows them: the Ready condition's status and message, else
/// `False` and `waiting to be reconciled`.
pub fn ready_columns(conditions: &[Condition]) -> (String, String) {
    match gitops_api::conditions::find(conditions, "Ready") {
        Some(c) => (c.status.clone(), one_line(&c.message, MAX_MESSAGE)),
        None => ("False".to_owned(), "waiting to be reconciled".to_owned()),
    }
}

/// What one row of `get sources` / `get deployments` shows of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusRow {
    /// `metadata.namespace`.
    pub namespace: String,
    /// The NAME column (`kind/name` when several kinds share a table).
    pub name: String,
    /// The artifact revision, or the deployed commit.
    pub revision: String,
    /// `spec.suspend`.
    pub suspended: bool,
    /// The Ready condition.
    pub conditions: Vec<Condition>,
    /// `metadata.creationTimestamp`.
    pub created: Option<Timestamp>,
}

/// The columns of a status table, with NAMESPACE first when listing all namespaces.
pub fn status_headers(all_namespaces: bool) -> Vec<&'static str> {
    let mut h = vec!["NAME", "REVISION", "SUSPENDED", "READY", "MESSAGE", "AGE"];
    if all_namespaces {
        h.insert(0, "NAMESPACE");
    }
    h
}

/// The cells of `row` in the order of [`status_headers`].
pub fn status_cells(row: &StatusRow, all_namespaces: bool, now: Timestamp) -> Vec<String> {
    let (ready, message) = ready_columns(&row.conditions);
    let mut cells = vec![
        row.name.clone(),
        row.revision.clone(),
        if row.suspended { "True" } else { "False" }.to_owned(),
        ready,
        message,
        row.created
            .map_or_else(|| "<unknown>".to_owned(), |t| age(now, t)),
    ];
    if all_namespaces {
        cells.insert(0, row.namespace.clone());
    }
    cells
}

/// A status table of `rows`, sorted by namespace and name.
pub fn status_table(rows: &[StatusRow], all_namespaces: bool, now: Timestamp) -> String {
    render(
        &status_headers(all_namespaces),
        &status_cell_rows(rows, all_namespaces, now),
    )
}

/// The cells of `rows` sorted by namespace and name.
pub fn status_cell_rows(rows: &[StatusRow], all_namespaces: bool, now: Timestamp) -> Vec<Vec<String>> {
    let mut sorted: Vec<&StatusRow> = rows.iter().collect();
    sorted.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    sorted
        .into_iter()
        .map(|r| status_cells(r, all_namespaces, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn secs(s: i64) -> String {
        human_duration(SignedDuration::from_secs(s))
    }

    #[test]
    fn ages_are_written_like_kubectl() {
        assert_eq!(secs(-5), "<invalid>");
        assert_eq!(secs(-1), "0s");
        assert_eq!(secs(0), "0s");
        assert_eq!(secs(119), "119s");
        assert_eq!(secs(120), "2m");
        assert_eq!(secs(200), "3m20s");
        assert_eq!(secs(15 * 60 + 7), "15m");
        assert_eq!(secs(179 * 60), "179m");
        assert_eq!(secs(3 * 3600), "3h");
        assert_eq!(secs(2 * 3600 + 10 * 60 + 60 * 60), "3h10m");
        assert_eq!(secs(20 * 3600), "20h");
        assert_eq!(secs(2 * 86400), "2d");
        assert_eq!(secs(2 * 86400 + 5 * 3600), "2d5h");
        assert_eq!(secs(30 * 86400), "30d");
        assert_eq!(secs((2 * 365 + 40) * 86400), "2y40d");
        assert_eq!(secs(9 * 365 * 86400), "9y");
        assert_eq!(age(ts("2026-01-01T00:05:00Z"), ts("2026-01-01T00:00:00Z")), "5m");
    }

    #[test]
    fn long_messages_become_one_cut_line() {
        assert_eq!(one_line("a\n  b\tc", 100), "a b c");
        assert_eq!(one_line("abcdefghij", 10), "abcdefghij");
        assert_eq!(one_line("abcdefghijk", 10), "abcdefg...");
        // Characters, not bytes: a multi-byte message is never cut inside a character.
        assert_eq!(one_line("ääääää", 5), "ää...");
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_lines_have_no_trailing_spaces() {
        let out = render(
            &["NAME", "READY", "MESSAGE"],
            &[
                vec!["a".into(), "True".into(), "ok".into()],
                vec!["longer-name".into(), "False".into(), String::new()],
            ],
        );
        assert_eq!(
            out,
            "NAME          READY   MESSAGE\n\
             a             True    ok\n\
             longer-name   False\n"
        );
    }

    fn condition(status: &str, message: &str) -> Condition {
        Condition {
            type_: "Ready".into(),
            status: status.into(),
            message: message.into(),
            reason: "Succeeded".into(),
            last_transition_time: gitops_api::meta::Time(ts("2026-01-01T00:00:00Z")),
            observed_generation: None,
        }
    }

    #[test]
    fn status_rows_show_ready_or_waiting_and_namespaces_only_with_all() {
        let now = ts("2026-01-03T00:00:00Z");
        let rows = vec![
            StatusRow {
                namespace: "b".into(),
                name: "z".into(),
                revision: "main@sha1:abc".into(),
                suspended: false,
                conditions: vec![condition("True", "stored artifact for revision\n'main@sha1:abc'")],
                created: Some(ts("2026-01-01T00:00:00Z")),
            },
            StatusRow {
                namespace: "a".into(),
                name: "y".into(),
                revision: String::new(),
                suspended: true,
                conditions: vec![],
                created: None,
            },
        ];
        let table = status_table(&rows, true, now);
        let lines: Vec<&str> = table.lines().collect();
        let split = |l: &str| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            split(lines[0]),
            [
                "NAMESPACE",
                "NAME",
                "REVISION",
                "SUSPENDED",
                "READY",
                "MESSAGE",
                "AGE"
            ]
        );
        assert_eq!(
            split(lines[1]),
            ["a", "y", "True", "False", "waiting to be reconciled", "<unknown>"]
        );
        assert_eq!(
            split(lines[2]),
            [
                "b",
                "z",
                "main@sha1:abc",
                "False",
                "True",
                "stored artifact for revision 'main@sha1:abc'",
                "2d"
            ]
        );
        let one_ns = status_table(&rows[..1], false, now);
        assert!(one_ns.starts_with("NAME "), "{one_ns}");
        assert!(!one_ns.contains("NAMESPACE"));
    }
}
