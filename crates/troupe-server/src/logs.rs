//! The log records a server keeps: the latest records published under its
//! name (`<realm>/@/log/<server>/**`), its instances' and those of other
//! processes that file their records under it, answered by the `logs`
//! control request.
//!
//! A Zenoh callback decodes each record and pushes it into a ring bounded
//! both in records and in bytes, under a short lock: a flood of records
//! costs the server a bounded amount of memory, and the oldest records
//! go first.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use troupe_protocol::keys::Keys;
use troupe_protocol::log::{LogLevel, LogRecord};
use zenoh::sample::SampleKind;

/// The most records kept.
const RING_RECORDS: usize = 1000;
/// The most bytes kept (as published, in JSON).
const RING_BYTES: usize = 1024 * 1024;

/// The latest records, oldest first.
#[derive(Debug)]
pub(crate) struct Recent {
    ring: Mutex<Ring>,
}

#[derive(Debug)]
struct Ring {
    records: VecDeque<(LogRecord, usize)>,
    bytes: usize,
    max_records: usize,
    max_bytes: usize,
}

impl Default for Recent {
    fn default() -> Self {
        Self::with_bounds(RING_RECORDS, RING_BYTES)
    }
}

impl Recent {
    fn with_bounds(max_records: usize, max_bytes: usize) -> Self {
        Self {
            ring: Mutex::new(Ring {
                records: VecDeque::new(),
                bytes: 0,
                max_records,
                max_bytes,
            }),
        }
    }

    /// Keeps `record`, which took `size` bytes on the wire; the oldest
    /// records go when a bound is passed.
    fn push(&self, record: LogRecord, size: usize) {
        let mut ring = self.ring.lock().expect("log ring lock");
        ring.records.push_back((record, size));
        ring.bytes += size;
        while ring.records.len() > ring.max_records || ring.bytes > ring.max_bytes {
            match ring.records.pop_front() {
                Some((_, size)) => ring.bytes -= size,
                None => break,
            }
        }
    }

    /// The kept records that pass the filter, oldest first; only the
    /// latest `last` of them when given.
    pub(crate) fn query(
        &self,
        level: Option<LogLevel>,
        app: Option<&str>,
        instance: Option<u64>,
        last: Option<u64>,
    ) -> Vec<LogRecord> {
        let ring = self.ring.lock().expect("log ring lock");
        let take = last.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let mut out: Vec<LogRecord> = ring
            .records
            .iter()
            .rev()
            .map(|(r, _)| r)
            .filter(|r| {
                level.is_none_or(|l| r.level >= l)
                    && app.is_none_or(|a| r.app.as_deref() == Some(a))
                    && instance.is_none_or(|i| r.instance == Some(i))
            })
            .take(take)
            .cloned()
            .collect();
        out.reverse();
        out
    }
}

/// Subscribes to the records filed under `server` and keeps them in
/// `recent`. The returned task holds the subscription until it is aborted.
///
/// # Errors
/// When Zenoh cannot declare the subscriber.
pub(crate) async fn start(
    session: &zenoh::Session,
    keys: &Keys,
    server: &str,
    recent: Arc<Recent>,
) -> zenoh::Result<JoinHandle<()>> {
    let subscriber = session
        .declare_subscriber(keys.all_logs(server))
        .callback(move |sample| {
            if sample.kind() != SampleKind::Put {
                return;
            }
            let bytes = sample.payload().to_bytes();
            match serde_json::from_slice::<LogRecord>(&bytes) {
                Ok(record) => recent.push(record, bytes.len()),
                Err(e) => {
                    tracing::debug!(key = %sample.key_expr(), error = %e, "undecodable log record skipped")
                }
            }
        })
        .await?;
    Ok(tokio::spawn(async move {
        let _subscriber = subscriber;
        std::future::pending::<()>().await;
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, level: LogLevel, app: Option<&str>, instance: Option<u64>) -> LogRecord {
        LogRecord {
            time_ms: seq,
            level,
            target: "t".into(),
            message: format!("m{seq}"),
            fields: Default::default(),
            host: "h".into(),
            server: Some("s".into()),
            app: app.map(String::from),
            instance,
            source: "z".into(),
            seq,
            dropped: 0,
        }
    }

    fn seqs(records: &[LogRecord]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn the_ring_keeps_the_latest_records_within_both_bounds() {
        let recent = Recent::with_bounds(3, 1000);
        for seq in 1..=5 {
            recent.push(rec(seq, LogLevel::Info, Some("a"), Some(1)), 10);
        }
        assert_eq!(seqs(&recent.query(None, None, None, None)), [3, 4, 5]);
        recent.push(rec(6, LogLevel::Info, Some("a"), Some(1)), 995);
        assert_eq!(seqs(&recent.query(None, None, None, None)), [6]);
        recent.push(rec(7, LogLevel::Info, Some("a"), Some(1)), 2000);
        assert!(recent.query(None, None, None, None).is_empty());
    }

    #[test]
    fn queries_filter_then_take_the_latest() {
        let recent = Recent::default();
        recent.push(rec(1, LogLevel::Warn, Some("a"), Some(1)), 10);
        recent.push(rec(2, LogLevel::Info, Some("a"), Some(1)), 10);
        recent.push(rec(3, LogLevel::Error, Some("b"), Some(2)), 10);
        recent.push(rec(4, LogLevel::Warn, None, None), 10);
        recent.push(rec(5, LogLevel::Debug, Some("a"), Some(1)), 10);
        let q = |level, app, instance, last| seqs(&recent.query(level, app, instance, last));
        assert_eq!(q(None, None, None, None), [1, 2, 3, 4, 5]);
        assert_eq!(q(Some(LogLevel::Warn), None, None, None), [1, 3, 4]);
        assert_eq!(q(None, Some("a"), None, None), [1, 2, 5]);
        assert_eq!(q(None, None, Some(2), None), [3]);
        assert_eq!(q(Some(LogLevel::Info), Some("a"), None, Some(1)), [2]);
        assert_eq!(q(None, None, None, Some(2)), [4, 5]);
        assert!(q(None, Some("c"), None, None).is_empty());
    }
}
