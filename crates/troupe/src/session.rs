//! A Zenoh session to a troupe network, and the control call every handle uses.

use crate::error::{fmt_duration, Error, Result};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use troupe_protocol::keys::Keys;
use troupe_protocol::{Request, RequestBody, Response};
use zenoh::qos::CongestionControl;
use zenoh::query::{ConsolidationMode, QueryTarget};
use zenoh::Wait as _;

/// How a [`Session`] joins the Zenoh network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// A client of the server's router: everything goes through the server.
    /// Right for consoles and other short-lived controllers, and for
    /// programs run by the dozen (such as the subscribers of a large
    /// fan-out): a client has one link.
    #[default]
    Client,
    /// A peer: connected to the server's router, and directly to other peers
    /// for data. Right for a few cooperating applications. Peers link to
    /// each other in pairs, whether or not they exchange anything: 100
    /// peers hold about 5,000 links. A fan-out to 100 subscribers ran
    /// several times faster with the subscribers as clients than as peers
    /// (BENCHMARKS.md).
    Peer,
}

impl From<troupe_protocol::InstanceMode> for Mode {
    /// The mode a server tells an instance to take (`TROUPE_MODE`).
    fn from(mode: troupe_protocol::InstanceMode) -> Mode {
        match mode {
            troupe_protocol::InstanceMode::Peer => Mode::Peer,
            troupe_protocol::InstanceMode::Client => Mode::Client,
        }
    }
}

/// Options of [`Session::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOptions {
    /// Client (default) or peer.
    pub mode: Mode,
    /// The realm: the prefix of every key (default `troupe`).
    pub realm: String,
    /// How long opening may take, and the default deadline of the calls made
    /// through this session (default 5 s).
    pub timeout: Duration,
    /// Zenoh receive buffers of 64 KiB kept for each link of this session
    /// (default 1, Zenoh's own; 1 to 1024). A received message holds its
    /// buffer until the application has read it (small messages that came
    /// together share one); once a link has none left, Zenoh allocates and
    /// zeroes a new one for every batch it reads. A subscriber that reads
    /// large messages a little behind their arrival gains from more: 64
    /// gave 64 KiB messages about 1.2x to 1.3x the throughput
    /// (BENCHMARKS.md). The cost is per link: a peer linked to every other
    /// peer of a large system (gossip's mesh) multiplies it, and 64 for
    /// each of 100 peers took several GiB.
    pub rx_buffers: usize,
}

/// The most receive buffers per link [`SessionOptions::rx_buffers`] takes.
pub const MAX_RX_BUFFERS: usize = 1024;

impl Default for SessionOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Client,
            realm: troupe_protocol::DEFAULT_REALM.to_string(),
            timeout: DEFAULT_TIMEOUT,
            rx_buffers: 1,
        }
    }
}

/// The default deadline of a control call.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to a troupe network through one server's endpoint.
///
/// Cheap to clone: clones share one Zenoh session, which closes when the last
/// clone (and every handle made from it) is dropped.
///
/// Zenoh needs tokio's multi-thread scheduler: use
/// `#[tokio::main]` / `#[tokio::test(flavor = "multi_thread")]`, not a
/// current-thread runtime.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    zenoh: zenoh::Session,
    keys: Keys,
    endpoint: String,
    timeout: Duration,
    /// One liveliness watch per server name, shared by every wait of this
    /// session (declaring one per wait costs a round trip).
    alive: std::sync::Mutex<std::collections::HashMap<String, AliveWatch>>,
    /// Who this session speaks for (`server/app/id`), once a [`crate::This`]
    /// holds it.
    identity: std::sync::OnceLock<String>,
    /// The name of the server this session is connected to, once asked.
    server_name: tokio::sync::OnceCell<String>,
}

/// A server's liveliness as a watch, and the subscription that feeds it.
type AliveWatch = (
    tokio::sync::watch::Receiver<bool>,
    zenoh::pubsub::Subscriber<()>,
);

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &self.inner.endpoint)
            .field("realm", &self.inner.keys.realm())
            .field("zid", &self.inner.zenoh.zid())
            .finish()
    }
}

impl Session {
    /// Opens a session connected to `endpoint` (for example
    /// `tcp/127.0.0.1:7447`).
    ///
    /// One connection attempt is made: when nothing listens there, this fails
    /// at once. Multicast scouting is always off. A peer listens on the
    /// endpoint's host with a free port (so that a loopback endpoint keeps
    /// everything on loopback); a client does not listen.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a malformed endpoint or realm,
    /// [`Error::ServerUnreachable`] when nothing answers at the endpoint within
    /// `opts.timeout`.
    pub async fn open(endpoint: &str, opts: SessionOptions) -> Result<Session> {
        let config = zenoh_config(endpoint, &opts)?;
        let timeout = opts.timeout;
        // `zenoh::open(..).await` blocks the calling thread until connected:
        // run it aside so that the deadline below really bounds it.
        let open = tokio::task::spawn_blocking(move || zenoh::open(config).wait());
        let unreachable = |reason: String| Error::ServerUnreachable {
            endpoint_or_server: endpoint.to_string(),
            reason,
        };
        let zenoh = match tokio::time::timeout(timeout, open).await {
            Err(_) => {
                return Err(unreachable(format!(
                    "no connection within {}",
                    fmt_duration(timeout)
                )))
            }
            Ok(Err(join)) => return Err(unreachable(format!("opening failed: {join}"))),
            Ok(Ok(Err(e))) => {
                let why = troupe_protocol::tidy_zenoh_message(&e.to_string());
                return Err(unreachable(
                    // A client's and a peer's words for "nothing listens".
                    if why.starts_with("Unable to connect to any of")
                        || why.starts_with("Can not create a new TCP link")
                    {
                        "cannot connect (is a troupe server listening there?)".to_string()
                    } else {
                        why
                    },
                ));
            }
            Ok(Ok(Ok(s))) => s,
        };
        Ok(Session {
            inner: Arc::new(Inner {
                zenoh,
                keys: Keys::new(opts.realm),
                endpoint: endpoint.to_string(),
                timeout,
                alive: Default::default(),
                identity: Default::default(),
                server_name: Default::default(),
            }),
        })
    }

    /// Whether `server`'s liveliness token is there: `true` until it is seen
    /// going away. The watch is declared once per server and shared.
    ///
    /// # Errors
    /// [`Error::Zenoh`] when the subscriber cannot be declared.
    pub(crate) async fn server_alive(
        &self,
        server: &str,
    ) -> Result<tokio::sync::watch::Receiver<bool>> {
        if let Some((rx, _)) = self.inner.alive.lock().expect("alive lock").get(server) {
            return Ok(rx.clone());
        }
        let (tx, rx) = tokio::sync::watch::channel(true);
        let sub = crate::feed::watch_server(self, server, move |up| {
            tx.send_replace(up);
        })
        .await?;
        let mut map = self.inner.alive.lock().expect("alive lock");
        // Another task may have declared one meanwhile: keep the first.
        let entry = map.entry(server.to_string()).or_insert((rx, sub));
        Ok(entry.0.clone())
    }

    /// Who this session speaks for: `server/app/id` once a
    /// [`This`](crate::This) holds it, else its Zenoh id.
    pub fn identity(&self) -> String {
        match self.inner.identity.get() {
            Some(id) => id.clone(),
            None => self.inner.zenoh.zid().to_string(),
        }
    }

    /// Records who this session speaks for (first call wins).
    pub(crate) fn set_identity(&self, identity: String) {
        let _ = self.inner.identity.set(identity);
    }

    /// The name of the troupe server this session is connected to. Asked
    /// once (a `hello` to the servers of the realm: the one whose router the
    /// session is connected to is the one), then remembered.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`] when no server answers within the
    /// session's timeout.
    pub async fn server_name(&self) -> Result<String> {
        let discover = || async {
            crate::server::discover(self, self.timeout())
                .await
                .map(|hello| hello.server)
        };
        self.inner
            .server_name
            .get_or_try_init(discover)
            .await
            .cloned()
    }

    /// A round trip to the troupe server this session is connected to.
    /// When it returns, that server's router has processed every
    /// declaration this session made before the call (Zenoh sends
    /// declarations on a higher priority than queries, over the same
    /// link), so a subscriber declared before it is known to publishers
    /// that declare themselves after it. Without it, a client publisher
    /// whose router has not yet heard of the subscriber drops its first
    /// samples at the source.
    ///
    /// # Errors
    /// [`Error::ServerUnreachable`] when the server does not answer within
    /// `timeout`.
    pub(crate) async fn sync(&self, timeout: Duration) -> Result<()> {
        let server = self.server_name().await?;
        let _: troupe_protocol::Hello = self.call(&server, RequestBody::Hello, timeout).await?;
        Ok(())
    }

    /// The endpoint this session connected to.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// The realm (key prefix).
    pub fn realm(&self) -> &str {
        self.inner.keys.realm()
    }

    /// The key expressions of this session's realm.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The default deadline of the calls made through this session.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The underlying Zenoh session.
    pub(crate) fn zenoh(&self) -> &zenoh::Session {
        &self.inner.zenoh
    }

    /// Sends a control request to `server` and decodes the `ok` result as `T`.
    ///
    /// Bounded by `timeout`: no reply at all is [`Error::ServerUnreachable`].
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        server: &str,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<T> {
        let op = body.op();
        let payload = serde_json::to_vec(&Request::new(body))
            .map_err(|e| Error::Invalid(format!("cannot encode {op} request: {e}")))?;
        let mut replies = self
            .query(
                self.keys().control(server),
                payload,
                QueryTarget::BestMatching,
                timeout,
            )
            .await?;
        match first_reply(&mut replies, timeout).await {
            FirstReply::Sample(sample) => decode_reply(server, op, &sample.payload().to_bytes()),
            FirstReply::Failed(text) => Err(Error::Server(format!(
                "server {server} failed {op}: {text}"
            ))),
            FirstReply::TimedOut => Err(Error::no_answer(server, timeout)),
            FirstReply::NoRoute => Err(Error::no_route(server)),
        }
    }

    /// Sends a query with `payload` to the queryables of `key`, as troupe
    /// tunes all its requests (express, `Block`, no consolidation), ended
    /// by Zenoh at `timeout`; the receiver of its replies
    /// ([`reply_channel`]).
    pub(crate) async fn query(
        &self,
        key: String,
        payload: Vec<u8>,
        target: QueryTarget,
        timeout: Duration,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<zenoh::query::Reply>> {
        let (handler, replies) = reply_channel();
        self.zenoh()
            .get(key)
            .payload(payload)
            .target(target)
            .consolidation(ConsolidationMode::None)
            .congestion_control(CongestionControl::Block)
            .express(true)
            .timeout(timeout)
            .callback(handler)
            .await
            .map_err(Error::Zenoh)?;
        Ok(replies)
    }
}

/// How a query asked of one queryable ended ([`first_reply`]).
pub(crate) enum FirstReply {
    /// The first sample answered.
    Sample(Box<zenoh::sample::Sample>),
    /// Only error replies came: the last one's text.
    Failed(String),
    /// Nothing came before Zenoh's deadline.
    TimedOut,
    /// The query ended at once: no queryable matched.
    NoRoute,
}

/// The first sample among the `replies` of a query made with `timeout`;
/// error replies are kept in case no sample comes. Bounded: Zenoh ends the
/// query at `timeout`, and a guard of one more second makes sure.
pub(crate) async fn first_reply(
    replies: &mut tokio::sync::mpsc::UnboundedReceiver<zenoh::query::Reply>,
    timeout: Duration,
) -> FirstReply {
    let guard = tokio::time::Instant::now() + timeout + Duration::from_secs(1);
    let (mut failure, mut timed_out) = (None, false);
    loop {
        match tokio::time::timeout_at(guard, replies.recv()).await {
            Err(_) => {
                timed_out = true;
                break;
            }
            Ok(None) => break, // the query is over
            Ok(Some(reply)) => match reply.into_result() {
                Ok(sample) => return FirstReply::Sample(Box::new(sample)),
                Err(e) => {
                    let text = e.payload().try_to_string().unwrap_or_default().into_owned();
                    // Zenoh reports its own deadline as an error reply "Timeout".
                    if text == "Timeout" {
                        timed_out = true;
                    } else {
                        failure = Some(text);
                    }
                }
            },
        }
    }
    match failure {
        Some(text) => FirstReply::Failed(text),
        None if timed_out => FirstReply::TimedOut,
        None => FirstReply::NoRoute,
    }
}

/// A handler for the replies of a Zenoh query, and their receiver. Unlike
/// Zenoh's default channel, the receiver may be dropped before the query
/// ends (an answer found early, a wait given up) without an error in the
/// log. It yields `None` once the query is over.
pub(crate) fn reply_channel() -> (
    impl Fn(zenoh::query::Reply) + Send + Sync + 'static,
    tokio::sync::mpsc::UnboundedReceiver<zenoh::query::Reply>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (
        move |reply| {
            let _ = tx.send(reply);
        },
        rx,
    )
}

/// Decodes the payload of a control reply of `server` to `op`.
pub(crate) fn decode_reply<T: DeserializeOwned>(server: &str, op: &str, bytes: &[u8]) -> Result<T> {
    let protocol =
        |e: serde_json::Error| Error::Protocol(format!("malformed {op} reply from {server}: {e}"));
    match serde_json::from_slice::<Response>(bytes).map_err(protocol)? {
        Response::Ok(v) => serde_json::from_value(v).map_err(protocol),
        Response::Err(e) => Err(Error::from_control(server, e)),
    }
}

/// Checks that `endpoint` looks like `proto/address`.
pub(crate) fn validate_endpoint(endpoint: &str) -> Result<()> {
    let invalid = |why: &str| {
        Err(Error::Invalid(format!(
            "endpoint {endpoint:?} {why} (expected proto/address, like tcp/127.0.0.1:7447)"
        )))
    };
    let Some((proto, addr)) = endpoint.split_once('/') else {
        return invalid("has no protocol");
    };
    if proto.is_empty()
        || !proto
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return invalid("has a bad protocol");
    }
    if addr.is_empty() || addr.chars().any(char::is_whitespace) {
        return invalid("has a bad address");
    }
    if let Err(e) = endpoint.parse::<zenoh::config::EndPoint>() {
        return invalid(&format!("is not understood by zenoh: {e}"));
    }
    Ok(())
}

/// What a peer listens on for an `endpoint`: the same protocol and host, port 0.
/// `None` for a Unix socket or an address without a port.
pub(crate) fn listen_endpoint(endpoint: &str) -> Option<String> {
    let (proto, rest) = endpoint.split_once('/')?;
    if proto.starts_with("unixsock") {
        return None;
    }
    // Drop endpoint metadata (`?...`) and configuration (`#...`).
    let addr = rest.split(['?', '#']).next()?;
    let (host, port) = addr.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    if host.is_empty() || host.starts_with('[') != host.ends_with(']') {
        return None;
    }
    Some(format!("{proto}/{host}:0"))
}

/// The Zenoh configuration of a session to `endpoint`.
fn zenoh_config(endpoint: &str, opts: &SessionOptions) -> Result<zenoh::Config> {
    validate_endpoint(endpoint)?;
    troupe_protocol::validate_name("realm", &opts.realm)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    fn json(v: impl serde::Serialize) -> String {
        serde_json::to_string(&v).unwrap_or_default()
    }
    let mut c = zenoh::Config::default();
    let mut set = |key: &str, value: String| {
        c.insert_json5(key, &value)
            .map_err(|e| Error::Invalid(format!("zenoh configuration {key} = {value}: {e}")))
    };
    let (mode, listen) = match opts.mode {
        Mode::Client => ("client", None),
        Mode::Peer => ("peer", listen_endpoint(endpoint)),
    };
    set("mode", json(mode))?;
    set("connect/endpoints", json([endpoint]))?;
    // Try once and fail at once when nothing listens (a peer would otherwise
    // open without any connection and retry for ever); a connection attempt
    // that hangs is cut by the deadline in `Session::open`.
    set("connect/timeout_ms", json(0))?;
    set("connect/exit_on_failure", json(true))?;
    set(
        "listen/endpoints",
        json(listen.into_iter().collect::<Vec<_>>()),
    )?;
    set("scouting/multicast/enabled", json(false))?;
    if !(1..=MAX_RX_BUFFERS).contains(&opts.rx_buffers) {
        return Err(Error::Invalid(format!(
            "rx_buffers {}: from 1 to {MAX_RX_BUFFERS}",
            opts.rx_buffers
        )));
    }
    // Zenoh's batches, and so its receive buffers, are at most 65,535 bytes.
    set(
        "transport/link/rx/buffer_size",
        json(opts.rx_buffers * usize::from(u16::MAX)),
    )?;
    // Peers learn of each other by gossip and link directly. By default both
    // sides of a pair connect, then one link is closed: with many peers
    // that churn takes seconds and withdraws tokens for a moment. Here only
    // the side with the greater Zenoh id connects to another peer.
    set(
        "scouting/gossip/autoconnect_strategy",
        json(serde_json::json!({"peer": {"to_peer": "greater-zid", "to_router": "always"}})),
    )?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_protocol::{ControlError, ErrorKind, InstanceInfo};

    #[test]
    fn endpoints_are_validated() {
        for ok in [
            "tcp/127.0.0.1:7447",
            "tcp/[::1]:7447",
            "tcp/localhost:7447",
            "unixsock-stream//tmp/troupe.sock",
        ] {
            validate_endpoint(ok).unwrap();
        }
        for bad in [
            "",
            "127.0.0.1:7447",
            "/127.0.0.1:7447",
            "tcp/",
            "tc p/x:1",
            "tcp/a b:1",
        ] {
            let e = validate_endpoint(bad).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
        }
    }

    #[test]
    fn peers_listen_on_the_endpoint_host() {
        let l = |e| listen_endpoint(e);
        assert_eq!(l("tcp/127.0.0.1:7447").as_deref(), Some("tcp/127.0.0.1:0"));
        assert_eq!(l("tcp/[::1]:7447").as_deref(), Some("tcp/[::1]:0"));
        assert_eq!(l("tcp/localhost:1?x=y").as_deref(), Some("tcp/localhost:0"));
        assert_eq!(
            l("tcp/host2.example:7447#iface=lo").as_deref(),
            Some("tcp/host2.example:0")
        );
        assert_eq!(l("unixsock-stream//tmp/t.sock"), None);
        assert_eq!(l("tcp/nohost"), None);
        assert_eq!(l("tcp/:7447"), None);
        assert_eq!(l("garbage"), None);
    }

    #[test]
    fn config_never_scouts_and_listens_only_as_peer() {
        let opts = |mode| SessionOptions {
            mode,
            ..Default::default()
        };
        let c = zenoh_config("tcp/127.0.0.1:7447", &opts(Mode::Peer)).unwrap();
        let s = format!("{c}");
        assert!(s.contains("tcp/127.0.0.1:0"), "{s}");
        let c = zenoh_config("tcp/127.0.0.1:7447", &opts(Mode::Client)).unwrap();
        assert!(!format!("{c}").contains("tcp/127.0.0.1:0"));
        assert_eq!(c.get_json("scouting/multicast/enabled").unwrap(), "false");
        assert_eq!(c.get_json("mode").unwrap(), "\"client\"");
        let strategy = c.get_json("scouting/gossip/autoconnect_strategy").unwrap();
        assert!(strategy.contains("greater-zid"), "{strategy}");
        let bad_realm = SessionOptions {
            realm: "a/b".into(),
            ..Default::default()
        };
        assert!(matches!(
            zenoh_config("tcp/127.0.0.1:7447", &bad_realm),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn receive_buffers_are_set_per_link_and_bounded() {
        let with = |rx_buffers| SessionOptions {
            rx_buffers,
            ..Default::default()
        };
        let buffer_size = |c: &zenoh::Config| {
            c.get_json("transport/link/rx/buffer_size")
                .unwrap()
                .parse::<usize>()
                .unwrap()
        };
        let c = zenoh_config("tcp/127.0.0.1:7447", &SessionOptions::default()).unwrap();
        assert_eq!(buffer_size(&c), 65_535, "Zenoh's own default");
        let c = zenoh_config("tcp/127.0.0.1:7447", &with(64)).unwrap();
        assert_eq!(buffer_size(&c), 64 * 65_535);
        for bad in [0, MAX_RX_BUFFERS + 1] {
            let e = zenoh_config("tcp/127.0.0.1:7447", &with(bad)).unwrap_err();
            assert!(
                matches!(&e, Error::Invalid(m) if m.contains("rx_buffers")),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn zenoh_messages_lose_their_source_locations() {
        let m = "Can not create a new TCP link bound to tcp/127.0.0.1:1: [127.0.0.1:1: \
                 Connection refused (os error 111) at /r/zenoh-link-commons-1.10.2/src/tcp.rs:105.] \
                 at /r/zenoh-link-commons-1.10.2/src/tcp.rs:133. at /r/src/unicast.rs:287.";
        assert_eq!(
            troupe_protocol::tidy_zenoh_message(m),
            "Can not create a new TCP link bound to tcp/127.0.0.1:1: [127.0.0.1:1: \
             Connection refused (os error 111)]"
        );
        assert_eq!(
            troupe_protocol::tidy_zenoh_message("look at this"),
            "look at this"
        );
        assert_eq!(
            troupe_protocol::tidy_zenoh_message("x at y.rs:z"),
            "x at y.rs:z"
        );
    }

    #[test]
    fn replies_are_decoded_and_errors_mapped() {
        let n: u32 = decode_reply("h", "x", br#"{"ok":3}"#).unwrap();
        assert_eq!(n, 3);
        let unit: () = decode_reply("h", "x", br#"{"ok":null}"#).unwrap();
        assert_eq!(unit, ());
        let err = serde_json::to_vec(&Response::Err(ControlError::new(
            ErrorKind::NotFound,
            "no instance 7",
        )))
        .unwrap();
        let e = decode_reply::<InstanceInfo>("h", "info", &err).unwrap_err();
        assert!(
            matches!(e, Error::NotFound(ref m) if m == "no instance 7"),
            "{e}"
        );
        let e = decode_reply::<InstanceInfo>("h", "info", br#"{"ok":3}"#).unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "{e}");
        let e = decode_reply::<u32>("h", "info", b"not json").unwrap_err();
        assert!(e
            .to_string()
            .starts_with("protocol error: malformed info reply from h"));
    }
}
