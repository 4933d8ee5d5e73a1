//! A publisher's outbox: how a [`Publisher`](crate::Publisher) under load
//! packs small messages into batches.
//!
//! A message sent while the publisher is idle is put at once, from the
//! sending task, as its own sample: no added latency. A message that comes
//! less than [`BUSY_GAP`] after the previous one, or while earlier ones
//! still wait here, goes to the outbox instead, and the publisher's sending
//! thread (`troupe-pub`, started on first use) puts what it finds there:
//! consecutive small messages as one `Batch` sample (see
//! [`troupe_protocol::frame`]), the others one by one. So a fast stream of
//! small messages costs one Zenoh sample per batch instead of one per
//! message, on both ends, and the order is kept: a message is put directly
//! only when nothing waits here and the thread is not putting.
//!
//! The outbox holds the publisher's liveliness token, which goes only after
//! the thread put what was sent: a dropped publisher's messages all reach
//! its subscribers before they see it go.
//!
//! The outbox is bounded ([`MAX_QUEUED`] messages, [`MAX_QUEUED_BYTES`]):
//! a sender that finds it full waits for the thread, as it would wait for
//! Zenoh's own queue.

use crate::endpoint;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use troupe_protocol::frame::{batch_push, Frame, FrameType};
use zenoh::bytes::ZBytes;
use zenoh::liveliness::LivelinessToken;
use zenoh::Wait as _;

/// Messages closer together than this are a stream worth batching.
pub(crate) const BUSY_GAP: Duration = Duration::from_micros(5);

/// Messages whose body is at most this long may share a batch.
pub(crate) const SMALL: usize = 8 << 10;

/// A batch is put once the next message would take it past this many
/// bytes. Of 8, 16, 32 and 60 KiB, about 16 KiB gave the most messages per
/// second at 8 B and 1 KiB (BENCHMARKS.md): smaller batches cost more
/// samples, larger ones let the two ends overlap less. 16,000 rather than
/// 16 KiB: four such samples, with their headers, fit in one of Zenoh's
/// 64 KiB batches (16 KiB ones went three to a batch; 1 KiB about 5% less).
const BATCH_BYTES: usize = 16_000;

/// Most messages the outbox holds before senders wait.
pub(crate) const MAX_QUEUED: usize = 16_384;

/// Most bytes of bodies the outbox holds before senders wait.
pub(crate) const MAX_QUEUED_BYTES: usize = 32 << 20;

/// A message waiting in the outbox.
struct Out {
    frame: Frame,
    body: ZBytes,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Out>,
    /// Bytes of bodies queued.
    bytes: usize,
    /// The thread is putting what it took from the queue.
    busy: bool,
    /// The thread waits for work.
    sleeping: bool,
    /// The thread exists.
    started: bool,
    /// The publisher is gone: put what is left and stop.
    closed: bool,
    /// Why the last put of the thread failed, for the next send to report.
    failed: Option<String>,
}

impl State {
    /// Whether a message of `len` bytes must wait for room (one always fits
    /// in an empty outbox).
    fn is_full(&self, len: usize) -> bool {
        !self.queue.is_empty()
            && (self.queue.len() >= MAX_QUEUED || self.bytes + len > MAX_QUEUED_BYTES)
    }
}

struct Shared {
    /// The publisher's liveliness token: dropped with the last of the
    /// shared state, so after the thread put every message sent before the
    /// publisher was dropped. Subscribers take its withdrawal for the
    /// publisher's going; it must not overtake those messages.
    _token: LivelinessToken,
    state: Mutex<State>,
    work: Condvar,
    /// The thread put something, or stopped.
    progress: Notify,
    /// Messages put inside batches so far.
    batched: AtomicU64,
}

/// See the [module](self) documentation.
pub(crate) struct Outbox {
    shared: Arc<Shared>,
    zpub: Arc<zenoh::pubsub::Publisher<'static>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

/// What [`Outbox::offer`] did with a message.
pub(crate) enum Offer {
    /// Queued: the thread puts it.
    Queued,
    /// Not taken: nothing waits, put it directly.
    Direct(Frame, ZBytes),
    /// Not taken: the outbox is full; wait until it
    /// [has room](Outbox::has_room) and offer it again.
    Full(Frame, ZBytes),
}

impl Outbox {
    pub(crate) fn new(
        zpub: Arc<zenoh::pubsub::Publisher<'static>>,
        token: LivelinessToken,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                _token: token,
                state: Mutex::new(State::default()),
                work: Condvar::new(),
                progress: Notify::new(),
                batched: AtomicU64::new(0),
            }),
            zpub,
        }
    }

    /// Takes a message to put, unless nothing waits and the stream is not
    /// `busy` or the message is not small (then the caller puts it
    /// directly, in order).
    ///
    /// # Errors
    /// Why the thread's last put failed (reported once).
    pub(crate) fn offer(
        &self,
        frame: Frame,
        body: ZBytes,
        busy: bool,
    ) -> std::result::Result<Offer, String> {
        let len = body.len();
        let small = len <= SMALL;
        let mut st = self.shared.state.lock().expect("outbox lock");
        if let Some(why) = st.failed.take() {
            return Err(why);
        }
        // A large message gains nothing from the thread: put it from here
        // when nothing waits before it.
        let idle = st.queue.is_empty() && !st.busy;
        if idle && (!busy || !small) {
            return Ok(Offer::Direct(frame, body));
        }
        if st.is_full(len) {
            return Ok(Offer::Full(frame, body));
        }
        st.queue.push_back(Out { frame, body });
        st.bytes += len;
        if !st.started {
            st.started = true;
            let shared = self.shared.clone();
            let zpub = self.zpub.clone();
            let spawned = std::thread::Builder::new()
                .name("troupe-pub".into())
                .spawn(move || run(&shared, &zpub));
            if let Err(e) = spawned {
                // No thread: put what the outbox holds from here (the
                // caller holds the publisher's lock, so nothing comes
                // meanwhile); the next queued message tries again.
                tracing::warn!(error = %e, "no publishing thread: the messages go from the sending task");
                st.started = false;
                let taken = std::mem::take(&mut st.queue);
                st.bytes = 0;
                drop(st);
                put_all(&self.zpub, taken, &mut Vec::new(), &self.shared.batched)?;
                return Ok(Offer::Queued);
            }
        } else if st.sleeping {
            self.shared.work.notify_one();
        }
        Ok(Offer::Queued)
    }

    /// Waits until the thread made progress; take it, enable it, then
    /// check the state, so that no wake-up is missed.
    pub(crate) fn progress(&self) -> tokio::sync::futures::Notified<'_> {
        self.shared.progress.notified()
    }

    /// How many messages went out inside batches so far.
    pub(crate) fn batched(&self) -> u64 {
        self.shared.batched.load(Ordering::Relaxed)
    }

    /// Why the thread's last put failed, if no send reported it yet (taken).
    pub(crate) fn take_failure(&self) -> Option<String> {
        self.shared.state.lock().expect("outbox lock").failed.take()
    }

    /// Whether a message of `len` bytes would be taken now.
    pub(crate) fn has_room(&self, len: usize) -> bool {
        !self.shared.state.lock().expect("outbox lock").is_full(len)
    }

    /// Whether nothing waits and nothing is being put.
    pub(crate) fn is_idle(&self) -> bool {
        let st = self.shared.state.lock().expect("outbox lock");
        st.queue.is_empty() && !st.busy
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // The thread puts what is left, then stops.
        let mut st = self.shared.state.lock().expect("outbox lock");
        st.closed = true;
        self.shared.work.notify_one();
    }
}

/// The sending thread: puts what the outbox holds until it is closed and
/// empty.
fn run(shared: &Shared, zpub: &zenoh::pubsub::Publisher<'static>) {
    let mut batch = Vec::new();
    loop {
        let taken: VecDeque<Out> = {
            let mut st = shared.state.lock().expect("outbox lock");
            st.busy = false;
            while st.queue.is_empty() {
                if st.closed {
                    drop(st);
                    shared.progress.notify_waiters();
                    return;
                }
                st.sleeping = true;
                shared.progress.notify_waiters();
                st = shared.work.wait(st).expect("outbox lock");
                st.sleeping = false;
            }
            st.busy = true;
            st.bytes = 0;
            std::mem::take(&mut st.queue)
        };
        if let Err(e) = put_all(zpub, taken, &mut batch, &shared.batched) {
            tracing::debug!(error = %e, "publishing thread: put failed");
            shared.state.lock().expect("outbox lock").failed = Some(e);
        }
        shared.progress.notify_waiters();
    }
}

/// Puts `taken` in order: runs of small messages as batches (encoded in
/// `batch`), the others one by one, and so is a run of one.
fn put_all(
    zpub: &zenoh::pubsub::Publisher<'static>,
    taken: VecDeque<Out>,
    batch: &mut Vec<u8>,
    batched: &AtomicU64,
) -> std::result::Result<(), String> {
    // The run being encoded: its first message, how many, and their flags.
    let mut run: Option<(Out, u64, u8)> = None;
    for out in taken {
        let small = out.body.len() <= SMALL;
        if let Some((_, _, flags)) = &run {
            if !small || batch.len() + out.body.len() > BATCH_BYTES || out.frame.flags != *flags {
                flush(zpub, run.take(), batch, batched)?;
            }
        }
        if !small {
            put_one(zpub, out)?;
            continue;
        }
        if batch_push(batch, &out.frame, &out.body.to_bytes()).is_err() {
            // A frame header too long for a batch: on its own.
            flush(zpub, run.take(), batch, batched)?;
            put_one(zpub, out)?;
            continue;
        }
        match &mut run {
            Some((_, count, _)) => *count += 1,
            None => {
                let flags = out.frame.flags;
                run = Some((out, 1, flags));
            }
        }
    }
    flush(zpub, run, batch, batched)
}

/// Puts the run encoded in `batch`: a batch, or its one message alone.
fn flush(
    zpub: &zenoh::pubsub::Publisher<'static>,
    run: Option<(Out, u64, u8)>,
    batch: &mut Vec<u8>,
    batched: &AtomicU64,
) -> std::result::Result<(), String> {
    match run {
        None => Ok(()),
        Some((first, 1, _)) => {
            batch.clear();
            put_one(zpub, first)
        }
        Some((first, count, flags)) => {
            // The batch goes with the sample; the next one starts as large.
            let encoded = std::mem::replace(batch, Vec::with_capacity(batch.len()));
            let mut frame = Frame::new(FrameType::Batch, first.frame.seq);
            frame.flags = flags;
            batched.fetch_add(count, Ordering::Relaxed);
            let att = endpoint::attachment(&frame).map_err(|e| e.to_string())?;
            zpub.put(ZBytes::from(encoded))
                .attachment(att)
                .wait()
                .map_err(|e| e.to_string())
        }
    }
}

/// Puts one message as its own sample.
fn put_one(zpub: &zenoh::pubsub::Publisher<'static>, out: Out) -> std::result::Result<(), String> {
    let att = endpoint::attachment(&out.frame).map_err(|e| e.to_string())?;
    zpub.put(out.body)
        .attachment(att)
        .wait()
        .map_err(|e| e.to_string())
}
