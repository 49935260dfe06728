//! The controller's live log lines for the deployment pages: one hub per server, one reader of
//! the controller's log however many browsers follow it.
//!
//! ```text
//!  first subscriber ─► LogHub opens the source once (10 minutes back, follow)
//!                        │ raw lines
//!                        ├─► ring buffer (last 2,000 lines: what a newly opened page sees first)
//!                        └─► broadcast ─► every Subscription ─► its page's filter (server.rs)
//!  last subscriber gone ─► reader dropped (the source closes), buffer cleared
//!  the source fails / ends ─► one `error: ...` line to the subscribers, their streams end;
//!                             the next subscriber (a browser reconnecting) opens it again
//! ```
//!
//! So the apiserver sees one pods/log stream per controller pod, not one per open browser.
//! The source is injectable ([`Opener`]): the server's is [`LogHub::for_source`], the tests' a
//! channel they feed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kluctl_engine::controller_logs::{LogError, LogSource};
use tokio::sync::{broadcast, mpsc};

/// How far back a newly opened source reads.
pub const SINCE: Duration = Duration::from_secs(600);

/// How many lines the ring buffer keeps.
pub const BUFFERED_LINES: usize = 2000;

/// How many lines a slow subscriber may fall behind before it skips some.
const LAG: usize = 1024;

/// What an [`Opener`] returns: the raw lines, or the error line to show (what failed and how
/// to fix it).
pub type OpenFuture = Pin<Box<dyn Future<Output = Result<mpsc::Receiver<String>, String>> + Send>>;

/// Opens the log source: a new reader each call; dropping its receiver must close it.
pub type Opener = Arc<dyn Fn() -> OpenFuture + Send + Sync>;

/// A raw log line, shared by every subscriber.
pub type Line = Arc<str>;

/// The shared reader of the controller's log (cheap to clone: clones share it).
#[derive(Clone)]
pub struct LogHub {
    opener: Opener,
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    subscribers: usize,
    /// The open source: its broadcast and the task reading it. `None`: closed, or failed.
    run: Option<Run>,
    buffer: VecDeque<Line>,
}

struct Run {
    tx: broadcast::Sender<Line>,
    reader: tokio::task::JoinHandle<()>,
}

impl LogHub {
    /// A hub over `opener`, opened on the first [`LogHub::subscribe`].
    #[must_use]
    pub fn new(opener: Opener) -> Self {
        Self {
            opener,
            state: Arc::default(),
        }
    }

    /// A hub over the controller's log at `source`, read from [`SINCE`] back and followed.
    /// A failure to open becomes a line naming the flag that fixes it.
    #[must_use]
    pub fn for_source(source: LogSource) -> Self {
        Self::new(Arc::new(move || {
            let source = source.clone();
            Box::pin(async move { source.open(SINCE, true).await.map_err(|e| open_error(&e)) })
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Follows the log: first the buffered lines, then the live ones. Opens the source if no
    /// one follows it yet; dropping the last [`Subscription`] closes it.
    #[must_use]
    pub fn subscribe(&self) -> Subscription {
        let mut state = self.lock();
        state.subscribers += 1;
        let live = if let Some(run) = &state.run {
            run.tx.subscribe()
        } else {
            let (tx, rx) = broadcast::channel(LAG);
            let reader = tokio::spawn(read(self.clone(), tx.clone()));
            state.run = Some(Run { tx, reader });
            rx
        };
        Subscription {
            backlog: state.buffer.iter().cloned().collect(),
            live: Some(live),
            _member: Member(self.clone()),
        }
    }

    /// How many subscriptions are open (for tests and diagnostics).
    #[must_use]
    pub fn subscribers(&self) -> usize {
        self.lock().subscribers
    }

    fn leave(&self) {
        let mut state = self.lock();
        state.subscribers = state.subscribers.saturating_sub(1);
        if state.subscribers == 0 {
            if let Some(run) = state.run.take() {
                // The reader owns the source's receiver: aborting it closes the source.
                run.reader.abort();
            }
            state.buffer.clear();
        }
    }

    /// Ends the run that sent on `tx` (still the current one: a newer run is left alone),
    /// after sending it `last`.
    fn end_run(&self, tx: &broadcast::Sender<Line>, last: &str) {
        let mut state = self.lock();
        if state.run.as_ref().is_some_and(|r| r.tx.same_channel(tx)) {
            let _ = tx.send(Line::from(last));
            state.run = None;
            state.buffer.clear();
        }
    }
}

/// The reader of one run: opens the source, buffers and broadcasts its lines. Lines are
/// buffered and sent under the state's lock, so a new subscriber gets each line exactly once:
/// in its backlog or live.
async fn read(hub: LogHub, tx: broadcast::Sender<Line>) {
    let mut lines = match (hub.opener)().await {
        Ok(lines) => lines,
        Err(message) => {
            tracing::warn!(%message, "failed to open the controller's log");
            hub.end_run(&tx, &message);
            return;
        }
    };
    while let Some(line) = lines.recv().await {
        let line = Line::from(line.trim_end());
        let mut state = hub.lock();
        if state.buffer.len() == BUFFERED_LINES {
            state.buffer.pop_front();
        }
        state.buffer.push_back(line.clone());
        let _ = tx.send(line);
    }
    hub.end_run(
        &tx,
        "error: the controller's log ended (the controller restarted?); reconnecting",
    );
}

/// The error line of a source that cannot be opened: what failed and the flag that fixes it.
fn open_error(e: &LogError) -> String {
    let hint = match e {
        LogError::OpenFile(_) => "check the --controller-log-file of kluctl webui run",
        LogError::ListPods { .. } => {
            "the web UI needs to list pods in the controller's namespace; pass --controller-namespace, or --controller-log-file for a controller running as a local process"
        }
        LogError::NoPods { .. } => {
            "pass --controller-namespace to kluctl webui run, or --controller-log-file for a controller running as a local process"
        }
    };
    format!("error: {}; {hint}", kluctl_engine::error_chain(e))
}

/// One follower of the hub: [`Subscription::next`] yields the buffered lines, then the live
/// ones. Dropping it leaves the hub.
pub struct Subscription {
    backlog: VecDeque<Line>,
    live: Option<broadcast::Receiver<Line>>,
    _member: Member,
}

/// Counts as a subscriber while alive.
struct Member(LogHub);

impl Drop for Member {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl Subscription {
    /// The next line; `None` once the source failed or ended (after its `error:` line). A
    /// subscriber too slow for the live lines gets a line saying how many it skipped.
    pub async fn next(&mut self) -> Option<Line> {
        if let Some(line) = self.backlog.pop_front() {
            return Some(line);
        }
        let receiver = self.live.as_mut()?;
        match receiver.recv().await {
            Ok(line) => Some(line),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Line::from(format!(
                "({n} log lines skipped: this page fell behind)"
            ))),
            Err(broadcast::error::RecvError::Closed) => {
                self.live = None;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const WAIT: Duration = Duration::from_secs(10);

    /// A fake source: counts opens and hands the test the sender of each opened reader.
    fn fake() -> (
        LogHub,
        Arc<AtomicUsize>,
        mpsc::UnboundedReceiver<mpsc::Sender<String>>,
    ) {
        let opens = Arc::new(AtomicUsize::new(0));
        let (senders_tx, senders) = mpsc::unbounded_channel();
        let counter = opens.clone();
        let hub = LogHub::new(Arc::new(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            let (tx, rx) = mpsc::channel(16);
            let _ = senders_tx.send(tx);
            Box::pin(async move { Ok(rx) })
        }));
        (hub, opens, senders)
    }

    async fn next(s: &mut Subscription) -> Option<String> {
        tokio::time::timeout(WAIT, s.next())
            .await
            .expect("a line in time")
            .map(|l| l.to_string())
    }

    async fn opened(senders: &mut mpsc::UnboundedReceiver<mpsc::Sender<String>>) -> mpsc::Sender<String> {
        tokio::time::timeout(WAIT, senders.recv())
            .await
            .expect("the source opened in time")
            .expect("the hub is alive")
    }

    #[tokio::test]
    async fn every_subscriber_gets_every_line_from_one_source() {
        let (hub, opens, mut senders) = fake();
        let mut a = hub.subscribe();
        let mut b = hub.subscribe();
        let source = opened(&mut senders).await;
        source.send("one\n".into()).await.unwrap();
        source.send("two".into()).await.unwrap();
        for s in [&mut a, &mut b] {
            assert_eq!(next(s).await.as_deref(), Some("one"));
            assert_eq!(next(s).await.as_deref(), Some("two"));
        }
        assert_eq!(opens.load(Ordering::SeqCst), 1, "one source for two subscribers");
        assert_eq!(hub.subscribers(), 2);
    }

    #[tokio::test]
    async fn a_late_subscriber_first_gets_the_buffered_lines() {
        let (hub, _, mut senders) = fake();
        let mut first = hub.subscribe();
        let source = opened(&mut senders).await;
        for i in 0..BUFFERED_LINES + 5 {
            source.send(format!("line {i}")).await.unwrap();
        }
        // The first subscriber may fall behind (it is told how far); the buffer does not.
        let last = format!("line {}", BUFFERED_LINES + 4);
        while next(&mut first).await.as_ref() != Some(&last) {}
        let mut late = hub.subscribe();
        source.send("live".into()).await.unwrap();
        assert_eq!(
            next(&mut late).await.as_deref(),
            Some("line 5"),
            "the oldest lines left the ring buffer"
        );
        for i in 6..BUFFERED_LINES + 5 {
            assert_eq!(next(&mut late).await, Some(format!("line {i}")));
        }
        assert_eq!(
            next(&mut late).await.as_deref(),
            Some("live"),
            "then the live lines, once each"
        );
        assert_eq!(next(&mut first).await.as_deref(), Some("live"));
    }

    #[tokio::test]
    async fn the_source_closes_after_the_last_subscriber_and_reopens_for_the_next() {
        let (hub, opens, mut senders) = fake();
        let a = hub.subscribe();
        let b = hub.subscribe();
        let source = opened(&mut senders).await;
        source.send("old".into()).await.unwrap();
        drop(a);
        assert!(!source.is_closed(), "still one subscriber");
        drop(b);
        tokio::time::timeout(WAIT, source.closed())
            .await
            .expect("the source closed when the last subscriber left");
        assert_eq!(hub.subscribers(), 0);

        let mut c = hub.subscribe();
        let again = opened(&mut senders).await;
        assert_eq!(
            opens.load(Ordering::SeqCst),
            2,
            "opened again for a new subscriber"
        );
        again.send("new".into()).await.unwrap();
        assert_eq!(
            next(&mut c).await.as_deref(),
            Some("new"),
            "no lines of the closed run"
        );
    }

    #[tokio::test]
    async fn a_failed_source_tells_its_subscribers_and_the_next_one_retries() {
        let opens = Arc::new(AtomicUsize::new(0));
        let counter = opens.clone();
        let hub = LogHub::new(Arc::new(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if n == 0 {
                    Err("error: no kluctl-controller pods; pass --controller-namespace".to_owned())
                } else {
                    let (tx, rx) = mpsc::channel(1);
                    tx.send("recovered".to_owned()).await.map_err(|e| e.to_string())?;
                    Ok(rx)
                }
            })
        }));
        let mut a = hub.subscribe();
        assert_eq!(
            next(&mut a).await.as_deref(),
            Some("error: no kluctl-controller pods; pass --controller-namespace")
        );
        assert_eq!(next(&mut a).await, None, "the failed stream ends");
        let mut b = hub.subscribe();
        assert_eq!(next(&mut b).await.as_deref(), Some("recovered"));
        assert_eq!(opens.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn open_errors_name_the_flag_that_fixes_them() {
        let line = open_error(&LogError::NoPods {
            namespace: "kluctl-system".into(),
        });
        assert!(line.starts_with("error: no kluctl-controller pods"), "{line}");
        assert!(line.contains("'kluctl-system'"), "{line}");
        assert!(
            line.contains("--controller-namespace") && line.contains("--controller-log-file"),
            "{line}"
        );
    }
}
