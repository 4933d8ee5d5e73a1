//! The following side: live records with the gaps seen in them, and the
//! records the servers keep.

use crate::error::{fmt_duration, Error, Result};
use crate::session::Session;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use troupe_protocol::log::{LogLevel, LogRecord};
use troupe_protocol::{Request, RequestBody, Response};
use zenoh::query::QueryTarget;
use zenoh::sample::SampleKind;

/// Records a follower holds before it drops the next ones (they then show
/// as a gap).
const FOLLOW_QUEUE: usize = 65_536;
/// Sources a follower remembers; beyond this, the least recently heard
/// half is forgotten.
const MAX_SOURCES: usize = 10_000;

/// Which records to follow or read. The default takes everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter {
    /// Only records at this level or more severe (default: trace, all).
    pub level: LogLevel,
    /// Only records filed under this server.
    pub server: Option<String>,
    /// Only records of this application.
    pub app: Option<String>,
    /// Only records of this instance id (of any server, unless `server` is
    /// given too).
    pub instance: Option<u64>,
}

impl Default for LogFilter {
    fn default() -> Self {
        Self {
            level: LogLevel::Trace,
            server: None,
            app: None,
            instance: None,
        }
    }
}

impl LogFilter {
    /// Checks the names.
    fn validate(&self) -> Result<()> {
        for (kind, name) in [("server", &self.server), ("app", &self.app)] {
            if let Some(name) = name {
                troupe_protocol::validate_name(kind, name)
                    .map_err(|e| Error::Invalid(e.to_string()))?;
            }
        }
        Ok(())
    }

    /// The key expression of the records it takes.
    fn key(&self, session: &Session) -> String {
        let instance = self.instance.map(|i| i.to_string());
        session.keys().log(
            self.server.as_deref().unwrap_or("*"),
            self.app.as_deref().unwrap_or("*"),
            instance.as_deref().unwrap_or("*"),
        )
    }

    /// Whether `record` passes, level included.
    pub fn matches(&self, record: &LogRecord) -> bool {
        record.level >= self.level
            && self
                .server
                .as_ref()
                .is_none_or(|s| record.server.as_ref() == Some(s))
            && self
                .app
                .as_ref()
                .is_none_or(|a| record.app.as_ref() == Some(a))
            && self.instance.is_none_or(|i| record.instance == Some(i))
    }

    /// The `logs` request for the servers.
    fn request(&self, last: Option<u64>) -> RequestBody {
        RequestBody::Logs {
            level: (self.level > LogLevel::Trace).then_some(self.level),
            app: self.app.clone(),
            instance: self.instance,
            last,
        }
    }
}

/// Records missing from one source, reported before the record after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGap {
    /// Where they come from: `server/app/instance` ([`LogRecord::origin`]).
    pub origin: String,
    /// The source id ([`LogRecord::source`]).
    pub source: String,
    /// Records the source dropped itself (its queue was full).
    pub dropped: u64,
    /// Records lost after the source published them (on the way, or in
    /// this follower's own queue): numbers that never came.
    pub lost: u64,
}

/// What a [`LogFollower`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    /// A record that passes the filter.
    Record(LogRecord),
    /// Records missing from one source, just before the record after
    /// them (whatever its level).
    Gap(LogGap),
}

/// What a follower knows of one source.
#[derive(Debug, Default)]
struct SourceState {
    /// The last sequence number received live.
    last: Option<u64>,
    /// Records up to this number were read from the servers already.
    seen_upto: u64,
    /// When it was last heard of (a count of records), to forget the
    /// oldest sources first.
    heard: u64,
}

/// Gaps and duplicates, per source. No I/O.
#[derive(Debug, Default)]
struct Tracker {
    sources: HashMap<String, SourceState>,
    clock: u64,
}

impl Tracker {
    /// Takes a live record: `None` for a duplicate, else the gap before it
    /// (if any).
    fn live(&mut self, record: &LogRecord) -> Option<Option<LogGap>> {
        let state = self.state(&record.source);
        if record.seq <= state.seen_upto || state.last.is_some_and(|l| record.seq <= l) {
            return None;
        }
        let lost = match state.last {
            Some(last) => record.seq - last - 1,
            // The first one heard: what came before is not a loss of ours.
            None => 0,
        };
        state.last = Some(record.seq);
        Some((lost > 0 || record.dropped > 0).then(|| LogGap {
            origin: record.origin(),
            source: record.source.clone(),
            dropped: record.dropped,
            lost,
        }))
    }

    /// Notes a record read from a server, so that it is not yielded again.
    fn seen(&mut self, record: &LogRecord) {
        let state = self.state(&record.source);
        state.seen_upto = state.seen_upto.max(record.seq);
    }

    fn state(&mut self, source: &str) -> &mut SourceState {
        self.clock += 1;
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(source) {
            self.forget_oldest();
        }
        let state = self.sources.entry(source.to_string()).or_default();
        state.heard = self.clock;
        state
    }

    fn forget_oldest(&mut self) {
        let mut heard: Vec<u64> = self.sources.values().map(|s| s.heard).collect();
        heard.sort_unstable();
        let cut = heard[heard.len() / 2];
        self.sources.retain(|_, s| s.heard > cut);
    }
}

/// The live records of a realm, as they come: made by [`follow`].
///
/// It yields each record once, in the order received, and reports gaps:
/// records a source dropped ([`LogRecord::dropped`]) and sequence numbers
/// that never came. The level is filtered here, after the gaps are
/// counted, so that records of other levels are not taken for losses.
#[derive(Debug)]
pub struct LogFollower {
    session: Session,
    filter: LogFilter,
    rx: mpsc::Receiver<LogRecord>,
    overflow: Arc<AtomicU64>,
    tracker: Tracker,
    held: Option<LogRecord>,
    _subscriber: zenoh::pubsub::Subscriber<()>,
}

/// Follows the records that `filter` takes, from now on. The servers,
/// applications and instances are chosen in the subscription's key; the
/// level here. It returns once the session's server knows of the
/// follower (a round trip), so every record of a layer made after it
/// returns comes.
///
/// # Errors
/// [`Error::Invalid`] for a bad name in the filter, [`Error::Zenoh`];
/// [`Error::ServerUnreachable`] when the session's server does not answer
/// within the session's timeout.
pub async fn follow(session: &Session, filter: LogFilter) -> Result<LogFollower> {
    filter.validate()?;
    let (tx, rx) = mpsc::channel(FOLLOW_QUEUE);
    let overflow = Arc::new(AtomicU64::new(0));
    let subscriber = {
        let overflow = overflow.clone();
        session
            .zenoh()
            .declare_subscriber(filter.key(session))
            .callback(move |sample| {
                if sample.kind() != SampleKind::Put {
                    return;
                }
                match serde_json::from_slice::<LogRecord>(&sample.payload().to_bytes()) {
                    Ok(record) => {
                        if tx.try_send(record).is_err() {
                            overflow.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        tracing::debug!(key = %sample.key_expr(), error = %e, "undecodable log record skipped")
                    }
                }
            })
            .await
            .map_err(Error::Zenoh)?
    };
    // The subscriber is known to the router before this returns: records
    // of a layer made afterwards all come.
    session.sync(session.timeout()).await?;
    Ok(LogFollower {
        session: session.clone(),
        filter,
        rx,
        overflow,
        tracker: Tracker::default(),
        held: None,
        _subscriber: subscriber,
    })
}

impl LogFollower {
    /// The next record or gap, waiting at most `timeout`.
    ///
    /// Cancel-safe: dropping the future loses nothing.
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing came in time; [`Error::Gone`] when
    /// the session closed.
    pub async fn next(&mut self, timeout: Duration) -> Result<LogEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(record) = self.held.take() {
                if self.filter.level <= record.level {
                    return Ok(LogEvent::Record(record));
                }
            }
            let record = match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Err(_) => {
                    return Err(Error::Timeout(format!(
                        "no log record within {}",
                        fmt_duration(timeout)
                    )))
                }
                Ok(None) => return Err(Error::Gone("the log subscription ended".into())),
                Ok(Some(record)) => record,
            };
            match self.tracker.live(&record) {
                None => {}
                Some(Some(gap)) => {
                    self.held = Some(record);
                    return Ok(LogEvent::Gap(gap));
                }
                Some(None) => self.held = Some(record),
            }
        }
    }

    /// Reads what the servers keep (see [`recent`]) with this follower's
    /// filter, and remembers it: those records are not yielded again when
    /// they also arrive live. Call it after [`follow`] and before reading
    /// live records, to print the recent past and then follow, like
    /// `tail -f`: nothing between the two is missed.
    ///
    /// # Errors
    /// As [`recent`].
    pub async fn recent(&mut self, last: Option<u64>, timeout: Duration) -> Result<Vec<LogRecord>> {
        let records = recent(&self.session, &self.filter, last, timeout).await?;
        for r in &records {
            self.tracker.seen(r);
        }
        Ok(records)
    }

    /// Records this follower dropped because its own queue was full (they
    /// also show as gaps).
    pub fn overflowed(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }

    /// Its filter.
    pub fn filter(&self) -> &LogFilter {
        &self.filter
    }
}

/// The records the servers keep that `filter` takes, oldest first; only
/// the latest `last` when given. Every server of the realm is asked at
/// once, unless the filter names one.
///
/// # Errors
/// [`Error::Invalid`] for a bad name in the filter;
/// [`Error::ServerUnreachable`] when no server answered within `timeout`;
/// the first server's error when every server failed.
pub async fn recent(
    session: &Session,
    filter: &LogFilter,
    last: Option<u64>,
    timeout: Duration,
) -> Result<Vec<LogRecord>> {
    filter.validate()?;
    let body = filter.request(last);
    let mut records: Vec<LogRecord> = match &filter.server {
        Some(server) => session.call(server, body, timeout).await?,
        None => ask_every_server(session, body, timeout).await?,
    };
    records.sort_by(|a, b| (a.time_ms, &a.source, a.seq).cmp(&(b.time_ms, &b.source, b.seq)));
    if let Some(last) = last {
        let extra = records.len().saturating_sub(last as usize);
        records.drain(..extra);
    }
    Ok(records)
}

/// Sends `body` to every server of the realm and gathers their records.
async fn ask_every_server(
    session: &Session,
    body: RequestBody,
    timeout: Duration,
) -> Result<Vec<LogRecord>> {
    let payload = serde_json::to_vec(&Request::new(body))
        .map_err(|e| Error::Invalid(format!("cannot encode logs request: {e}")))?;
    let mut replies = session
        .query(
            session.keys().all_controls(),
            payload,
            QueryTarget::All,
            timeout,
        )
        .await?;
    let guard = tokio::time::Instant::now() + timeout + Duration::from_secs(1);
    let (mut records, mut answered, mut failure) = (Vec::new(), 0, None);
    while let Ok(Some(reply)) = tokio::time::timeout_at(guard, replies.recv()).await {
        let Ok(sample) = reply.result() else { continue };
        let key = sample.key_expr().to_string();
        let server = key.split('/').rev().nth(1).unwrap_or_default().to_string();
        let decoded = match serde_json::from_slice::<Response>(&sample.payload().to_bytes()) {
            Ok(Response::Ok(v)) => serde_json::from_value::<Vec<LogRecord>>(v)
                .map_err(|e| Error::Protocol(format!("malformed logs reply from {server}: {e}"))),
            Ok(Response::Err(e)) => Err(Error::from_control(&server, e)),
            Err(e) => Err(Error::Protocol(format!(
                "malformed logs reply from {server}: {e}"
            ))),
        };
        match decoded {
            Ok(mut r) => {
                answered += 1;
                records.append(&mut r);
            }
            Err(e) => {
                tracing::debug!(%server, error = %e, "logs request failed");
                failure.get_or_insert(e);
            }
        }
    }
    match (answered, failure) {
        (0, Some(e)) => Err(e),
        (0, None) => Err(Error::ServerUnreachable {
            endpoint_or_server: session.endpoint().to_string(),
            reason: format!(
                "no troupe server of realm {} answered within {}",
                session.realm(),
                fmt_duration(timeout)
            ),
        }),
        _ => Ok(records),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(source: &str, seq: u64, dropped: u64, level: LogLevel) -> LogRecord {
        LogRecord {
            time_ms: seq,
            level,
            target: "t".into(),
            message: format!("m{seq}"),
            fields: Default::default(),
            host: "h".into(),
            server: Some("s".into()),
            app: Some("a".into()),
            instance: Some(1),
            source: source.into(),
            seq,
            dropped,
        }
    }

    #[test]
    fn gaps_are_drops_and_missing_numbers() {
        let mut t = Tracker::default();
        let info = LogLevel::Info;
        assert_eq!(t.live(&rec("x", 5, 0, info)), Some(None), "joined midway");
        assert_eq!(t.live(&rec("x", 6, 0, info)), Some(None));
        let gap = t.live(&rec("x", 9, 4, info)).unwrap().unwrap();
        assert_eq!(
            (gap.dropped, gap.lost, gap.origin.as_str()),
            (4, 2, "s/a/1")
        );
        assert_eq!(t.live(&rec("x", 9, 0, info)), None, "a duplicate");
        assert_eq!(t.live(&rec("x", 7, 0, info)), None, "a late one");
        // Another source, and the same instance restarted: its own numbers.
        assert_eq!(t.live(&rec("y", 1, 0, info)), Some(None));
        assert_eq!(t.live(&rec("y", 2, 0, info)), Some(None));
    }

    #[test]
    fn records_read_from_the_servers_are_not_yielded_again() {
        let mut t = Tracker::default();
        for seq in 1..=3 {
            t.seen(&rec("x", seq, 0, LogLevel::Warn));
        }
        assert_eq!(t.live(&rec("x", 2, 0, LogLevel::Info)), None);
        assert_eq!(t.live(&rec("x", 3, 0, LogLevel::Info)), None);
        // Info records were not read (a level filter): no loss is claimed.
        assert_eq!(t.live(&rec("x", 6, 0, LogLevel::Info)), Some(None));
        assert_eq!(t.live(&rec("x", 7, 0, LogLevel::Info)), Some(None));
    }

    #[test]
    fn the_oldest_sources_are_forgotten_first() {
        let mut t = Tracker::default();
        for i in 0..MAX_SOURCES {
            t.live(&rec(&format!("s{i}"), 1, 0, LogLevel::Info));
        }
        t.live(&rec("s9999", 2, 0, LogLevel::Info));
        t.live(&rec("new", 1, 0, LogLevel::Info));
        assert!(
            t.sources.len() <= MAX_SOURCES / 2 + 2,
            "{}",
            t.sources.len()
        );
        assert!(t.sources.contains_key("s9999"));
        assert!(!t.sources.contains_key("s0"));
    }

    #[test]
    fn filters_match_and_ask() {
        let f = LogFilter {
            level: LogLevel::Warn,
            app: Some("a".into()),
            ..LogFilter::default()
        };
        assert!(f.matches(&rec("x", 1, 0, LogLevel::Error)));
        assert!(!f.matches(&rec("x", 1, 0, LogLevel::Info)));
        let mut other = rec("x", 1, 0, LogLevel::Error);
        other.app = Some("b".into());
        assert!(!f.matches(&other));
        assert_eq!(
            f.request(Some(5)),
            RequestBody::Logs {
                level: Some(LogLevel::Warn),
                app: Some("a".into()),
                instance: None,
                last: Some(5)
            }
        );
        assert_eq!(
            LogFilter::default().request(None),
            RequestBody::Logs {
                level: None,
                app: None,
                instance: None,
                last: None
            }
        );
        let bad = LogFilter {
            app: Some("a/*".into()),
            ..LogFilter::default()
        };
        assert!(matches!(bad.validate(), Err(Error::Invalid(_))));
    }
}
