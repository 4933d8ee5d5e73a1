//! Raw Zenoh, tuned as troupe tunes it: express requests and replies,
//! `CongestionControl::Block` wherever loss is not allowed, callbacks on the
//! far end's hot path.
//!
//! Topology: two (or 1 + N) peer-mode sessions. The bench listens on
//! `tcp/127.0.0.1:<free port>` and every far end connects to it, so each
//! far end has one direct TCP link to the bench; multicast and gossip
//! scouting are off (no other link is made, no sink connects to another).

use crate::peer::{Activity, Peers, IDLE};
use crate::pin::Placement;
use crate::report::Role;
use crate::rtt::{RttLink, RttSubject};
use crate::thr::{collect_acks, send_for, Round, ThrLink, ThrSubject};
use crate::wire::{self, Ack, Counter};
use futures::future::BoxFuture;
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};
use zenoh::bytes::ZBytes;
use zenoh::pubsub::{Publisher, Subscriber};
use zenoh::qos::CongestionControl;
use zenoh::query::ConsolidationMode;
use zenoh::{Session, Wait};

/// Bound of every wait of the bench.
const WAIT: Duration = Duration::from_secs(60);

const KEY_QUERY: &str = "troupe-bench/rtt/query";
const KEY_PING: &str = "troupe-bench/rtt/ping";
const KEY_PONG: &str = "troupe-bench/rtt/pong";
const KEY_DATA: &str = "troupe-bench/thr/data";
const KEY_ACK: &str = "troupe-bench/thr/ack";

pub(crate) const TOPOLOGY: &str =
    "two peer-mode sessions, the bench listening on tcp/127.0.0.1:<free \
     port>, the far end connecting (one direct TCP link), multicast and gossip scouting off";

pub(crate) fn z<T>(r: zenoh::Result<T>) -> anyhow::Result<T> {
    r.map_err(|e| anyhow::anyhow!("zenoh: {e}"))
}

/// A peer-mode configuration listening on `listen` or connecting to
/// `connect`, scouting off.
fn config(listen: Option<&str>, connect: Option<&str>) -> anyhow::Result<zenoh::Config> {
    let mut c = zenoh::Config::default();
    let json = |v: serde_json::Value| v.to_string();
    let settings = [
        ("mode", json("peer".into())),
        ("listen/endpoints", json(listen.into_iter().collect())),
        ("connect/endpoints", json(connect.into_iter().collect())),
        // A far end tries once and fails at once if the bench is not there.
        ("connect/timeout_ms", json(0.into())),
        ("connect/exit_on_failure", json(true.into())),
        ("scouting/multicast/enabled", json(false.into())),
        ("scouting/gossip/enabled", json(false.into())),
    ];
    for (key, value) in settings {
        c.insert_json5(key, &value)
            .map_err(|e| anyhow::anyhow!("zenoh configuration {key} = {value}: {e}"))?;
    }
    Ok(c)
}

/// A peer-mode configuration as troupe's applications have it: connected
/// to a router at `router`, listening on `tcp/127.0.0.1:0`, multicast
/// scouting off and gossip on (the peers find each other through the router
/// and link directly).
fn routed_config(router: &str) -> anyhow::Result<zenoh::Config> {
    let mut c = config(Some("tcp/127.0.0.1:0"), Some(router))?;
    c.insert_json5("scouting/gossip/enabled", "true")
        .map_err(|e| anyhow::anyhow!("zenoh configuration: {e}"))?;
    Ok(c)
}

/// A router listening on `endpoint`, multicast scouting off, as a troupe
/// server runs it.
pub(crate) fn router_config(endpoint: &str) -> anyhow::Result<zenoh::Config> {
    let mut c = zenoh::Config::default();
    for (key, value) in [
        ("mode", "\"router\"".to_string()),
        ("listen/endpoints", format!("[\"{endpoint}\"]")),
        ("scouting/multicast/enabled", "false".to_string()),
    ] {
        c.insert_json5(key, &value)
            .map_err(|e| anyhow::anyhow!("zenoh configuration {key} = {value}: {e}"))?;
    }
    Ok(c)
}

/// Peer `zenoh-router ENDPOINT`: a Zenoh router listening on ENDPOINT,
/// multicast scouting off, as a troupe server runs it.
///
/// # Errors
///
/// The session failed to open.
pub fn router(endpoint: &str) -> anyhow::Result<()> {
    let _session = z(zenoh::open(router_config(endpoint)?).wait())?;
    // Until the bench closes standard input (see peer.rs).
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The bench's session, listening on a free loopback port, and the
/// endpoint far ends connect to.
pub(crate) async fn bench_session() -> anyhow::Result<(Session, String)> {
    let endpoint = format!("tcp/127.0.0.1:{}", troupe_testkit::free_port());
    let session = z(zenoh::open(config(Some(&endpoint), None)?).await)?;
    Ok((session, endpoint))
}

/// A far end's session, connected to the bench.
pub(crate) fn peer_session(endpoint: &str) -> anyhow::Result<Session> {
    z(zenoh::open(config(None, Some(endpoint))?).wait())
}

/// Serves until the bench's link closes, or nothing arrived for [`IDLE`].
pub(crate) fn serve_until_gone(session: &Session) -> anyhow::Result<()> {
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if session.info().peers_zid().wait().next().is_none() {
            return Ok(());
        }
        anyhow::ensure!(Activity::get().idle() < IDLE, "idle for {IDLE:?}");
    }
}

/// `rtt`: a get answered by a queryable.
pub struct RttGet;

impl RttSubject for RttGet {
    fn name(&self) -> &'static str {
        "raw Zenoh get/queryable"
    }

    fn topology(&self) -> &'static str {
        "peer to peer, 1 direct TCP link"
    }

    fn role(&self) -> Role {
        Role::Peer
    }

    fn method(&self) -> String {
        format!(
            "{TOPOLOGY}; get with express, Block, consolidation None, replies awaited on \
             tokio (recv_async); the queryable replies from its callback, express"
        )
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(async move {
            let (session, endpoint) = bench_session().await?;
            let mut peers = Peers::default();
            peers.spawn("zenoh-queryable", placement, &[endpoint])?;
            let mut link = GetLink {
                session,
                _peers: peers,
            };
            // Until the queryable is known here, a get ends with no reply.
            let end = Instant::now() + WAIT;
            loop {
                if link.get(8, Duration::from_millis(500)).await.is_ok() {
                    break;
                }
                link._peers.check()?;
                anyhow::ensure!(Instant::now() < end, "no queryable after {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(Box::new(link) as Box<dyn RttLink>)
        })
    }
}

struct GetLink {
    session: Session,
    _peers: Peers,
}

impl GetLink {
    async fn get(&self, size: usize, limit: Duration) -> anyhow::Result<()> {
        self.get_payload(ZBytes::from(vec![0x5a; size]), size, limit)
            .await
    }

    async fn get_payload(
        &self,
        payload: ZBytes,
        size: usize,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let sample = get_one(&self.session, KEY_QUERY, payload, limit).await?;
        anyhow::ensure!(
            sample.payload().len() == size,
            "a reply of {} bytes for {size}",
            sample.payload().len()
        );
        Ok(())
    }
}

/// One raw Zenoh get as the bench makes them (express, `Block`, no
/// consolidation), bounded by `limit`: its first reply's sample.
///
/// # Errors
///
/// No reply within `limit`, an ended query, an error reply.
pub async fn get_one(
    session: &Session,
    key: impl Into<String>,
    payload: impl Into<ZBytes>,
    limit: Duration,
) -> anyhow::Result<zenoh::sample::Sample> {
    let replies = z(session
        .get(key.into())
        .payload(payload)
        .consolidation(ConsolidationMode::None)
        .congestion_control(CongestionControl::Block)
        .express(true)
        .timeout(limit)
        .await)?;
    let reply = tokio::time::timeout(limit + Duration::from_secs(1), replies.recv_async())
        .await
        .map_err(|_| anyhow::anyhow!("no reply within {limit:?}"))?
        .map_err(|_| anyhow::anyhow!("the query ended without a reply"))?;
    reply
        .into_result()
        .map_err(|e| anyhow::anyhow!("error reply: {:?}", e.payload().to_bytes()))
}

impl RttLink for GetLink {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            let payload = ZBytes::from(vec![0x5a; size]);
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                self.get_payload(payload.clone(), size, WAIT).await?;
                out.push(t.elapsed());
            }
            Ok(out)
        })
    }
}

/// Peer `zenoh-queryable ENDPOINT`: replies to every query with its payload.
///
/// # Errors
///
/// The session or the declaration failed, or idle for [`IDLE`].
pub fn queryable(endpoint: &str) -> anyhow::Result<()> {
    let session = peer_session(endpoint)?;
    let _queryable = z(session
        .declare_queryable(KEY_QUERY)
        .callback(|query| {
            Activity::get().touch();
            let payload = query.payload().cloned().unwrap_or_default();
            if let Err(e) = query
                .reply(query.key_expr().clone(), payload)
                .express(true)
                .wait()
            {
                eprintln!("zenoh-queryable: reply failed: {e}");
            }
        })
        .wait())?;
    serve_until_gone(&session)
}

/// `rtt`: a put answered by a put, callbacks on both sides.
pub struct RttPingPong {
    /// In troupe's topology: both peers connected to a router process and,
    /// through gossip, to each other (else one direct link, nothing else).
    pub routed: bool,
}

impl RttSubject for RttPingPong {
    fn name(&self) -> &'static str {
        if self.routed {
            "raw Zenoh ping-pong beside a router"
        } else {
            "raw Zenoh put/sub ping-pong"
        }
    }

    fn topology(&self) -> &'static str {
        if self.routed {
            "peers linked directly and to a router process"
        } else {
            "peer to peer, 1 direct TCP link"
        }
    }

    fn role(&self) -> Role {
        Role::Peer
    }

    fn method(&self) -> String {
        let topology = if self.routed {
            "troupe's topology without troupe: a Zenoh router process (as a troupe server runs \
             it) on tcp/127.0.0.1:<free port>, two peer-mode sessions connected to it and \
             listening on tcp/127.0.0.1:0, multicast scouting off, gossip on (they link \
             directly)"
        } else {
            TOPOLOGY
        };
        format!(
            "{topology}; declared publishers with express and Block on both sides; the far \
             end's subscriber callback puts the payload back; the bench's subscriber callback \
             hands it to the measuring task (tokio mpsc)"
        )
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(async move {
            let mut peers = Peers::default();
            let (session, endpoint) = if self.routed {
                let router = format!("tcp/127.0.0.1:{}", troupe_testkit::free_port());
                peers.spawn(
                    "zenoh-router",
                    Placement::Any,
                    std::slice::from_ref(&router),
                )?;
                let end = Instant::now() + WAIT;
                let session = loop {
                    match zenoh::open(routed_config(&router)?).await {
                        Ok(s) => break s,
                        Err(e) if Instant::now() > end => anyhow::bail!("no router: {e}"),
                        Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                    }
                };
                (session, router)
            } else {
                bench_session().await?
            };
            let (tx, pongs) = tokio::sync::mpsc::unbounded_channel();
            let subscriber = z(session
                .declare_subscriber(KEY_PONG)
                .callback(move |s| {
                    let _ = tx.send(s.payload().len());
                })
                .await)?;
            let publisher = z(session
                .declare_publisher(KEY_PING)
                .congestion_control(CongestionControl::Block)
                .express(true)
                .await)?;
            let kind = if self.routed {
                "zenoh-pong-routed"
            } else {
                "zenoh-pong"
            };
            peers.spawn(kind, placement, &[endpoint])?;
            let mut link = PingPongLink {
                publisher,
                pongs,
                _subscriber: subscriber,
                _session: session,
                _peers: peers,
            };
            // Until both subscribers are known to the other side, a ping
            // or a pong goes nowhere.
            let end = Instant::now() + WAIT;
            loop {
                z(link.publisher.put(vec![0u8; 8]).await)?;
                if let Ok(Some(_)) =
                    tokio::time::timeout(Duration::from_millis(100), link.pongs.recv()).await
                {
                    break;
                }
                link._peers.check()?;
                anyhow::ensure!(Instant::now() < end, "no pong after {WAIT:?}");
            }
            // Late answers to the probes.
            tokio::time::sleep(Duration::from_millis(100)).await;
            while link.pongs.try_recv().is_ok() {}
            Ok(Box::new(link) as Box<dyn RttLink>)
        })
    }
}

struct PingPongLink {
    publisher: Publisher<'static>,
    pongs: tokio::sync::mpsc::UnboundedReceiver<usize>,
    _subscriber: Subscriber<()>,
    _session: Session,
    _peers: Peers,
}

impl RttLink for PingPongLink {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            let payload = ZBytes::from(vec![0x5a; size]);
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                z(self.publisher.put(payload.clone()).await)?;
                let len = tokio::time::timeout(WAIT, self.pongs.recv())
                    .await
                    .map_err(|_| anyhow::anyhow!("no pong within {WAIT:?}"))?
                    .ok_or_else(|| anyhow::anyhow!("the pong subscriber is gone"))?;
                anyhow::ensure!(len == size, "a pong of {len} bytes for {size}");
                out.push(t.elapsed());
            }
            Ok(out)
        })
    }
}

/// Peer `zenoh-pong ENDPOINT`: puts every ping back as a pong, from the
/// subscriber's callback.
///
/// # Errors
///
/// The session or a declaration failed, or idle for [`IDLE`].
pub fn pong(endpoint: &str, routed: bool) -> anyhow::Result<()> {
    let session = if routed {
        z(zenoh::open(routed_config(endpoint)?).wait())?
    } else {
        peer_session(endpoint)?
    };
    let publisher = z(session
        .declare_publisher(KEY_PONG)
        .congestion_control(CongestionControl::Block)
        .express(true)
        .wait())?;
    let _subscriber = z(session
        .declare_subscriber(KEY_PING)
        .callback(move |sample| {
            Activity::get().touch();
            if let Err(e) = publisher.put(sample.payload().clone()).wait() {
                eprintln!("zenoh-pong: put failed: {e}");
            }
        })
        .wait())?;
    serve_until_gone(&session)
}

/// `thr`/`fanout`: a declared publisher to subscribers with callbacks.
pub struct ThrPubSub {
    /// The publisher is `express` (each message sent at once, as troupe's
    /// channel clients send theirs) instead of batched.
    pub express: bool,
}

impl ThrSubject for ThrPubSub {
    fn name(&self) -> &'static str {
        if self.express {
            "raw Zenoh pub/sub, express"
        } else {
            "raw Zenoh pub/sub"
        }
    }

    fn topology(&self) -> &'static str {
        "peers in a star, 1 direct TCP link per subscriber"
    }

    fn role(&self) -> Role {
        Role::Peer
    }

    fn method(&self) -> String {
        let express = if self.express {
            "express (not batched)"
        } else {
            "not express (batched)"
        };
        format!(
            "peer-mode sessions, the bench listening on tcp/127.0.0.1:<free port> and each \
             subscriber's process connecting (one direct TCP link each, a star), multicast and \
             gossip scouting off; declared publisher with Block, {express}, put with wait() \
             from one thread; subscribers count in their callback"
        )
    }

    fn open(&self, sinks: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn ThrLink>>> {
        Box::pin(async move {
            let (session, endpoint) = bench_session().await?;
            let (tx, acks) = mpsc::channel();
            let ack_subscriber = z(session
                .declare_subscriber(KEY_ACK)
                .callback(move |s| {
                    if let Some(a) = Ack::decode(&s.payload().to_bytes()) {
                        let _ = tx.send(a);
                    }
                })
                .await)?;
            let publisher = z(session
                .declare_publisher(KEY_DATA)
                .congestion_control(CongestionControl::Block)
                .express(self.express)
                .await)?;
            let mut peers = Peers::default();
            for id in 0..sinks {
                peers.spawn(
                    "zenoh-sink",
                    Placement::Any,
                    &[endpoint.clone(), id.to_string()],
                )?;
            }
            let link = PubSubLink {
                publisher,
                acks,
                sinks,
                _ack_subscriber: ack_subscriber,
                _session: session,
                _peers: peers,
            };
            // Until a sink's subscriber is known here, markers miss it:
            // repeat the marker of round 0 until every sink answered.
            tokio::task::block_in_place(|| link.finish(0, true))?;
            Ok(Box::new(link) as Box<dyn ThrLink>)
        })
    }
}

struct PubSubLink {
    publisher: Publisher<'static>,
    acks: mpsc::Receiver<Ack>,
    sinks: usize,
    _ack_subscriber: Subscriber<()>,
    _session: Session,
    _peers: Peers,
}

impl PubSubLink {
    /// Publishes the marker of `round` and collects the acknowledgements;
    /// `repeat`: publish it again while some are missing.
    fn finish(&self, round: u32, repeat: bool) -> anyhow::Result<u64> {
        let put_marker = || z(self.publisher.put(wire::marker(round).to_vec()).wait());
        put_marker()?;
        collect_acks(
            round,
            self.sinks,
            WAIT,
            || match self.acks.recv_timeout(Duration::from_millis(20)) {
                Ok(a) => Ok(Some(a)),
                Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
                Err(e) => Err(e.into()),
            },
            || if repeat { put_marker() } else { Ok(()) },
        )
    }
}

impl ThrLink for PubSubLink {
    fn round(
        &mut self,
        round: u32,
        size: usize,
        duration: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Round>> {
        Box::pin(async move {
            tokio::task::block_in_place(|| {
                let payload = ZBytes::from(vec![0x5a; size]);
                let start = Instant::now();
                let sent = send_for(size, duration, || {
                    z(self.publisher.put(payload.clone()).wait())
                })?;
                // Block: nothing is lost, the marker comes after the data.
                let delivered = self.finish(round, false)?;
                Ok(Round {
                    sent,
                    delivered,
                    elapsed: start.elapsed(),
                    missed: None,
                })
            })
        })
    }
}

/// Peer `zenoh-sink ENDPOINT ID`: counts samples in its callback and
/// acknowledges markers.
///
/// # Errors
///
/// The session or a declaration failed, or idle for [`IDLE`].
pub fn sink(endpoint: &str, id: u32) -> anyhow::Result<()> {
    let session = peer_session(endpoint)?;
    let acks = z(session
        .declare_publisher(KEY_ACK)
        .congestion_control(CongestionControl::Block)
        .express(true)
        .wait())?;
    let counter = Mutex::new(Counter::new(id));
    let _subscriber = z(session
        .declare_subscriber(KEY_DATA)
        .callback(move |sample| {
            Activity::get().touch();
            let p = sample.payload();
            let ack = counter
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take_len(p.len(), || wire::parse_marker(&p.to_bytes()));
            if let Some(a) = ack {
                if let Err(e) = acks.put(a.encode().to_vec()).wait() {
                    eprintln!("zenoh-sink: ack failed: {e}");
                }
            }
        })
        .wait())?;
    serve_until_gone(&session)
}
