//! Publisher / subscriber: [`Publisher`] (made by
//! [`This::publisher`](crate::This::publisher)) and [`Subscriber`] (made by
//! [`Instance::subscriber`](crate::Instance::subscriber)).
//!
//! Every message carries a sequence number. A subscriber declares its Zenoh
//! subscriber before its liveliness token, so a publisher that has seen the
//! token knows that the subscriber receives what it publishes from then on:
//! that is how [`Publisher::wait_for_subscribers`] makes startup lossless.
//!
//! A *synchronised* publisher is also flow-controlled: each subscriber
//! acknowledges what its application consumed, every [`ACK_EVERY`] messages
//! (or [`ACK_IDLE`] when it has consumed everything it received),
//! and the publisher never runs more than its window ahead of the slowest
//! subscriber. A slow subscriber slows the publisher, and nobody loses
//! anything. A plain publisher never waits for subscribers: each subscriber
//! keeps a bounded queue, and when its application does not keep up the
//! messages that do not fit are dropped *for that subscriber only*, counted
//! ([`Subscriber::missed`]) and logged.
//!
//! A message sent while the publisher is idle is put at once. When sends
//! come less than 5 us apart, the publisher's own thread puts them instead,
//! packing small ones (up to 8 KiB) into batches of up to about 16 KiB:
//! one Zenoh sample for many messages, in order
//! ([`Publisher::batched`] counts them). The subscriber's messages then
//! share the received buffer.

use crate::endpoint::{self, Endpoint, Members, Presence, Seen};
use crate::error::{fmt_duration, Error, Result};
use crate::instance::Instance;
use crate::message::{Body, Message};
use crate::outbox::{self, Offer, Outbox};
use crate::queue::{self, Empty, QueueRx};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;
use troupe_protocol::frame::{BatchReader, Frame, FrameType, FLAG_SYNC};
use troupe_protocol::keys::{EndpointKind, Role};
use zenoh::bytes::ZBytes;
use zenoh::liveliness::LivelinessToken;
use zenoh::qos::CongestionControl;

/// A subscriber of a synchronised publisher acknowledges every this many
/// consumed messages.
pub const ACK_EVERY: u64 = 512;

/// A subscriber of a synchronised publisher that has consumed everything it
/// received acknowledges as soon as this many messages are unacknowledged.
pub const ACK_IDLE: u64 = 64;

/// The smallest window of a synchronised publisher (twice [`ACK_IDLE`]): a
/// publisher held back by its window has at least that many messages
/// unacknowledged, so a subscriber that consumed them all acknowledges.
const MIN_WINDOW: u64 = 2 * ACK_IDLE;

/// Options of a [`Publisher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublisherOptions {
    /// Synchronise on this many subscribers: the first message waits until
    /// they are connected (unless [`Publisher::wait_for_subscribers`] was
    /// called), and the publisher is flow-controlled: it never runs more than
    /// `window` messages (and about `window_bytes` bytes) ahead of its
    /// slowest subscriber. `None` (the
    /// default): a plain publisher, which never waits.
    pub synchronised: Option<usize>,
    /// How many messages a synchronised publisher may run ahead of its
    /// slowest subscriber (default 32,768, at least 128).
    pub window: u64,
    /// How many bytes a synchronised publisher may run ahead of its slowest
    /// subscriber, about (default 64 MiB): a message of `len` bytes may be
    /// sent `window_bytes / len` messages ahead, within `window` and never
    /// fewer than 128. This bounds what a slow subscriber holds in memory.
    pub window_bytes: u64,
    /// How long one [`Publisher::send`] (and [`Publisher::end`]) may wait for
    /// slow or missing subscribers (default 30 s).
    pub send_timeout: Duration,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        Self {
            synchronised: None,
            window: 32_768,
            window_bytes: 64 << 20,
            send_timeout: Duration::from_secs(30),
        }
    }
}

impl PublisherOptions {
    /// A synchronised publisher on `n` subscribers, other options default.
    pub fn synchronised(n: usize) -> Self {
        Self {
            synchronised: Some(n),
            ..Self::default()
        }
    }
}

/// A named publisher of this instance: see the [module](self) documentation.
///
/// Made by [`This::publisher`](crate::This::publisher). `send` takes `&self`
/// and orders concurrent sends; the messages of one task are received in the
/// order it sent them. Dropping the publisher without [`Publisher::end`] is
/// reported to its subscribers as an error, like the death of the process.
#[derive(Debug)]
pub struct Publisher {
    ep: Endpoint,
    zpub: Arc<zenoh::pubsub::Publisher<'static>>,
    outbox: Outbox,
    members: Members,
    acks: Arc<Acks>,
    opts: PublisherOptions,
    seq: tokio::sync::Mutex<PubState>,
    _ack_sub: zenoh::pubsub::Subscriber<()>,
    _claim: LocalClaim,
}

/// The data keys of the publishers of this process.
static LOCAL: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// A publisher's claim on its data key in this process, released on drop.
#[derive(Debug)]
struct LocalClaim(String);

impl LocalClaim {
    /// The claim on `key`; `None` when a publisher of this process holds it.
    fn take(key: &str) -> Option<LocalClaim> {
        let mut local = LOCAL.lock().expect("local publishers lock");
        local
            .insert(key.to_string())
            .then(|| LocalClaim(key.to_string()))
    }
}

impl Drop for LocalClaim {
    fn drop(&mut self) {
        if let Ok(mut local) = LOCAL.lock() {
            local.remove(&self.0);
        }
    }
}

#[derive(Debug, Default)]
struct PubState {
    /// The sequence number of the last message sent.
    last: u64,
    /// The synchronisation on n subscribers was reached once.
    reached: bool,
    /// No subscriber known at the last check had acknowledged less than
    /// this. Acknowledgements only grow, and a subscriber that joins starts
    /// at the current message, so this bound stays safe until the members
    /// change.
    slowest: u64,
    /// Tells when the members changed since that check.
    changes: Option<tokio::sync::watch::Receiver<BTreeSet<String>>>,
    /// When the last message was sent: a stream of messages closer than
    /// [`outbox::BUSY_GAP`] goes through the outbox, in batches.
    last_sent: Option<std::time::Instant>,
}

/// What the subscribers of a synchronised publisher acknowledged.
#[derive(Debug, Default)]
struct Acks {
    /// Per subscriber member: the last consumed sequence number, and whether
    /// it acknowledged the end.
    seen: Mutex<HashMap<String, (u64, bool)>>,
    changed: Notify,
}

impl Publisher {
    pub(crate) async fn declare(ep: Endpoint, opts: PublisherOptions) -> Result<Publisher> {
        let session = ep.session.clone();
        let key = ep.data_key();
        // Two publishers of one name in one instance would mix their
        // streams. In this process the claim below is certain; the query
        // for another process's publisher is not (two declared at the same
        // moment are not caught; each subscriber follows one of them).
        let exists = || Error::Refused(format!("{} already exists", ep.label()));
        let claim = LocalClaim::take(&key).ok_or_else(exists)?;
        if ep.has_member(Role::Owner).await? {
            return Err(exists());
        }
        let members = ep.members().await?;
        let zpub = Arc::new(
            session
                .zenoh()
                .declare_publisher(key.clone())
                .congestion_control(CongestionControl::Block)
                .await
                .map_err(Error::Zenoh)?,
        );
        let acks = Arc::new(Acks::default());
        let ack_sub = {
            let acks = acks.clone();
            session
                .zenoh()
                .declare_subscriber(format!("{key}/ack/*"))
                .callback(move |sample| {
                    let Some(member) = sample.key_expr().as_str().rsplit('/').next() else {
                        return;
                    };
                    let Some((frame, _)) = endpoint::decode(&sample) else {
                        return;
                    };
                    let mut seen = acks.seen.lock().expect("acks lock");
                    let entry = seen.entry(member.to_string()).or_insert((0, false));
                    match frame.kind {
                        FrameType::Ack => entry.0 = entry.0.max(frame.seq),
                        FrameType::EndAck => *entry = (entry.0.max(frame.seq), true),
                        _ => return,
                    }
                    drop(seen);
                    acks.changed.notify_waiters();
                })
                .await
                .map_err(Error::Zenoh)?
        };
        let member = endpoint::new_member(&session, Role::Owner);
        let token = ep.declare_member(&member).await?;
        let outbox = Outbox::new(zpub.clone(), token);
        let opts = PublisherOptions {
            window: opts.window.max(MIN_WINDOW),
            ..opts
        };
        Ok(Publisher {
            ep,
            zpub,
            outbox,
            members,
            acks,
            opts,
            seq: Default::default(),
            _ack_sub: ack_sub,
            _claim: claim,
        })
    }

    /// The publisher's name.
    pub fn name(&self) -> &str {
        &self.ep.name
    }

    /// Whether it is synchronised (flow-controlled).
    pub fn is_synchronised(&self) -> bool {
        self.opts.synchronised.is_some()
    }

    /// How many of the messages sent so far went out in batches: several
    /// small messages sent in quick succession share one Zenoh sample (see
    /// the [module](self) documentation).
    pub fn batched(&self) -> u64 {
        self.outbox.batched()
    }

    /// The number of subscribers connected now.
    pub fn subscribers(&self) -> usize {
        self.members.of_role(Role::Subscriber).len()
    }

    /// Waits until at least `n` subscribers are connected, at most `timeout`;
    /// the number connected then. From then on each of them receives every
    /// message sent.
    ///
    /// # Errors
    /// [`Error::Timeout`] when fewer than `n` came.
    pub async fn wait_for_subscribers(&self, n: usize, timeout: Duration) -> Result<usize> {
        match self
            .members
            .wait_for(Role::Subscriber, n, Instant::now() + timeout)
            .await
        {
            Some(count) => {
                self.seq.lock().await.reached = true;
                Ok(count)
            }
            None => Err(Error::Timeout(format!(
                "{}: {} of {n} subscribers after {}",
                self.ep.label(),
                self.subscribers(),
                fmt_duration(timeout)
            ))),
        }
    }

    /// Publishes `message`. A synchronised publisher first waits (at most
    /// its `send_timeout`) for its subscribers, and for the slowest one to
    /// come within its window.
    ///
    /// # Errors
    /// [`Error::Timeout`] when a synchronised publisher waited too long, or
    /// when the publisher's outbox stayed full for `send_timeout`;
    /// [`Error::Refused`] when the publisher's thread could not put earlier
    /// messages (the session is closed); [`Error::Zenoh`].
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        let message = message.into();
        // Uncontended (one sending task), the lock is taken without the
        // machinery of an asynchronous wait.
        let mut state = match self.seq.try_lock() {
            Ok(state) => state,
            Err(_) => self.seq.lock().await,
        };
        let seq = state.last + 1;
        let mut frame = endpoint::frame_for(
            FrameType::Data,
            seq,
            message.content(),
            message.header().map(<[u8]>::to_vec),
        );
        // Taken only when a wait begins (reading the clock costs).
        let mut deadline = None;
        let timeout = self.opts.send_timeout;
        let mut deadline = move || *deadline.get_or_insert_with(|| Instant::now() + timeout);
        if let Some(n) = self.opts.synchronised {
            if !state.reached {
                if self
                    .members
                    .wait_for(Role::Subscriber, n, deadline())
                    .await
                    .is_none()
                {
                    return Err(Error::Timeout(format!(
                        "{}: {} of {n} subscribers after {}",
                        self.ep.label(),
                        self.subscribers(),
                        fmt_duration(self.opts.send_timeout)
                    )));
                }
                state.reached = true;
            }
            let members_changed = match &state.changes {
                Some(changes) => changes.has_changed().unwrap_or(true),
                None => true,
            };
            let window = self.window_for(message.len());
            if seq - state.slowest > window || members_changed {
                let changes = state.changes.get_or_insert_with(|| self.members.changes());
                changes.borrow_and_update();
                state.slowest = self.wait_window(seq, window, deadline()).await?;
            }
            frame.flags |= FLAG_SYNC;
        }
        // Sends that start less than BUSY_GAP apart are a stream.
        let now = std::time::Instant::now();
        let busy = state
            .last_sent
            .is_some_and(|t| now.saturating_duration_since(t) < outbox::BUSY_GAP);
        let mut body = message.into_payload();
        let len = body.len();
        loop {
            match self.outbox.offer(frame, body, busy) {
                Err(why) => return Err(Error::Refused(format!("{}: {why}", self.ep.label()))),
                Ok(Offer::Queued) => break,
                Ok(Offer::Direct(f, b)) => {
                    self.zpub
                        .put(b)
                        .attachment(endpoint::attachment(&f)?)
                        .await
                        .map_err(Error::Zenoh)?;
                    break;
                }
                Ok(Offer::Full(f, b)) => {
                    (frame, body) = (f, b);
                    self.wait_outbox(deadline(), |o| o.has_room(len)).await?;
                }
            }
        }
        state.last = seq;
        state.last_sent = Some(now);
        Ok(())
    }

    /// Waits until `ready` holds for the outbox (at most `deadline`).
    async fn wait_outbox(&self, deadline: Instant, ready: impl Fn(&Outbox) -> bool) -> Result<()> {
        loop {
            // Armed before the check, so that no progress is missed between
            // the two.
            let progress = self.outbox.progress();
            tokio::pin!(progress);
            progress.as_mut().enable();
            if ready(&self.outbox) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, progress).await.is_err() {
                return Err(Error::Timeout(format!(
                    "{}: messages still queued after {}",
                    self.ep.label(),
                    fmt_duration(self.opts.send_timeout)
                )));
            }
        }
    }

    /// The window for a message of `len` bytes (see
    /// [`PublisherOptions::window_bytes`]).
    fn window_for(&self, len: usize) -> u64 {
        let by_size = self.opts.window_bytes / (len as u64).max(1);
        by_size.clamp(MIN_WINDOW, self.opts.window)
    }

    /// Waits until every subscriber acknowledged up to `seq - window`; the
    /// slowest acknowledgement then. Once it has to wait, it waits until a
    /// quarter of the window is free, so that the sends after it go on the
    /// cached bound instead of each waiting for the next acknowledgement.
    async fn wait_window(&self, seq: u64, window: u64, deadline: Instant) -> Result<u64> {
        let mut changes = self.members.changes();
        let mut room = window;
        loop {
            let notified = self.acks.changed.notified();
            let slowest = {
                let subs = self.members.of_role(Role::Subscriber);
                let mut seen = self.acks.seen.lock().expect("acks lock");
                seen.retain(|m, _| subs.contains(m));
                // A subscriber first seen now starts from here.
                subs.iter()
                    .map(|m| (seen.entry(m.clone()).or_insert((seq - 1, false)).0, m))
                    .min()
                    .map(|(acked, m)| (acked, m.clone()))
            };
            match slowest {
                Some((acked, member)) if seq - acked > room => {
                    room = window - window / 4;
                    tokio::select! {
                        () = notified => {}
                        _ = changes.changed() => {}
                        () = tokio::time::sleep_until(deadline) => {
                            return Err(Error::Timeout(format!(
                                "{}: subscriber {member} consumed nothing for {}",
                                self.ep.label(),
                                fmt_duration(self.opts.send_timeout)
                            )));
                        }
                    }
                }
                Some((acked, _)) => return Ok(acked),
                None => return Ok(seq - 1),
            }
        }
    }

    /// Ends the stream: each subscriber's `recv` then gives `None`. Waits (at
    /// most `send_timeout`) until every subscriber connected now has received
    /// the end, so that the process may exit at once.
    ///
    /// # Errors
    /// [`Error::Timeout`] when a subscriber did not confirm the end in time
    /// (it may still get it), or when earlier messages were still queued
    /// after `send_timeout`; [`Error::Refused`] when the publisher's thread
    /// could not put earlier messages (the end is then not sent);
    /// [`Error::Zenoh`].
    pub async fn end(self) -> Result<()> {
        let mut state = self.seq.lock().await;
        let deadline = Instant::now() + self.opts.send_timeout;
        // The end goes after every message: once the outbox is empty.
        self.wait_outbox(deadline, Outbox::is_idle).await?;
        if let Some(why) = self.outbox.take_failure() {
            return Err(Error::Refused(format!("{}: {why}", self.ep.label())));
        }
        let seq = state.last + 1;
        let mut frame = Frame::new(FrameType::End, seq);
        if self.opts.synchronised.is_some() {
            frame.flags |= FLAG_SYNC;
        }
        self.zpub
            .put(Vec::<u8>::new())
            .attachment(endpoint::attachment(&frame)?)
            .await
            .map_err(Error::Zenoh)?;
        state.last = seq;
        let mut changes = self.members.changes();
        loop {
            let notified = self.acks.changed.notified();
            let missing: Vec<String> = {
                let seen = self.acks.seen.lock().expect("acks lock");
                self.members
                    .of_role(Role::Subscriber)
                    .into_iter()
                    .filter(|m| !seen.get(m).is_some_and(|(s, end)| *end && *s >= seq))
                    .collect()
            };
            if missing.is_empty() {
                return Ok(());
            }
            tokio::select! {
                () = notified => {}
                _ = changes.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(Error::Timeout(format!(
                        "{}: {} subscriber(s) did not confirm the end within {}",
                        self.ep.label(),
                        missing.len(),
                        fmt_duration(self.opts.send_timeout)
                    )));
                }
            }
        }
    }
}

/// Options of a [`Subscriber`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberOptions {
    /// How long to wait for the publisher to exist (default: the server
    /// handle's timeout).
    pub timeout: Option<Duration>,
    /// How many received messages may wait to be read from a plain
    /// publisher before the next ones are dropped and counted (default
    /// 10,000). A synchronised publisher never overflows it.
    pub queue: usize,
}

impl Default for SubscriberOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            queue: 10_000,
        }
    }
}

/// What the Zenoh callback hands to the subscriber.
enum Item {
    Data(Frame, Body),
    /// The end, with its sequence number (one past the last message).
    End(u64),
}

/// A subscriber of a publisher of an instance: see the [module](self)
/// documentation.
///
/// Made by [`Instance::subscriber`]. [`Subscriber::recv`] gives the messages
/// in order, `None` at the end of the stream, and [`Error::Gone`] when the
/// publisher went away without ending it.
#[derive(Debug)]
pub struct Subscriber {
    ep: Endpoint,
    presence: Presence,
    members: Members,
    rx: QueueRx<Item>,
    queued: Arc<AtomicUsize>,
    overflow: Arc<AtomicU64>,
    /// The sequence number expected next.
    next: Option<u64>,
    missed: u64,
    consumed: u64,
    acked: u64,
    /// The last message came from a synchronised publisher.
    sync: bool,
    ended: bool,
    failed: Option<String>,
    acks: Arc<zenoh::pubsub::Publisher<'static>>,
    _sub: zenoh::pubsub::Subscriber<()>,
    _token: LivelinessToken,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Item::Data(fr, b) => write!(f, "Data({}, {} bytes)", fr.seq, b.len()),
            Item::End(seq) => write!(f, "End({seq})"),
        }
    }
}

impl Subscriber {
    pub(crate) async fn declare(
        instance: &Instance,
        name: &str,
        opts: SubscriberOptions,
    ) -> Result<Subscriber> {
        let ep = Endpoint::of(instance, EndpointKind::Publisher, name)?;
        let timeout = opts.timeout.unwrap_or(instance.server().timeout());
        let deadline = Instant::now() + timeout;
        let session = ep.session.clone();
        let members = ep.members().await?;
        let member = endpoint::new_member(&session, Role::Subscriber);
        let key = ep.data_key();
        let (tx, rx) = queue::queue();
        let queued = Arc::new(AtomicUsize::new(0));
        let overflow = Arc::new(AtomicU64::new(0));
        // Counts every frame that arrives: proof that the publisher lives.
        let arrived = Arc::new(AtomicU64::new(0));
        // Acknowledgements go by a declared publisher, express: only to the
        // publisher (an undeclared put also goes to the server), at once.
        let acks = Arc::new(
            session
                .zenoh()
                .declare_publisher(format!("{key}/ack/{member}"))
                .congestion_control(CongestionControl::Block)
                .express(true)
                .await
                .map_err(Error::Zenoh)?,
        );
        let sub = {
            let (queued, overflow) = (queued.clone(), overflow.clone());
            let capacity = opts.queue.max(1);
            let acks = acks.clone();
            let arrived = arrived.clone();
            let runtime = tokio::runtime::Handle::current();
            session
                .zenoh()
                .declare_subscriber(key)
                .callback(move |sample| {
                    let Some((frame, body)) = endpoint::decode(&sample) else {
                        return;
                    };
                    arrived.fetch_add(1, Ordering::Relaxed);
                    match frame.kind {
                        FrameType::Data => {
                            if !frame.is_sync() && queued.load(Ordering::Relaxed) >= capacity {
                                overflow.fetch_add(1, Ordering::Relaxed);
                                return;
                            }
                            queued.fetch_add(1, Ordering::Relaxed);
                            tx.push(Item::Data(frame, body.into()));
                        }
                        FrameType::Batch => {
                            let payload = shared_bytes(body);
                            let mut items = Vec::new();
                            for entry in BatchReader::new(&payload) {
                                let (frame, body) = match entry {
                                    Ok(e) => e,
                                    Err(e) => {
                                        tracing::warn!(error = %e, "damaged batch: the rest skipped");
                                        break;
                                    }
                                };
                                if frame.kind != FrameType::Data {
                                    continue;
                                }
                                if !frame.is_sync()
                                    && queued.load(Ordering::Relaxed) + items.len() >= capacity
                                {
                                    overflow.fetch_add(1, Ordering::Relaxed);
                                    continue;
                                }
                                items.push(Item::Data(frame, Body::Shared(payload.slice_ref(body))));
                            }
                            queued.fetch_add(items.len(), Ordering::Relaxed);
                            tx.push_all(items);
                        }
                        FrameType::End => {
                            tx.push(Item::End(frame.seq));
                            // Confirm the end at once, from here: the
                            // publisher may be waiting to exit.
                            let ack = Frame::new(FrameType::EndAck, frame.seq);
                            let acks = acks.clone();
                            runtime.spawn(async move {
                                if let Ok(att) = endpoint::attachment(&ack) {
                                    let put = acks.put(Vec::<u8>::new()).attachment(att);
                                    if let Err(e) = put.await {
                                        tracing::debug!(error = %e, "end acknowledgement not sent");
                                    }
                                }
                            });
                        }
                        _ => {}
                    }
                })
                .await
                .map_err(Error::Zenoh)?
        };
        // The subscriber is declared: now the token that says so.
        let token = ep.declare_member(&member).await?;
        // The first publisher seen, even if it has gone since: what it sent
        // is queued, and `recv` reports its going after that.
        // An instance that has ended (or does not exist) will never have
        // one: say so at once rather than at the deadline.
        let owner = tokio::select! {
            biased;
            owner = members.first_owner(deadline) => owner,
            e = ep.instance_ended(timeout) => return Err(e),
        };
        let Some(owner) = owner else {
            return Err(ep.not_there(timeout).await);
        };
        Ok(Subscriber {
            ep,
            presence: Presence::new(&owner, Some(arrived)),
            members,
            rx,
            queued,
            overflow,
            next: None,
            missed: 0,
            consumed: 0,
            acked: 0,
            sync: false,
            ended: false,
            failed: None,
            acks,
            _sub: sub,
            _token: token,
        })
    }

    /// The publisher's name.
    pub fn name(&self) -> &str {
        &self.ep.name
    }

    /// The number of messages this subscriber missed: published while it was
    /// subscribed but dropped because its queue was full (plain publishers
    /// only).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Whether the end of the stream was received.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The next message; `None` after the end of the stream. Waits without
    /// limit (drop the future to give up) or see [`Subscriber::recv_timeout`].
    ///
    /// # Errors
    /// [`Error::Gone`] when the publisher went away without ending its
    /// stream (its process died, or it dropped the publisher).
    pub async fn recv(&mut self) -> Result<Option<Message>> {
        self.next_item(None).await
    }

    /// Like [`Subscriber::recv`], at most `timeout`.
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing came, and as [`Subscriber::recv`].
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Message>> {
        self.next_item(Some(timeout)).await
    }

    async fn next_item(&mut self, timeout: Option<Duration>) -> Result<Option<Message>> {
        if self.ended {
            return Ok(None);
        }
        if let Some(why) = &self.failed {
            return Err(Error::Gone(why.clone()));
        }
        // What is queued is delivered first, without the waiting machinery.
        if let Ok(item) = self.rx.try_pop() {
            return self.take(item).await;
        }
        // All consumed: a synchronised publisher may be waiting for this.
        if self.sync && self.consumed - self.acked.min(self.consumed) >= ACK_IDLE {
            self.ack().await;
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut changes = self.members.changes();
        loop {
            // Read "gone" before the queue: what came by the token's route
            // before it went away is in the queue by then.
            let seen = self
                .presence
                .check(&(&self.ep, &self.members), deadline)
                .await;
            match self.rx.try_pop() {
                Ok(item) => return self.take(item).await,
                Err(Empty::Closed) => return Err(self.fail("its subscription was closed")),
                Err(Empty::Now) => {}
            }
            if seen == Seen::Gone {
                return Err(self.fail("it went away without ending its stream"));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout(format!(
                    "no message from {} within {}",
                    self.ep.label(),
                    fmt_duration(timeout.unwrap_or_default())
                )));
            }
            let wake = match (deadline, seen.wake()) {
                (Some(d), Some(s)) => Some(d.min(s)),
                (d, s) => d.or(s),
            };
            let there = matches!(seen, Seen::There(_));
            tokio::select! {
                item = self.rx.pop() => match item {
                    Some(item) => return self.take(item).await,
                    None => return Err(self.fail("its subscription was closed")),
                },
                _ = changes.changed(), if there => {}
                () = sleep_until_opt(wake) => {}
            }
        }
    }

    fn fail(&mut self, why: &str) -> Error {
        let why = format!("{}: {why}", self.ep.label());
        self.failed = Some(why.clone());
        Error::Gone(why)
    }

    async fn take(&mut self, item: Item) -> Result<Option<Message>> {
        let (frame, body) = match item {
            Item::End(seq) => {
                // Messages dropped after the last one received leave no
                // later message to show the gap: the end does.
                self.count_gap(seq);
                self.ended = true;
                return Ok(None);
            }
            Item::Data(frame, body) => (frame, body),
        };
        self.queued.fetch_sub(1, Ordering::Relaxed);
        self.count_gap(frame.seq);
        self.next = Some(frame.seq + 1);
        self.consumed = frame.seq;
        self.sync = frame.is_sync();
        if self.sync && self.consumed - self.acked.min(self.consumed) >= ACK_EVERY {
            self.ack().await;
        }
        Ok(Some(Message::from_parts(frame.content, frame.header, body)))
    }

    /// Counts the messages missing before `seq` (none before the first
    /// message received: a subscriber starts where it joined).
    fn count_gap(&mut self, seq: u64) {
        if let Some(next) = self.next {
            if seq > next {
                let lost = seq - next;
                self.missed += lost;
                tracing::warn!(
                    publisher = %self.ep.label(),
                    lost,
                    "subscriber too slow: messages dropped"
                );
            }
        }
    }

    /// Tells a synchronised publisher what was consumed.
    async fn ack(&mut self) {
        let frame = Frame::new(FrameType::Ack, self.consumed);
        let Ok(att) = endpoint::attachment(&frame) else {
            return;
        };
        match self.acks.put(Vec::<u8>::new()).attachment(att).await {
            Ok(()) => self.acked = self.consumed,
            Err(e) => tracing::debug!(error = %e, "acknowledgement not sent"),
        }
    }

    /// Messages dropped because the queue was full, not yet seen as a gap.
    #[doc(hidden)]
    pub fn overflowed(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

/// The bytes of `body`, which the messages of a batch share: Zenoh's own
/// buffer when it is in one piece (no copy), else one copy.
fn shared_bytes(body: ZBytes) -> bytes::Bytes {
    /// A contiguous Zenoh buffer, owned.
    struct Whole(ZBytes);
    impl AsRef<[u8]> for Whole {
        fn as_ref(&self) -> &[u8] {
            self.0.slices().next().unwrap_or(&[])
        }
    }
    if body.slices().nth(1).is_none() {
        bytes::Bytes::from_owner(Whole(body))
    } else {
        bytes::Bytes::from(body.to_bytes().into_owned())
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
