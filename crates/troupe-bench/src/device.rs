//! `device`: troupe's devices and parameters (issue #7), side by side with
//! raw Zenoh in the same run.
//!
//! **Get round trip.** `DeviceClient::get` of a property whose value is
//! small (`{"a":1.5}`) or 1 KiB of JSON, made back to back from one task,
//! answered by a `DeviceService` in a peer process beside a troupe server
//! (`GetLink::Troupe`); against raw Zenoh get/queryable carrying the same JSON
//! (the get request, the reply with its header), both ends doing the JSON
//! work (`GetLink::Raw`). Figures: gets per second (the median of the rounds)
//! and p50/p99 of one get, pinned to one CPU and unpinned, as `object`.
//!
//! **Update fan-out to 100 subscribers.** One publisher sends [`fan_n`]
//! updates of one property as fast as it can; 100 subscribers follow it,
//! 25 in each of 4 processes. The figure is **updates delivered per second
//! in all**: updates × 100 divided by the time from the first publish
//! until the last subscriber has the last update (the median of
//! [`FAN_ROUNDS`] rounds after a warm-up round of a tenth). Each value
//! carries its round, its number and the time it was published, so that
//! each subscriber counts what it got and the latency of each update (same
//! host, same clock); each process reports the p50 and p99 of its 25
//! subscribers, and the row gives the median p50 and the worst p99 of the
//! processes. Subjects:
//!
//! - troupe (`troupe device updates`): a `DeviceService` in the bench publishes with
//!   `DevicePublisher::publish`; each process holds 25 `DeviceSubscription`s
//!   (`DeviceClient::subscribe`, each its own task calling `next`), every
//!   session a peer of a troupe server process, linked peer to peer;
//! - raw Zenoh (`raw Zenoh put, same bytes`): the bench's publisher puts the bytes troupe
//!   puts for the same update (an `UpdateMessage`, encoded for each
//!   update); each process declares 25 subscribers whose callbacks decode
//!   it, as troupe's do; each process linked directly to the bench.
//!
//! The sinks tell the bench a round is done with a raw Zenoh put on
//! [`DONE_KEY`] (outside the measured path: once per round).

use crate::peer::{Activity, Peers, IDLE};
use crate::pin::Placement;
use crate::report::{figure, Report, Role, Row};
use crate::stats::Latency;
use crate::thr::Plan;
use crate::troupe_patterns::{options, runtime, server};
use crate::zenoh_raw::{bench_session, get_one, peer_session, serve_until_gone, z};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use troupe::device::{
    DeviceError, DeviceHandler, DevicePublisher, DeviceService, DeviceSettings, FirstUpdate, Header,
};
use troupe::{DeviceClient, Session};
use troupe_protocol::device::{now_ns, DeviceRequest, Reading, UpdateBody, UpdateMessage};
use troupe_protocol::Response;
use zenoh::qos::CongestionControl;
use zenoh::Wait as _;

/// Bound of every wait of the scenario.
const WAIT: Duration = Duration::from_secs(60);

/// The device of the get rows.
pub const GET_DEVICE: &str = "bench";

/// The device and property of the fan-out rows.
const FAN_ADDRESS: &str = "fan/value";

/// The raw key of the get rows.
const GET_KEY: &str = "benchdev/get";

/// The raw key of the fan-out rows.
const FAN_KEY: &str = "benchdev/fan";

/// Where sinks report a round done.
pub const DONE_KEY: &str = "benchdev/done";

/// Processes of the fan-out, and subscriptions in each.
const PROCESSES: usize = 4;
const PER_PROCESS: usize = 25;

/// Counted fan-out rounds.
const FAN_ROUNDS: usize = 3;

/// The subjects of the get rows.
const GET_TROUPE: &str = "troupe device get";
const GET_RAW: &str = "raw Zenoh get/queryable, same JSON";
/// The subjects of the fan-out rows.
const FAN_TROUPE: &str = "troupe device updates";
const FAN_RAW: &str = "raw Zenoh put, same bytes";

/// Updates per fan-out round: 20,000 (quick: 1,000).
fn fan_n(quick: bool) -> u64 {
    if quick {
        1_000
    } else {
        20_000
    }
}

/// The two values: `{"a":1.5}`, or with a `text` making its JSON 1024
/// bytes.
pub fn value(large: bool) -> Value {
    if large {
        // {"a":1.5,"text":"..."}: 19 bytes around the text.
        json!({"a": 1.5, "text": "x".repeat(1024 - 19)})
    } else {
        json!({"a": 1.5})
    }
}

/// The property of each value.
fn property(large: bool) -> &'static str {
    if large {
        "large"
    } else {
        "small"
    }
}

/// `small value get` / `1 KiB value get`, with `, p50` for the latency.
fn case(large: bool, latency: bool) -> String {
    let size = if large { "1 KiB" } else { "small" };
    if latency {
        format!("{size} value get, p50")
    } else {
        format!("{size} value get")
    }
}

// ----------------------------------------------------------------------
// Get round trip.
// ----------------------------------------------------------------------

/// A connection to a far end that answers gets.
enum GetLink {
    Troupe {
        client: DeviceClient,
        _server: troupe::Server,
        peers: Peers,
        _process: crate::server_proc::ServerProcess,
    },
    Raw {
        session: zenoh::Session,
        peers: Peers,
    },
}

impl GetLink {
    /// Starts the far end of `subject`, placed as `placement`, and gets
    /// once it answers (bounded; fails early if the far end exits).
    async fn open(subject: &str, placement: Placement) -> anyhow::Result<GetLink> {
        let mut peers = Peers::default();
        let mut link = if subject == GET_TROUPE {
            let (process, server) = server().await?;
            peers.spawn(
                "troupe-device-service",
                placement,
                std::slice::from_ref(&process.endpoint),
            )?;
            GetLink::Troupe {
                client: DeviceClient::new(server.session()).with_timeout(Duration::from_secs(1)),
                _server: server,
                peers,
                _process: process,
            }
        } else {
            let (session, endpoint) = bench_session().await?;
            peers.spawn("zenoh-device-queryable", placement, &[endpoint])?;
            GetLink::Raw { session, peers }
        };
        let end = Instant::now() + WAIT;
        while let Err(e) = link.get(false).await {
            match &mut link {
                GetLink::Troupe { peers, .. } | GetLink::Raw { peers, .. } => peers.check()?,
            }
            anyhow::ensure!(Instant::now() < end, "no answer after {WAIT:?}: {e:#}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let GetLink::Troupe { client, .. } = &mut link {
            *client = client.with_timeout(WAIT);
        }
        Ok(link)
    }

    /// One get of the small or the large value, checked.
    async fn get(&mut self, large: bool) -> anyhow::Result<()> {
        let want = if large { 1024 } else { 9 };
        let value = match self {
            GetLink::Troupe { client, .. } => {
                let address = format!("{GET_DEVICE}/{}", property(large));
                client.get(&address, None).await?.0
            }
            GetLink::Raw { session, .. } => {
                let request = serde_json::to_vec(&DeviceRequest::Get { selector: None })?;
                let key = format!("{GET_KEY}/{}", property(large));
                let sample = get_one(session, key, request, WAIT).await?;
                match serde_json::from_slice::<Response>(&sample.payload().to_bytes())? {
                    Response::Ok(v) => serde_json::from_value::<Reading>(v)?.value,
                    Response::Err(e) => anyhow::bail!("error answer: {}", e.message),
                }
            }
        };
        let len = serde_json::to_string(&value)?.len();
        anyhow::ensure!(len == want, "a value of {len} bytes, not {want}");
        Ok(())
    }
}

/// The figures of one get subject, placement and value.
struct GetMeasured {
    subject: &'static str,
    role: Role,
    placement: Placement,
    large: bool,
    rate: f64,
    range: (f64, f64),
    latency: Latency,
}

/// Gets back to back for `duration` (batches of 100): the duration of
/// each, and the time they all took.
async fn get_round(
    link: &mut GetLink,
    large: bool,
    duration: Duration,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < duration {
        for _ in 0..100 {
            let t = Instant::now();
            link.get(large).await?;
            samples.push(t.elapsed());
        }
    }
    Ok((samples, start.elapsed()))
}

/// Measures one get subject placed as `placement`, both values.
async fn measure_get(
    subject: &'static str,
    role: Role,
    placement: Placement,
    plan: Plan,
) -> anyhow::Result<Vec<GetMeasured>> {
    let mut link = GetLink::open(subject, placement).await?;
    let _pinned = placement.apply()?;
    let mut out = Vec::new();
    for large in [false, true] {
        get_round(&mut link, large, plan.warm_up).await?;
        let (mut rates, mut samples) = (Vec::new(), Vec::new());
        for _ in 0..plan.rounds {
            let (s, elapsed) = get_round(&mut link, large, plan.round).await?;
            rates.push(s.len() as f64 / elapsed.as_secs_f64());
            samples.extend(s);
        }
        rates.sort_by(f64::total_cmp);
        let m = GetMeasured {
            subject,
            role,
            placement,
            large,
            rate: rates[rates.len() / 2],
            range: (rates[0], rates[rates.len() - 1]),
            latency: Latency::of(&mut samples),
        };
        println!(
            "  device   {:<36} {:<8} {:>14}: {} gets/s, p50 {} us, p99 {} us",
            subject,
            placement.to_string(),
            case(large, false),
            figure(m.rate),
            figure(m.latency.p50_us),
            figure(m.latency.p99_us),
        );
        out.push(m);
    }
    Ok(out)
}

/// The handler of the get rows' service: fixed values; sets refused.
struct Fixed {
    small: Value,
    large: Value,
}

impl DeviceHandler for Fixed {
    async fn get(
        &mut self,
        _: &str,
        property: &str,
        _: Option<&str>,
    ) -> Result<Value, DeviceError> {
        Activity::get().touch();
        Ok(if property == "large" {
            self.large.clone()
        } else {
            self.small.clone()
        })
    }

    async fn set(
        &mut self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Value,
        _: &DevicePublisher,
    ) -> Result<(), DeviceError> {
        Err(DeviceError::new("read-only"))
    }
}

/// The settings of a bench service, whatever the environment says.
fn settings(name: &str) -> DeviceSettings {
    DeviceSettings {
        name: Some(name.into()),
        server_id: Some(name.into()),
        prefix: None,
        selector_aware: Some(false),
        first_update: Some(FirstUpdate::None),
    }
}

/// Peer `troupe-device-service ENDPOINT`: serves [`GET_DEVICE`] (`small`
/// and `large`) until the bench goes away.
///
/// # Errors
///
/// Connecting or serving failed, or idle for [`IDLE`].
pub fn device_service(endpoint: &str) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let session = Session::open(endpoint, options()).await?;
        let _service = DeviceService::builder(&session)
            .configuration(settings("bench"))
            .device(GET_DEVICE, &["small", "large"])
            .serve(Fixed {
                small: value(false),
                large: value(true),
            })
            .await?;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            anyhow::ensure!(Activity::get().idle() < IDLE, "idle for {IDLE:?}");
        }
    })
}

/// Peer `zenoh-device-queryable ENDPOINT`: answers gets of
/// `benchdev/get/{small,large}` as a device service would: the request
/// decoded, the reading (header and value) encoded in a `Response`.
///
/// # Errors
///
/// The session or the declaration failed, or idle for [`IDLE`].
pub fn zenoh_queryable(endpoint: &str) -> anyhow::Result<()> {
    let session = peer_session(endpoint)?;
    let epoch = now_ns();
    let (small, large) = (value(false), value(true));
    let _queryable = z(session
        .declare_queryable(format!("{GET_KEY}/*"))
        .callback(move |query| {
            Activity::get().touch();
            let request = query
                .payload()
                .map(|p| serde_json::from_slice::<DeviceRequest>(&p.to_bytes()));
            let response = match request {
                Some(Ok(DeviceRequest::Get { selector })) => {
                    let large_one = query.key_expr().as_str().ends_with("/large");
                    let reading = Reading {
                        header: Header {
                            time_unix_ns: now_ns(),
                            selector,
                            seq: 0,
                            epoch,
                        },
                        value: if large_one {
                            large.clone()
                        } else {
                            small.clone()
                        },
                    };
                    Response::Ok(serde_json::to_value(reading).unwrap_or_default())
                }
                _ => Response::Ok(Value::Null),
            };
            let bytes = serde_json::to_vec(&response).unwrap_or_default();
            if let Err(e) = query
                .reply(query.key_expr().clone(), bytes)
                .express(true)
                .wait()
            {
                eprintln!("zenoh-device-queryable: reply failed: {e}");
            }
        })
        .wait())?;
    serve_until_gone(&session)
}

// ----------------------------------------------------------------------
// Update fan-out.
// ----------------------------------------------------------------------

/// What one process of sinks reports at the end of a round.
#[derive(Debug, Serialize, Deserialize)]
pub struct Done {
    /// The round.
    pub round: u64,
    /// When its last subscription had the last update, ns since the epoch.
    pub last_ns: u64,
    /// Updates received by its subscriptions, all together.
    pub received: u64,
    /// p50 and p99 of the latency of every update received, in µs.
    pub p50_us: f64,
    /// See `p50_us`.
    pub p99_us: f64,
}

/// One subscription's count of a round.
#[derive(Default)]
struct Tally {
    round: u64,
    received: u64,
    latencies: Vec<Duration>,
}

impl Tally {
    /// Counts `value` (`{"r", "n", "t"}`) received at `now`; the round's
    /// tally once it is its last update (`n == last`).
    fn take(&mut self, value: &Value, now: u64, last: u64) -> Option<(u64, u64, Vec<Duration>)> {
        let (r, n, t) = (
            value["r"].as_u64()?,
            value["n"].as_u64()?,
            value["t"].as_u64()?,
        );
        if r != self.round {
            *self = Tally {
                round: r,
                ..Tally::default()
            };
        }
        self.received += 1;
        self.latencies
            .push(Duration::from_nanos(now.saturating_sub(t)));
        (n == last).then(|| (self.received, now, std::mem::take(&mut self.latencies)))
    }
}

/// Collects the tallies of a process's subscriptions and reports each
/// round once all of them are in.
struct Collector {
    subs: usize,
    round: u64,
    got: Vec<(u64, u64, Vec<Duration>)>,
}

impl Collector {
    /// Adds one subscription's tally of `round`; the report once complete.
    fn add(&mut self, round: u64, tally: (u64, u64, Vec<Duration>)) -> Option<Done> {
        if round != self.round {
            self.round = round;
            self.got.clear();
        }
        self.got.push(tally);
        if self.got.len() < self.subs {
            return None;
        }
        let received = self.got.iter().map(|t| t.0).sum();
        let last_ns = self.got.iter().map(|t| t.1).max().unwrap_or(0);
        let mut all: Vec<Duration> = self.got.drain(..).flat_map(|t| t.2).collect();
        let l = Latency::of(&mut all);
        Some(Done {
            round,
            last_ns,
            received,
            p50_us: l.p50_us,
            p99_us: l.p99_us,
        })
    }
}

/// A round's value: round, number, time published.
fn fan_value(round: u64, n: u64) -> Value {
    json!({"r": round, "n": n, "t": now_ns()})
}

/// Peer `troupe-device-sink ENDPOINT REPORT SUBS LAST`: SUBS subscriptions
/// to [`FAN_ADDRESS`] through the troupe server at ENDPOINT, each counting
/// its updates in its own task; reports each round (its update LAST seen
/// by every subscription) on [`DONE_KEY`] through a raw session to REPORT.
///
/// # Errors
///
/// Connecting or subscribing failed, or idle for [`IDLE`].
pub fn troupe_sink(endpoint: &str, report: &str, subs: usize, last: u64) -> anyhow::Result<()> {
    let reporter = peer_session(report)?;
    runtime()?.block_on(async {
        let session = Session::open(endpoint, options()).await?;
        let client = DeviceClient::new(&session).with_timeout(WAIT);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut subscriptions = Vec::new();
        for _ in 0..subs {
            subscriptions.push(client.subscribe(FAN_ADDRESS, None).await?);
        }
        for mut sub in subscriptions {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut tally = Tally::default();
                loop {
                    match sub.next(IDLE).await {
                        Ok(update) => {
                            Activity::get().touch();
                            let Ok(v) = update.value else { continue };
                            if let Some(t) = tally.take(&v, now_ns(), last) {
                                let _ = tx.send((tally.round, t));
                            }
                        }
                        Err(e) => {
                            eprintln!("troupe-device-sink: {e}");
                            std::process::exit(1);
                        }
                    }
                }
            });
        }
        let mut collector = Collector {
            subs,
            round: 0,
            got: Vec::new(),
        };
        z(reporter.put(format!("{DONE_KEY}/ready"), "ready").await)?;
        while let Some((round, tally)) = rx.recv().await {
            if let Some(done) = collector.add(round, tally) {
                z(reporter
                    .put(DONE_KEY, serde_json::to_vec(&done)?)
                    .congestion_control(CongestionControl::Block)
                    .await)?;
            }
        }
        anyhow::Ok(())
    })
}

/// Peer `zenoh-device-sink ENDPOINT SUBS LAST`: SUBS raw subscribers of
/// [`FAN_KEY`] whose callbacks decode each update as troupe's do; reports
/// each round on [`DONE_KEY`].
///
/// # Errors
///
/// The session or a declaration failed, or idle for [`IDLE`].
pub fn zenoh_sink(endpoint: &str, subs: usize, last: u64) -> anyhow::Result<()> {
    let session = peer_session(endpoint)?;
    let collector = Arc::new(Mutex::new(Collector {
        subs,
        round: 0,
        got: Vec::new(),
    }));
    let mut subscribers = Vec::new();
    for _ in 0..subs {
        let tally = Mutex::new(Tally::default());
        let (collector, reporter) = (collector.clone(), session.clone());
        subscribers.push(z(session
            .declare_subscriber(FAN_KEY)
            .callback(move |sample| {
                Activity::get().touch();
                let Ok(update) =
                    serde_json::from_slice::<UpdateMessage>(&sample.payload().to_bytes())
                else {
                    return;
                };
                let UpdateBody::Value(v) = update.body else {
                    return;
                };
                let mut tally = tally.lock().unwrap_or_else(|e| e.into_inner());
                let Some(t) = tally.take(&v, now_ns(), last) else {
                    return;
                };
                let done = collector
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .add(tally.round, t);
                if let Some(done) = done {
                    let bytes = serde_json::to_vec(&done).unwrap_or_default();
                    if let Err(e) = reporter.put(DONE_KEY, bytes).wait() {
                        eprintln!("zenoh-device-sink: report failed: {e}");
                    }
                }
            })
            .wait())?);
    }
    z(session.put(format!("{DONE_KEY}/ready"), "ready").wait())?;
    serve_until_gone(&session)
}

/// The publisher of a fan-out subject.
enum FanPublisher {
    Troupe(DevicePublisher),
    Raw {
        publisher: zenoh::pubsub::Publisher<'static>,
        epoch: u64,
        seq: u64,
    },
}

impl FanPublisher {
    /// Publishes update `n` of `round`.
    async fn publish(&mut self, round: u64, n: u64) -> anyhow::Result<()> {
        match self {
            FanPublisher::Troupe(p) => {
                let (device, property) = FAN_ADDRESS.split_once('/').expect("an address");
                p.publish(device, property, None, fan_value(round, n))
                    .await?;
            }
            FanPublisher::Raw {
                publisher,
                epoch,
                seq,
            } => {
                *seq += 1;
                let message = UpdateMessage {
                    header: Header {
                        time_unix_ns: now_ns(),
                        selector: None,
                        seq: *seq,
                        epoch: *epoch,
                    },
                    body: UpdateBody::Value(fan_value(round, n)),
                };
                z(publisher.put(serde_json::to_vec(&message)?).await)?;
            }
        }
        Ok(())
    }
}

/// The figures of one fan-out subject.
struct FanMeasured {
    subject: &'static str,
    role: Role,
    rate: f64,
    range: (f64, f64),
    p50_us: f64,
    p99_us: f64,
    received: u64,
}

/// The fan-out service's handler: the last value; sets refused.
struct Last;

impl DeviceHandler for Last {
    async fn get(&mut self, _: &str, _: &str, _: Option<&str>) -> Result<Value, DeviceError> {
        Ok(Value::Null)
    }

    async fn set(
        &mut self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Value,
        _: &DevicePublisher,
    ) -> Result<(), DeviceError> {
        Err(DeviceError::new("read-only"))
    }
}

/// Measures the fan-out of `subject`: [`FAN_ROUNDS`] rounds of `n` updates
/// after a warm-up round.
async fn measure_fan(subject: &'static str, n: u64) -> anyhow::Result<FanMeasured> {
    let (report_session, report_endpoint) = bench_session().await?;
    let (tx, mut done) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let _reports = z(report_session
        .declare_subscriber(format!("{DONE_KEY}/**"))
        .callback(move |s| {
            let _ = tx.send(s.payload().to_bytes().to_vec());
        })
        .await)?;
    let mut peers = Peers::default();
    // The number of the last update of a round: the sinks' end of round.
    let last = n - 1;
    let mut keep = None;
    let (mut publisher, role) = if subject == FAN_TROUPE {
        let (process, server) = server().await?;
        let service = DeviceService::builder(server.session())
            .configuration(settings("fan"))
            .device("fan", &["value"])
            .serve(Last)
            .await?;
        for _ in 0..PROCESSES {
            peers.spawn(
                "troupe-device-sink",
                Placement::Any,
                &[
                    process.endpoint.clone(),
                    report_endpoint.clone(),
                    PER_PROCESS.to_string(),
                    last.to_string(),
                ],
            )?;
        }
        let publisher = FanPublisher::Troupe(service.publisher());
        keep = Some((service, server, process));
        (publisher, Role::Troupe)
    } else {
        for _ in 0..PROCESSES {
            peers.spawn(
                "zenoh-device-sink",
                Placement::Any,
                &[
                    report_endpoint.clone(),
                    PER_PROCESS.to_string(),
                    last.to_string(),
                ],
            )?;
        }
        let publisher = z(report_session
            .declare_publisher(FAN_KEY)
            .congestion_control(CongestionControl::Block)
            .await)?;
        (
            FanPublisher::Raw {
                publisher,
                epoch: now_ns(),
                seq: 0,
            },
            Role::Peer,
        )
    };
    // Every process subscribed.
    let mut ready = 0;
    let end = Instant::now() + WAIT;
    while ready < PROCESSES {
        match tokio::time::timeout(Duration::from_millis(200), done.recv()).await {
            Ok(Some(b)) if b == b"ready" => ready += 1,
            Ok(_) => {}
            Err(_) => {
                peers.check()?;
                anyhow::ensure!(
                    Instant::now() < end,
                    "{ready} sink processes of {PROCESSES} ready"
                );
            }
        }
    }
    // Routes and the service's view of the subscriptions settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut rates = Vec::new();
    let (mut p50s, mut p99) = (Vec::new(), 0f64);
    let mut received = 0;
    for round in 0..=FAN_ROUNDS as u64 {
        // Round 0 warms up: a tenth of the numbers, the last one included
        // (it ends the round).
        let mut numbers: Vec<u64> = if round == 0 {
            (0..n).step_by(10).chain([last]).collect()
        } else {
            (0..n).collect()
        };
        numbers.dedup();
        let start = now_ns();
        for &i in &numbers {
            publisher.publish(round, i).await?;
        }
        let mut reports = Vec::new();
        let end = Instant::now() + WAIT;
        while reports.len() < PROCESSES {
            match tokio::time::timeout(Duration::from_millis(200), done.recv()).await {
                Ok(Some(b)) => {
                    if let Ok(d) = serde_json::from_slice::<Done>(&b) {
                        if d.round == round {
                            reports.push(d);
                        }
                    }
                }
                Ok(None) => anyhow::bail!("the reports ended"),
                Err(_) => {
                    peers.check()?;
                    anyhow::ensure!(
                        Instant::now() < end,
                        "round {round}: {} processes of {PROCESSES} reported within {WAIT:?}",
                        reports.len()
                    );
                }
            }
        }
        if round == 0 {
            continue;
        }
        let last_ns = reports.iter().map(|d| d.last_ns).max().unwrap_or(start);
        let secs = last_ns.saturating_sub(start) as f64 / 1e9;
        let delivered = n * (PROCESSES * PER_PROCESS) as u64;
        let got: u64 = reports.iter().map(|d| d.received).sum();
        received += got;
        rates.push(delivered as f64 / secs.max(1e-9));
        p50s.extend(reports.iter().map(|d| d.p50_us));
        p99 = reports.iter().map(|d| d.p99_us).fold(p99, f64::max);
    }
    drop(keep);
    rates.sort_by(f64::total_cmp);
    p50s.sort_by(f64::total_cmp);
    let m = FanMeasured {
        subject,
        role,
        rate: rates[rates.len() / 2],
        range: (rates[0], rates[rates.len() - 1]),
        p50_us: p50s[p50s.len() / 2],
        p99_us: p99,
        received,
    };
    println!(
        "  device   {:<36} {:<8} {:>14}: {} updates/s delivered, p50 {} us, p99 {} us",
        subject,
        "any",
        "fan-out 1 to 100",
        figure(m.rate),
        figure(m.p50_us),
        figure(m.p99_us),
    );
    Ok(m)
}

/// The `device` scenario.
///
/// # Errors
///
/// A peer subject failed (a troupe subject's failure leaves a note in a
/// full run).
pub async fn device(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let plan = Plan::new(quick);
    let mut gets = Vec::new();
    for (subject, role) in [(GET_RAW, Role::Peer), (GET_TROUPE, Role::Troupe)] {
        if !crate::rtt::selected(subject) {
            continue;
        }
        for placement in Placement::both()? {
            let measured = measure_get(subject, role, placement, plan).await;
            let what = format!("device, {subject}, {placement}");
            if let Some(m) = report.tolerate(quick, role, &what, measured)? {
                gets.extend(m);
            }
        }
    }
    let n = fan_n(quick);
    let mut fans = Vec::new();
    for (subject, role) in [(FAN_RAW, Role::Peer), (FAN_TROUPE, Role::Troupe)] {
        if !crate::rtt::selected(subject) {
            continue;
        }
        let measured = measure_fan(subject, n).await;
        let what = format!("device, {subject}, fan-out");
        if let Some(m) = report.tolerate(quick, role, &what, measured)? {
            fans.push(m);
        }
    }
    if !gets.is_empty() {
        report.note(format!(
            "device, get: `{GET_TROUPE}` = DeviceClient::get of a property of a DeviceService \
             in a peer process, beside a troupe server process (router), the bench's session \
             a peer too (linked peer to peer); `{GET_RAW}` = a raw Zenoh get (express, Block, \
             consolidation None) whose payload is the get request's JSON, answered by a \
             queryable in a peer process that decodes it and replies with the reading's JSON \
             (header and value), decoded by the bench; small = {{\"a\":1.5}}, 1 KiB = a value of \
             1024 bytes of JSON; gets/s = the median of {} rounds of {:?} after a {:?} warm-up, \
             one get after the other from one task; p50/p99 over every get of those rounds; \
             `1 cpu`: the bench and the far end pinned to one CPU",
            plan.rounds, plan.round, plan.warm_up
        ));
    }
    if !fans.is_empty() {
        report.note(format!(
            "device, fan-out: one publisher, {n} updates a round to 100 subscribers \
             ({PROCESSES} processes x {PER_PROCESS}); figure = updates delivered in all per \
             second: {n} x 100 / time from the first publish until the last subscriber has \
             the last update; the median of {FAN_ROUNDS} rounds after a warm-up round of a \
             tenth; latency = publish to receipt of every update (same clock), the median p50 \
             and the worst p99 of the processes; `{FAN_TROUPE}` = DevicePublisher::publish in \
             the bench to DeviceSubscription::next, sessions peers of a troupe server; \
             `{FAN_RAW}` = a declared raw Zenoh publisher (Block) putting the UpdateMessage \
             JSON troupe puts, to subscribers whose callbacks decode it, each process linked \
             directly to the bench"
        ));
    }
    let mut rows = Vec::new();
    for m in &gets {
        let l = &m.latency;
        let topology = if m.subject == GET_TROUPE {
            "peer to peer beside a server"
        } else {
            "peer to peer, 1 direct TCP link"
        };
        rows.push((
            m.role,
            Row {
                scenario: "device".into(),
                case: case(m.large, false),
                subject: m.subject.into(),
                value: m.rate,
                unit: "gets/s".into(),
                floor: None,
                detail: format!(
                    "mean {} us; {}..{} over {} rounds, n={}; {topology}",
                    figure(1e6 / m.rate),
                    figure(m.range.0),
                    figure(m.range.1),
                    plan.rounds,
                    l.n
                ),
                placement: Some(m.placement.to_string()),
                peers: Vec::new(),
            },
        ));
        rows.push((
            m.role,
            Row {
                scenario: "device".into(),
                case: case(m.large, true),
                subject: m.subject.into(),
                value: l.p50_us,
                unit: "us".into(),
                floor: None,
                detail: format!(
                    "p90 {} us, p99 {} us, n={}; {topology}",
                    figure(l.p90_us),
                    figure(l.p99_us),
                    l.n
                ),
                placement: Some(m.placement.to_string()),
                peers: Vec::new(),
            },
        ));
    }
    for m in &fans {
        let expected = n * (PROCESSES * PER_PROCESS) as u64 * FAN_ROUNDS as u64;
        rows.push((
            m.role,
            Row {
                scenario: "device".into(),
                case: "fan-out 1 to 100".into(),
                subject: m.subject.into(),
                value: m.rate,
                unit: "updates/s".into(),
                floor: None,
                detail: format!(
                    "{}..{} over {FAN_ROUNDS} rounds; latency p50 {} us, p99 {} us; received \
                     {} of {expected}",
                    figure(m.range.0),
                    figure(m.range.1),
                    figure(m.p50_us),
                    figure(m.p99_us),
                    m.received,
                ),
                placement: Some(Placement::Any.to_string()),
                peers: Vec::new(),
            },
        ));
    }
    report.add_compared(rows);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_values_have_their_sizes() {
        assert_eq!(value(false).to_string(), r#"{"a":1.5}"#);
        assert_eq!(value(true).to_string().len(), 1024);
        assert_eq!(case(true, true), "1 KiB value get, p50");
    }

    #[test]
    fn a_round_is_done_when_every_subscription_has_its_last_update() {
        let mut collector = Collector {
            subs: 2,
            round: 0,
            got: Vec::new(),
        };
        let mut a = Tally::default();
        let mut b = Tally::default();
        let t = now_ns();
        let v = |n: u64| json!({"r": 1, "n": n, "t": t});
        assert!(a.take(&v(0), t + 1_000, 2).is_none());
        let done_a = a.take(&v(2), t + 3_000, 2).expect("the last");
        assert_eq!(done_a.0, 2);
        assert!(collector.add(1, done_a).is_none());
        let done_b = b.take(&v(2), t + 5_000, 2).expect("the last");
        let done = collector.add(1, done_b).expect("complete");
        assert_eq!((done.round, done.received, done.last_ns), (1, 3, t + 5_000));
        assert_eq!(done.p99_us.round(), 5.0);
        // A new round starts a new tally.
        assert!(a.take(&json!({"r": 2, "n": 0, "t": t}), t, 2).is_none());
        assert_eq!((a.round, a.received), (2, 1));
    }
}
