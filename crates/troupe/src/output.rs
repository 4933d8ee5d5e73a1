//! The output stream of an instance: the lines kept by the server, then the
//! live ones, without duplicates, repaired from the server's ring when live
//! lines go missing, and ended by the server's end marker or the instance's
//! terminal state.

use crate::error::{fmt_duration, Error, Result};
use crate::feed;
use crate::session::Session;
use futures::future::BoxFuture;
use futures::{Stream, StreamExt as _};
use std::collections::VecDeque;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::mpsc;
use troupe_protocol::{OutputBatch, OutputLine, RequestBody, StateEvent};
use zenoh::pubsub::Subscriber;

/// Live batches queued before the reader takes them. Beyond this, batches
/// are dropped on Zenoh's thread (never blocking it) and the stream fetches
/// the missing lines from the server's ring.
const LIVE_QUEUE: usize = 1024;

/// After this long without a live line, the stream asks the server's ring
/// for lines after the last one it has. The server publishes output with
/// `Drop` congestion control, so a batch can be lost under load; a gap is
/// usually noticed at the next line, but when the lost batch was the last
/// one for a while, only this check finds it.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What the subscriptions of an output stream deliver.
#[derive(Debug)]
enum Live {
    /// A batch published on the output key.
    Batch(OutputBatch),
    /// The instance reached a terminal state.
    Terminal,
    /// The server's liveliness token went away.
    ServerDied,
}

/// Flags set on Zenoh's thread when the queue is full. The queue is then
/// not empty, so the reader is woken and sees them once it has drained it.
#[derive(Debug, Default)]
struct Flags {
    overflow: AtomicBool,
    terminal: AtomicBool,
}

/// Why lines are being fetched from the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// Lines went missing from the live stream.
    Gap,
    /// The output ended (end marker or terminal state): fetch the tail, then end.
    Last,
}

/// The output of an instance ([`Instance::output`](crate::Instance::output)).
///
/// A [`Stream`] of [`OutputLine`]s in sequence order, each line once: first
/// the lines the server still keeps, then the live ones. It ends after the
/// instance's last line, or early when the server dies or stops answering
/// (then [`OutputStream::next_timeout`] says why, once).
///
/// The stream also works when the server does not publish the output live
/// (`stream = false`): it then reads the kept lines when the instance ends.
/// Live lines that went missing are fetched from the server's ring. Lines
/// that had left the ring before the first one read are counted by
/// [`OutputStream::dropped`]; lines lost later for good (rare: the ring
/// overflowed while this reader lagged) by [`OutputStream::missed`].
pub struct OutputStream {
    session: Session,
    server: String,
    id: u64,
    timeout: Duration,
    rx: mpsc::Receiver<Live>,
    flags: Arc<Flags>,
    pending: VecDeque<OutputLine>,
    last_seq: u64,
    dropped_upto: u64,
    missed: u64,
    /// The sequence number of the line whose gap was last repaired, so that a
    /// gap the ring cannot fill is accepted rather than re-fetched for ever.
    repaired_at: u64,
    fetch: Option<(Fetch, BoxFuture<'static, Result<OutputBatch>>)>,
    /// The output ended: fetch its tail from the ring, then end.
    last_due: bool,
    /// Everything is in `pending`: end once it is yielded.
    ending: bool,
    done: bool,
    server_died: bool,
    /// Why the stream ended early, until `next_timeout` reports it.
    failure: Option<Error>,
    /// When to check the ring if the live stream stays quiet ([`IDLE_CHECK`]).
    idle: Pin<Box<tokio::time::Sleep>>,
    _subscribers: [Subscriber<()>; 3],
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

/// Queues `item`, or raises `flag` when the queue is full.
fn push(tx: &mpsc::Sender<Live>, item: Live, flag: &AtomicBool) {
    if tx.try_send(item).is_err() {
        flag.store(true, Ordering::Release);
    }
}

impl OutputStream {
    /// Subscribes to the live output of instance `id` of `app`, then fetches
    /// the lines the server keeps.
    pub(crate) async fn open(
        session: &Session,
        server: &str,
        app: &str,
        id: u64,
        timeout: Duration,
    ) -> Result<OutputStream> {
        let keys = session.keys();
        let (tx, rx) = mpsc::channel(LIVE_QUEUE);
        let flags = Arc::new(Flags::default());
        // The subscribers come first: what is published from now on is seen
        // live, what was published before is in the history fetched below.
        let live = {
            let (tx, flags) = (tx.clone(), flags.clone());
            feed::subscribe_json(session, keys.output(server, app, id), move |b| {
                push(&tx, Live::Batch(b), &flags.overflow);
            })
            .await?
        };
        let events = {
            let (tx, flags) = (tx.clone(), flags.clone());
            let key = keys.events(server, app, id);
            feed::subscribe_json(session, key, move |ev: StateEvent| {
                if ev.state.is_terminal() {
                    push(&tx, Live::Terminal, &flags.terminal);
                }
            })
            .await?
        };
        let alive = {
            let flags = flags.clone();
            feed::watch_server(session, server, move |alive| {
                if !alive {
                    // Should the queue be full, the stream still ends: it
                    // fetches from the ring when the queue runs dry, and the
                    // server does not answer.
                    push(&tx, Live::ServerDied, &flags.overflow);
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
            flags,
            pending: VecDeque::new(),
            last_seq: 0,
            dropped_upto: 0,
            missed: 0,
            repaired_at: 0,
            fetch: None,
            last_due: false,
            ending: false,
            done: false,
            server_died: false,
            failure: None,
            idle: Box::pin(tokio::time::sleep(IDLE_CHECK)),
            _subscribers: [live, events, alive],
        };
        let history = fetch(&stream.session, &stream.server, id, 0, timeout).await?;
        stream.absorb(history);
        Ok(stream)
    }

    /// The next line, waiting at most `timeout`. `Ok(None)` once the stream
    /// has ended.
    ///
    /// # Errors
    /// [`Error::Timeout`] when no line came in time. Once, when the stream
    /// ended early: [`Error::ServerDied`] when the server died,
    /// [`Error::ServerUnreachable`] when it stopped answering.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<OutputLine>> {
        match tokio::time::timeout(timeout, self.next()).await {
            Err(_) => Err(Error::Timeout(format!(
                "no output line within {}",
                fmt_duration(timeout)
            ))),
            Ok(Some(line)) => Ok(Some(line)),
            Ok(None) => match self.failure.take() {
                Some(e) => Err(e),
                None => Ok(None),
            },
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
        if self.last_seq == 0 {
            self.dropped_upto = self.dropped_upto.max(batch.dropped_upto);
        }
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
    fn start_fetch(&mut self, why: Fetch) {
        let (session, server) = (self.session.clone(), self.server.clone());
        let (id, after, timeout) = (self.id, self.last_seq, self.timeout);
        let future = async move { fetch(&session, &server, id, after, timeout).await };
        self.fetch = Some((why, Box::pin(future)));
    }

    /// Ends the stream, early when `failure` says why.
    fn finish(&mut self, failure: Option<Error>) -> Poll<Option<OutputLine>> {
        self.done = true;
        self.server_died = matches!(failure, Some(Error::ServerDied(_)));
        self.failure = failure;
        self.fetch = None;
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
            if let Some((why, fetch)) = this.fetch.as_mut() {
                let (why, result) = match fetch.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(r) => (*why, r),
                };
                this.fetch = None;
                match result {
                    Ok(batch) => this.absorb(batch),
                    Err(e) if e.is_server_gone() => return this.finish(Some(e)),
                    // The server forgot the instance: nothing more will come.
                    Err(e) if e.is_not_found() => return this.finish(None),
                    Err(e) => {
                        tracing::warn!(server = %this.server, id = this.id, error = %e,
                            "cannot fetch output lines from the server");
                    }
                }
                if why == Fetch::Last {
                    // The output is over whatever the ring said.
                    this.ending = true;
                }
                continue;
            }
            if let Some(line) = this.pending.front() {
                let seq = line.seq;
                if seq <= this.last_seq {
                    this.pending.pop_front();
                    continue;
                }
                let expected = if this.last_seq == 0 {
                    this.dropped_upto + 1
                } else {
                    this.last_seq + 1
                };
                if seq > expected {
                    if this.repaired_at != seq {
                        // Lines went missing: take them from the ring.
                        this.repaired_at = seq;
                        this.start_fetch(Fetch::Gap);
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
                return this.finish(None);
            }
            if this.last_due {
                // Lines published just before the end may have been dropped
                // on the way, or not published at all: the ring has them.
                this.last_due = false;
                this.start_fetch(Fetch::Last);
                continue;
            }
            match this.rx.poll_recv(cx) {
                Poll::Ready(Some(Live::Batch(batch))) => {
                    let next_check = tokio::time::Instant::now() + IDLE_CHECK;
                    this.idle.as_mut().reset(next_check);
                    this.pending.extend(batch.lines);
                    this.last_due |= batch.end;
                }
                Poll::Ready(Some(Live::Terminal)) => this.last_due = true,
                Poll::Ready(Some(Live::ServerDied)) => {
                    return this.finish(Some(Error::ServerDied(this.server.clone())))
                }
                Poll::Ready(None) => return this.finish(None),
                Poll::Pending => {
                    if this.flags.terminal.swap(false, Ordering::AcqRel) {
                        this.last_due = true;
                        continue;
                    }
                    if this.flags.overflow.swap(false, Ordering::AcqRel) {
                        // Batches were dropped here: re-read from the ring.
                        this.start_fetch(Fetch::Gap);
                        continue;
                    }
                    if this.idle.as_mut().poll(cx).is_ready() {
                        // Quiet for a while: a lost last batch is in the ring.
                        let next_check = tokio::time::Instant::now() + IDLE_CHECK;
                        this.idle.as_mut().reset(next_check);
                        this.start_fetch(Fetch::Gap);
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
