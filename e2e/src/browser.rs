//! A headless Chromium driven through ChromeDriver (the W3C WebDriver protocol, plain HTTP + JSON),
//! for the web UI's browser tests: open a page, run a script in it, wait for a condition in the
//! page, click, take a screenshot.
//!
//! Written here instead of a WebDriver crate: the tests need six commands of the protocol, each
//! one JSON request through the `reqwest` client the tests already use.
//!
//! Chromium and ChromeDriver are Debian's `chromium` and `chromium-driver` packages, installed by
//! `make e2e-up` (e2e/scripts/servers.sh). Chromium runs headless with a fresh profile and
//! without its background network traffic (this machine has no general internet).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use serde_json::{Value, json};

use crate::ChildLog;

/// Where Debian puts them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long a page condition may take.
pub const WAIT: Duration = Duration::from_secs(90);

/// A ChromeDriver process with one browser session; both end when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
    _logs: tempfile::TempDir,
}

fn installed(path: &str, package: &str) -> anyhow::Result<()> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        bail!(
            "{path} is missing: install Debian's {package} package (make e2e-up does: e2e/scripts/servers.sh install)"
        )
    }
}

impl Browser {
    /// Starts ChromeDriver on a free loopback port and opens a headless Chromium session with a
    /// `width`×`height` window.
    ///
    /// # Errors
    /// Chromium or ChromeDriver missing (the message says how to install them), or the session
    /// cannot be created.
    pub async fn start(width: u32, height: u32) -> anyhow::Result<Self> {
        installed(CHROMIUM, "chromium")?;
        installed(CHROMEDRIVER, "chromium-driver")?;
        let logs = tempfile::tempdir()?;
        let log_path = logs.path().join("chromedriver.log");
        let mut driver = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--allowed-ips=127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        let stdout = driver.stdout.take().context("chromedriver stdout")?;
        let log = ChildLog::follow(stdout, &log_path)?;
        let port = log.wait_for("its port", Duration::from_secs(30), |line| {
            line.split("started successfully on port ")
                .nth(1)
                .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
        });
        let port = match port {
            Ok(p) => p,
            Err(e) => {
                let _ = driver.kill();
                return Err(e);
            }
        };
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let profile = tempfile::tempdir()?;
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let res: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .context("creating a ChromeDriver session")?
            .json()
            .await?;
        let Some(session) = res["value"]["sessionId"].as_str().map(str::to_owned) else {
            let _ = driver.kill();
            bail!("ChromeDriver did not create a session: {res}");
        };
        Ok(Self {
            driver,
            base,
            session,
            http,
            _profile: profile,
            _logs: logs,
        })
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req
            .send()
            .await
            .with_context(|| format!("WebDriver {path}"))?
            .json()
            .await?;
        if let Some(err) = res["value"]["error"].as_str() {
            bail!("WebDriver {path}: {err}: {}", res["value"]["message"]);
        }
        Ok(res["value"].clone())
    }

    /// Opens `url` and waits for its load.
    ///
    /// # Errors
    /// The navigation failed.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.command(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page and returns its
    /// value.
    ///
    /// # Errors
    /// The script threw.
    pub async fn eval(&self, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Waits until `script` returns something other than `null`/`false`/`undefined` and returns
    /// it; the error names `what` and shows the page's text.
    ///
    /// # Errors
    /// On timeout.
    pub async fn wait_for(&self, what: &str, script: &str, args: &[Value]) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let v = self.eval(script, args).await?;
            if !(v.is_null() || v == Value::Bool(false)) {
                return Ok(v);
            }
            if tokio::time::Instant::now() >= deadline {
                let text = self
                    .eval("return document.body.innerText", &[])
                    .await
                    .unwrap_or_default();
                return Err(anyhow!(
                    "the page never showed {what} (after {WAIT:?}); its text:\n{}",
                    text.as_str().unwrap_or_default()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Clicks the element `css` selects (the first one), once it exists.
    ///
    /// # Errors
    /// No such element in time.
    pub async fn click(&self, what: &str, css: &str) -> anyhow::Result<()> {
        self.wait_for(
            what,
            "const e = document.querySelector(arguments[0]); if (!e) return null; e.click(); return true;",
            &[json!(css)],
        )
        .await?;
        Ok(())
    }

    /// Saves a PNG screenshot of the window to `path` (creating its directory).
    ///
    /// # Errors
    /// The screenshot or the write failed.
    pub async fn screenshot(&self, path: &Path) -> anyhow::Result<PathBuf> {
        let v = self.command(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().context("screenshot is not a string")?)
            .context("screenshot is not base64")?;
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir)?;
        }
        fs_err::write(path, png)?;
        Ok(path.to_path_buf())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Deleting the session ends Chromium (a killed driver would leave it running); Drop cannot
        // await, so the request goes over a plain socket.
        use std::io::{Read as _, Write as _};
        let addr = self.base.trim_start_matches("http://").to_owned();
        if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = write!(
                s,
                "DELETE /session/{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
                self.session
            );
            let _ = s.read_to_end(&mut Vec::new());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
