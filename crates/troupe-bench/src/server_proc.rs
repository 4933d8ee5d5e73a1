//! The server under test, as a separate process: this program re-executed
//! with `--serve CONFIG ENDPOINT`, which runs `troupe_server::run` exactly as
//! `troupe server` does.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a server until SIGTERM or SIGINT. With `TROUPE_BENCH_BALLAST_MIB`
/// set, the server first allocates and touches that much heap, to show that
/// spawning does not slow down as the server grows (`posix_spawn`, no fork).
pub async fn serve(config: &str, endpoint: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TROUPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let ballast_mib: usize = std::env::var("TROUPE_BENCH_BALLAST_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let ballast = vec![1u8; ballast_mib << 20];
    let mut cfg = troupe_server::Config::load(std::path::Path::new(config))?;
    cfg.listen = vec![endpoint.to_string()];
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("TERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    troupe_server::run(cfg, shutdown).await?;
    drop(std::hint::black_box(ballast));
    Ok(())
}

/// A server process, stopped (TERM, then KILL) and reaped on drop.
pub struct ServerProcess {
    child: Child,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts a server on `config` (TOML text) on a free loopback port.
    pub fn start(config: &str) -> anyhow::Result<Self> {
        Self::start_with_ballast(config, 0)
    }

    /// Starts a server whose heap holds `ballast_mib` MiB of touched memory.
    pub fn start_with_ballast(config: &str, ballast_mib: usize) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("troupe.toml");
        std::fs::write(&path, config)?;
        let endpoint = format!("tcp/127.0.0.1:{}", troupe_testkit::free_port());
        let child = Command::new(std::env::current_exe()?)
            .arg("--serve")
            .arg(&path)
            .arg(&endpoint)
            .env("TROUPE_BENCH_BALLAST_MIB", ballast_mib.to_string())
            .stdin(Stdio::null())
            .spawn()?;
        Ok(Self {
            child,
            endpoint,
            _dir: dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Connects a client, retrying while the server starts (bounded).
    pub async fn connect(&self) -> anyhow::Result<troupe::Server> {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            match troupe::Server::connect(&self.endpoint, Duration::from_secs(2)).await {
                Ok(s) => return Ok(s.with_timeout(Duration::from_secs(30))),
                Err(e) if Instant::now() > end => anyhow::bail!("the server did not come up: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Resident memory of the server process, MiB.
    pub fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
