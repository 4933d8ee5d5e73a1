//! The output stream of an instance: the lines kept by the server, then the
//! live ones, without duplicates, repaired from the server's ring when live
//! lines go missing.

use crate::error::{fmt_duration, Error, Result};
use crate::feed::{self, Feed};
use crate::session::Session;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt as _};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use troupe_protocol::{OutputBatch, OutputLine, RequestBody};
use zenoh::pubsub::Subscriber;

/// Live batches queued before the reader takes them. Beyond this, batches
/// are dropped on Zenoh's thread (never blocking it) and the stream fetches
/// the missing lines from the server's ring.
const LIVE_QUEUE: usize = 1024;

/// The output of an instance ([`Instance::output`](crate::Instance::output)).
///
/// A [`Stream`] of [`OutputLine`]s in sequence order, each line once: first
/// the lines the server still keeps, then the live ones. It ends after the
/// instance's last line (the server marks it), or when the server dies (then
/// [`OutputStream::next_timeout`] says [`Error::ServerDied`] once).
///
/// Lines that left the server's ring before the stream could read them are
/// counted by [`OutputStream::dropped`]; lines lost later for good (rare:
/// the ring overflowed while this reader lagged) by [`OutputStream::missed`].
pub struct OutputStream {
    session: Session,
    server: String,
    id: u64,
    timeout: Duration,
    rx: mpsc::Receiver<Feed<OutputBatch>>,
    overflow: Arc<AtomicBool>,
    pending: VecDeque<OutputLine>,
    last_seq: u64,
    dropped_upto: u64,
    missed: u64,
    /// The sequence number of the line whose gap was last repaired, so that a
    /// gap the ring cannot fill is accepted rather than re-fetched for ever.
    repaired_at: u64,
    refill: Option<BoxFuture<'static, Result<OutputBatch>>>,
    ending: bool,
    done: bool,
    server_died: bool,
    died_reported: bool,
    _live: Subscriber<()>,
    _alive: Subscriber<()>,
}

impl std::fmt::Debug for OutputStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputStream")
            .field("server", &self.server)
            .field("id", &self.id)
            .field("last_seq", &self.last_seq)
            .field("dropped_upto", &self.dropped_upto)
            .field("missed", &self.missed)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl OutputStream {
    /// Subscribes to the live output of instance `id` on `key`, then fetches
    /// the lines the server keeps.
    pub(crate) async fn open(
        session: &Session,
        server: &str,
        id: u64,
        key: String,
        timeout: Duration,
    ) -> Result<OutputStream> {
        let (tx, rx) = mpsc::channel(LIVE_QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        // The subscriber comes first: what is published from now on is seen
        // live, what was published before is in the history fetched below.
        let live = {
            let tx = tx.clone();
            let overflow = overflow.clone();
            feed::subscribe_json(session, key, move |batch: OutputBatch| {
                if tx.try_send(Feed::Item(batch)).is_err() {
                    overflow.store(true, Ordering::Release);
                }
            })
            .await?
        };
        let alive = {
            let overflow = overflow.clone();
            feed::watch_server(session, server, move || {
                if tx.try_send(Feed::ServerDied).is_err() {
                    // The stream still ends: it re-reads from the server when
                    // the queue runs dry, and finds none.
                    overflow.store(true, Ordering::Release);
                }
            })
            .await?
        };
        let mut stream = OutputStream {
            session: session.clone(),
            server: server.to_string(),
            id,
            timeout,
            rx,
            overflow,
            pending: VecDeque::new(),
            last_seq: 0,
            dropped_upto: 0,
            missed: 0,
            repaired_at: 0,
            refill: None,
            ending: false,
            done: false,
            server_died: false,
            died_reported: false,
            _live: live,
            _alive: alive,
        };
        let history = fetch(&stream.session, &stream.server, id, 0, timeout).await?;
        stream.absorb(history);
        Ok(stream)
    }

    /// The next line, waiting at most `timeout`. `Ok(None)` once the stream
    /// has ended.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no line came in time; [`Error::ServerDied`]
    /// (once) when the stream ended because the server died.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<OutputLine>> {
        match tokio::time::timeout(timeout, self.next()).await {
            Err(_) => Err(Error::Timeout(format!(
                "no output line within {}",
                fmt_duration(timeout)
            ))),
            Ok(Some(line)) => Ok(Some(line)),
            Ok(None) if self.server_died && !self.died_reported => {
                self.died_reported = true;
                Err(Error::ServerDied(self.server.clone()))
            }
            Ok(None) => Ok(None),
        }
    }

    /// Lines with a sequence number at or below this one had left the
    /// server's ring before this stream could read them (0: none).
    pub fn dropped(&self) -> u64 {
        self.dropped_upto
    }

    /// How many lines after the first one read were lost for good (0 unless
    /// the reader lagged behind so far that the server's ring overflowed).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The sequence number of the last line yielded (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Whether the stream ended because the server died.
    pub fn server_died(&self) -> bool {
        self.server_died
    }

    /// Merges a batch fetched from the server's ring into the pending lines.
    fn absorb(&mut self, batch: OutputBatch) {
        self.dropped_upto = self.dropped_upto.max(batch.dropped_upto);
        if batch.end {
            self.ending = true;
        }
        let last = self.last_seq;
        let mut lines: Vec<OutputLine> = batch
            .lines
            .into_iter()
            .chain(self.pending.drain(..))
            .filter(|l| l.seq > last)
            .collect();
        lines.sort_by_key(|l| l.seq);
        lines.dedup_by_key(|l| l.seq);
        self.pending = lines.into();
    }

    /// Starts fetching the lines after the last one yielded.
    fn start_refill(&mut self) {
        let (session, server) = (self.session.clone(), self.server.clone());
        let (id, after, timeout) = (self.id, self.last_seq, self.timeout);
        self.refill = Some(Box::pin(async move {
            fetch(&session, &server, id, after, timeout).await
        }));
    }

    fn finish(&mut self, server_died: bool) -> Poll<Option<OutputLine>> {
        self.done = true;
        self.server_died |= server_died;
        self.refill = None;
        self.pending.clear();
        Poll::Ready(None)
    }
}

/// Fetches the kept lines of instance `id` after `after_seq`.
async fn fetch(
    session: &Session,
    server: &str,
    id: u64,
    after_seq: u64,
    timeout: Duration,
) -> Result<OutputBatch> {
    session
        .call(server, RequestBody::Output { id, after_seq }, timeout)
        .await
}

impl Stream for OutputStream {
    type Item = OutputLine;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<OutputLine>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            if let Some(refill) = this.refill.as_mut() {
                let result = match refill.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => r,
                };
                this.refill = None;
                match result {
                    Ok(batch) => this.absorb(batch),
                    Err(e) if e.is_server_gone() => return this.finish(true),
                    // The server forgot the instance: nothing more will come.
                    Err(e) if e.is_not_found() => return this.finish(false),
                    Err(e) => {
                        tracing::warn!(server = %this.server, id = this.id, error = %e,
                            "cannot fetch missing output lines");
                    }
                }
                continue;
            }
            if let Some(line) = this.pending.front() {
                let seq = line.seq;
                if seq <= this.last_seq {
                    this.pending.pop_front();
                    continue;
                }
                let expected = this.last_seq.max(this.dropped_upto) + 1;
                if seq > expected {
                    if this.repaired_at != seq {
                        // Live lines went missing: take them from the ring.
                        this.repaired_at = seq;
                        this.start_refill();
                        continue;
                    }
                    // The ring no longer has them either.
                    if this.last_seq == 0 {
                        this.dropped_upto = seq - 1;
                    } else {
                        this.missed += seq - expected;
                        tracing::warn!(server = %this.server, id = this.id,
                            lost = seq - expected, "output lines lost");
                    }
                }
                this.last_seq = seq;
                return Poll::Ready(this.pending.pop_front());
            }
            if this.ending {
                return this.finish(false);
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Feed::Item(batch))) => {
                    this.pending.extend(batch.lines);
                    if batch.end {
                        this.ending = true;
                    }
                }
                Poll::Ready(Some(Feed::ServerDied)) => return this.finish(true),
                Poll::Ready(None) => return this.finish(false),
                Poll::Pending => {
                    if this.overflow.swap(false, Ordering::AcqRel) {
                        // Batches were dropped (maybe the last one): re-read
                        // from the ring, which also says whether it ended.
                        this.start_refill();
                        continue;
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

impl futures::stream::FusedStream for OutputStream {
    fn is_terminated(&self) -> bool {
        self.done
    }
}
