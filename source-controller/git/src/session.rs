//! The gix plumbing behind every [`crate::Remote`] operation: URL checks, an isolated
//! configuration, the per-credential connection setup, the deadline, and the mapping of gix
//! errors to [`Error`].
//!
//! ```text
//!   Session::new(url, credentials, timeout)
//!     ├─ http(s): credentials callback (basic; never prompts) + our reqwest client settings:
//!     │           ca.crt as the only roots, tls.crt/tls.key identity, proxy, bearer header,
//!     │           per-request timeout
//!     ├─ ssh, SshMode::Strict: 0600 temp files (decrypted identity, known_hosts) + an `ssh`
//!     │           wrapper set as core.sshCommand: strict host keys, BatchMode, no agent, no
//!     │           user config, stderr captured for the error message
//!     ├─ ssh, SshMode::System: the user's `ssh` (or GIT_SSH_COMMAND) with its own config
//!     └─ git://:  anonymous
//!   run_with_deadline(op, timeout, |interrupt| ...)   worker thread; the caller stops waiting at
//!                                                     the deadline and raises the interrupt flag
//! ```
//!
//! gix reads no global, system or environment configuration here (`open::Options::isolated`), so
//! `GIT_SSL_CAINFO`, credential helpers or `insteadOf` rules of the machine cannot change what is
//! fetched or which CA is trusted; `GIT_SSH_COMMAND` counts only when the caller passes it in
//! [`SshMode::System`].

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use gix::credentials::helper::Action;
use gix::credentials::protocol::Outcome;
use gix::error::ErrorExt as _;
use gix::protocol::transport::client::blocking_io::Transport as GixTransport;
use gix_transport::client::blocking_io::http;

use crate::Error;
use crate::credentials::{Credentials, Secret, SshKeys, SshMode, client_identity, parse_ca_bundle};
use crate::error::join_errors;
use crate::url::{Scheme, redact_url};

/// The connection type gix hands to connection callbacks.
pub(crate) type Connection<'a, 'b, 'c> = gix::remote::Connection<'a, 'b, 'c, Box<dyn GixTransport + Send>>;

/// Everything one git operation against one URL needs.
pub(crate) struct Session {
    /// The URL to connect to (with strict ssh, an ssh URL without user gets `git`, as in Flux).
    pub url: gix::Url,
    /// The URL for messages: no password.
    pub display_url: String,
    /// http(s): our HTTP client settings apply.
    http: bool,
    credentials: Credentials,
    timeout: Duration,
    /// Strict ssh: the key, known_hosts and wrapper files.
    ssh: Option<SshFiles>,
    /// System ssh: the command replacing `ssh`, if any.
    ssh_command: Option<String>,
}

/// The temporary files behind an ssh connection; removed when `dir` drops.
struct SshFiles {
    dir: Option<tempfile::TempDir>,
    wrapper: PathBuf,
    stderr: PathBuf,
}

impl Session {
    /// Checks `url` against the supported forms and prepares the transport for `credentials`.
    pub fn new(url: &str, credentials: &Credentials, timeout: Duration) -> Result<Self, Error> {
        let display_url = redact_url(url);
        let invalid = |reason: String| Error::InvalidUrl {
            url: display_url.clone(),
            reason,
        };
        let system_ssh = match &credentials.ssh {
            Some(SshMode::System { command }) => Some(command.clone()),
            _ => None,
        };
        // The scheme prefix is checked on the text: gix would also accept SCP-like
        // `user@host:path` and local paths, which Flux rejects (the user's own git does not).
        let scheme = Scheme::of(url);
        if scheme.is_none() && system_ssh.is_none() {
            return Err(invalid(
                "the URL must start with http://, https://, ssh:// or git://".to_string(),
            ));
        }
        let mut parsed = gix::url::parse(gix::bstr::BStr::new(url.as_bytes())).map_err(|e| {
            // gix's parse errors quote the whole input: only show them for URLs without a
            // password in them.
            if display_url == url {
                invalid(credentials.scrub(&e.to_string()))
            } else {
                invalid("the URL cannot be parsed (not shown: it holds a password)".to_string())
            }
        })?;
        if scheme.is_some() && parsed.host().is_none_or(str::is_empty) {
            return Err(invalid("the URL has no host".to_string()));
        }
        let http = scheme.is_some_and(Scheme::is_http);
        if credentials.proxy.is_some() && !http {
            return Err(Error::Unsupported {
                url: display_url,
                reason: "a proxy can only be used with http(s) URLs".to_string(),
            });
        }
        let ssh = match (&credentials.ssh, scheme) {
            (Some(SshMode::Strict(keys)), Some(Scheme::Ssh)) => {
                if parsed.user().is_none() {
                    parsed.set_user(Some("git".to_string()));
                }
                Some(write_ssh_files(keys, timeout)?)
            }
            (None, Some(Scheme::Ssh)) => {
                return Err(Error::InvalidSecret(
                    "ssh URLs need a secret with 'identity' and 'known_hosts'".to_string(),
                ));
            }
            _ => None,
        };
        Ok(Session {
            url: parsed,
            display_url,
            http,
            credentials: credentials.clone(),
            timeout,
            ssh,
            ssh_command: system_ssh.flatten(),
        })
    }

    /// The limit of each operation.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Hands the session's temporary files (ssh key, known_hosts, wrapper) to the caller, who
    /// keeps them until the operation is over. The caller outlives a timed-out worker, so the
    /// files are removed at the deadline rather than whenever the worker gives up.
    pub fn take_files(&mut self) -> Option<tempfile::TempDir> {
        self.ssh.as_mut().and_then(|ssh| ssh.dir.take())
    }

    /// Repository options that read no configuration from outside the repository, plus what
    /// this session's transport needs.
    pub fn open_options(&self) -> gix::open::Options {
        let mut overrides = vec!["protocol.version=2".to_string()];
        if let Some(ssh) = &self.ssh {
            overrides.push(format!("core.sshCommand={}", ssh.wrapper.display()));
            overrides.push("ssh.variant=ssh".to_string());
        } else if let Some(command) = &self.ssh_command {
            overrides.push(format!("core.sshCommand={command}"));
        }
        gix::open::Options::isolated().config_overrides(overrides)
    }

    /// An empty bare repository in `dir`, only to give gix's remote this session's isolated
    /// configuration (transport, protocol version, ssh command).
    pub fn scratch_repo(&self, dir: &Path, op: &'static str) -> Result<gix::Repository, Error> {
        gix::ThreadSafeRepository::init_opts(
            dir,
            gix::create::Kind::Bare,
            gix::create::Options::default(),
            self.open_options(),
        )
        .map(|repo| repo.to_thread_local())
        .map_err(|e| self.error(op, &e))
    }

    /// Installs the credentials callback and, for http(s), our HTTP client settings.
    pub fn configure(&self, connection: &mut Connection<'_, '_, '_>) {
        connection.set_credentials(self.credentials());
        if let Some(options) = self.transport_options() {
            connection.set_transport_options(Box::new(options));
        }
    }

    /// The credentials callback: the given basic credentials, never a prompt or a helper.
    pub fn credentials(&self) -> impl FnMut(Action) -> gix::Result<Option<Outcome>> + Send + 'static {
        let basic = self.credentials.basic.clone();
        let missing = self.credentials.missing_message();
        move |action| match action {
            Action::Get(context) => match &basic {
                Some(basic) => Ok(Some(Outcome {
                    identity: gix::sec::identity::Account {
                        username: basic.username.clone(),
                        password: basic.password.expose_str(),
                        oauth_refresh_token: None,
                    },
                    next: context.into(),
                })),
                None => Err(gix::error::Message::new(missing).unauthenticated_error()),
            },
            // Nothing is stored or erased: the given credentials are the only source.
            Action::Store(_) | Action::Erase(_) => Ok(None),
        }
    }

    /// Our HTTP client settings for http(s) URLs; `None` for the other transports.
    pub fn transport_options(&self) -> Option<http::Options> {
        self.http.then(|| self.http_options())
    }

    fn http_options(&self) -> http::Options {
        let ca = self.credentials.ca_bundle.clone();
        let client_cert = self.credentials.client_cert.clone();
        let proxy = self.credentials.proxy.clone();
        let bearer = self.credentials.bearer_token.clone();
        let timeout = self.timeout;
        let configure_client = move |mut builder: reqwest::blocking::ClientBuilder| {
            builder = builder.timeout(timeout);
            if let Some(ca) = &ca {
                // Only the secret's CA: neither the platform roots nor SSL_CERT_FILE & co.
                builder = builder.tls_certs_only(parse_ca_bundle(ca).map_err(|e| to_gix(&e))?);
            }
            if let Some(cert) = &client_cert {
                builder = builder.identity(client_identity(cert).map_err(|e| to_gix(&e))?);
            }
            if let Some(proxy) = &proxy {
                let mut p = reqwest::Proxy::all(proxy.address.as_str())
                    .map_err(|_| gix::error::Message::new("the proxy address is not a valid URL").raise())?;
                if let Some(user) = &proxy.username {
                    let password = proxy
                        .password
                        .as_ref()
                        .map(Secret::expose_str)
                        .unwrap_or_default();
                    p = p.basic_auth(user, &password);
                }
                builder = builder.proxy(p);
            }
            if let Some(token) = &bearer {
                let mut value =
                    reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose_str()))
                        .map_err(|_| {
                            gix::error::Message::new("the bearer token is not a valid header value").raise()
                        })?;
                value.set_sensitive(true);
                let mut headers = reqwest::header::HeaderMap::new();
                headers.insert(reqwest::header::AUTHORIZATION, value);
                builder = builder.default_headers(headers);
            }
            Ok(builder)
        };
        let backend = http::reqwest::Options {
            configure_client: Some(Box::new(configure_client)),
            configure_request: None,
        };
        http::Options {
            connect_timeout: Some(self.timeout.min(Duration::from_secs(30))),
            backend: Some(Arc::new(Mutex::new(backend))),
            ..http::Options::default()
        }
    }

    /// Maps a gix failure of `op` to an [`Error`], scrubbing secrets from the message.
    pub fn error(&self, op: &'static str, err: &gix::Error) -> Error {
        let mut message = join_errors(err.iter_errors());
        let ssh_stderr = self.ssh_stderr();
        if !ssh_stderr.is_empty() {
            message = format!("{message} (ssh: {ssh_stderr})");
        }
        let message = self.scrub(&message);
        let host_key_rejected = ssh_stderr.contains("Host key verification failed")
            || ssh_stderr.contains("HOST IDENTIFICATION HAS CHANGED");
        let denied = ssh_stderr.contains("Permission denied");
        if err.is_unauthenticated() || err.is_permission_denied() || host_key_rejected || denied {
            Error::Authentication {
                url: self.display_url.clone(),
                message,
            }
        } else {
            Error::Operation {
                op,
                url: self.display_url.clone(),
                message,
            }
        }
    }

    /// An error of our own around the operation (not from gix).
    pub fn failure(&self, op: &'static str, message: &str) -> Error {
        Error::Operation {
            op,
            url: self.display_url.clone(),
            message: self.scrub(message),
        }
    }

    fn scrub(&self, text: &str) -> String {
        let mut out = self.credentials.scrub(text);
        if let Some(password) = self.url.password().filter(|p| p.len() >= 3) {
            out = out.replace(password, "***");
        }
        out
    }

    /// The last lines `ssh` wrote to stderr during this session, joined.
    fn ssh_stderr(&self) -> String {
        let Some(ssh) = &self.ssh else {
            return String::new();
        };
        let text = fs_err::read_to_string(&ssh.stderr).unwrap_or_default();
        // Lines naming our temporary files (ssh's "remove with ssh-keygen -R" hints) are noise.
        let dir = ssh
            .stderr
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && (dir.is_empty() || !l.contains(&dir)))
            .collect();
        lines[lines.len().saturating_sub(3)..].join("; ")
    }
}

fn to_gix(err: &Error) -> gix::Error {
    gix::error::Message::new(err.to_string()).raise()
}

/// Writes the identity, known_hosts and the `ssh` wrapper into a private temporary directory.
fn write_ssh_files(ssh: &SshKeys, timeout: Duration) -> Result<SshFiles, Error> {
    let dir = tempfile::Builder::new()
        .prefix("git-ssh-")
        .tempdir()
        .map_err(|e| Error::io("create a temporary directory for", Path::new("ssh"), e))?;
    let identity = dir.path().join("identity");
    let known_hosts = dir.path().join("known_hosts");
    let stderr = dir.path().join("stderr");
    let wrapper = dir.path().join("ssh");
    let mut key = ssh.identity.expose().to_vec();
    // OpenSSH refuses keys without a final newline.
    if !key.ends_with(b"\n") {
        key.push(b'\n');
    }
    write_private(&identity, &key, 0o600)?;
    write_private(&known_hosts, &ssh.known_hosts, 0o600)?;
    write_private(&stderr, b"", 0o600)?;
    let quote = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', r"'\''"));
    let script = format!(
        "#!/bin/sh\n\
         # Written for one git operation; never prompts.\n\
         exec ssh -F /dev/null -i {identity} -o IdentitiesOnly=yes -o IdentityAgent=none \
         -o UserKnownHostsFile={known_hosts} -o GlobalKnownHostsFile=/dev/null \
         -o StrictHostKeyChecking=yes -o BatchMode=yes -o PasswordAuthentication=no \
         -o KbdInteractiveAuthentication=no -o ConnectTimeout={connect} -o LogLevel=ERROR \
         \"$@\" 2>>{stderr}\n",
        identity = quote(&identity),
        known_hosts = quote(&known_hosts),
        stderr = quote(&stderr),
        connect = timeout.as_secs().clamp(1, 30),
    );
    write_private(&wrapper, script.as_bytes(), 0o700)?;
    Ok(SshFiles {
        dir: Some(dir),
        wrapper,
        stderr,
    })
}

fn write_private(path: &Path, content: &[u8], mode: u32) -> Result<(), Error> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| Error::io("create", path, e))?;
    file.write_all(content).map_err(|e| Error::io("write", path, e))?;
    // The umask may have narrowed the mode; make sure it is exactly what ssh expects.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("set permissions of", path, e))
}

/// Runs `work` on a worker thread and waits at most `timeout` for it.
///
/// At the deadline the interrupt flag handed to `work` is raised and [`Error::Timeout`] is
/// returned at once; the worker stops at its next interrupt check (or when its blocking network
/// call returns) and its result is dropped. Files it was writing may be left behind, so callers
/// treat the destination of a timed-out checkout as garbage.
pub(crate) fn run_with_deadline<T, F>(
    op: &'static str,
    display_url: &str,
    timeout: Duration,
    work: F,
) -> Result<T, Error>
where
    T: Send + 'static,
    F: FnOnce(&AtomicBool) -> Result<T, Error> + Send + 'static,
{
    let interrupt = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let flag = Arc::clone(&interrupt);
    std::thread::Builder::new()
        .name("git-operation".to_string())
        .spawn(move || {
            // The receiver is gone after a timeout; nobody needs the result then.
            let _ = tx.send(work(&flag));
        })
        .map_err(|e| Error::io("start a thread for", Path::new(display_url), e))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            interrupt.store(true, Ordering::SeqCst);
            Err(Error::Timeout {
                op,
                url: display_url.to_string(),
                timeout,
            })
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Operation {
            op,
            url: display_url.to_string(),
            message: "the git worker thread panicked".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProxyOptions, Remote};

    #[test]
    fn scp_like_and_local_urls_are_rejected() {
        for url in [
            "git@github.com:org/repo.git",
            "/srv/repo.git",
            "file:///srv/repo.git",
        ] {
            let err = Session::new(url, &Credentials::none(), Duration::from_secs(5)).err();
            assert!(matches!(err, Some(Error::InvalidUrl { .. })), "{url}: {err:?}");
        }
    }

    #[test]
    fn system_ssh_accepts_scp_like_urls_and_keeps_their_user() {
        let system = Credentials {
            ssh: Some(SshMode::System {
                command: Some("ssh -p 2222".to_string()),
            }),
            ..Credentials::default()
        };
        let session =
            Session::new("git@example.com:org/repo.git", &system, Duration::from_secs(5)).expect("session");
        assert_eq!(session.url.user(), Some("git"));
        let session =
            Session::new("ssh://example.com/repo.git", &system, Duration::from_secs(5)).expect("session");
        assert_eq!(session.url.user(), None, "the user's ssh config picks the user");
        assert!(session.ssh.is_none(), "no key files for the user's own ssh");
        assert_eq!(session.ssh_command.as_deref(), Some("ssh -p 2222"));
    }

    #[test]
    fn ssh_urls_need_keys_and_default_to_the_git_user() {
        let err = Session::new(
            "ssh://example.com/repo.git",
            &Credentials::none(),
            Duration::from_secs(5),
        )
        .err()
        .expect("no keys");
        assert!(matches!(err, Error::InvalidSecret(_)), "{err:?}");

        let auth = Credentials {
            ssh: Some(SshMode::Strict(SshKeys {
                identity: Secret::new("key"),
                known_hosts: b"host".to_vec(),
            })),
            ..Credentials::default()
        };
        let session =
            Session::new("ssh://example.com/repo.git", &auth, Duration::from_secs(5)).expect("session");
        assert_eq!(session.url.user(), Some("git"));
        let files = session.ssh.as_ref().expect("ssh files");
        let mode = |p: &Path| fs_err::metadata(p).expect("exists").permissions().mode() & 0o777;
        let dir = files.wrapper.parent().expect("dir");
        assert_eq!(mode(&dir.join("identity")), 0o600);
        assert_eq!(mode(&dir.join("known_hosts")), 0o600);
        let script = fs_err::read_to_string(&files.wrapper).expect("wrapper");
        for option in [
            "StrictHostKeyChecking=yes",
            "BatchMode=yes",
            "IdentitiesOnly=yes",
            "-F /dev/null",
        ] {
            assert!(script.contains(option), "{option} missing from {script}");
        }
        let session = Session::new("ssh://deploy@example.com/repo.git", &auth, Duration::from_secs(5))
            .expect("session");
        assert_eq!(session.url.user(), Some("deploy"));
    }

    #[test]
    fn proxies_are_refused_for_ssh_and_git_urls() {
        let proxy = ProxyOptions {
            address: "http://proxy:3128".into(),
            username: None,
            password: None,
        };
        let err = Session::new(
            "git://example.com/r.git",
            &Credentials::none().with_proxy(proxy),
            Duration::from_secs(5),
        )
        .err()
        .expect("unsupported");
        assert!(matches!(err, Error::Unsupported { .. }), "{err:?}");
    }

    /// Accepts one HTTP request on a loopback port, answers 401, and hands back the request head.
    fn capture_one_request() -> (u16, std::thread::JoinHandle<String>) {
        use std::io::{BufRead as _, BufReader};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().expect("accept");
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let mut stream = stream;
            let _ = stream
                .write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            head
        });
        (port, handle)
    }

    #[test]
    fn bearer_tokens_are_sent_as_authorization_header() {
        let (port, request) = capture_one_request();
        let url = format!("http://127.0.0.1:{port}/repo.git");
        let data = std::collections::BTreeMap::from([("bearerToken".to_string(), b"tok-e2e-123".to_vec())]);
        let auth = Credentials::from_secret_data(&url, &data).expect("valid");
        let err = Remote::new(&url, &auth, Duration::from_secs(10))
            .and_then(|remote| remote.list_refs(&["refs/heads/main"]))
            .expect_err("401");
        assert!(matches!(err, Error::Authentication { .. }), "{err:?}");
        assert!(!err.to_string().contains("tok-e2e-123"), "{err}");
        let head = request.join().expect("server thread").to_ascii_lowercase();
        assert!(head.contains("authorization: bearer tok-e2e-123"), "{head}");
    }

    #[test]
    fn http_traffic_goes_through_the_proxy_with_its_credentials() {
        let (port, request) = capture_one_request();
        let data = std::collections::BTreeMap::from([
            (
                "address".to_string(),
                format!("http://127.0.0.1:{port}").into_bytes(),
            ),
            ("username".to_string(), b"proxy-user".to_vec()),
            ("password".to_string(), b"proxy-pw".to_vec()),
        ]);
        let proxy = ProxyOptions::from_secret(&data).expect("valid");
        let url = "http://git.example.invalid/repo.git";
        let auth = Credentials::none().with_proxy(proxy);
        let err = Remote::new(url, &auth, Duration::from_secs(10))
            .and_then(|remote| remote.list_refs(&["refs/heads/main"]))
            .expect_err("401 from the fake proxy");
        assert!(!err.to_string().contains("proxy-pw"), "{err}");
        let head = request.join().expect("proxy thread");
        assert!(
            head.starts_with("GET http://git.example.invalid/repo.git/info/refs?service=git-upload-pack "),
            "{head}"
        );
        // base64("proxy-user:proxy-pw")
        assert!(
            head.to_ascii_lowercase()
                .contains("proxy-authorization: basic chjvehktdxnlcjpwcm94es1wdw=="),
            "{head}"
        );
    }

    #[test]
    fn a_silent_server_runs_into_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accept and hold the connection without ever answering.
        let _holder = std::thread::spawn(move || {
            let conn = listener.accept();
            std::thread::sleep(Duration::from_secs(5));
            drop(conn);
        });
        let url = format!("git://127.0.0.1:{port}/repo.git");
        let started = std::time::Instant::now();
        let err = Remote::new(&url, &Credentials::none(), Duration::from_millis(300))
            .and_then(|remote| remote.list_refs(&["refs/heads/main"]))
            .expect_err("timeout");
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn the_deadline_interrupts_slow_work() {
        let started = std::time::Instant::now();
        let result: Result<(), Error> =
            run_with_deadline("fetch", "http://x/r.git", Duration::from_millis(50), |flag| {
                while !flag.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(())
            });
        assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn fast_work_returns_its_result() {
        let result = run_with_deadline("fetch", "http://x/r.git", Duration::from_secs(5), |_| Ok(7));
        assert_eq!(result.expect("ok"), 7);
    }
}
