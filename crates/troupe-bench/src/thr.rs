//! `thr`: one publisher to one subscriber in another process, messages/s
//! and bytes/s per message size. The same machinery serves `fanout`, one
//! publisher to many subscribers.
//!
//! A round sends messages for a fixed time, then a marker
//! ([`crate::wire`]); it ends when every sink has acknowledged the marker
//! with its count. Throughput is what the slowest sink received divided by
//! the time from the first send to the last acknowledgement; the figure is
//! the median of several rounds, after a warm-up round.
//!
//! A subject is one way of publishing ([`ThrSubject`]); adding one is one
//! implementation and one line in [`subjects`].

use crate::report::{figure, Report, Role, Row};
use crate::rtt::size_label;
use futures::future::BoxFuture;
use std::time::{Duration, Instant};

/// One way of publishing to subscribers that run as separate processes.
pub trait ThrSubject: Send + Sync {
    /// The row's subject.
    fn name(&self) -> &'static str;
    /// The floor, a peer, or troupe.
    fn role(&self) -> Role;
    /// The topology, in a few words (in every row's detail).
    fn topology(&self) -> &'static str;
    /// How it is measured: topology and settings (a note under the table).
    fn method(&self) -> String;
    /// Starts `sinks` subscriber processes (unpinned) and returns once the
    /// publisher reaches all of them.
    fn open(&self, sinks: usize) -> BoxFuture<'_, anyhow::Result<Box<dyn ThrLink>>>;
}

/// A publisher connected to its sinks.
pub trait ThrLink: Send {
    /// Publishes `size`-byte messages for `duration`, then the marker of
    /// `round`, and waits (bounded) until every sink has acknowledged it.
    fn round(
        &mut self,
        round: u32,
        size: usize,
        duration: Duration,
    ) -> BoxFuture<'_, anyhow::Result<Round>>;
}

/// What a round achieved.
#[derive(Debug, Clone, Copy)]
pub struct Round {
    /// Messages published.
    pub sent: u64,
    /// Messages received by the sink that received the fewest.
    pub delivered: u64,
    /// From the first send to the last acknowledgement.
    pub elapsed: Duration,
    /// Messages the subscribers' library reported as missed (dropped on
    /// their side and counted), the most of any sink; `None` for transports
    /// that do not report it.
    pub missed: Option<u64>,
}

/// Every subject of `thr` and `fanout`, the floor first.
pub fn subjects() -> Vec<Box<dyn ThrSubject>> {
    vec![
        Box::new(crate::tcp::ThrTcp),
        Box::new(crate::zenoh_raw::ThrPubSub { express: false }),
        #[cfg(feature = "zmq")]
        Box::new(crate::zmq_peer::ThrPubSub),
        Box::new(crate::troupe_patterns::ThrPubSub {
            synchronised: false,
        }),
        Box::new(crate::troupe_patterns::ThrPubSub { synchronised: true }),
    ]
}

/// Round plan: warm-up length, round length and number of rounds.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// The warm-up round, not counted.
    pub warm_up: Duration,
    /// Each counted round.
    pub round: Duration,
    /// Counted rounds.
    pub rounds: usize,
}

impl Plan {
    /// 5 rounds of 1 s after 0.3 s (quick: 3 rounds of 0.1 s after 0.05 s).
    pub fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                warm_up: Duration::from_millis(50),
                round: Duration::from_millis(100),
                rounds: 3,
            }
        } else {
            Plan {
                warm_up: Duration::from_millis(300),
                round: Duration::from_secs(1),
                rounds: 5,
            }
        }
    }
}

/// Figures of one subject, size and number of sinks.
pub struct Measured {
    /// The subject.
    pub subject: &'static str,
    /// Its topology, in a few words.
    pub topology: &'static str,
    /// Its role.
    pub role: Role,
    /// Message size.
    pub size: usize,
    /// Number of sinks.
    pub sinks: usize,
    /// Median messages/s received by every sink.
    pub rate: f64,
    /// Lowest and highest of the rounds.
    pub range: (f64, f64),
    /// Share of sent messages that the slowest sink received, all rounds.
    pub delivered: f64,
    /// Messages reported missed over all rounds (see [`Round::missed`]).
    pub missed: Option<u64>,
}

/// Measures `subject` with `sinks` sinks at every size.
///
/// # Errors
///
/// The subject failed to start or a round did not complete in time.
pub async fn measure(
    subject: &dyn ThrSubject,
    sinks: usize,
    sizes: &[usize],
    plan: Plan,
    scenario: &str,
) -> anyhow::Result<Vec<Measured>> {
    let mut link = subject.open(sinks).await?;
    let mut out = Vec::new();
    let mut round = 0u32;
    for &size in sizes {
        round += 1;
        link.round(round, size, plan.warm_up).await?;
        let mut rates = Vec::with_capacity(plan.rounds);
        let (mut sent, mut delivered) = (0u64, 0u64);
        let mut missed: Option<u64> = None;
        for _ in 0..plan.rounds {
            round += 1;
            let r = link.round(round, size, plan.round).await?;
            anyhow::ensure!(r.delivered > 0, "{}: nothing delivered", subject.name());
            rates.push(r.delivered as f64 / r.elapsed.as_secs_f64());
            sent += r.sent;
            delivered += r.delivered;
            if let Some(m) = r.missed {
                missed = Some(missed.unwrap_or(0) + m);
            }
        }
        rates.sort_by(f64::total_cmp);
        let m = Measured {
            subject: subject.name(),
            topology: subject.topology(),
            role: subject.role(),
            size,
            sinks,
            rate: rates[rates.len() / 2],
            range: (rates[0], rates[rates.len() - 1]),
            delivered: delivered as f64 / sent.max(1) as f64,
            missed,
        };
        println!(
            "  {scenario:<8} {:<30} {:>3} sink(s) {:>7}: {} msg/s, {} MiB/s per sink",
            m.subject,
            sinks,
            size_label(size),
            figure(m.rate),
            figure(m.rate * size as f64 / (1 << 20) as f64),
        );
        out.push(m);
    }
    Ok(out)
}

/// The detail of a row: bytes/s, spread, losses.
pub fn detail(m: &Measured, rounds: usize) -> String {
    let mib = |r: f64| r * m.size as f64 / (1 << 20) as f64;
    let mut d = format!(
        "{} MiB/s per sink, {}{} msg/s over {rounds} rounds",
        figure(mib(m.rate)),
        if m.sinks > 1 {
            format!("{} MiB/s in all, ", figure(mib(m.rate) * m.sinks as f64))
        } else {
            String::new()
        },
        format_args!("{}..{}", figure(m.range.0), figure(m.range.1)),
    );
    if m.delivered < 1.0 {
        d.push_str(&format!(
            "; slowest sink got {:.1}% of sent",
            m.delivered * 100.0
        ));
    }
    if let Some(missed) = m.missed {
        d.push_str(&format!("; missed() {missed}"));
    }
    d.push_str("; ");
    d.push_str(m.topology);
    d
}

/// The `thr` scenario.
///
/// # Errors
///
/// A subject failed.
pub async fn thr(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let plan = Plan::new(quick);
    let sizes = crate::rtt::sizes(quick);
    let mut all = Vec::new();
    for subject in subjects()
        .into_iter()
        .filter(|s| crate::rtt::selected(s.name()))
    {
        report.note(format!(
            "thr/fanout, {}: {}",
            subject.name(),
            subject.method()
        ));
        let measured = measure(subject.as_ref(), 1, &sizes, plan, "thr").await;
        let what = format!("thr, {}", subject.name());
        if let Some(m) = report.tolerate(quick, subject.role(), &what, measured)? {
            all.extend(m);
        }
    }
    if !cfg!(feature = "zmq") {
        report.note(crate::rtt::ZMQ_ABSENT);
    }
    report.note(format!(
        "thr/fanout: figure = messages/s received by the slowest subscriber, median of {} \
         rounds of {:?} (from first send to last acknowledgement of the round's end marker), \
         after a {:?} warm-up; processes unpinned",
        plan.rounds, plan.round, plan.warm_up
    ));
    report.add_compared(
        all.iter()
            .map(|m| {
                let mut r = row("thr", format!("{}, 1 to 1", size_label(m.size)), m, plan);
                r.detail.push_str(&target(m, &all));
                (m.role, r)
            })
            .collect(),
    );
    Ok(())
}

/// Issue 4's target for a troupe row: "pub/sub throughput at least 0.8x
/// raw Zenoh", against raw Zenoh pub/sub in the same case; empty for other
/// rows.
pub fn target(m: &Measured, all: &[Measured]) -> String {
    if m.role != Role::Troupe {
        return String::new();
    }
    let zenoh = all.iter().find(|z| {
        z.role == Role::Peer
            && z.subject.starts_with("raw Zenoh")
            && z.size == m.size
            && z.sinks == m.sinks
    });
    match zenoh {
        Some(z) => format!(
            "; target ≥ 0.8x raw Zenoh = {} msg/s ({})",
            figure(0.8 * z.rate),
            if m.rate >= 0.8 * z.rate {
                "met"
            } else {
                "not met"
            }
        ),
        None => String::new(),
    }
}

/// A row of `thr` or `fanout`.
pub fn row(scenario: &str, case: String, m: &Measured, plan: Plan) -> Row {
    Row {
        scenario: scenario.into(),
        case,
        subject: m.subject.into(),
        value: m.rate,
        unit: "msg/s".into(),
        floor: None,
        detail: detail(m, plan.rounds),
        placement: Some("any cpu".into()),
        peers: Vec::new(),
    }
}

/// Publishes with `send` for `duration`, checking the clock every few
/// messages (each check costs tens of ns, the cost of a small message);
/// returns how many were sent.
///
/// # Errors
///
/// `send` failed.
pub fn send_for(
    size: usize,
    duration: Duration,
    mut send: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let every = (65_536 / size.max(1)).clamp(1, 256);
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration {
        for _ in 0..every {
            send()?;
        }
        sent += every as u64;
    }
    Ok(sent)
}

/// Collects acknowledgements of `round` from `sinks` distinct sinks;
/// returns the lowest count. `next` returns the next acknowledgement, or
/// `None` when a short wait passed without one (then `resend` runs, for
/// transports that may lose the marker). Bounded by `limit`.
///
/// # Errors
///
/// `next` or `resend` failed, or the limit passed.
pub fn collect_acks(
    round: u32,
    sinks: usize,
    limit: Duration,
    mut next: impl FnMut() -> anyhow::Result<Option<crate::wire::Ack>>,
    mut resend: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let end = Instant::now() + limit;
    let mut seen = std::collections::HashMap::new();
    while seen.len() < sinks {
        anyhow::ensure!(
            Instant::now() < end,
            "round {round}: {} of {sinks} sinks acknowledged within {limit:?}",
            seen.len()
        );
        match next()? {
            Some(a) if a.round == round => {
                seen.insert(a.sink, a.count);
            }
            Some(_) => {} // a late answer to an earlier marker
            None => resend()?,
        }
    }
    Ok(seen.values().copied().min().unwrap_or(0))
}
