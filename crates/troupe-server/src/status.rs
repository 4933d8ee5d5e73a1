//! The realm's status tree, as every server keeps it.
//!
//! - **Sequencer.** Emitters put their updates on
//!   `<realm>/@/<server>/status/in`. The subscriber's callback, on Zenoh's
//!   receiving thread, checks each one, and under one lock numbers it
//!   (the next sequence number of this server run, its *origin*), applies
//!   it to the tree and queues it for publication. One task publishes the
//!   queue in order on `<realm>/@/status/upd/<origin>` with
//!   `CongestionControl::Block`.
//! - **Replica.** Every server subscribes to the updates of every origin and
//!   applies those of the others, keeping for each origin the number of the
//!   last update applied (the *vector*). An update at or below it is a
//!   duplicate and is skipped; one above the next number is applied, and the
//!   gap is logged.
//! - **Snapshot.** `status_get` answers the tree under masks with the vector,
//!   under the same lock: an update of origin `o` is in the tree exactly when
//!   its number is at most `vector[o]`.
//! - **Flush.** Updates are applied in the callback, before any later
//!   message of the same link reaches the control queryable: once
//!   `status_flush` is answered, every update its sender put before it has
//!   been applied.
//! - **Startup.** A server that joins other servers (`connect`) subscribes
//!   to the updates first, buffering them, then asks one of the servers it
//!   sees for its whole tree and vector, then applies the buffered updates
//!   that the snapshot does not hold. A server that sees no other within a
//!   bounded wait starts with an empty tree.

use crate::instance::Shared;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use troupe_protocol::keys::Keys;
use troupe_protocol::status::{
    normalize_masks, StatusInput, StatusMark, StatusSnapshot, StatusTree, StatusUpdate,
};
use troupe_protocol::{now_ms, ControlError, ErrorKind, Request, RequestBody, Response};
use zenoh::pubsub::Subscriber;
use zenoh::sample::{Sample, SampleKind};

/// How long a starting server looks for other servers.
const FIND_SERVERS: Duration = Duration::from_secs(1);
/// How long it waits for one server's snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(3);
/// How many updates of other origins a starting server buffers while it
/// waits for the snapshot; more are dropped, and counted as a gap.
const SYNC_BUFFER: usize = 100_000;

/// The status tree of the realm and this server's place in it.
#[derive(Debug)]
pub(crate) struct Status {
    origin: String,
    state: Mutex<State>,
    publish: mpsc::UnboundedSender<Vec<u8>>,
    /// The subscriptions feeding the tree; their callbacks hold a `Weak`.
    subscribers: Mutex<Vec<Subscriber<()>>>,
}

#[derive(Debug)]
struct State {
    tree: StatusTree,
    /// Origin -> the number of its last update applied.
    vector: BTreeMap<String, u64>,
    /// The last number given to an update of this server.
    seq: u64,
    /// Updates of other origins that did not follow the previous one.
    gaps: u64,
    /// While the starting server waits for a snapshot: the updates of other
    /// origins that arrived meanwhile.
    buffered: Option<Vec<StatusUpdate>>,
}

/// The origin id of a server run: `<server>-<start time in ns>`. Server
/// names hold no `/` or `*`, so it is one key chunk.
fn origin_of(server: &str) -> String {
    let ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{server}-{ns}")
}

/// Starts the status tree of the server: the publisher task, the
/// subscription to other origins, the initial synchronisation when the
/// server joins others (`join`), then the inbox of emitters. Returns the
/// tree and the publisher task.
///
/// # Errors
/// Zenoh's, when a subscriber cannot be declared.
pub(crate) async fn start(
    session: &zenoh::Session,
    keys: &Keys,
    server: &str,
    join: bool,
) -> Result<(Arc<Status>, JoinHandle<()>), zenoh::Error> {
    let origin = origin_of(server);
    let (tx, rx) = mpsc::unbounded_channel();
    let status = Arc::new(Status {
        origin: origin.clone(),
        state: Mutex::new(State {
            tree: StatusTree::new(),
            vector: BTreeMap::new(),
            seq: 0,
            gaps: 0,
            buffered: join.then(Vec::new),
        }),
        publish: tx,
        subscribers: Mutex::new(Vec::new()),
    });
    let publisher = session
        .declare_publisher(keys.status_updates(&origin))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .await?;
    let task = tokio::spawn(publish(publisher, rx));

    let weak = Arc::downgrade(&status);
    let updates = session
        .declare_subscriber(keys.status_updates("*"))
        .callback(move |sample| with(&weak, |s| s.on_update(&sample)))
        .await?;
    status.hold(updates);

    if join {
        let snapshot = sync_from_others(session, keys, server).await;
        status.synced(snapshot);
    }

    let weak = Arc::downgrade(&status);
    let inbox = session
        .declare_subscriber(keys.status_in(server))
        .callback(move |sample| with(&weak, |s| s.on_input(&sample)))
        .await?;
    status.hold(inbox);
    tracing::debug!(%origin, "status tree ready");
    Ok((status, task))
}

/// Calls `f` with the status tree if it still exists.
fn with(weak: &Weak<Status>, f: impl FnOnce(&Status)) {
    if let Some(s) = weak.upgrade() {
        f(&s);
    }
}

impl Status {
    fn hold(&self, sub: Subscriber<()>) {
        self.subscribers.lock().expect("status lock").push(sub);
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("status lock")
    }

    /// An emitter's update: checked, numbered, applied and queued.
    fn on_input(&self, sample: &Sample) {
        if sample.kind() != SampleKind::Put {
            return;
        }
        let bytes = sample.payload().to_bytes();
        let input = match serde_json::from_slice::<StatusInput>(&bytes) {
            Ok(input) => input,
            Err(e) => {
                tracing::warn!("malformed status update dropped: {e}");
                return;
            }
        };
        if let Err(e) = input.check(bytes.len()) {
            tracing::warn!("status update refused: {e}");
            return;
        }
        let mut st = self.state();
        st.seq += 1;
        let seq = st.seq;
        let time = now_ms();
        // The update is the input with its number in front: the value is
        // not encoded again. `bytes` is a JSON object (it decoded as one).
        let body = bytes.trim_ascii_start();
        let mut out = Vec::with_capacity(body.len() + self.origin.len() + 64);
        out.extend_from_slice(b"{\"origin\":");
        if serde_json::to_writer(&mut out, &self.origin).is_err() {
            return;
        }
        out.extend_from_slice(format!(",\"seq\":{seq},\"time_unix_ms\":{time},").as_bytes());
        out.extend_from_slice(&body[1..]);
        // Queued under the lock: the queue is in sequence order.
        let _ = self.publish.send(out);
        match st.vector.get_mut(&self.origin) {
            Some(last) => *last = seq,
            None => {
                st.vector.insert(self.origin.clone(), seq);
            }
        }
        if let Err(e) = st.tree.apply(input.op, &input.path, input.value) {
            tracing::warn!("status update not applied: {e}");
        }
    }

    /// An update published by a server (this one's own are already applied).
    fn on_update(&self, sample: &Sample) {
        // Its own updates come back through the local subscription: they
        // are already applied, and their key says so without parsing.
        if sample.kind() != SampleKind::Put
            || sample.key_expr().as_str().rsplit('/').next() == Some(self.origin.as_str())
        {
            return;
        }
        let update = match serde_json::from_slice::<StatusUpdate>(&sample.payload().to_bytes()) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(key = %sample.key_expr(), "malformed status update skipped: {e}");
                return;
            }
        };
        if update.origin == self.origin {
            return;
        }
        let mut st = self.state();
        if let Some(buffer) = st.buffered.as_mut() {
            if buffer.len() < SYNC_BUFFER {
                buffer.push(update);
            } else {
                st.gaps += 1;
            }
            return;
        }
        st.apply_other(update);
    }

    /// The snapshot of a starting server (if one answered) replaces the
    /// empty tree; then the buffered updates it does not hold are applied.
    fn synced(&self, snapshot: Option<(String, StatusSnapshot)>) {
        let mut st = self.state();
        if let Some((from, snap)) = snapshot {
            match StatusTree::from_value(snap.tree) {
                Ok(tree) => {
                    tracing::info!(
                        from,
                        origins = snap.vector.len(),
                        "status tree read from another server"
                    );
                    st.tree = tree;
                    st.vector = snap.vector;
                    st.vector.remove(&self.origin);
                }
                Err(e) => tracing::warn!(from, "status snapshot ignored: {e}"),
            }
        }
        for update in st.buffered.take().unwrap_or_default() {
            st.apply_other(update);
        }
    }

    /// The tree under `masks` and the vector.
    pub(crate) fn snapshot(&self, masks: &[String]) -> Result<StatusSnapshot, ControlError> {
        let masks = normalize_masks(masks)
            .map_err(|e| ControlError::new(ErrorKind::Invalid, e.to_string()))?;
        let st = self.state();
        Ok(StatusSnapshot {
            tree: st.tree.under(&masks),
            vector: st.vector.clone(),
        })
    }

    /// This server's origin and the number of its last update.
    pub(crate) fn mark(&self) -> StatusMark {
        StatusMark {
            origin: self.origin.clone(),
            seq: self.state().seq,
        }
    }
}

impl State {
    fn apply_other(&mut self, update: StatusUpdate) {
        let last = self.vector.get(&update.origin).copied().unwrap_or(0);
        if update.seq <= last {
            return;
        }
        if update.seq != last + 1 {
            let missed = update.seq - last - 1;
            self.gaps += missed;
            tracing::warn!(
                origin = update.origin,
                missed,
                total = self.gaps,
                "status updates of another server were missed (a link broke, or networks joined); the tree may differ from that server's"
            );
        }
        self.vector.insert(update.origin, update.seq);
        if let Err(e) = self.tree.apply(update.op, &update.path, update.value) {
            tracing::warn!("status update not applied: {e}");
        }
    }
}

/// Publishes the numbered updates in order.
async fn publish(
    publisher: zenoh::pubsub::Publisher<'static>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(bytes) = rx.recv().await {
        if let Err(e) = publisher.put(bytes).await {
            tracing::warn!("cannot publish a status update: {e}");
        }
    }
}

/// Asks the servers this one sees, one after the other, for the whole tree;
/// the first snapshot that comes, with the name of its server.
async fn sync_from_others(
    session: &zenoh::Session,
    keys: &Keys,
    server: &str,
) -> Option<(String, StatusSnapshot)> {
    let others = other_servers(session, keys, server).await;
    if others.is_empty() {
        tracing::info!("no other server seen: the status tree starts empty");
        return None;
    }
    for other in others {
        match snapshot_of(session, keys, &other).await {
            Ok(snap) => return Some((other, snap)),
            Err(e) => tracing::warn!(server = other, "no status tree from there: {e}"),
        }
    }
    tracing::warn!("no other server gave its status tree: it starts empty");
    None
}

/// The names of the servers whose liveliness tokens this one sees.
async fn other_servers(session: &zenoh::Session, keys: &Keys, server: &str) -> Vec<String> {
    let replies = match session
        .liveliness()
        .get(keys.all_servers_alive())
        .timeout(FIND_SERVERS)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!("cannot look for other servers: {e}");
            return Vec::new();
        }
    };
    let prefix = keys.server_alive("");
    let mut names = Vec::new();
    let guard = FIND_SERVERS + Duration::from_secs(1);
    while let Ok(Ok(reply)) = tokio::time::timeout(guard, replies.recv_async()).await {
        if let Ok(sample) = reply.result() {
            if let Some(name) = sample.key_expr().as_str().strip_prefix(&prefix) {
                if name != server && !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// One server's whole tree (a `status_get` control query).
async fn snapshot_of(
    session: &zenoh::Session,
    keys: &Keys,
    server: &str,
) -> Result<StatusSnapshot, String> {
    let request = Request::new(RequestBody::StatusGet { masks: Vec::new() });
    let payload = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    let replies = session
        .get(keys.control(server))
        .payload(payload)
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .timeout(SNAPSHOT_WAIT)
        .await
        .map_err(|e| e.to_string())?;
    let guard = SNAPSHOT_WAIT + Duration::from_secs(1);
    match tokio::time::timeout(guard, replies.recv_async()).await {
        Ok(Ok(reply)) => {
            let sample = reply.result().map_err(|e| {
                format!(
                    "error reply: {}",
                    e.payload().try_to_string().unwrap_or_default()
                )
            })?;
            match serde_json::from_slice::<Response>(&sample.payload().to_bytes()) {
                Ok(Response::Ok(v)) => serde_json::from_value(v).map_err(|e| e.to_string()),
                Ok(Response::Err(e)) => Err(e.message),
                Err(e) => Err(e.to_string()),
            }
        }
        _ => Err(format!(
            "no answer within {}",
            humantime::format_duration(SNAPSHOT_WAIT)
        )),
    }
}

/// `status_get`: the tree under `masks`, with the vector.
pub(crate) fn get(shared: &Shared, masks: &[String]) -> Result<serde_json::Value, ControlError> {
    let snap = status_of(shared)?.snapshot(masks)?;
    serde_json::to_value(snap).map_err(|e| ControlError::new(ErrorKind::Internal, e.to_string()))
}

/// `status_flush`: this server's origin and last number. Every update put
/// before the request on the same link has been applied by now.
pub(crate) fn flush(shared: &Shared) -> Result<serde_json::Value, ControlError> {
    let mark = status_of(shared)?.mark();
    serde_json::to_value(mark).map_err(|e| ControlError::new(ErrorKind::Internal, e.to_string()))
}

fn status_of(shared: &Shared) -> Result<&Arc<Status>, ControlError> {
    shared.status.get().ok_or_else(|| {
        ControlError::new(
            ErrorKind::Refused,
            format!("server {} is still starting its status tree", shared.name()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use troupe_protocol::status::StatusOp;

    fn state() -> State {
        State {
            tree: StatusTree::new(),
            vector: BTreeMap::new(),
            seq: 0,
            gaps: 0,
            buffered: None,
        }
    }

    fn update(origin: &str, seq: u64, path: &str, value: serde_json::Value) -> StatusUpdate {
        StatusUpdate {
            origin: origin.into(),
            seq,
            time_unix_ms: 0,
            op: StatusOp::Set,
            path: path.into(),
            value,
        }
    }

    #[test]
    fn updates_of_other_origins_apply_once_and_gaps_are_counted() {
        let mut st = state();
        st.apply_other(update("a-1", 1, "x", json!(1)));
        st.apply_other(update("a-1", 1, "x", json!(9)));
        assert_eq!(st.tree.get("x"), Some(&json!(1)));
        st.apply_other(update("b-1", 1, "y", json!(2)));
        st.apply_other(update("a-1", 4, "x", json!(4)));
        assert_eq!(st.gaps, 2);
        assert_eq!(st.vector["a-1"], 4);
        assert_eq!(st.vector["b-1"], 1);
        st.apply_other(update("a-1", 3, "x", json!(3)));
        assert_eq!(st.tree.get("x"), Some(&json!(4)));
    }

    #[test]
    fn origins_are_one_key_chunk_with_the_server_name() {
        let o = origin_of("lab.1");
        let (name, ns) = o.rsplit_once('-').unwrap();
        assert_eq!(name, "lab.1");
        assert!(ns.parse::<u128>().unwrap() > 0);
        assert!(!o.contains('/'));
    }
}
