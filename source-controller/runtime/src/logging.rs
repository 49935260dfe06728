//! Logging: one `tracing` subscriber for the controllers, in controller-runtime's JSON shape or
//! tracing-subscriber's human format, to stderr and optionally appended to a file.
//!
//! ```text
//!  tracing event ──► EnvFilter (level / RUST_LOG) ──► Json: JsonLayer ──┐
//!                                                    Console: fmt     ──┴─► stderr (+ file)
//! ```
//!
//! A JSON line has the key names Kluctl's controller (zap through controller-runtime) writes, so
//! `kluctl gitops logs` and log collectors read ours the same way:
//!
//! ```text
//! {"level":"info","ts":"2024-05-01T10:00:00.123456Z","logger":"kluctl_controller","msg":"deployed",
//!  "name":"app","namespace":"default","reconcileID":"7f0c…","revision":"main@sha1:…"}
//! ```
//!
//! Fields of every enclosing span (outermost first) and then of the event are flattened at the top
//! level; an inner field replaces an outer one of the same name. The file (`--log-file`, used when
//! the controller runs as a local process) receives exactly the lines stderr does.

use anyhow::Context as _;
use serde_json::Value;
use std::fmt;
use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber, span};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriterExt as _};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Log line format.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line with controller-runtime's key names.
    Json,
    /// tracing-subscriber's default human-readable format.
    Console,
}

/// Installs the global subscriber: `format` lines of `level` and above (`error`, `info`, `debug`,
/// `trace` or any `EnvFilter` directive; a non-empty `RUST_LOG` wins) to stderr and, with `file`,
/// appended to that file too.
///
/// # Errors
/// When `level` is not a valid filter, `file` cannot be opened for appending, or a global
/// subscriber is already installed.
///
/// ```no_run
/// use gitops_runtime::logging::{self, LogFormat};
/// logging::init(LogFormat::Json, "info", Some(std::path::Path::new("/tmp/controller.log")))?;
/// let span = tracing::info_span!("reconcile", name = "app", namespace = "default", reconcileID = "7f0c");
/// let _in = span.enter();
/// tracing::info!("deployed"); // {"level":"info","ts":…,"msg":"deployed","name":"app",…}
/// # anyhow::Ok(())
/// ```
pub fn init(format: LogFormat, level: &str, file: Option<&Path>) -> anyhow::Result<()> {
    // RUST_LOG lets one module be turned up in the field without a new level flag.
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| level.to_string());
    // Colour only on a terminal; files and collectors get plain text (and the file the same bytes).
    let ansi = file.is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let dispatch = dispatch(format, &directives, std::io::stderr, file, ansi)?;
    dispatch
        .try_init()
        .context("failed to install the logger: a global subscriber is already set")
}

/// The subscriber `init` installs, writing to `writer` (and `file`) instead of stderr.
fn dispatch<W>(
    format: LogFormat,
    directives: &str,
    writer: W,
    file: Option<&Path>,
    ansi: bool,
) -> anyhow::Result<Dispatch>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter =
        EnvFilter::try_new(directives).with_context(|| format!("invalid log level '{directives}'"))?;
    let writer = match file {
        Some(path) => {
            let file = fs_err::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .context("failed to open the log file")?
                .into_file();
            BoxMakeWriter::new(writer.and(Arc::new(file)))
        }
        None => BoxMakeWriter::new(writer),
    };
    let registry = tracing_subscriber::registry().with(filter);
    Ok(match format {
        LogFormat::Json => registry.with(JsonLayer { writer }).into(),
        LogFormat::Console => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(writer)
                    .with_ansi(ansi),
            )
            .into(),
    })
}

/// Keys every JSON line starts with; event or span fields of these names are dropped.
const RESERVED: [&str; 4] = ["level", "ts", "logger", "msg"];

/// Fields in the order first recorded; a later value of the same name replaces the earlier one.
#[derive(Default)]
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn set(&mut self, key: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value)
            .map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.set(field.name(), v);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field.name(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.set(field.name(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field.name(), format!("{value:?}").into());
    }
}

/// An event's fields: `message` becomes `msg`; records bridged from the `log` crate name their
/// real target in `log.target` (their metadata target is just "log").
struct EventFields<'a> {
    fields: &'a mut Fields,
    msg: String,
    log_target: Option<String>,
}

impl EventFields<'_> {
    fn take(&mut self, field: &Field, value: String) -> Option<String> {
        match field.name() {
            "message" => self.msg = value,
            "log.target" => self.log_target = Some(value),
            name if name.starts_with("log.") => {}
            _ => return Some(value),
        }
        None
    }
}

impl Visit for EventFields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.fields.record_f64(field, value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.record_i64(field, value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.record_u64(field, value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.record_bool(field, value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if let Some(v) = self.take(field, value.to_string()) {
            self.fields.set(field.name(), v.into());
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fields.record_error(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `message` arrives as fmt::Arguments, whose Debug is the plain text.
        if let Some(v) = self.take(field, format!("{value:?}")) {
            self.fields.set(field.name(), v.into());
        }
    }
}

/// Writes each event as one controller-runtime-style JSON line.
struct JsonLayer<W> {
    writer: W,
}

/// zap's level names (controller-runtime has no trace; ours keeps the name).
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<Fields>() {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<Fields>() {
                    for (k, v) in &span_fields.0 {
                        fields.set(k, v.clone());
                    }
                }
            }
        }
        let mut visitor = EventFields {
            fields: &mut fields,
            msg: String::new(),
            log_target: None,
        };
        event.record(&mut visitor);
        let EventFields { msg, log_target, .. } = visitor;
        let meta = event.metadata();
        let logger = log_target.as_deref().unwrap_or(meta.target());
        let ts = format!("{:.6}", jiff::Timestamp::now());

        let mut line = String::with_capacity(256);
        line.push('{');
        let mut push = |key: &str, value: &Value| {
            if line.len() > 1 {
                line.push(',');
            }
            line.push_str(&Value::from(key).to_string());
            line.push(':');
            line.push_str(&value.to_string());
        };
        push("level", &level_name(*meta.level()).into());
        push("ts", &ts.into());
        push("logger", &logger.into());
        push("msg", &msg.into());
        for (k, v) in &fields.0 {
            if !RESERVED.contains(&k.as_str()) {
                push(k, v);
            }
        }
        line.push_str("}\n");
        // A failed log write has nowhere to be reported.
        let _ = self.writer.make_writer_for(meta).write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Everything written, shared with the test.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    impl Buffer {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_some(dispatch: &Dispatch) {
        tracing::dispatcher::with_default(dispatch, || {
            let span = tracing::info_span!(
                "reconcile",
                name = "app",
                namespace = "default",
                reconcileID = tracing::field::Empty
            );
            let _outer = span.enter();
            // Recorded after the span opened, as the reconcile ID is in kluctl-controller.
            span.record("reconcileID", "7f0c");
            tracing::info!(target: "kluctl_controller::reconcile", revision = "main@sha1:abc", "deploying");
            {
                let _inner = tracing::info_span!("apply", name = "inner", objects = 3_u64).entered();
                tracing::error!(target: "kluctl_controller::apply", ok = false, "apply failed");
            }
            tracing::debug!(target: "kluctl_controller::reconcile", "filtered out at info");
        });
    }

    #[test]
    fn json_lines_have_controller_runtime_keys_span_fields_and_go_to_the_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controller.log");
        fs_err::write(&path, "earlier line\n").unwrap();
        let buf = Buffer::default();
        let dispatch = dispatch(LogFormat::Json, "info", buf.clone(), Some(&path), false).unwrap();
        log_some(&dispatch);

        let out = buf.text();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with(r#"{"level":"info","ts":""#), "{out}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["msg"], "deploying");
        assert_eq!(first["logger"], "kluctl_controller::reconcile");
        assert_eq!(first["name"], "app");
        assert_eq!(first["namespace"], "default");
        assert_eq!(first["reconcileID"], "7f0c");
        assert_eq!(first["revision"], "main@sha1:abc");
        assert!(first.get("message").is_none(), "{first}");
        let ts = first["ts"].as_str().unwrap();
        assert!(ts.ends_with('Z') && ts.contains('.'), "{ts}");
        assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{ts}");

        let second: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(second["level"], "error");
        assert_eq!(second["msg"], "apply failed");
        // The inner span's `name` replaces the outer one; outer-only fields stay.
        assert_eq!(second["name"], "inner");
        assert_eq!(second["namespace"], "default");
        assert_eq!(second["reconcileID"], "7f0c");
        assert_eq!(second["objects"], 3);
        assert_eq!(second["ok"], false);

        let file = fs_err::read_to_string(&path).unwrap();
        assert_eq!(
            file,
            format!("earlier line\n{out}"),
            "the file is appended with the same lines"
        );
    }

    #[test]
    fn console_lines_are_human_and_go_to_the_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controller.log");
        let buf = Buffer::default();
        let dispatch = dispatch(LogFormat::Console, "debug", buf.clone(), Some(&path), false).unwrap();
        log_some(&dispatch);

        let out = buf.text();
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(out.contains(" INFO reconcile{name=\"app\""), "{out}");
        assert!(out.contains("deploying revision=\"main@sha1:abc\""), "{out}");
        assert!(!out.contains('\u{1b}'), "no colour codes: {out}");
        assert_eq!(fs_err::read_to_string(&path).unwrap(), out);
    }

    #[test]
    fn an_invalid_level_is_an_error_naming_it() {
        let err = dispatch(LogFormat::Json, "info,=[", Buffer::default(), None, false).unwrap_err();
        assert!(err.to_string().contains("invalid log level 'info,=['"), "{err:#}");
    }
}
