//! troupe's own patterns, measured side by side with the floor and the
//! peers: request/reply (`rtt`) and publish/subscribe (`thr`, `fanout`).
//!
//! Topology: a troupe server process (this program re-executed with
//! `--serve`, a Zenoh router on `tcp/127.0.0.1:<free port>`), and far ends
//! that are peer processes *attached* to it (`This::attach_with`): peer-mode
//! sessions that connect to the server and listen on `tcp/127.0.0.1:0`. The
//! bench's side connects with `Server::connect_with` in **peer** mode too (a
//! client would route every message through the server), finds the far
//! end's instance and uses its endpoints as any troupe program would. troupe
//! leaves gossip scouting on, so the peers find each other through the
//! router and exchange data over a direct link.
//!
//! - `rtt`: a responder peer (`troupe-rep`) echoes every request; the bench
//!   sends requests with a `Requester`.
//! - `thr`/`fanout`: a publisher peer (`troupe-pub`) publishes when the
//!   bench asks it to (a request to its `ctl` responder), then the round's
//!   marker ([`crate::wire`]), and collects the subscribers'
//!   acknowledgements (requests to its `acks` responder) before it answers
//!   with what the round achieved. One subscriber runs in the bench process,
//!   a peer with a direct link to the publisher; more run one per process
//!   (`troupe-sink`), as clients of the server, which forwards the samples
//!   to them (peers would also link to each other). Subscribers count the
//!   messages they received and report `Subscriber::missed`.

use crate::peer::{Activity, Peers, IDLE};
use crate::pin::Placement;
use crate::report::Role;
use crate::rtt::{RttLink, RttSubject};
use crate::server_proc::ServerProcess;
use crate::thr::{Round, ThrLink, ThrSubject};
use crate::wire::{self, Ack, Counter};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use troupe::{
    Instance, Message, Mode, PublisherOptions, Requester, RequesterOptions, Server, SessionOptions,
    SubscriberOptions, This,
};
use zenoh::bytes::ZBytes;

/// Bound of every wait of the bench.
const WAIT: Duration = Duration::from_secs(60);

/// The server's configuration: no applications (the far ends attach).
const CONFIG: &str = "name = \"bench\"\n";

const REP_APP: &str = "bench-rep";
const PUB_APP: &str = "bench-pub";
const ECHO: &str = "echo";
const DATA: &str = "data";
const CTL: &str = "ctl";
const ACKS: &str = "acks";

const SETTINGS: &str = "a troupe server process (router) on tcp/127.0.0.1:<free port>; the \
     far end is a process attached to it (This::attach_with, a peer-mode session listening on \
     tcp/127.0.0.1:0); the bench's side is a Server::connect_with in peer mode (not the default \
     client mode, which would route everything through the server); troupe leaves gossip \
     scouting on, so the peers link to each other directly and data flows peer to peer";

/// Every troupe session of the bench: peers, with a deadline long enough for
/// the largest messages.
pub(crate) fn options() -> SessionOptions {
    SessionOptions {
        mode: Mode::Peer,
        timeout: Duration::from_secs(30),
        ..SessionOptions::default()
    }
}

/// Receive buffers per link of every subscriber
/// ([`SessionOptions::rx_buffers`]): the one of a 1-to-1 case (a peer
/// linked to the publisher, the server and the bench) and each of 10 or 100
/// (a client: one link). Peers linked to each other would multiply them:
/// 64 per link for 100 peers took several GiB.
const SINK_RX_BUFFERS: usize = 64;

/// The runtime of a far end (the bench's own has two workers too).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// A server process and the bench's peer-mode connection to it, retried
/// while the server starts (bounded).
pub(crate) async fn server() -> anyhow::Result<(ServerProcess, Server)> {
    let process = ServerProcess::start(CONFIG)?;
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        match Server::connect_with(&process.endpoint, options()).await {
            Ok(s) => return Ok((process, s)),
            Err(e) if Instant::now() > end => anyhow::bail!("the server did not come up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The instance of `app` once a far end has attached it (bounded; fails
/// early if a far end exits).
pub(crate) async fn attached(
    server: &Server,
    app: &str,
    peers: &mut Peers,
) -> anyhow::Result<Instance> {
    let end = Instant::now() + WAIT;
    loop {
        if let Ok(instance) = server.find(app).await {
            return Ok(instance);
        }
        peers.check()?;
        anyhow::ensure!(Instant::now() < end, "{app} did not attach within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `rtt`: a request and its reply.
pub struct RttReqRep {
    /// The far end answers in its handler (`This::serve`, on Zenoh's
    /// thread) rather than from a task reading a `Responder`.
    pub served: bool,
}

impl RttSubject for RttReqRep {
    fn name(&self) -> &'static str {
        if self.served {
            "troupe req/rep, served"
        } else {
            "troupe req/rep"
        }
    }

    fn topology(&self) -> &'static str {
        if self.served {
            "peer to peer beside a server, Requester → This::serve"
        } else {
            "peer to peer beside a server, Requester → Responder"
        }
    }

    fn role(&self) -> Role {
        Role::Troupe
    }

    fn method(&self) -> String {
        let far = if self.served {
            "a worker of the far end that answers in its handler (This::serve: on Zenoh's \
             receiving thread, Request::reply_now), as the raw ping-pong answers in its callback"
        } else {
            "a Responder of the far end, whose task reads each request (Responder::recv) and \
             replies (Request::reply)"
        };
        format!(
            "{SETTINGS}; the bench's Requester (request, Message::zbytes of one payload kept \
             as ZBytes, as the raw rows keep theirs: no copy) to {far}, with the request's \
             message (a clone of a ZBytes: no copy); troupe's settings: requests and replies \
             by declared publishers, express, Block; the server process is not pinned"
        )
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(async move {
            let (process, server) = server().await?;
            let mut peers = Peers::default();
            let mut args = vec![process.endpoint.clone()];
            if self.served {
                args.push("serve".into());
            }
            peers.spawn("troupe-rep", placement, &args)?;
            let instance = attached(&server, REP_APP, &mut peers).await?;
            let requester = instance
                .requester_with(
                    ECHO,
                    RequesterOptions {
                        timeout: Some(WAIT),
                    },
                )
                .await?;
            requester.wait_for_responder(WAIT).await?;
            Ok(Box::new(ReqLink {
                requester,
                _server: server,
                _peers: peers,
                _process: process,
            }) as Box<dyn RttLink>)
        })
    }
}

/// Dropped in this order: the requester, the bench's session, the far end,
/// the server.
struct ReqLink {
    requester: Requester,
    _server: Server,
    _peers: Peers,
    _process: ServerProcess,
}

impl RttLink for ReqLink {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            let payload = ZBytes::from(vec![0x5au8; size]);
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                let answer = self
                    .requester
                    .request(Message::zbytes(payload.clone()))
                    .await?;
                out.push(t.elapsed());
                anyhow::ensure!(
                    answer.len() == size,
                    "an answer of {} bytes for {size}",
                    answer.len()
                );
            }
            Ok(out)
        })
    }
}

/// Peer `troupe-rep ENDPOINT [serve]`: attaches to the server as
/// `bench-rep` and answers every request to its responder `echo` with the
/// request's message: from a task reading a `Responder`, or with `serve`
/// in the handler of `This::serve`.
///
/// # Errors
///
/// Attaching failed, a reply failed, or idle for [`IDLE`].
pub fn rep(endpoint: &str, served: bool) -> anyhow::Result<()> {
    if served {
        runtime()?.block_on(serve_echo_in_handler(endpoint))
    } else {
        runtime()?.block_on(serve_echo(endpoint))
    }
}

async fn serve_echo_in_handler(endpoint: &str) -> anyhow::Result<()> {
    let this = This::attach_with(endpoint, REP_APP, options()).await?;
    let failed = Arc::new(std::sync::Mutex::new(None));
    let failure = failed.clone();
    let _service = this
        .serve(ECHO, move |request| {
            Activity::get().touch();
            let echo = request.message().clone();
            if let Err(e) = request.reply_now(echo) {
                *failure.lock().expect("failure lock") = Some(e);
            }
        })
        .await?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Some(e) = failed.lock().expect("failure lock").take() {
            anyhow::bail!("a reply failed: {e}");
        }
        anyhow::ensure!(Activity::get().idle() < IDLE, "idle for {IDLE:?}");
    }
}

async fn serve_echo(endpoint: &str) -> anyhow::Result<()> {
    let this = This::attach_with(endpoint, REP_APP, options()).await?;
    let mut responder = this.responder(ECHO).await?;
    loop {
        let request = responder.recv_timeout(IDLE).await?;
        let echo = request.message().clone();
        request.reply(echo).await?;
    }
}

/// `thr`/`fanout`: a publisher, plain or synchronised on every subscriber.
pub struct ThrPubSub {
    /// Synchronised (flow-controlled) on all the subscribers of the case.
    pub synchronised: bool,
}

impl ThrSubject for ThrPubSub {
    fn name(&self) -> &'static str {
        if self.synchronised {
            "troupe pub/sub, synchronised"
        } else {
            "troupe pub/sub"
        }
    }

    fn topology(&self) -> &'static str {
        if self.synchronised {
            "peers beside a server (1 to 10 and 100: the subscribers are its clients), \
             synchronised on every subscriber"
        } else {
            "peers beside a server (1 to 10 and 100: the subscribers are its clients), plain \
             publisher"
        }
    }

    fn role(&self) -> Role {
        Role::Troupe
    }

    fn method(&self) -> String {
        let kind = if self.synchronised {
            "synchronised on every subscriber of the case (PublisherOptions::synchronised(n): \
             window 32,768 messages and 64 MiB, acknowledgements every 512, or 64 when the subscriber has caught up)"
        } else {
            "plain (This::publisher: never waits; a subscriber that falls 10,000 messages \
             behind drops what does not fit, counted by Subscriber::missed)"
        };
        format!(
            "{SETTINGS}; the publisher, {kind}, runs in the far end: asked by the bench, it \
             sends Message::zbytes of one payload kept as ZBytes (no copy), from one task, then \
             the round's marker, and times from its first send to the last acknowledgement; \
             one subscriber runs in the bench process (its own peer-mode session, linked to \
             the publisher), more run one per process as clients of the server (Mode::Client, \
             troupe's default: the server forwards every sample to each of them; as peers they \
             would link to each other too), all with SessionOptions::rx_buffers \
             {SINK_RX_BUFFERS}; each counts the messages it received (the figure) and reports \
             missed(); troupe's settings: Block, not express"
        )
    }

    fn open(&self, sinks: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn ThrLink>>> {
        Box::pin(async move {
            let (process, server) = server().await?;
            let endpoint = process.endpoint.clone();
            let mut peers = Peers::default();
            let on = if self.synchronised { sinks } else { 0 };
            peers.spawn(
                "troupe-pub",
                Placement::Any,
                &[endpoint.clone(), on.to_string()],
            )?;
            let publisher = attached(&server, PUB_APP, &mut peers).await?;
            let ctl = publisher
                .requester_with(
                    CTL,
                    RequesterOptions {
                        timeout: Some(WAIT),
                    },
                )
                .await?;
            ctl.wait_for_responder(WAIT).await?;
            let local = if sinks == 1 {
                // The one subscriber reads messages as they come, a little
                // behind: its session keeps receive buffers at hand.
                let opts = SessionOptions {
                    rx_buffers: SINK_RX_BUFFERS,
                    ..options()
                };
                let sink = Server::connect_with(&endpoint, opts).await?;
                let id = publisher.id();
                Some(Local(tokio::spawn(sink_loop(sink, id, 0))))
            } else {
                for sink in 0..sinks {
                    let args = [
                        endpoint.clone(),
                        publisher.id().to_string(),
                        sink.to_string(),
                    ];
                    peers.spawn("troupe-sink", Placement::Any, &args)?;
                }
                None
            };
            let mut link = PubLink {
                ctl,
                sinks,
                local,
                _server: server,
                _peers: peers,
                _process: process,
            };
            // Round 0: the publisher waits for every subscriber, then
            // repeats the marker until each has answered.
            link.run(0, 0, Duration::ZERO).await?;
            Ok(Box::new(link) as Box<dyn ThrLink>)
        })
    }
}

/// What the bench asks the publisher for.
#[derive(Debug, Serialize, Deserialize)]
struct RoundCmd {
    round: u32,
    size: usize,
    micros: u64,
    sinks: usize,
}

/// What the publisher answers.
#[derive(Debug, Serialize, Deserialize)]
struct RoundDone {
    sent: u64,
    delivered: u64,
    missed: u64,
    micros: u64,
}

/// The bench's subscriber task, aborted on drop.
struct Local(tokio::task::JoinHandle<anyhow::Result<()>>);

impl Drop for Local {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Dropped in this order: the requester, the bench's subscriber, the
/// bench's session, the far ends, the server.
struct PubLink {
    ctl: Requester,
    sinks: usize,
    local: Option<Local>,
    _server: Server,
    _peers: Peers,
    _process: ServerProcess,
}

impl PubLink {
    async fn run(&mut self, round: u32, size: usize, duration: Duration) -> anyhow::Result<Round> {
        self._peers.check()?;
        let cmd = RoundCmd {
            round,
            size,
            micros: duration.as_micros() as u64,
            sinks: self.sinks,
        };
        // The publisher may wait WAIT for its subscribers (round 0), then
        // WAIT for their acknowledgements: its own error says which.
        let request = self
            .ctl
            .request_timeout(Message::json(&cmd)?, duration + 3 * WAIT);
        tokio::pin!(request);
        // A subscriber that fails never acknowledges: fail at once rather
        // than at the deadline.
        let mut check = tokio::time::interval(Duration::from_millis(100));
        let answer = loop {
            tokio::select! {
                answer = &mut request => break answer?,
                _ = check.tick() => self._peers.check()?,
                ended = async {
                    match &mut self.local {
                        Some(Local(task)) => task.await,
                        None => std::future::pending().await,
                    }
                } => anyhow::bail!("the bench's subscriber ended: {ended:?}"),
            }
        };
        let done: RoundDone = answer.to_json()?;
        Ok(Round {
            sent: done.sent,
            delivered: done.delivered,
            elapsed: Duration::from_micros(done.micros),
            missed: Some(done.missed),
        })
    }
}

impl ThrLink for PubLink {
    fn round(
        &mut self,
        round: u32,
        size: usize,
        duration: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Round>> {
        Box::pin(self.run(round, size, duration))
    }
}

/// Peer `troupe-pub ENDPOINT N`: attaches to the server as `bench-pub`, with
/// the publisher `data` (synchronised on N subscribers, plain for 0), and
/// runs the rounds the bench asks its responder `ctl` for.
///
/// # Errors
///
/// Attaching or a declaration failed, or idle for [`IDLE`].
pub fn publisher(endpoint: &str, synchronised: usize) -> anyhow::Result<()> {
    runtime()?.block_on(serve_rounds(endpoint, synchronised))
}

async fn serve_rounds(endpoint: &str, synchronised: usize) -> anyhow::Result<()> {
    let this = This::attach_with(endpoint, PUB_APP, options()).await?;
    let opts = match synchronised {
        0 => PublisherOptions::default(),
        n => PublisherOptions::synchronised(n),
    };
    let publisher = this
        .publisher_with(
            DATA,
            PublisherOptions {
                send_timeout: WAIT,
                ..opts
            },
        )
        .await?;
    // Acknowledgements arrive as requests: forwarded to the round, answered
    // with nothing.
    let mut acks_in = this.responder(ACKS).await?;
    let (tx, mut acks) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(request) = acks_in.recv().await {
            let b = request.message().body();
            if let (Some(ack), Some(missed)) = (
                b.get(..Ack::LEN).and_then(Ack::decode),
                b.get(Ack::LEN..).and_then(|m| <[u8; 8]>::try_from(m).ok()),
            ) {
                let _ = tx.send((ack, u64::from_le_bytes(missed)));
            }
            let _ = request.reply(Vec::<u8>::new()).await;
        }
    });
    let mut ctl = this.responder(CTL).await?;
    loop {
        let request = ctl.recv_timeout(IDLE).await?;
        let done = match request.message().to_json::<RoundCmd>() {
            Ok(cmd) => run_round(&publisher, &mut acks, &cmd).await,
            Err(e) => Err(e.into()),
        };
        match done {
            Ok(done) => request.reply(Message::json(&done)?).await?,
            Err(e) => request.fail(&format!("{e:#}")).await?,
        }
    }
}

/// Publishes for the round's time, then its marker, again every 20 ms
/// while acknowledgements are missing (a plain publisher's marker may be
/// dropped by a full subscriber), and collects them.
async fn run_round(
    publisher: &troupe::Publisher,
    acks: &mut mpsc::UnboundedReceiver<(Ack, u64)>,
    cmd: &RoundCmd,
) -> anyhow::Result<RoundDone> {
    if cmd.round == 0 {
        publisher.wait_for_subscribers(cmd.sinks, WAIT).await?;
    }
    let duration = Duration::from_micros(cmd.micros);
    let payload = ZBytes::from(vec![0x5au8; cmd.size]);
    let every = (65_536 / cmd.size.max(1)).clamp(1, 256);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        for _ in 0..every {
            publisher.send(Message::zbytes(payload.clone())).await?;
        }
        sent += every as u64;
    }
    let marker = || Message::bytes(wire::marker(cmd.round).to_vec());
    publisher.send(marker()).await?;
    let end = Instant::now() + WAIT;
    let mut seen: HashMap<u32, (u64, u64)> = HashMap::new();
    // Again after 20 ms of silence, then 40, 80... at most every 320 ms.
    let mut quiet = Duration::from_millis(20);
    while seen.len() < cmd.sinks {
        anyhow::ensure!(
            Instant::now() < end,
            "round {}: {} of {} sinks acknowledged within {WAIT:?}",
            cmd.round,
            seen.len(),
            cmd.sinks
        );
        match tokio::time::timeout(quiet, acks.recv()).await {
            Ok(Some((ack, missed))) if ack.round == cmd.round => {
                seen.insert(ack.sink, (ack.count, missed));
            }
            Ok(Some(_)) => {} // a late answer to an earlier marker
            Ok(None) => anyhow::bail!("the acknowledgement responder ended"),
            Err(_) => {
                publisher.send(marker()).await?;
                quiet = (quiet * 2).min(Duration::from_millis(320));
            }
        }
    }
    let micros = start.elapsed().as_micros() as u64;
    Ok(RoundDone {
        sent,
        delivered: seen.values().map(|s| s.0).min().unwrap_or(0),
        missed: seen.values().map(|s| s.1).max().unwrap_or(0),
        micros,
    })
}

/// Peer `troupe-sink ENDPOINT PUBLISHER ID`: a subscriber of the publisher
/// `data` of instance PUBLISHER, in its own process, connected as a client
/// (troupe's default mode): the server forwards the publisher's samples to
/// it, and it links to no other subscriber. See [`sink_options`].
///
/// # Errors
///
/// Connecting or subscribing failed, the publisher went away, or idle for
/// [`IDLE`].
pub fn sink(endpoint: &str, publisher: u64, id: u32) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let server = Server::connect_with(endpoint, sink_options()).await?;
        sink_loop(server, publisher, id).await
    })
}

/// The session of a subscriber of 10 or 100 (`troupe-sink`): a client,
/// as `Server::connect` makes by default, with [`SINK_RX_BUFFERS`] (a
/// client has one link, to the server). As peers, every subscriber would
/// link to every other by gossip: 1 to 100 ran at 0.4x to 0.6x raw Zenoh
/// that way, and 1 to 10 no faster than through the server (BENCHMARKS.md,
/// "troupe's patterns", 7).
fn sink_options() -> SessionOptions {
    SessionOptions {
        mode: Mode::Client,
        rx_buffers: SINK_RX_BUFFERS,
        ..options()
    }
}

/// Counts the messages of the publisher `data` of instance `publisher`, and
/// answers each marker with an acknowledgement (a request to its responder
/// `acks`): the count of the round and what `missed()` grew by.
async fn sink_loop(server: Server, publisher: u64, id: u32) -> anyhow::Result<()> {
    let instance = server.instance(publisher).await?;
    let mut subscriber = instance
        .subscriber_with(
            DATA,
            SubscriberOptions {
                timeout: Some(WAIT),
                ..SubscriberOptions::default()
            },
        )
        .await?;
    let acks = instance
        .requester_with(
            ACKS,
            RequesterOptions {
                timeout: Some(WAIT),
            },
        )
        .await?;
    let mut counter = Counter::new(id);
    let (mut last_round, mut missed_before, mut missed_in_round) = (None, 0u64, 0u64);
    // The round last acknowledged for sure, and whether an acknowledgement
    // is under way: a repeated marker is answered only when neither holds
    // (with 100 sinks, answering every repetition floods the publisher).
    let confirmed = Arc::new(AtomicI64::new(-1));
    let in_flight = Arc::new(AtomicBool::new(false));
    while let Some(message) = subscriber.recv_timeout(IDLE).await? {
        let Some(ack) = counter.take_len(message.len(), || wire::parse_marker(message.body()))
        else {
            continue;
        };
        if last_round != Some(ack.round) {
            last_round = Some(ack.round);
            let missed = subscriber.missed();
            missed_in_round = missed - missed_before;
            missed_before = missed;
        } else if confirmed.load(Ordering::Acquire) == i64::from(ack.round)
            || in_flight.load(Ordering::Acquire)
        {
            continue;
        }
        let mut answer = ack.encode().to_vec();
        answer.extend_from_slice(&missed_in_round.to_le_bytes());
        // Aside: counting goes on while the acknowledgement travels.
        in_flight.store(true, Ordering::Release);
        let (acks, confirmed, in_flight) = (acks.clone(), confirmed.clone(), in_flight.clone());
        tokio::spawn(async move {
            match acks.request(answer).await {
                Ok(_) => confirmed.store(i64::from(ack.round), Ordering::Release),
                Err(e) => eprintln!("troupe-sink {id}: acknowledgement failed: {e}"),
            }
            in_flight.store(false, Ordering::Release);
        });
    }
    Ok(())
}
