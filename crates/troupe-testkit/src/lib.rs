//! Test fixtures for troupe.
//!
//! - [`TestServer`]: a real troupe server, in-process, on a free loopback
//!   port, with its own thread and runtime, so that dropping it shuts it down
//!   (its instances stopped and reaped) without needing a runtime.
//! - [`fixture`]: the path of `troupe-fixture`, a program with misbehaving
//!   and well-behaved modes (crash, ignore SIGTERM, flood, fork, set a
//!   result...), and [`troupe_bin`], the path of the `troupe` binary.
//! - [`probe::Probe`] (a remote object) and [`supply::Supply`] (a fake power
//!   supply, a device handler), served by the tests and the fixture.
//!
//! ```no_run
//! let server = troupe_testkit::TestServer::start(r#"
//! [[app]]
//! name = "hello"
//! executable = "echo"
//! args = ["hello"]
//! "#).unwrap();
//! println!("connect to {}", server.endpoint());
//! ```

pub mod probe;
pub mod supply;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use troupe_server::{Config, RunningServer};

/// Every wait in a test is bounded by this unless it says otherwise.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A free TCP port on 127.0.0.1 (free when asked; bind it soon).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

static SERVERS: AtomicU32 = AtomicU32::new(0);

/// A troupe server running in-process on a free loopback port.
#[derive(Debug)]
pub struct TestServer {
    name: String,
    endpoint: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl TestServer {
    /// Starts a server on `config` (TOML text). The kit gives it a unique
    /// name, a free loopback `listen` endpoint and, when unset, a temporary
    /// `log_dir` ([`TestServer::log_dir`]), so that apps may set `log`.
    ///
    /// # Errors
    /// When the configuration is invalid or the server cannot start.
    pub fn start(config: &str) -> anyhow::Result<TestServer> {
        Self::start_with(config, |_| {})
    }

    /// Like [`TestServer::start`], then `customize` may change the parsed
    /// configuration (name, connect, ...) before the server starts.
    ///
    /// # Errors
    /// When the configuration is invalid or the server cannot start.
    pub fn start_with(config: &str, customize: impl Fn(&mut Config)) -> anyhow::Result<TestServer> {
        init_tracing();
        let dir = tempfile::tempdir()?;
        let mut last_err = None;
        // `log` in an [[app]] needs `log_dir` when the text is parsed: give
        // it the kit's directory (relative paths are joined to `dir`).
        let config = if config
            .lines()
            .any(|l| l.trim_start().starts_with("log_dir"))
        {
            config.to_string()
        } else {
            format!("log_dir = \"logs\"\n{config}")
        };
        for _ in 0..5 {
            let mut cfg = Config::parse(&config, "<test>", dir.path())?;
            let n = SERVERS.fetch_add(1, Ordering::SeqCst);
            cfg.name = format!("test-{}-{n}", std::process::id());
            if cfg.log_dir.is_none() {
                cfg.log_dir = Some(dir.path().join("logs"));
            }
            let port = free_port();
            cfg.listen = vec![format!("tcp/127.0.0.1:{port}")];
            customize(&mut cfg);
            match Self::spawn(cfg) {
                Ok((name, endpoint, stop, thread)) => {
                    return Ok(TestServer {
                        name,
                        endpoint,
                        stop: Some(stop),
                        thread: Some(thread),
                        dir,
                    })
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("the test server did not start")))
    }

    #[allow(clippy::type_complexity)]
    fn spawn(
        cfg: Config,
    ) -> anyhow::Result<(
        String,
        String,
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("troupe-test-server".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("runtime: {e}")));
                        return;
                    }
                };
                rt.block_on(async move {
                    match RunningServer::start(cfg).await {
                        Ok(server) => {
                            let _ = ready_tx.send(Ok((
                                server.name().to_string(),
                                server.endpoint().to_string(),
                            )));
                            let _ = stop_rx.await;
                            server.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                        }
                    }
                });
            })?;
        match ready_rx.recv_timeout(TIMEOUT) {
            Ok(Ok((name, endpoint))) => Ok((name, endpoint, stop_tx, thread)),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(anyhow::anyhow!(
                "the test server did not start within {TIMEOUT:?}"
            )),
        }
    }

    /// The endpoint to connect to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's log directory.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    /// Shuts the server down: stops its instances and waits for them.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn target_dir_binary(name: &str) -> PathBuf {
    // Test executables live in target/<profile>/deps; binaries one level up.
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(name)
}

/// The path of the `troupe-fixture` program (built with the workspace).
pub fn fixture() -> String {
    target_dir_binary("troupe-fixture").display().to_string()
}

/// The path of the `troupe` binary (built with the workspace).
pub fn troupe_bin() -> String {
    target_dir_binary("troupe").display().to_string()
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
pub fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.trim_start().starts_with('Z') || rest.trim_start().starts_with('X')
            })
            .unwrap_or(false),
    }
}

/// Waits (bounded) until `cond` holds, polling.
pub fn wait_until(
    what: &str,
    limit: Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if cond() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("{what}: not within {limit:?}")
}

/// The children of process `pid` (from /proc), for tests of process groups.
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) {
                if let Some((_, rest)) = stat.rsplit_once(')') {
                    let ppid = rest
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse::<u32>().ok());
                    if ppid == Some(pid) {
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}
