//! `channel`: troupe's named channels in the shape of MESSIP's published
//! table, side by side with the floor and the peers in the same run.
//!
//! - **Synchronous round trips per second** at 0 B, 100 B, 1000 B and
//!   10000 B: a troupe channel's synchronous send against raw Zenoh
//!   get/queryable (the raw Zenoh request rate, tuned as troupe tunes it),
//!   raw Zenoh put/sub ping-pong and raw TCP ping-pong. These are the
//!   subjects of `rtt` ([`crate::rtt::RttSubject`]), far ends included; a
//!   rate is round trips made back to back from one task during a round of
//!   fixed duration, divided by that duration (1 / the mean round trip).
//!   Both ends pinned to one CPU, then unpinned, as in `rtt`.
//! - **Asynchronous messages per second** at 0 B and 100 B, one sender to
//!   one receiver: a troupe channel's `send_async` to an owner that takes
//!   them with `recv`, against raw Zenoh put/sub streams (batched, as in
//!   `thr`, and express, as the channel sends) and a raw TCP stream. These
//!   are the subjects and the method of `thr` ([`crate::thr`]).
//!
//! MESSIP's published figures are printed beside ours, not measured here.

use crate::pin::Placement;
use crate::report::{figure, Report, Role, Row};
use crate::rtt::{selected, size_label, RttLink, RttSubject};
use crate::thr::{self, Plan, ThrSubject};
use std::time::{Duration, Instant};

/// Round trips per call of [`RttLink::round_trips`]; a round ends after
/// the first batch that ends past its duration.
const BATCH: usize = 200;

/// The target for synchronous sends: at least this share of the
/// raw Zenoh request (get/queryable) rate.
const SYNC_TARGET: f64 = 0.8;

/// The target for asynchronous sends, messages/s.
const ASYNC_TARGET: f64 = 500_000.0;

/// The peer the synchronous target is set against.
const REQUEST_RATE: &str = "raw Zenoh get/queryable";

/// MESSIP's published figures, one machine over loopback (Pentium 4,
/// 2.26 GHz, Linux 2.6.0-test8): case, figure, unit.
const MESSIP: [(&str, f64, &str); 3] = [
    ("0 B synchronous", 49_450.0, "round trips/s"),
    ("1000 B synchronous", 45_100.0, "round trips/s"),
    ("0 B asynchronous, 1 to 1", 21_880.0, "msg/s"),
];

const MESSIP_SUBJECT: &str = "MESSIP (published, not measured here)";

/// Synchronous message sizes: 0 B, 100 B, 1000 B, 10000 B (quick: 0 B and
/// 1000 B).
fn sync_sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![0, 1000]
    } else {
        vec![0, 100, 1000, 10_000]
    }
}

/// Asynchronous message sizes: 0 B and 100 B (quick: 0 B).
fn async_sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![0]
    } else {
        vec![0, 100]
    }
}

/// The synchronous subjects, the floor first.
fn sync_subjects() -> Vec<Box<dyn RttSubject>> {
    vec![
        Box::new(crate::tcp::RttTcp),
        Box::new(crate::zenoh_raw::RttGet),
        Box::new(crate::zenoh_raw::RttPingPong { routed: false }),
        Box::new(crate::troupe_channel::RttChannel),
    ]
}

/// The asynchronous subjects, the floor first.
fn async_subjects() -> Vec<Box<dyn ThrSubject>> {
    vec![
        Box::new(crate::tcp::ThrTcp),
        Box::new(crate::zenoh_raw::ThrPubSub { express: false }),
        Box::new(crate::zenoh_raw::ThrPubSub { express: true }),
        Box::new(crate::troupe_channel::ThrChannel),
    ]
}

/// `0 B synchronous`, `100 B asynchronous, 1 to 1`.
fn case(size: usize, sync: bool) -> String {
    if sync {
        format!("{} synchronous", size_label(size))
    } else {
        format!("{} asynchronous, 1 to 1", size_label(size))
    }
}

/// Synchronous figures of one subject, placement and size.
struct Measured {
    subject: &'static str,
    topology: &'static str,
    role: Role,
    placement: Placement,
    size: usize,
    /// Median round trips/s of the rounds.
    rate: f64,
    /// Lowest and highest of the rounds.
    range: (f64, f64),
    /// Round trips in the counted rounds.
    n: u64,
}

/// Makes round trips back to back for `duration` (whole batches); returns
/// how many, and the time they took.
async fn round(
    link: &mut dyn RttLink,
    size: usize,
    duration: Duration,
) -> anyhow::Result<(u64, Duration)> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < duration {
        let s = link.round_trips(size, BATCH).await?;
        anyhow::ensure!(s.len() == BATCH, "{} round trips of {BATCH}", s.len());
        n += BATCH as u64;
    }
    Ok((n, start.elapsed()))
}

/// Measures the round trips per second of `subject` placed as `placement`
/// at every size.
async fn measure_sync(
    subject: &dyn RttSubject,
    placement: Placement,
    sizes: &[usize],
    plan: Plan,
) -> anyhow::Result<Vec<Measured>> {
    let mut link = subject.open(placement).await?;
    let _pinned = placement.apply()?;
    let mut out = Vec::new();
    for &size in sizes {
        round(link.as_mut(), size, plan.warm_up).await?;
        let mut rates = Vec::with_capacity(plan.rounds);
        let mut total = 0u64;
        for _ in 0..plan.rounds {
            let (n, elapsed) = round(link.as_mut(), size, plan.round).await?;
            rates.push(n as f64 / elapsed.as_secs_f64());
            total += n;
        }
        rates.sort_by(f64::total_cmp);
        let m = Measured {
            subject: subject.name(),
            topology: subject.topology(),
            role: subject.role(),
            placement,
            size,
            rate: rates[rates.len() / 2],
            range: (rates[0], rates[rates.len() - 1]),
            n: total,
        };
        println!(
            "  channel  {:<34} {:<8} {:>7}: {} round trips/s (mean {} us)",
            m.subject,
            placement.to_string(),
            size_label(size),
            figure(m.rate),
            figure(1e6 / m.rate),
        );
        out.push(m);
    }
    Ok(out)
}

/// The `channel` scenario.
///
/// # Errors
///
/// A floor or peer subject failed (a troupe subject's failure leaves a note
/// in a full run).
pub async fn channel(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let plan = Plan::new(quick);
    for (case, value, unit) in MESSIP {
        println!(
            "  channel  {MESSIP_SUBJECT}, {case}: {} {unit}",
            figure(value)
        );
    }
    sync_part(report, quick, plan).await?;
    async_part(report, quick, plan).await?;
    for (case, value, unit) in MESSIP {
        report.add(Row {
            scenario: "channel".into(),
            case: case.into(),
            subject: MESSIP_SUBJECT.into(),
            value,
            unit: unit.into(),
            floor: None,
            detail: "one machine over loopback: Pentium 4 2.26 GHz, Linux 2.6.0-test8; \
                     MESSIP's published table (also 20,710 asynchronous msg/s at 200 B)"
                .into(),
            placement: None,
            peers: Vec::new(),
        });
    }
    report.note(
        "channel: MESSIP's figures are its published ones, on its own hardware (2003): for \
         orientation only, not comparable",
    );
    Ok(())
}

async fn sync_part(report: &mut Report, quick: bool, plan: Plan) -> anyhow::Result<()> {
    let sizes = sync_sizes(quick);
    let mut all = Vec::new();
    for subject in sync_subjects().into_iter().filter(|s| selected(s.name())) {
        report.note(format!(
            "channel, {} (synchronous): {}",
            subject.name(),
            subject.method()
        ));
        for placement in Placement::both()? {
            let measured = measure_sync(subject.as_ref(), placement, &sizes, plan).await;
            let what = format!("channel, {}, {placement}", subject.name());
            if let Some(m) = report.tolerate(quick, subject.role(), &what, measured)? {
                all.extend(m);
            }
        }
    }
    if all.is_empty() {
        return Ok(());
    }
    report.note(format!(
        "channel, synchronous: figure = round trips/s made back to back from one task (1 / the \
         mean round trip), the median of {} rounds of {:?} (each a whole number of batches of \
         {BATCH}), after a {:?} warm-up; `1 cpu`: the bench and the far end, every thread of \
         both, pinned to one CPU (the troupe server process is not pinned)",
        plan.rounds, plan.round, plan.warm_up
    ));
    let rows = all
        .iter()
        .map(|m| {
            let target = if m.role == Role::Troupe {
                sync_target(m, &all)
            } else {
                String::new()
            };
            let row = Row {
                scenario: "channel".into(),
                case: case(m.size, true),
                subject: m.subject.into(),
                value: m.rate,
                unit: "round trips/s".into(),
                floor: None,
                detail: format!(
                    "mean round trip {} us; {}..{} over {} rounds, n={}; {}{target}",
                    figure(1e6 / m.rate),
                    figure(m.range.0),
                    figure(m.range.1),
                    plan.rounds,
                    m.n,
                    m.topology
                ),
                placement: Some(m.placement.to_string()),
                peers: Vec::new(),
            };
            (m.role, row)
        })
        .collect();
    report.add_compared(rows);
    Ok(())
}

/// The synchronous target for a troupe row: at least 0.8x the raw
/// Zenoh request rate of the same case and placement.
fn sync_target(m: &Measured, all: &[Measured]) -> String {
    let zenoh = all
        .iter()
        .find(|z| z.subject == REQUEST_RATE && z.size == m.size && z.placement == m.placement);
    match zenoh {
        Some(z) => {
            let limit = SYNC_TARGET * z.rate;
            format!(
                "; target ≥ {SYNC_TARGET}x {REQUEST_RATE} = {} round trips/s ({})",
                figure(limit),
                met(m.rate >= limit)
            )
        }
        None => String::new(),
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

async fn async_part(report: &mut Report, quick: bool, plan: Plan) -> anyhow::Result<()> {
    let sizes = async_sizes(quick);
    let mut all = Vec::new();
    for subject in async_subjects().into_iter().filter(|s| selected(s.name())) {
        report.note(format!(
            "channel, {} (asynchronous): {}",
            subject.name(),
            subject.method()
        ));
        let measured = thr::measure(subject.as_ref(), 1, &sizes, plan, "channel").await;
        let what = format!("channel, {}", subject.name());
        if let Some(m) = report.tolerate(quick, subject.role(), &what, measured)? {
            all.extend(m);
        }
    }
    if all.is_empty() {
        return Ok(());
    }
    report.note(format!(
        "channel, asynchronous: figure = messages/s received, median of {} rounds of {:?} \
         (from the first send to the acknowledgement of the round's end marker), after a {:?} \
         warm-up, as in thr; processes unpinned",
        plan.rounds, plan.round, plan.warm_up
    ));
    report.add_compared(
        all.iter()
            .map(|m| {
                let mut r = thr::row("channel", case(m.size, false), m, plan);
                if m.role == Role::Troupe {
                    r.detail.push_str(&format!(
                        "; target ≥ {} msg/s ({})",
                        figure(ASYNC_TARGET),
                        met(m.rate >= ASYNC_TARGET)
                    ));
                }
                (m.role, r)
            })
            .collect(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_name_the_size_and_the_kind() {
        assert_eq!(case(0, true), "0 B synchronous");
        assert_eq!(case(1000, true), "1000 B synchronous");
        assert_eq!(case(100, false), "100 B asynchronous, 1 to 1");
        assert!(MESSIP.iter().all(|(c, _, _)| sync_sizes(false)
            .iter()
            .map(|&s| case(s, true))
            .chain(async_sizes(false).iter().map(|&s| case(s, false)))
            .any(|ours| ours == *c)));
    }
}
