//! B9 load driver: a webhook sink and an event generator for kluctl-controller's dispatcher.
//!
//! ```text
//!  notify_load --events http://127.0.0.1:P/ --namespace NS --objects 100
//!              [--rate 5000 --paced-events 25000] [--events-total 50000 --concurrency 64]
//!    1. binds the sink on 127.0.0.1:0, prints `SINK http://127.0.0.1:S`
//!    2. waits for a line on stdin (b9.py creates the Providers/Alerts pointing at the sink)
//!    3. paced: --paced-events / 5 events at --light-rate (1,000) per second, then --paced-events
//!       at --rate per second, each POSTed at its time; the latency of each from its POST to the
//!       sink
//!    4. burst: --events-total events over --concurrency connections as fast as they go: the
//!       intake rate (202s per second) and the delivery rate (until the last one arrived)
//!       (event i is about KluctlDeployment `app-<i % objects>`, its message unique: i and the
//!       time it was built, right before its POST)
//!    5. every 10th event of both phases again, byte for byte (Flux: 429, nothing sent), then
//!       one fresh event as a barrier
//!    6. prints one JSON line
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
    /// event index -> (count delivered, latency of the first delivery in µs, its arrival in µs)
    seen: Mutex<HashMap<u64, (u32, u64, u64)>>,
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
    let rate: u64 = arg(&args, "--rate", "5000").parse()?;
    let light_rate: u64 = arg(&args, "--light-rate", "1000").parse()?;
    let paced: u64 = arg(&args, "--paced-events", "25000").parse()?;
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
                let e = seen.entry(seq).or_insert((0, at.saturating_sub(sent), at));
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
    let sent: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
    // The event is built when it is sent: its message carries the send time.
    let make = |i: u64| {
        let body = event(&ns, objects, i);
        if let Ok(mut s) = sent.lock() {
            s.insert(i, body.clone());
        }
        body
    };
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
    let accepted_of = |codes: &[(u64, u16)]| -> Vec<u64> {
        codes.iter().filter(|(_, c)| *c == 202).map(|(i, _)| *i).collect()
    };

    // Paced phases: `rate` events per second, each POSTed at its time; latency POST -> sink.
    // First a light load (the path's own latency), then the goal's rate.
    let slots = Arc::new(tokio::sync::Semaphore::new(1024));
    macro_rules! paced_phase {
        ($first:expr, $n:expr, $rate:expr) => {{
            let started = Instant::now();
            let mut tasks = Vec::new();
            for (k, i) in ($first..$first + $n).enumerate() {
                #[allow(
                    clippy::cast_precision_loss,
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss
                )]
                let at = started + Duration::from_secs_f64(k as f64 / $rate as f64);
                tokio::time::sleep_until(at.into()).await;
                let permit = slots.clone().acquire_owned().await?;
                let request = post(make(i));
                tasks.push(tokio::spawn(async move {
                    let code = request.await;
                    drop(permit);
                    (i, code)
                }));
            }
            let mut codes = Vec::new();
            for t in tasks {
                codes.push(t.await?);
            }
            let elapsed = started.elapsed();
            let accepted = accepted_of(&codes);
            let missing = wait_delivered(accepted.clone()).await;
            (elapsed, accepted, missing)
        }};
    }
    let light = paced / 5;
    let (_, light_accepted, light_missing) = paced_phase!(0u64, light, light_rate);
    let (paced_elapsed, paced_accepted, paced_missing) = paced_phase!(light, paced, rate);
    let paced = light + paced;

    // Phase 2, as fast as `concurrency` connections go: intake rate and delivery rate.
    let burst_start_us = now_us();
    let started = Instant::now();
    let burst_codes: Vec<(u64, u16)> = futures::stream::iter(paced..paced + total)
        .map(|i| {
            let request = post(make(i));
            async move { (i, request.await) }
        })
        .buffered(concurrency)
        .collect()
        .await;
    let burst_elapsed = started.elapsed();
    let burst_accepted = accepted_of(&burst_codes);
    let burst_missing = wait_delivered(burst_accepted.clone()).await;

    // Flux's dedup: every 10th event again, byte for byte, within the interval: 429, not sent.
    let repeats: Vec<String> = sent
        .lock()
        .map(|s| {
            (0..paced + total)
                .step_by(10)
                .filter_map(|i| s.get(&i).cloned())
                .collect()
        })
        .unwrap_or_default();
    let repeat_codes: Vec<u16> = futures::stream::iter(repeats)
        .map(post)
        .buffered(concurrency)
        .collect()
        .await;
    let repeats_refused = repeat_codes.iter().filter(|&&c| c == 429).count();
    // A last fresh event: once it arrived, anything the repeats caused would have too.
    let barrier = paced + total;
    post(make(barrier)).await;
    wait_delivered(vec![barrier]).await;

    let seen = sink
        .seen
        .lock()
        .map_err(|_| anyhow::anyhow!("sink lock poisoned"))?
        .clone();
    let latencies = |ids: &[u64]| {
        let mut l: Vec<u64> = ids.iter().filter_map(|i| seen.get(i)).map(|e| e.1).collect();
        l.sort_unstable();
        l
    };
    let paced_lat = latencies(&paced_accepted);
    let light_lat = latencies(&light_accepted);
    let burst_last_us = burst_accepted
        .iter()
        .filter_map(|i| seen.get(i))
        .map(|e| e.2)
        .max()
        .unwrap_or(0);
    let burst_delivery_s = burst_last_us.saturating_sub(burst_start_us) as f64 / 1e6;
    let twice = seen.values().filter(|e| e.0 > 1).count();
    let codes = codes.lock().map(|c| c.clone()).unwrap_or_default();
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "{}",
        serde_json::json!({
            "light_rate": light_rate,
            "light_events": light_accepted.len(),
            "light_p50_ms": ms(percentile(&light_lat, 50.0)),
            "light_p99_ms": ms(percentile(&light_lat, 99.0)),
            "paced_rate": rate,
            "paced_events": paced_accepted.len(),
            "paced_seconds": paced_elapsed.as_secs_f64(),
            "paced_accepted": paced_accepted.len(),
            "paced_lost": paced_missing,
            "p50_ms": ms(percentile(&paced_lat, 50.0)),
            "p99_ms": ms(percentile(&paced_lat, 99.0)),
            "max_ms": ms(paced_lat.last().copied().unwrap_or(0)),
            "burst_events": total,
            "burst_seconds": burst_elapsed.as_secs_f64(),
            "accepted_per_s": burst_accepted.len() as f64 / burst_elapsed.as_secs_f64(),
            "delivered_per_s": if burst_delivery_s > 0.0 { burst_accepted.len() as f64 / burst_delivery_s } else { 0.0 },
            "burst_lost": burst_missing,
            "lost": light_missing + paced_missing + burst_missing,
            "codes": codes.iter().map(|(k, v)| (k.to_string(), v)).collect::<HashMap<_, _>>(),
            "delivered_twice": twice,
            "repeats": repeat_codes.len(),
            "repeats_refused_429": repeats_refused,
        })
    );
    Ok(())
}
