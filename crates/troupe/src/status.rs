//! Hierarchical status: one JSON tree for the whole realm, updated in parts
//! by any process and read or followed from anywhere.
//!
//! - [`StatusUpdater::emit`]`("system.foo", &json!({"cpu": 0.3}))` merges the
//!   partial tree `{"system": {"foo": {"cpu": 0.3}}}` into the realm's tree
//!   (objects merge key by key, anything else replaces);
//!   [`StatusUpdater::remove`] removes a subtree. Paths are dot-separated
//!   segments of 1 to 64 ASCII letters, digits, `_` or `-`; keys inside
//!   values follow the same rule, so that every part of the tree has a path.
//!   Values are at most 1 MiB of JSON ([`Error::TooLarge`]). Both return as
//!   soon as the update is handed to Zenoh (a put, batched with the next
//!   ones); [`StatusUpdater::flush`] waits until the server applied them.
//! - **The servers keep the tree.** An update goes to the emitter's own
//!   server, which numbers it (per server run: its *origin*), applies it and
//!   publishes it; every server of the realm applies every update. So the
//!   tree outlives the processes that emitted its parts, until a part is
//!   removed, and any server answers for the whole realm.
//! - [`read`] gives the current tree under *masks* (path prefixes: `system`,
//!   `system.foo`; none means the whole tree). [`follow`] gives it too
//!   ([`StatusFollower::snapshot`]), then every later update under the
//!   masks ([`StatusFollower::next`]), with nothing lost or repeated between
//!   the two: the follower subscribes first, then asks for the snapshot,
//!   which says how far it reflects each origin, and drops the updates the
//!   snapshot already holds.
//! - **Order.** Updates sent through one server are applied everywhere in
//!   the order that server numbered them: one emitter's updates keep their
//!   order. Updates of the same path sent at the same time through two
//!   different servers are applied by each server in the order they reach
//!   it, which can differ: the servers' trees may then disagree on that
//!   path until it is written again.
//! - **Gaps.** A follower keeps at most [`FOLLOW_BUFFER`] updates (and 64 MiB)
//!   that it was not asked for yet; a follower that falls further behind,
//!   or that sees an origin skip numbers (a link broke, two networks joined),
//!   reads the tree again and yields one [`StatusOp::Reset`] carrying it,
//!   counted by [`StatusFollower::gaps`]. It never makes a server wait.
//!
//! ```no_run
//! # async fn demo(session: troupe::Session) -> troupe::Result<()> {
//! use serde_json::json;
//! use std::time::Duration;
//! use troupe::status::{self, StatusUpdater};
//! let updater = StatusUpdater::new(&session).await?;
//! updater.emit("system.foo", &json!({"cpu": 0.3, "memory": 0.7})).await?;
//! updater.flush(Duration::from_secs(5)).await?;
//!
//! let mut follower = status::follow(&session, &["system"], Duration::from_secs(5)).await?;
//! println!("now: {}", follower.snapshot());
//! let update = follower.next(Duration::from_secs(60)).await?;
//! println!("{:?} {} = {}", update.op, update.path, update.value);
//! # Ok(()) }
//! ```

use crate::error::{fmt_duration, Error, Result};
use crate::queue::{self, Empty, QueueRx};
use crate::session::Session;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use troupe_protocol::status::{
    self as wire, check_remove, check_set, check_size, normalize_masks, relevant, StatusMark,
    StatusSnapshot, StatusTree,
};
use troupe_protocol::RequestBody;
use zenoh::pubsub::Subscriber;
use zenoh::sample::SampleKind;

/// How many updates a follower keeps before it gives up on them and reads
/// the tree again.
pub const FOLLOW_BUFFER: usize = 100_000;

/// How many bytes of updates a follower keeps, likewise.
const FOLLOW_BYTES: usize = 64 << 20;

/// How many of the updates it took a follower remembers, to apply again
/// over a snapshot read after a gap that does not hold them yet.
const RECENT: usize = 4096;

/// Sends status updates through the server its session is connected to.
///
/// Cheap to clone; clones share one declared Zenoh publisher.
#[derive(Clone)]
pub struct StatusUpdater {
    inner: Arc<UpdaterInner>,
}

struct UpdaterInner {
    session: Session,
    server: String,
    publisher: zenoh::pubsub::Publisher<'static>,
}

impl fmt::Debug for StatusUpdater {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusUpdater")
            .field("server", &self.inner.server)
            .finish()
    }
}

impl StatusUpdater {
    /// An updater on `session`: it learns which server the session is
    /// connected to ([`Session::server_name`]) and declares a publisher to
    /// it.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`] when no server answers,
    /// [`Error::Zenoh`] when the publisher cannot be declared.
    pub async fn new(session: &Session) -> Result<StatusUpdater> {
        let server = session.server_name().await?;
        let publisher = session
            .zenoh()
            .declare_publisher(session.keys().status_in(&server))
            .congestion_control(zenoh::qos::CongestionControl::Block)
            .await
            .map_err(Error::Zenoh)?;
        Ok(StatusUpdater {
            inner: Arc::new(UpdaterInner {
                session: session.clone(),
                server,
                publisher,
            }),
        })
    }

    /// The server that numbers this updater's updates.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// Merges `value` into the realm's tree at `path` (see the [module
    /// docs](self)): `emit("system.foo", &json!({"cpu": 0.3}))`. The empty
    /// path is the root, where only an object may be merged. Returns once
    /// the update is handed to Zenoh.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad path, a key inside the value that is not
    /// a valid path segment, a value that is not JSON, or a non-object at the
    /// root; [`Error::TooLarge`] for a value above 1 MiB of JSON;
    /// [`Error::Refused`] when the session is closed.
    pub async fn emit(&self, path: &str, value: &impl Serialize) -> Result<()> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::Invalid(format!("the status value is not JSON: {e}")))?;
        check_set(path, &value).map_err(invalid)?;
        let json = serde_json::to_vec(&value)
            .map_err(|e| Error::Invalid(format!("the status value is not JSON: {e}")))?;
        check_size(json.len()).map_err(|e| Error::TooLarge(e.to_string()))?;
        let mut payload = Vec::with_capacity(json.len() + path.len() + 32);
        payload.extend_from_slice(b"{\"op\":\"set\",\"path\":");
        serde_json::to_writer(&mut payload, path).map_err(|e| Error::Invalid(e.to_string()))?;
        payload.extend_from_slice(b",\"value\":");
        payload.extend_from_slice(&json);
        payload.push(b'}');
        self.put(payload).await
    }

    /// Removes the subtree at `path`, and the parents this leaves empty.
    /// Removing what is not there does nothing. Returns once the update is
    /// handed to Zenoh.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad path or the root (`""`: remove the
    /// top-level paths one by one); [`Error::Refused`] when the session is
    /// closed.
    pub async fn remove(&self, path: &str) -> Result<()> {
        check_remove(path).map_err(invalid)?;
        let input = wire::StatusInput {
            op: wire::StatusOp::Remove,
            path: path.to_string(),
            value: Value::Null,
        };
        let payload = serde_json::to_vec(&input).map_err(|e| Error::Invalid(e.to_string()))?;
        self.put(payload).await
    }

    async fn put(&self, payload: Vec<u8>) -> Result<()> {
        if self.inner.session.zenoh().is_closed() {
            return Err(Error::Refused(
                "the session is closed: no status update can be sent".into(),
            ));
        }
        self.inner
            .publisher
            .put(payload)
            .await
            .map_err(Error::Zenoh)
    }

    /// Waits until the server applied every update this updater sent before
    /// (a control query behind them on the same link: Zenoh keeps the order
    /// of one session's messages). Returns the number the server gave its
    /// last update.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`] when the server does not answer within
    /// `timeout`.
    pub async fn flush(&self, timeout: Duration) -> Result<u64> {
        let mark: StatusMark = self
            .inner
            .session
            .call(&self.inner.server, RequestBody::StatusFlush, timeout)
            .await?;
        Ok(mark.seq)
    }
}

fn invalid(e: wire::StatusError) -> Error {
    match e {
        wire::StatusError::TooLarge { .. } => Error::TooLarge(e.to_string()),
        _ => Error::Invalid(e.to_string()),
    }
}

/// The realm's status tree under `masks` (none: the whole tree), as the
/// server `session` is connected to has it now, in the shape of the whole
/// tree: `{"system": {"foo": ...}}` for the mask `system.foo`.
///
/// # Errors
/// [`Error::Invalid`] for a bad mask; [`Error::ServerUnreachable`] when the
/// server does not answer within `timeout`.
pub async fn read(
    session: &Session,
    masks: &[impl AsRef<str>],
    timeout: Duration,
) -> Result<Value> {
    let masks = normalize_masks(masks).map_err(invalid)?;
    let server = session.server_name().await?;
    let snap = snapshot(session, &server, &masks, timeout).await?;
    Ok(snap.tree)
}

async fn snapshot(
    session: &Session,
    server: &str,
    masks: &[String],
    timeout: Duration,
) -> Result<StatusSnapshot> {
    let body = RequestBody::StatusGet {
        masks: masks.to_vec(),
    };
    session.call(server, body, timeout).await
}

/// What a [`StatusUpdate`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusOp {
    /// `value` was merged at `path`.
    Set,
    /// The subtree at `path` was removed.
    Remove,
    /// The follower read the tree again after a gap: `value` is the whole
    /// tree under its masks (as [`StatusFollower::tree`] now is), `path` is
    /// empty, `origin` is the server it was read from and `seq` is 0.
    Reset,
}

impl StatusOp {
    /// `set`, `remove` or `reset`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusOp::Set => "set",
            StatusOp::Remove => "remove",
            StatusOp::Reset => "reset",
        }
    }
}

impl From<wire::StatusOp> for StatusOp {
    fn from(op: wire::StatusOp) -> Self {
        match op {
            wire::StatusOp::Set => StatusOp::Set,
            wire::StatusOp::Remove => StatusOp::Remove,
        }
    }
}

/// One change of the tree, as a follower yields it: cut to the follower's
/// masks (an update of an ancestor of a mask comes as the part of it under
/// the mask; one update that touches several masks comes as several, with
/// the same origin and number).
#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    /// The server run that numbered it (`<server>-<start time in ns>`).
    pub origin: String,
    /// Its number among that origin's updates, from 1.
    pub seq: u64,
    /// When that server applied it, in ms since the Unix epoch.
    pub time_unix_ms: u64,
    /// What it does.
    pub op: StatusOp,
    /// Where.
    pub path: String,
    /// The value merged (`Set`), `null` (`Remove`), or the whole tree
    /// under the masks (`Reset`).
    pub value: Value,
}

impl StatusUpdate {
    fn from_wire(u: wire::StatusUpdate) -> Self {
        StatusUpdate {
            origin: u.origin,
            seq: u.seq,
            time_unix_ms: u.time_unix_ms,
            op: u.op.into(),
            path: u.path,
            value: u.value,
        }
    }
}

/// What the follower's callback shares with it.
#[derive(Debug, Default)]
struct Buffer {
    items: AtomicUsize,
    bytes: AtomicUsize,
    /// Updates dropped because the buffer was full.
    dropped: AtomicU64,
}

/// Follows the realm's status tree under masks: a snapshot, then every
/// update, with nothing lost or repeated between the two. Made by
/// [`follow`].
pub struct StatusFollower {
    session: Session,
    server: String,
    masks: Vec<String>,
    snapshot: Value,
    tree: StatusTree,
    /// Origin -> the number of its last update taken into `tree`.
    vector: BTreeMap<String, u64>,
    queue: QueueRx<(wire::StatusUpdate, usize)>,
    buffer: Arc<Buffer>,
    dropped_seen: u64,
    /// Cut updates ready to be yielded.
    ready: VecDeque<StatusUpdate>,
    /// The update that showed a gap, taken again after the reset.
    held: Option<wire::StatusUpdate>,
    /// The latest updates taken (whole), to apply again over a snapshot
    /// that lags behind them.
    recent: VecDeque<wire::StatusUpdate>,
    gaps: u64,
    alive: watch::Receiver<bool>,
    _subscriber: Subscriber<()>,
}

impl fmt::Debug for StatusFollower {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusFollower")
            .field("server", &self.server)
            .field("masks", &self.masks)
            .field("gaps", &self.gaps)
            .finish()
    }
}

/// Options of [`follow_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowOptions {
    /// How long the setup may take: finding the server, the snapshot
    /// (default 5 s).
    pub timeout: Duration,
    /// How many updates it keeps that [`StatusFollower::next`] did not take
    /// yet (default [`FOLLOW_BUFFER`]). Beyond, it reads the tree again.
    pub buffer: usize,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            timeout: crate::session::DEFAULT_TIMEOUT,
            buffer: FOLLOW_BUFFER,
        }
    }
}

/// Follows the status tree under `masks` (none: the whole tree) through the
/// server `session` is connected to: subscribes to every update of the
/// realm, then reads the tree under the masks ([`StatusFollower::snapshot`]);
/// [`StatusFollower::next`] then yields the updates that came after it.
/// `timeout` bounds the setup.
///
/// # Errors
/// [`Error::Invalid`] for a bad mask; [`Error::ServerUnreachable`] when the
/// server does not answer within `timeout`; [`Error::Zenoh`].
pub async fn follow(
    session: &Session,
    masks: &[impl AsRef<str>],
    timeout: Duration,
) -> Result<StatusFollower> {
    let opts = FollowOptions {
        timeout,
        ..FollowOptions::default()
    };
    follow_with(session, masks, opts).await
}

/// Like [`follow`], with all the options.
///
/// # Errors
/// As [`follow`]; [`Error::Invalid`] for a buffer of 0.
pub async fn follow_with(
    session: &Session,
    masks: &[impl AsRef<str>],
    opts: FollowOptions,
) -> Result<StatusFollower> {
    let FollowOptions {
        timeout,
        buffer: cap,
    } = opts;
    if cap == 0 {
        return Err(Error::Invalid(
            "a status follower's buffer holds at least 1 update".into(),
        ));
    }
    let masks = normalize_masks(masks).map_err(invalid)?;
    let setup = async {
        let server = session.server_name().await?;
        let alive = session.server_alive(&server).await?;
        let (tx, rx) = queue::queue();
        let buffer = Arc::new(Buffer::default());
        let shared = buffer.clone();
        // First the subscription, then the snapshot: whatever the snapshot
        // misses comes through here.
        let subscriber = session
            .zenoh()
            .declare_subscriber(session.keys().status_updates("*"))
            .callback(move |sample| {
                if sample.kind() != SampleKind::Put {
                    return;
                }
                let bytes = sample.payload().to_bytes();
                let size = bytes.len();
                let items = shared.items.load(Ordering::Acquire);
                let held = shared.bytes.load(Ordering::Acquire);
                if items >= cap || held + size > FOLLOW_BYTES {
                    shared.dropped.fetch_add(1, Ordering::AcqRel);
                    return;
                }
                match serde_json::from_slice::<wire::StatusUpdate>(&bytes) {
                    Ok(update) => {
                        shared.items.fetch_add(1, Ordering::AcqRel);
                        shared.bytes.fetch_add(size, Ordering::AcqRel);
                        tx.push((update, size));
                    }
                    Err(e) => tracing::warn!(key = %sample.key_expr(), "malformed status update skipped: {e}"),
                }
            })
            .await
            .map_err(Error::Zenoh)?;
        let snap = snapshot(session, &server, &masks, timeout).await?;
        Ok::<_, Error>((server, alive, rx, buffer, subscriber, snap))
    };
    let (server, alive, queue, buffer, subscriber, snap) =
        match tokio::time::timeout(timeout, setup).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(Error::Timeout(format!(
                    "no status snapshot within {}",
                    fmt_duration(timeout)
                )))
            }
        };
    let tree = StatusTree::from_value(snap.tree.clone()).map_err(|e| {
        Error::Protocol(format!(
            "the status snapshot of {server} is not a tree: {e}"
        ))
    })?;
    Ok(StatusFollower {
        session: session.clone(),
        server,
        masks,
        snapshot: snap.tree,
        tree,
        vector: snap.vector,
        queue,
        buffer,
        dropped_seen: 0,
        ready: VecDeque::new(),
        held: None,
        recent: VecDeque::new(),
        gaps: 0,
        alive,
        _subscriber: subscriber,
    })
}

impl StatusFollower {
    /// The tree under the masks when the follower started.
    pub fn snapshot(&self) -> &Value {
        &self.snapshot
    }

    /// The tree under the masks now: the snapshot with every update
    /// yielded so far applied.
    pub fn tree(&self) -> &Value {
        self.tree.value()
    }

    /// The masks, normalized (outermost first, `""` for the whole tree).
    pub fn masks(&self) -> &[String] {
        &self.masks
    }

    /// The server it follows through.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// How many times it read the tree again after a gap (each gave one
    /// [`StatusOp::Reset`]).
    pub fn gaps(&self) -> u64 {
        self.gaps
    }

    /// The next update under the masks, waiting at most `timeout`
    /// (`Duration::MAX`: no deadline). Cancel-safe: dropping the future
    /// loses nothing.
    ///
    /// # Errors
    /// [`Error::Timeout`] when nothing came in time; [`Error::ServerDied`]
    /// when the server it follows through went away (follow again through
    /// another); [`Error::ServerUnreachable`] when a needed re-read of the
    /// tree got no answer.
    pub async fn next(&mut self, timeout: Duration) -> Result<StatusUpdate> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(u) = self.ready.pop_front() {
                self.apply(&u);
                return Ok(u);
            }
            let dropped = self.buffer.dropped.load(Ordering::Acquire);
            if dropped > self.dropped_seen || self.held.is_some() {
                self.reset(deadline).await?;
                self.dropped_seen = dropped;
                if let Some(u) = self.held.take() {
                    self.take(u, true);
                }
                continue;
            }
            match self.queue.try_pop() {
                Ok((u, size)) => {
                    self.buffer.items.fetch_sub(1, Ordering::AcqRel);
                    self.buffer.bytes.fetch_sub(size, Ordering::AcqRel);
                    self.take(u, false);
                    continue;
                }
                Err(Empty::Closed) => {
                    return Err(Error::Gone("the status subscription ended".into()));
                }
                Err(Empty::Now) => {}
            }
            if !*self.alive.borrow() {
                return Err(Error::ServerDied(format!(
                    "server {} went away while following its status tree",
                    self.server
                )));
            }
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.queue.ready() => {}
                changed = self.alive.changed() => {
                    if changed.is_err() {
                        return Err(Error::ServerDied(format!(
                            "server {} is no longer watched", self.server
                        )));
                    }
                }
                () = sleep => {
                    return Err(Error::Timeout(format!(
                        "no status update within {}",
                        fmt_duration(timeout)
                    )))
                }
            }
        }
    }

    /// Takes one update of the subscription: skips what the tree holds,
    /// notes a gap (unless `after_reset`), queues its cuts to the masks.
    fn take(&mut self, u: wire::StatusUpdate, after_reset: bool) {
        let last = self.vector.get(&u.origin).copied().unwrap_or(0);
        if u.seq <= last {
            return;
        }
        if u.seq != last + 1 && !after_reset {
            self.held = Some(u);
            return;
        }
        self.vector.insert(u.origin.clone(), u.seq);
        for mask in &self.masks {
            if let Some(cut) = relevant(&u, mask) {
                // A removal of what the follower does not hold changes
                // nothing: not yielded.
                if cut.op == wire::StatusOp::Remove && self.tree.get(&cut.path).is_none() {
                    continue;
                }
                self.ready.push_back(StatusUpdate::from_wire(cut));
            }
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(u);
    }

    /// Applies a yielded update to the follower's tree.
    fn apply(&mut self, u: &StatusUpdate) {
        let op = match u.op {
            StatusOp::Set => wire::StatusOp::Set,
            StatusOp::Remove => wire::StatusOp::Remove,
            StatusOp::Reset => return,
        };
        if let Err(e) = self.tree.apply(op, &u.path, u.value.clone()) {
            tracing::warn!("status update not applied: {e}");
        }
    }

    /// Reads the tree again (after a gap), applies again the updates taken
    /// that it does not hold yet, and queues one `Reset`. Changes nothing
    /// until the snapshot is in: cancel-safe.
    async fn reset(&mut self, deadline: Option<Instant>) -> Result<()> {
        // Bounded by the caller's deadline, and by the session's timeout;
        // a deadline already past still gets one short try.
        let timeout = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::MAX)
            .min(self.session.timeout())
            .max(Duration::from_millis(200));
        let snap = snapshot(&self.session, &self.server, &self.masks, timeout).await?;
        let mut tree = StatusTree::from_value(snap.tree).map_err(|e| {
            Error::Protocol(format!(
                "the status snapshot of {} is not a tree: {e}",
                self.server
            ))
        })?;
        let mut vector = snap.vector;
        for u in &self.recent {
            let last = vector.get(&u.origin).copied().unwrap_or(0);
            if u.seq <= last {
                continue;
            }
            vector.insert(u.origin.clone(), u.seq);
            for mask in &self.masks {
                if let Some(cut) = relevant(u, mask) {
                    let _ = tree.apply(cut.op, &cut.path, cut.value);
                }
            }
        }
        // What was taken before and is neither in the snapshot nor among
        // the recent updates is lost to this tree; later updates of those
        // origins must not look like a gap again.
        for (origin, seq) in &self.vector {
            let v = vector.entry(origin.clone()).or_insert(0);
            *v = (*v).max(*seq);
        }
        self.gaps += 1;
        tracing::debug!(
            server = self.server,
            gaps = self.gaps,
            "status follower read the tree again"
        );
        self.tree = tree;
        self.vector = vector;
        self.ready.clear();
        self.ready.push_back(StatusUpdate {
            origin: self.server.clone(),
            seq: 0,
            time_unix_ms: troupe_protocol::now_ms(),
            op: StatusOp::Reset,
            path: String::new(),
            value: self.tree.value().clone(),
        });
        Ok(())
    }
}
