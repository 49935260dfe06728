//! B9 load driver: a webhook sink and an event generator for kluctl-controller's dispatcher.
//!
//! ```text
//!  notify_load --events http://127.0.0.1:P/ --namespace NS --objects 100 --events-total 50000
//!    1. binds the sink on 127.0.0.1:0, prints `SINK http://127.0.0.1:S`
//!    2. waits for a line on stdin (b9.py creates the Providers/Alerts pointing at the sink)
//!    3. POSTs the events (`--concurrency` connections): event i is about KluctlDeployment
//!       `app-<i % objects>`, with a unique message carrying i and its send time
//!    4. POSTs a repeat of every 10th event (the same key: Flux answers 429 and sends nothing)
//!    5. waits until every accepted unique event arrived at the sink (or `--drain-timeout`)
//!    6. prints one JSON line: rate, status codes, delivered, lost, duplicates delivered,
//!       p50/p99 event-to-delivery latency
//! ```
//!
//! A Python sink or generator would measure Python; this one keeps the measuring side cheaper
//! than the side measured.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;

#[derive(Default)]
struct Sink {
    /// event index -> (count delivered, latency of the first delivery in µs)
    seen: Mutex<HashMap<u64, (u32, u64)>>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_owned())
}

fn event(ns: &str, objects: u64, i: u64) -> String {
    serde_json::json!({
        "involvedObject": {"kind": "KluctlDeployment", "namespace": ns, "name": format!("app-{}", i % objects),
                           "apiVersion": "gitops.kluctl.io/v1beta1"},
        "severity": "info",
        "timestamp": "2026-12-07T03:00:00Z",
        "message": format!("deploy succeeded. seq={i} sent={}", now_us()),
        "reason": "ReconciliationSucceeded",
        "metadata": {"gitops.kluctl.io/revision": "main@sha1:0123456789abcdef0123456789abcdef01234567"},
        "reportingController": "kluctl-controller",
    })
    .to_string()
}

fn parse_message(body: &[u8]) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let m = v["message"].as_str()?;
    let seq = m.split("seq=").nth(1)?.split(' ').next()?.parse().ok()?;
    let sent = m.split("sent=").nth(1)?.parse().ok()?;
    Some((seq, sent))
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let k = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[k.clamp(1, sorted.len()) - 1]
}

#[tokio::main]
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)] // one measurement told start to finish
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let events_url = arg(&args, "--events", "");
    anyhow::ensure!(
        !events_url.is_empty(),
        "--events URL of the controller's event endpoint is required"
    );
    let ns = arg(&args, "--namespace", "default");
    let objects: u64 = arg(&args, "--objects", "100").parse()?;
    let total: u64 = arg(&args, "--events-total", "50000").parse()?;
    let concurrency: usize = arg(&args, "--concurrency", "64").parse()?;
    let drain = Duration::from_secs(arg(&args, "--drain-timeout", "60").parse()?);

    let sink = Arc::new(Sink::default());
    let state = sink.clone();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let state = state.clone();
        async move {
            let at = now_us();
            if let Some((seq, sent)) = parse_message(&body)
                && let Ok(mut seen) = state.seen.lock()
            {
                let e = seen.entry(seq).or_insert((0, at.saturating_sub(sent)));
                e.0 += 1;
            }
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("SINK http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()?;
    let codes = Arc::new(Mutex::new(HashMap::<u16, u64>::new()));
    let post = |body: String| {
        let (client, url, codes) = (client.clone(), events_url.clone(), codes.clone());
        async move {
            let code = match client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(r) => r.status().as_u16(),
                Err(_) => 0,
            };
            if let Ok(mut c) = codes.lock() {
                *c.entry(code).or_default() += 1;
            }
            code
        }
    };
    let bodies: Vec<String> = (0..total).map(|i| event(&ns, objects, i)).collect();
    let started = Instant::now();
    let unique: Vec<u16> = futures::stream::iter(bodies.iter().cloned())
        .map(post)
        .buffered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    let accepted: Vec<u64> = (0..total)
        .filter(|&i| unique[usize::try_from(i).unwrap_or(usize::MAX)] == 202)
        .collect();
    let wait_delivered = |want: Vec<u64>| {
        let sink = sink.clone();
        async move {
            let deadline = Instant::now() + drain;
            loop {
                let missing = sink
                    .seen
                    .lock()
                    .map_or(want.len(), |s| want.iter().filter(|i| !s.contains_key(i)).count());
                if missing == 0 || Instant::now() >= deadline {
                    return missing;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_delivered(accepted.clone()).await;
    // Flux's dedup: every 10th event again, byte for byte, within the interval: 429, not sent.
    let repeats: Vec<String> = (0..total)
        .step_by(10)
        .map(|i| bodies[usize::try_from(i).unwrap_or(0)].clone())
        .collect();
    let repeat_codes: Vec<u16> = futures::stream::iter(repeats)
        .map(post)
        .buffered(concurrency)
        .collect()
        .await;
    let repeats_refused = repeat_codes.iter().filter(|&&c| c == 429).count();
    // A last fresh event: once it arrived, anything the repeats caused would have too.
    let barrier = total;
    post(event(&ns, objects, barrier)).await;
    wait_delivered(vec![barrier]).await;
    let (delivered, twice, mut latencies) = {
        let seen = sink
            .seen
            .lock()
            .map_err(|_| anyhow::anyhow!("sink lock poisoned"))?;
        let delivered = accepted.iter().filter(|i| seen.contains_key(i)).count();
        let twice = seen.values().filter(|(n, _)| *n > 1).count();
        let lat: Vec<u64> = accepted
            .iter()
            .filter_map(|i| seen.get(i))
            .map(|(_, l)| *l)
            .collect();
        (delivered, twice, lat)
    };
    latencies.sort_unstable();
    let codes = codes.lock().map(|c| c.clone()).unwrap_or_default();
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "events": total,
            "seconds": elapsed.as_secs_f64(),
            "accepted_per_s": rate,
            "codes": codes.iter().map(|(k, v)| (k.to_string(), v)).collect::<HashMap<_, _>>(),
            "accepted": accepted.len(),
            "delivered": delivered,
            "lost": accepted.len() - delivered,
            "delivered_twice": twice,
            "repeats": repeat_codes.len(),
            "repeats_refused_429": repeats_refused,
            "p50_ms": percentile(&latencies, 50.0) as f64 / 1000.0,
            "p99_ms": percentile(&latencies, 99.0) as f64 / 1000.0,
            "max_ms": latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
        })
    );
    Ok(())
}
