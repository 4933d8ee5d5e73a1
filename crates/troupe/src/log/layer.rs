//! The publishing side: a `tracing` layer that queues records without
//! waiting, and the task that publishes them.

use crate::error::{fmt_duration, Error, Result};
use crate::session::Session;
use serde_json::{Map, Value};
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::{Context, Layer};
use troupe_protocol::log::{LogLevel, LogRecord, MISSING};
use troupe_protocol::{Hello, RequestBody};
use zenoh::qos::CongestionControl;

/// Records waiting to be published, by default.
const DEFAULT_QUEUE: usize = 4096;
/// A message or a text field longer than this is cut (on a character
/// boundary) and marked with `…`.
const MAX_TEXT: usize = 16 * 1024;
/// Targets the layer never publishes: Zenoh's own records (publishing logs
/// into Zenoh must not log into itself) and this module's.
const IGNORED_TARGETS: [&str; 2] = ["zenoh", "troupe::log"];
/// The target of the record that reports drops nothing else carried.
const DROPS_TARGET: &str = "troupe::log";

/// Counts the layers made in this process, so that each has its own
/// source id.
static LAYERS: AtomicU64 = AtomicU64::new(0);

/// Options of [`layer`] and [`init_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogOptions {
    /// The most verbose level published (default `INFO`). [`init_with`]
    /// also prints this level and above on standard error, unless
    /// `RUST_LOG` says otherwise.
    pub level: Level,
    /// How many records may wait to be published (default 4096): beyond
    /// that, records are dropped and counted, never waited for.
    pub queue: usize,
    /// The server to file the records under, for a process that is no
    /// instance (an instance's own server is always used). Its server then
    /// keeps them too. Default: none (`-` in the key).
    pub server: Option<String>,
    /// Whether [`init_with`] also prints records on standard error
    /// (default true).
    pub stderr: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            level: Level::INFO,
            queue: DEFAULT_QUEUE,
            server: None,
            stderr: true,
        }
    }
}

/// Who publishes: what every record of a layer says about its origin.
#[derive(Debug)]
struct Origin {
    host: String,
    server: Option<String>,
    app: Option<String>,
    instance: Option<u64>,
    source: String,
}

impl Origin {
    /// The origin of the records of `session`: the instance its
    /// [`This`](crate::This) speaks for, or else the session itself under
    /// `server`.
    fn of(session: &Session, server: Option<String>) -> Self {
        let n = LAYERS.fetch_add(1, Ordering::Relaxed) + 1;
        let zid = session.zenoh().zid().to_string();
        let source = if n == 1 { zid } else { format!("{zid}-{n}") };
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let identity = session.identity();
        let parts: Vec<&str> = identity.split('/').collect();
        if let [srv, app, id] = parts[..] {
            if let Ok(id) = id.parse::<u64>() {
                return Origin {
                    host,
                    server: Some(srv.to_string()),
                    app: Some(app.to_string()),
                    instance: Some(id),
                    source,
                };
            }
        }
        Origin {
            host,
            server,
            app: None,
            instance: None,
            source,
        }
    }

    /// The key its records are published on.
    fn key(&self, session: &Session) -> String {
        let instance = match self.instance {
            Some(id) => id.to_string(),
            None => self.source.clone(),
        };
        session.keys().log(
            self.server.as_deref().unwrap_or(MISSING),
            self.app.as_deref().unwrap_or(MISSING),
            &instance,
        )
    }
}

/// A record as the layer queues it: what the application said.
#[derive(Debug)]
struct Pending {
    time_ms: u64,
    level: LogLevel,
    target: String,
    message: String,
    fields: Map<String, Value>,
}

/// What the layer, the publishing task and the handles share.
#[derive(Debug, Default)]
struct Counters {
    /// Records put into the queue.
    queued: AtomicU64,
    /// Records taken from the queue and handed to Zenoh (or failed there).
    handled: AtomicU64,
    /// Records of the application published (reports of drops are not
    /// counted).
    sent: AtomicU64,
    /// Records dropped, in all.
    dropped: AtomicU64,
    /// Records dropped and not yet reported in a published record.
    unreported: AtomicU64,
    /// Dropped records reported in published records.
    reported: AtomicU64,
    /// Wakes the task when a record was dropped (it may have to report it).
    wake: Notify,
    /// Wakes [`LogHandle::flush`] when the task made progress.
    progress: Notify,
}

impl Counters {
    fn drop_one(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.unreported.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
    }
}

/// A `tracing` layer that publishes records on the troupe network.
///
/// Made by [`layer`]. Its `on_event` never waits: it formats the record
/// (message and fields) and offers it to a bounded queue; a full queue
/// drops it and counts it. It skips records more verbose than its level
/// and Zenoh's own records, so that publishing never logs into itself. In
/// a subscriber where other layers enable more verbose levels, give it
/// its own filter with [`NetworkLayer::filter`].
#[derive(Debug)]
pub struct NetworkLayer {
    tx: mpsc::Sender<Pending>,
    level: Level,
    counters: Arc<Counters>,
}

impl NetworkLayer {
    /// The per-layer filter of this layer: its level, and nothing from
    /// Zenoh. Use it as `layer.with_filter(filter)` so that the other
    /// layers' levels do not make the application format records this
    /// layer would skip.
    pub fn filter(&self) -> Targets {
        IGNORED_TARGETS.iter().fold(
            Targets::new().with_default(LevelFilter::from_level(self.level)),
            |t, target| t.with_target(*target, LevelFilter::OFF),
        )
    }
}

impl<S: Subscriber> Layer<S> for NetworkLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        if *meta.level() > self.level
            || IGNORED_TARGETS.iter().any(|t| meta.target().starts_with(t))
        {
            return;
        }
        let mut pending = Pending {
            time_ms: troupe_protocol::now_ms(),
            level: log_level(*meta.level()),
            target: meta.target().to_string(),
            message: String::new(),
            fields: Map::new(),
        };
        event.record(&mut Fields {
            pending: &mut pending,
            skip_log_fields: normalized.is_some(),
        });
        cut(&mut pending.message);
        match self.tx.try_send(pending) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => self.counters.drop_one(),
        }
    }
}

/// The level of a `tracing` level.
fn log_level(level: Level) -> LogLevel {
    match level {
        Level::TRACE => LogLevel::Trace,
        Level::DEBUG => LogLevel::Debug,
        Level::INFO => LogLevel::Info,
        Level::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

/// Cuts `s` to [`MAX_TEXT`] bytes, on a character boundary.
fn cut(s: &mut String) {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
}

/// Collects the message and the fields of an event.
struct Fields<'a> {
    pending: &'a mut Pending,
    /// A record of the `log` crate: its `log.*` fields are metadata.
    skip_log_fields: bool,
}

impl Fields<'_> {
    fn put(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if self.skip_log_fields && name.starts_with("log.") {
            return;
        }
        self.pending.fields.insert(name.to_string(), value);
    }

    fn text(&mut self, field: &Field, mut text: String) {
        if field.name() == "message" {
            self.pending.message.push_str(&text);
        } else {
            cut(&mut text);
            self.put(field, Value::String(text));
        }
    }
}

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.pending.message, "{value:?}");
        } else if !(self.skip_log_fields && field.name().starts_with("log.")) {
            self.text(field, format!("{value:?}"));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_string());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, value.to_string());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(v) => self.put(field, Value::from(v)),
            Err(_) => self.put(field, Value::String(value.to_string())),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match u64::try_from(value) {
            Ok(v) => self.put(field, Value::from(v)),
            Err(_) => self.put(field, Value::String(value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinities: those travel as text.
        match serde_json::Number::from_f64(value) {
            Some(n) => self.put(field, Value::Number(n)),
            None => self.put(field, Value::String(value.to_string())),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
}

/// What an application keeps of its [`NetworkLayer`]: counts, and a
/// flush before exiting. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogHandle {
    counters: Arc<Counters>,
    session: Session,
    server: Option<String>,
    key: Arc<str>,
}

impl LogHandle {
    /// Records dropped so far because the queue was full (or the
    /// publishing task was gone).
    pub fn dropped(&self) -> u64 {
        self.counters.dropped.load(Ordering::Acquire)
    }

    /// Records of the application published so far. With
    /// [`LogHandle::dropped`], it accounts for every record that passed
    /// the level (reports of drops, which the layer adds, are not counted).
    pub fn sent(&self) -> u64 {
        self.counters.sent.load(Ordering::Acquire)
    }

    /// The key the records are published on.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Waits until every record queued before the call is published and
    /// every drop reported; then, when the records belong to a server,
    /// makes a round trip to it, so that they are on their way past the
    /// process. Call it before exiting: records still queued when the
    /// process exits are lost.
    ///
    /// # Errors
    /// [`Error::Timeout`] when that did not happen within `timeout` (the
    /// application may still be logging faster than records go out);
    /// [`Error::ServerUnreachable`] from the round trip.
    pub async fn flush(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let c = &self.counters;
        let queued = c.queued.load(Ordering::Acquire);
        let dropped = c.dropped.load(Ordering::Acquire);
        loop {
            let progress = c.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            c.wake.notify_one();
            if c.handled.load(Ordering::Acquire) >= queued
                && c.reported.load(Ordering::Acquire) >= dropped
            {
                break;
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                return Err(Error::Timeout(format!(
                    "log records still queued after {}",
                    fmt_duration(timeout)
                )));
            }
        }
        if let Some(server) = &self.server {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let _: Hello = self
                .session
                .call(
                    server,
                    RequestBody::Hello,
                    left.max(Duration::from_millis(100)),
                )
                .await?;
        }
        Ok(())
    }
}

/// Makes a [`NetworkLayer`] that publishes through `session`, and its
/// handle. The records are those of the instance the session speaks for
/// when a [`This`](crate::This) holds it (make the `This` first), else of
/// the session itself (filed under `opts.server`).
///
/// The records are published by a thread of the layer's own (`troupe-log`),
/// which ends when the layer is dropped: when Zenoh's queues are full and
/// a put waits, it holds that thread, never a worker of the application's
/// runtime.
///
/// # Errors
/// [`Error::Invalid`] for a bad server name or a zero queue;
/// [`Error::Zenoh`] when the publisher cannot be declared; [`Error::Io`]
/// when the thread cannot be started.
pub async fn layer(session: &Session, opts: LogOptions) -> Result<(NetworkLayer, LogHandle)> {
    if let Some(server) = &opts.server {
        troupe_protocol::validate_name("server", server)
            .map_err(|e| Error::Invalid(e.to_string()))?;
    }
    if opts.queue == 0 {
        return Err(Error::Invalid("a log queue needs room for 1 record".into()));
    }
    let origin = Origin::of(session, opts.server.clone());
    let key = origin.key(session);
    let publisher = session
        .zenoh()
        .declare_publisher(key.clone())
        .congestion_control(CongestionControl::Block)
        .await
        .map_err(Error::Zenoh)?;
    let counters = Arc::new(Counters::default());
    let (tx, rx) = mpsc::channel(opts.queue);
    let handle = LogHandle {
        counters: counters.clone(),
        session: session.clone(),
        server: origin.server.clone(),
        key: key.into(),
    };
    // The loop needs no runtime: a tokio channel and `Notify`, and Zenoh
    // puts, which complete in place.
    {
        let counters = counters.clone();
        std::thread::Builder::new()
            .name("troupe-log".into())
            .spawn(move || futures::executor::block_on(publish(rx, counters, origin, publisher)))?;
    }
    let layer = NetworkLayer {
        tx,
        level: opts.level,
        counters,
    };
    Ok((layer, handle))
}

/// Publishes the queue in order, numbering the records, until the layer
/// is dropped. Runs on the layer's own thread.
async fn publish(
    mut rx: mpsc::Receiver<Pending>,
    counters: Arc<Counters>,
    origin: Origin,
    publisher: zenoh::pubsub::Publisher<'static>,
) {
    let mut seq = 0u64;
    loop {
        let next = tokio::select! {
            next = rx.recv() => match next {
                Some(p) => Some(p),
                None => break,
            },
            () = counters.wake.notified() => None,
        };
        if let Some(p) = next {
            let dropped = counters.unreported.swap(0, Ordering::AcqRel);
            if put(&publisher, &origin, &counters, &mut seq, p, dropped).await {
                counters.sent.fetch_add(1, Ordering::AcqRel);
            } else {
                // Zenoh refused it (the session is closed): a drop too.
                counters.drop_one();
            }
            counters.handled.fetch_add(1, Ordering::AcqRel);
        }
        // Drops that no queued record will carry: report them now.
        if rx.is_empty() {
            let dropped = counters.unreported.swap(0, Ordering::AcqRel);
            if dropped > 0 {
                let report = Pending {
                    time_ms: troupe_protocol::now_ms(),
                    level: LogLevel::Warn,
                    target: DROPS_TARGET.to_string(),
                    message: format!(
                        "{dropped} log record{} dropped: the queue was full",
                        if dropped == 1 { "" } else { "s" }
                    ),
                    fields: Map::new(),
                };
                put(&publisher, &origin, &counters, &mut seq, report, dropped).await;
            }
        }
        counters.progress.notify_waiters();
    }
    counters.progress.notify_waiters();
}

/// Publishes one record with the next sequence number and `dropped`, the
/// drops it reports; whether it went out.
async fn put(
    publisher: &zenoh::pubsub::Publisher<'static>,
    origin: &Origin,
    counters: &Counters,
    seq: &mut u64,
    p: Pending,
    dropped: u64,
) -> bool {
    let record = LogRecord {
        time_ms: p.time_ms,
        level: p.level,
        target: p.target,
        message: p.message,
        fields: p.fields,
        host: origin.host.clone(),
        server: origin.server.clone(),
        app: origin.app.clone(),
        instance: origin.instance,
        source: origin.source.clone(),
        seq: *seq + 1,
        dropped,
    };
    let sent = match serde_json::to_vec(&record) {
        Ok(bytes) => publisher.put(bytes).await.is_ok(),
        Err(_) => false,
    };
    if sent {
        *seq += 1;
        counters.reported.fetch_add(dropped, Ordering::AcqRel);
    } else {
        // Not published: its drops wait for the next record.
        counters.unreported.fetch_add(dropped, Ordering::AcqRel);
    }
    sent
}

/// Installs the global `tracing` subscriber of an application: records at
/// `level` and above published by a [`NetworkLayer`] on `session`, and
/// printed on standard error (with the filter of `RUST_LOG` when it is
/// set, else `level` with Zenoh at `warn`); the `log` crate's records go
/// the same way. See [`init_with`] for the options, [`layer`] for the
/// origin of the records.
///
/// # Errors
/// [`Error::Refused`] when a global subscriber or a `log` logger is
/// already installed; as [`layer`].
pub async fn init(session: &Session, level: Level) -> Result<LogHandle> {
    init_with(
        session,
        LogOptions {
            level,
            ..LogOptions::default()
        },
    )
    .await
}

/// Like [`init`], with options.
///
/// # Errors
/// As [`init`].
pub async fn init_with(session: &Session, opts: LogOptions) -> Result<LogHandle> {
    use tracing_log::AsLog as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::EnvFilter;
    let level = opts.level;
    let stderr = opts.stderr;
    let (network, handle) = layer(session, opts).await?;
    let network_filter = network.filter();
    let mut max = LevelFilter::from_level(level);
    let print = stderr.then(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new(format!("{},zenoh=warn", LevelFilter::from_level(level)))
        });
        max = max.max(filter.max_level_hint().unwrap_or(LevelFilter::TRACE));
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter)
    });
    let subscriber = tracing_subscriber::registry()
        .with(print)
        .with(network.with_filter(network_filter));
    tracing_log::LogTracer::builder()
        .with_max_level(max.as_log())
        .init()
        .map_err(|_| Error::Refused("a logger of the log crate is already installed".into()))?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(|_| Error::Refused("a global tracing subscriber is already installed".into()))?;
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// A layer whose queue is read by the test: no network.
    fn bare(queue: usize, level: Level) -> (NetworkLayer, mpsc::Receiver<Pending>) {
        let (tx, rx) = mpsc::channel(queue);
        let layer = NetworkLayer {
            tx,
            level,
            counters: Arc::default(),
        };
        (layer, rx)
    }

    #[test]
    fn events_become_records_with_their_fields() {
        let (layer, mut rx) = bare(16, Level::INFO);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let err = std::io::Error::other("disk full");
            tracing::warn!(
                target: "cam::grab",
                frame = 42u64,
                late = -3i64,
                ratio = 0.5,
                nan = f64::NAN,
                ok = true,
                name = "left",
                shape = ?(2, 3),
                error = &err as &(dyn std::error::Error + 'static),
                "frame {} late",
                42
            );
            tracing::debug!(target: "cam::grab", "too verbose");
            tracing::info!(target: "zenoh_transport::x", "zenoh's own");
            tracing::error!(target: "troupe::log", "the layer's own");
        });
        let p = rx.try_recv().expect("one record");
        assert!(rx.try_recv().is_err(), "only one record passes");
        assert_eq!(p.level, LogLevel::Warn);
        assert_eq!(p.target, "cam::grab");
        assert_eq!(p.message, "frame 42 late");
        let f = Value::Object(p.fields);
        assert_eq!(
            f,
            serde_json::json!({"frame": 42, "late": -3, "ratio": 0.5, "nan": "NaN",
                "ok": true, "name": "left", "shape": "(2, 3)", "error": "disk full"})
        );
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (layer, mut rx) = bare(2, Level::TRACE);
        let counters = layer.counters.clone();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            for i in 0..10 {
                // Not this module's target, which the layer skips.
                tracing::trace!(target: "app", i, "record");
            }
        });
        assert_eq!(counters.queued.load(Ordering::Acquire), 2);
        assert_eq!(counters.dropped.load(Ordering::Acquire), 8);
        assert_eq!(counters.unreported.load(Ordering::Acquire), 8);
        assert_eq!(rx.try_recv().unwrap().fields["i"], 0);
        assert_eq!(rx.try_recv().unwrap().fields["i"], 1);
    }

    #[test]
    fn long_texts_are_cut_on_a_character_boundary() {
        let mut s = "é".repeat(MAX_TEXT);
        cut(&mut s);
        assert!(s.len() <= MAX_TEXT + '…'.len_utf8());
        assert!(s.ends_with('…'));
        let mut short = "short".to_string();
        cut(&mut short);
        assert_eq!(short, "short");
    }

    #[test]
    fn the_filter_keeps_the_level_and_skips_zenoh() {
        let (layer, _rx) = bare(1, Level::WARN);
        let f = layer.filter().to_string();
        assert!(f.contains("zenoh=off"), "{f}");
        assert!(f.contains("troupe::log=off"), "{f}");
        assert!(f.contains("warn"), "{f}");
        assert_eq!(log_level(Level::ERROR), LogLevel::Error);
        assert_eq!(log_level(Level::TRACE), LogLevel::Trace);
    }
}
