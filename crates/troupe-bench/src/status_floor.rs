//! The floors of `status` ([`crate::status`]): an emitter process sends
//! the bytes of troupe's status inputs through a relay process to the
//! bench, over raw TCP and raw Zenoh.
//!
//! - [`StatusTcp`]: the bench listens; a relay process (`tcp-status-relay`)
//!   connects to it, listens on a free port of its own and tells the bench
//!   which; the emitter (`tcp-status-emitter`) connects to the relay. The
//!   relay copies bytes both ways (a command from the bench to the emitter,
//!   frames from the emitter to the bench), 256 KiB at a time.
//! - [`StatusZenoh`]: a router process on a free port; the emitter
//!   (`zenoh-status-emitter`) and the bench are Zenoh clients of it, so
//!   everything crosses the router. One hop: the router routes the
//!   emitter's puts to the bench's subscriber (`zenoh-router`). Two hops:
//!   the router's own session subscribes to the emitter's key and puts
//!   every sample again on the bench's key, from its callback
//!   (`zenoh-status-relay`), as a troupe server takes an update in its
//!   subscriber and publishes it again.
//!
//! The emitter is told what to send by the bench (a Zenoh query, or a
//! command on the TCP connection): a count and the payload, which it sends
//! that many times.

use crate::peer::{Activity, Peers, IDLE};
use crate::pin::Placement;
use crate::report::Role;
use crate::status::{input, text, Batch, Round, StatusLink, StatusSubject};
use crate::tcp::{accept, connect, listen, Frames};
use crate::wire;
use crate::zenoh_raw::{get_one, router_config, z};
use futures::future::BoxFuture;
use std::io::{BufWriter, ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use zenoh::bytes::ZBytes;
use zenoh::pubsub::Subscriber;
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

/// Bound of every wait of the bench.
const WAIT: Duration = Duration::from_secs(60);

/// The emitter's key when a router's subscriber puts the samples again.
const KEY_IN: &str = "troupe-bench/status/in";
/// The bench's key.
const KEY_OUT: &str = "troupe-bench/status/out";
/// The emitter's queryable: a command.
const KEY_CTL: &str = "troupe-bench/status/ctl";

/// The subject of the two-hop raw Zenoh rows, the fair floor of troupe's.
pub const RELAYED_NAME: &str = "raw Zenoh re-put by a router";

/// The counter of the first update sent to find out that a link works.
pub const PROBE_N: u64 = 10_000;

/// `status` floor: raw TCP through a relay process.
pub struct StatusTcp;

impl StatusSubject for StatusTcp {
    fn name(&self) -> &'static str {
        "raw TCP through a relay"
    }

    fn role(&self) -> Role {
        Role::Floor
    }

    fn topology(&self) -> &'static str {
        "emitter → relay process → bench, 2 TCP connections"
    }

    fn method(&self) -> String {
        "std blocking sockets over 127.0.0.1, TCP_NODELAY; the emitter writes 4-byte length + \
         payload frames through a 64 KiB BufWriter to a relay process, which copies the bytes \
         (read 256 KiB at a time, written whole) to its connection to the bench; the bench \
         reads 256 KiB at a time and counts frames up to the round's end marker"
            .into()
    }

    fn open(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn StatusLink>>> {
        Box::pin(async move {
            let (l, addr) = listen()?;
            let mut peers = Peers::default();
            peers.spawn("tcp-status-relay", Placement::Any, &[addr])?;
            let mut stream = tokio::task::block_in_place(|| accept(&l, 1, &mut peers))?
                .pop()
                .ok_or_else(|| anyhow::anyhow!("no connection"))?;
            let mut port = [0u8; 2];
            stream.read_exact(&mut port)?;
            let relay = format!("127.0.0.1:{}", u16::from_le_bytes(port));
            peers.spawn("tcp-status-emitter", Placement::Any, &[relay])?;
            let mut link = TcpLink {
                stream,
                round: 0,
                _peers: peers,
            };
            // Through once: the emitter is connected and the relay copies.
            let probe = Batch {
                first: PROBE_N,
                count: 1,
                text: 0,
            };
            link.run(probe)?;
            Ok(Box::new(link) as Box<dyn StatusLink>)
        })
    }
}

struct TcpLink {
    stream: TcpStream,
    round: u32,
    _peers: Peers,
}

/// A TCP command: payload length, round, count (little-endian), payload.
const TCP_HEADER: usize = 16;

impl TcpLink {
    fn run(&mut self, batch: Batch) -> anyhow::Result<Round> {
        self.round += 1;
        let round = self.round;
        let payload = input(&text(batch.text), batch.last())?;
        anyhow::ensure!(
            payload.len() != wire::MARKER_LEN,
            "a payload of a marker's length"
        );
        let mut cmd = Vec::with_capacity(TCP_HEADER + payload.len());
        cmd.extend_from_slice(&u32::try_from(payload.len())?.to_le_bytes());
        cmd.extend_from_slice(&round.to_le_bytes());
        cmd.extend_from_slice(&batch.count.to_le_bytes());
        cmd.extend_from_slice(&payload);
        let start = Instant::now();
        self.stream.write_all(&cmd)?;
        let mut frames = Frames::default();
        let mut buf = vec![0u8; 256 << 10];
        let (mut delivered, mut end) = (0u64, None);
        while end.is_none() {
            let n = self.stream.read(&mut buf)?;
            anyhow::ensure!(n > 0, "the relay closed the connection");
            frames.feed(&buf[..n], |len, small| {
                match wire::parse_marker(small) {
                    Some(r) if len == wire::MARKER_LEN && r == round => end = Some(start.elapsed()),
                    _ if len == payload.len() => delivered += 1,
                    _ => anyhow::bail!("a frame of {len} bytes in round {round}"),
                }
                Ok(())
            })?;
        }
        anyhow::ensure!(
            delivered == batch.count,
            "{delivered} of {} frames came",
            batch.count
        );
        Ok(Round {
            delivered,
            elapsed: end.unwrap_or_default(),
            emit: None,
            flush: None,
            gaps: 0,
        })
    }
}

impl StatusLink for TcpLink {
    fn round(&mut self, batch: Batch) -> BoxFuture<'_, anyhow::Result<Round>> {
        Box::pin(async move { tokio::task::block_in_place(|| self.run(batch)) })
    }
}

/// Copies what `from` reads to `to` until `from` ends; the end of this
/// process when it does (the relay has nothing left to do).
fn pump(mut from: TcpStream, mut to: TcpStream) -> ! {
    let mut buf = vec![0u8; 256 << 10];
    let code = loop {
        match from.read(&mut buf) {
            Ok(0) => break 0,
            Ok(n) => {
                if let Err(e) = to.write_all(&buf[..n]) {
                    eprintln!("tcp-status-relay: write failed: {e}");
                    break 1;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                eprintln!("tcp-status-relay: read failed: {e}");
                break 1;
            }
        }
    };
    std::process::exit(code)
}

/// Peer `tcp-status-relay ADDR`: connects to the bench at ADDR, listens on
/// a free loopback port, sends the bench its number (2 bytes,
/// little-endian), takes one connection there (the emitter's) and copies
/// bytes both ways until either side closes or is idle for [`IDLE`].
///
/// # Errors
///
/// A connection failed.
pub fn tcp_relay(addr: &str) -> anyhow::Result<()> {
    let mut bench = connect(addr)?;
    let l = TcpListener::bind("127.0.0.1:0")?;
    bench.write_all(&l.local_addr()?.port().to_le_bytes())?;
    let (emitter, _) = l.accept()?;
    emitter.set_nodelay(true)?;
    emitter.set_read_timeout(Some(IDLE))?;
    emitter.set_write_timeout(Some(IDLE))?;
    let (commands, to_emitter) = (bench.try_clone()?, emitter.try_clone()?);
    std::thread::spawn(move || pump(commands, to_emitter));
    pump(emitter, bench)
}

/// Peer `tcp-status-emitter ADDR`: connects to the relay at ADDR; for each
/// command, writes the payload as that many frames, then the round's
/// marker.
///
/// # Errors
///
/// The connection failed, a command was malformed, or idle for [`IDLE`].
pub fn tcp_emitter(addr: &str) -> anyhow::Result<()> {
    let s = connect(addr)?;
    let mut commands = s.try_clone()?;
    let mut out = BufWriter::with_capacity(64 << 10, s);
    loop {
        let mut h = [0u8; TCP_HEADER];
        match commands.read_exact(&mut h) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let len = u32::from_le_bytes(h[..4].try_into()?);
        let round: [u8; 4] = h[4..8].try_into()?;
        let count = u64::from_le_bytes(h[8..].try_into()?);
        let mut frame = len.to_le_bytes().to_vec();
        frame.resize(4 + len as usize, 0);
        commands.read_exact(&mut frame[4..])?;
        for _ in 0..count {
            out.write_all(&frame)?;
        }
        out.write_all(&(wire::MARKER_LEN as u32).to_le_bytes())?;
        out.write_all(&round)?;
        out.flush()?;
    }
}

/// `status` peers: raw Zenoh through a router process, routed (one hop) or
/// re-put by the router's own subscriber (two hops).
pub struct StatusZenoh {
    /// Two hops: the router's subscriber puts every sample again.
    pub relayed: bool,
}

impl StatusSubject for StatusZenoh {
    fn name(&self) -> &'static str {
        if self.relayed {
            RELAYED_NAME
        } else {
            "raw Zenoh through a router"
        }
    }

    fn role(&self) -> Role {
        Role::Peer
    }

    fn topology(&self) -> &'static str {
        if self.relayed {
            "client → router, whose subscriber puts it again → client"
        } else {
            "client → router → client"
        }
    }

    fn method(&self) -> String {
        let hops = if self.relayed {
            "the emitter puts on one key; in the router process, a subscriber of the router's \
             own session puts every sample again (a clone of its payload: no copy), from its \
             callback, with a declared publisher (Block, not express) on the bench's key: two \
             hops, as a troupe server takes an update and publishes it again"
        } else {
            "the emitter puts on the bench's key and the router routes it: one hop"
        };
        format!(
            "a Zenoh router process (as a troupe server runs it) on tcp/127.0.0.1:<free port>; \
             the emitter and the bench are client-mode sessions of it, multicast scouting off, \
             so everything crosses the router; the emitter, asked by a query, puts the payload \
             (kept as ZBytes, cloned: no copy) with a declared publisher, Block, not express \
             (as StatusUpdater), put with wait() from one thread; {hops}; the bench's \
             subscriber counts in its callback"
        )
    }

    fn open(&self) -> BoxFuture<'_, anyhow::Result<Box<dyn StatusLink>>> {
        Box::pin(async move {
            let router = format!("tcp/127.0.0.1:{}", troupe_testkit::free_port());
            let mut peers = Peers::default();
            let kind = if self.relayed {
                "zenoh-status-relay"
            } else {
                "zenoh-router"
            };
            peers.spawn(kind, Placement::Any, std::slice::from_ref(&router))?;
            let end = Instant::now() + WAIT;
            let session = loop {
                match zenoh::open(client_config(&router)?).await {
                    Ok(s) => break s,
                    Err(e) if Instant::now() > end => anyhow::bail!("no router: {e}"),
                    Err(_) => {
                        peers.check()?;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            };
            let tally = Arc::new(Mutex::new(Tally::default()));
            let counting = tally.clone();
            let subscriber = z(session
                .declare_subscriber(KEY_OUT)
                .callback(move |sample| lock(&counting).take(sample.payload().len()))
                .await)?;
            let key = if self.relayed { KEY_IN } else { KEY_OUT };
            peers.spawn(
                "zenoh-status-emitter",
                Placement::Any,
                &[router, key.to_string()],
            )?;
            let mut link = ZenohLink {
                session,
                tally,
                _subscriber: subscriber,
                _peers: peers,
            };
            link.probe().await?;
            Ok(Box::new(link) as Box<dyn StatusLink>)
        })
    }
}

/// A client-mode configuration connected to `router`, scouting off; one
/// try (the caller retries).
fn client_config(router: &str) -> anyhow::Result<zenoh::Config> {
    let mut c = zenoh::Config::default();
    for (key, value) in [
        ("mode", "\"client\"".to_string()),
        ("connect/endpoints", format!("[\"{router}\"]")),
        ("connect/timeout_ms", "0".to_string()),
        ("scouting/multicast/enabled", "false".to_string()),
        ("scouting/gossip/enabled", "false".to_string()),
    ] {
        c.insert_json5(key, &value)
            .map_err(|e| anyhow::anyhow!("zenoh configuration {key} = {value}: {e}"))?;
    }
    Ok(c)
}

/// What the bench's subscriber counts in a round.
#[derive(Debug, Default)]
struct Tally {
    /// Samples expected (0: none; a sample then counts as unexpected).
    expected: u64,
    /// Samples of the payload's length.
    received: u64,
    /// Samples of another length, or beyond the expected.
    unexpected: u64,
    /// The payload's length.
    len: usize,
    /// Told when the last expected sample came.
    done: Option<oneshot::Sender<Instant>>,
}

impl Tally {
    fn take(&mut self, len: usize) {
        if len != self.len || self.received == self.expected {
            self.unexpected += 1;
            return;
        }
        self.received += 1;
        if self.received == self.expected {
            if let Some(done) = self.done.take() {
                let _ = done.send(Instant::now());
            }
        }
    }
}

fn lock(t: &Mutex<Tally>) -> std::sync::MutexGuard<'_, Tally> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Dropped in this order: the bench's session, the far ends.
struct ZenohLink {
    session: Session,
    tally: Arc<Mutex<Tally>>,
    _subscriber: Subscriber<()>,
    _peers: Peers,
}

impl ZenohLink {
    /// Sends batches of one update until one goes through (the emitter's
    /// queryable and both subscribers known where they must be), then lets
    /// late ones come in. Their counters ([`PROBE_N`] on) all have five
    /// digits: a late one is counted as the next one's.
    async fn probe(&mut self) -> anyhow::Result<()> {
        let end = Instant::now() + WAIT;
        let mut first = PROBE_N;
        loop {
            let batch = Batch {
                first,
                count: 1,
                text: 0,
            };
            if self.run(batch, Duration::from_millis(500)).await.is_ok() {
                break;
            }
            self._peers.check()?;
            anyhow::ensure!(Instant::now() < end, "no update came through in {WAIT:?}");
            first += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    }

    /// One round, each wait bounded by `limit`.
    async fn run(&mut self, batch: Batch, limit: Duration) -> anyhow::Result<Round> {
        let payload = input(&text(batch.text), batch.last())?;
        let (tx, done) = oneshot::channel();
        *lock(&self.tally) = Tally {
            expected: batch.count,
            len: payload.len(),
            done: Some(tx),
            ..Tally::default()
        };
        let mut cmd = batch.count.to_le_bytes().to_vec();
        cmd.extend_from_slice(&payload);
        let start = Instant::now();
        let sample = get_one(&self.session, KEY_CTL, cmd, limit)
            .await
            .map_err(|e| anyhow::anyhow!("the emitter: {e}"))?;
        let micros = <[u8; 8]>::try_from(&sample.payload().to_bytes()[..])
            .map(u64::from_le_bytes)
            .map_err(|_| anyhow::anyhow!("a malformed answer of the emitter"))?;
        let last = tokio::time::timeout(limit, done).await;
        let t = lock(&self.tally);
        let last = last
            .map_err(|_| {
                anyhow::anyhow!(
                    "{} of {} updates came within {limit:?}",
                    t.received,
                    batch.count
                )
            })?
            .map_err(|_| anyhow::anyhow!("the count ended"))?;
        anyhow::ensure!(t.unexpected == 0, "{} unexpected samples", t.unexpected);
        Ok(Round {
            delivered: t.received,
            elapsed: last - start,
            emit: Some(Duration::from_micros(micros)),
            flush: None,
            gaps: 0,
        })
    }
}

impl StatusLink for ZenohLink {
    fn round(&mut self, batch: Batch) -> BoxFuture<'_, anyhow::Result<Round>> {
        Box::pin(self.run(batch, WAIT))
    }
}

/// Peer `zenoh-status-relay ENDPOINT`: a Zenoh router listening on
/// ENDPOINT (as [`crate::zenoh_raw::router`]) whose own subscriber puts
/// every sample of the emitter's key again on the bench's key.
///
/// # Errors
///
/// The session or a declaration failed, or idle for [`IDLE`].
pub fn zenoh_relay(endpoint: &str) -> anyhow::Result<()> {
    let session = z(zenoh::open(router_config(endpoint)?).wait())?;
    let publisher = z(session
        .declare_publisher(KEY_OUT)
        .congestion_control(CongestionControl::Block)
        .wait())?;
    let _subscriber = z(session
        .declare_subscriber(KEY_IN)
        .callback(move |sample| {
            Activity::get().touch();
            if let Err(e) = publisher.put(sample.payload().clone()).wait() {
                eprintln!("zenoh-status-relay: put failed: {e}");
            }
        })
        .wait())?;
    // Until the bench closes standard input (see peer.rs).
    loop {
        std::thread::sleep(Duration::from_secs(1));
        anyhow::ensure!(Activity::get().idle() < IDLE, "idle for {IDLE:?}");
    }
}

/// Peer `zenoh-status-emitter ROUTER KEY`: a client of the router at
/// ROUTER; each query on its command key is a count and a payload, which
/// it puts that many times on KEY before it answers with the time the puts
/// took (µs, 8 bytes little-endian).
///
/// # Errors
///
/// No router, a declaration or a put failed, a command was malformed, or
/// idle for [`IDLE`].
pub fn zenoh_emitter(router: &str, key: &str) -> anyhow::Result<()> {
    let end = Instant::now() + WAIT;
    let session = loop {
        match zenoh::open(client_config(router)?).wait() {
            Ok(s) => break s,
            Err(e) if Instant::now() > end => anyhow::bail!("no router at {router}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let publisher = z(session
        .declare_publisher(key.to_string())
        .congestion_control(CongestionControl::Block)
        .wait())?;
    let commands = z(session.declare_queryable(KEY_CTL).wait())?;
    loop {
        let query = z(commands.recv_timeout(IDLE))?
            .ok_or_else(|| anyhow::anyhow!("no command for {IDLE:?}"))?;
        let cmd = query
            .payload()
            .map(|p| p.to_bytes().to_vec())
            .unwrap_or_default();
        anyhow::ensure!(cmd.len() >= 8, "a malformed command of {} bytes", cmd.len());
        let count = u64::from_le_bytes(cmd[..8].try_into()?);
        let payload = ZBytes::from(cmd[8..].to_vec());
        let start = Instant::now();
        for _ in 0..count {
            z(publisher.put(payload.clone()).wait())?;
        }
        let micros = start.elapsed().as_micros() as u64;
        z(query
            .reply(query.key_expr().clone(), micros.to_le_bytes().to_vec())
            .express(true)
            .wait())?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_ends_at_its_count_and_flags_the_rest() {
        let (tx, mut done) = oneshot::channel();
        let mut t = Tally {
            expected: 2,
            len: 5,
            done: Some(tx),
            ..Tally::default()
        };
        t.take(5);
        assert!(done.try_recv().is_err());
        t.take(4);
        t.take(5);
        assert!(done.try_recv().is_ok());
        t.take(5);
        assert_eq!((t.received, t.unexpected), (2, 2));
    }
}
