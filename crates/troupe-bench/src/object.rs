//! `object`: troupe's remote calls (issue #6), side by side with the floor
//! and the peers in the same run.
//!
//! A call of `echo(text)` whose one string parameter is 0 B, 100 B,
//! 1000 B, 10000 B, 64 KiB and 1 MiB long, answered by an object that returns it, made
//! back to back from one task. For each case: **round trips per second**
//! (as `channel` measures them: round trips made during a round of fixed
//! duration, divided by that duration) and **p50, p90, p99 of one call**
//! (over every call of the counted rounds). Subjects:
//!
//! - troupe's remote call ([`crate::troupe_object::RttObject`]);
//! - troupe's channel sending the same JSON-RPC bytes synchronously, the
//!   transport under a call ([`crate::troupe_object::RttChannelJson`]);
//! - raw Zenoh get/queryable carrying the same JSON-RPC bytes, both ends
//!   doing the JSON work of a call ([`crate::jsonrpc::RttGetJson`]): the
//!   issue's comparison, so that the ratio is the middleware's cost and
//!   not JSON's (target: a p50 within 1.3x of it);
//! - raw Zenoh get/queryable carrying the text's bytes alone
//!   ([`crate::zenoh_raw::RttGet`]), and raw TCP, the floor
//!   ([`crate::tcp::RttTcp`]).
//!
//! Both ends pinned to one CPU, then unpinned, as in `rtt`. The status
//! update throughput of issue #6 is a scenario of its own beside this one
//! ([`crate::status`]).

use crate::pin::Placement;
use crate::report::{figure, Report, Role, Row};
use crate::rtt::{selected, size_label, RttLink, RttSubject};
use crate::stats::Latency;
use crate::thr::Plan;
use crate::troupe_object::{CHANNEL_JSON_NAME, OBJECT_NAME};
use std::time::{Duration, Instant};

/// Calls per call of [`RttLink::round_trips`]; a round ends after the
/// first batch that ends past its duration.
const BATCH: usize = 200;

/// The target: a call's p50 within this factor of raw Zenoh
/// get/queryable carrying the same JSON-RPC bytes.
const TARGET: f64 = 1.3;

/// The subject the target is set against.
const AGAINST: &str = crate::jsonrpc::NAME;

/// The text's sizes: 0 B, 100 B, 1000 B, 10000 B, 64 KiB and 1 MiB (quick:
/// 0 B and 1000 B). The large ones show what JSON costs when the payload
/// is large, beside raw Zenoh carrying the same JSON-RPC bytes.
fn sizes(quick: bool) -> Vec<usize> {
    if quick {
        vec![0, 1000]
    } else {
        vec![0, 100, 1000, 10_000, 64 << 10, 1 << 20]
    }
}

/// Every subject, the floor first.
fn subjects() -> Vec<Box<dyn RttSubject>> {
    vec![
        Box::new(crate::tcp::RttTcp),
        Box::new(crate::zenoh_raw::RttGet),
        Box::new(crate::jsonrpc::RttGetJson),
        Box::new(crate::troupe_object::RttChannelJson),
        Box::new(crate::troupe_object::RttObject),
    ]
}

/// The figures of one subject, placement and size.
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
    /// Every call of the counted rounds.
    latency: Latency,
}

/// Makes calls back to back for `duration` (whole batches); returns the
/// duration of each, and the time they all took.
async fn round(
    link: &mut dyn RttLink,
    size: usize,
    duration: Duration,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < duration {
        let s = link.round_trips(size, BATCH).await?;
        anyhow::ensure!(s.len() == BATCH, "{} calls of {BATCH}", s.len());
        samples.extend(s);
    }
    Ok((samples, start.elapsed()))
}

/// Measures `subject` placed as `placement` at every size.
async fn measure(
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
        let mut samples = Vec::new();
        for _ in 0..plan.rounds {
            let (s, elapsed) = round(link.as_mut(), size, plan.round).await?;
            rates.push(s.len() as f64 / elapsed.as_secs_f64());
            samples.extend(s);
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
            latency: Latency::of(&mut samples),
        };
        println!(
            "  object   {:<36} {:<8} {:>7}: {} calls/s, p50 {} us, p99 {} us",
            m.subject,
            placement.to_string(),
            size_label(size),
            figure(m.rate),
            figure(m.latency.p50_us),
            figure(m.latency.p99_us),
        );
        out.push(m);
    }
    Ok(out)
}

/// `0 B call` (rates), `0 B call, p50` (latencies).
fn case(size: usize, latency: bool) -> String {
    if latency {
        format!("{} call, p50", size_label(size))
    } else {
        format!("{} call", size_label(size))
    }
}

/// The `object` scenario.
///
/// # Errors
///
/// A floor or peer subject failed (a troupe subject's failure leaves a note
/// in a full run).
pub async fn object(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let plan = Plan::new(quick);
    let sizes = sizes(quick);
    let mut all = Vec::new();
    for subject in subjects().into_iter().filter(|s| selected(s.name())) {
        report.note(format!("object, {}: {}", subject.name(), subject.method()));
        for placement in Placement::both()? {
            let measured = measure(subject.as_ref(), placement, &sizes, plan).await;
            let what = format!("object, {}, {placement}", subject.name());
            if let Some(m) = report.tolerate(quick, subject.role(), &what, measured)? {
                all.extend(m);
            }
        }
    }
    if all.is_empty() {
        return Ok(());
    }
    report.note(format!(
        "object: the size is the text's, the one parameter of echo(text) (raw TCP and plain \
         raw Zenoh carry the text alone, the others a JSON-RPC request of it); `N call` = calls \
         (round trips)/s made back to back from one task, the median of {} rounds of {:?} \
         (whole batches of {BATCH}) after a {:?} warm-up; `N call, p50` = p50 of one call over \
         every call of those rounds; `1 cpu`: the bench and the far end, every thread of both, \
         pinned to one CPU (the troupe server process is not pinned)",
        plan.rounds, plan.round, plan.warm_up
    ));
    let mut rows = Vec::new();
    for m in &all {
        let (rate_target, p50_target) = targets(m, &all);
        let l = &m.latency;
        let rate = Row {
            scenario: "object".into(),
            case: case(m.size, false),
            subject: m.subject.into(),
            value: m.rate,
            unit: "calls/s".into(),
            floor: None,
            detail: format!(
                "mean {} us; {}..{} over {} rounds, n={}; {}{rate_target}",
                figure(1e6 / m.rate),
                figure(m.range.0),
                figure(m.range.1),
                plan.rounds,
                l.n,
                m.topology
            ),
            placement: Some(m.placement.to_string()),
            peers: Vec::new(),
        };
        let latency = Row {
            scenario: "object".into(),
            case: case(m.size, true),
            subject: m.subject.into(),
            value: l.p50_us,
            unit: "us".into(),
            floor: None,
            detail: format!(
                "p90 {} us, p99 {} us, n={}; {}{p50_target}",
                figure(l.p90_us),
                figure(l.p99_us),
                l.n,
                m.topology
            ),
            placement: Some(m.placement.to_string()),
            peers: Vec::new(),
        };
        rows.push((m.role, rate));
        rows.push((m.role, latency));
    }
    report.add_compared(rows);
    Ok(())
}

/// The details of a troupe row about its targets: for the remote call,
/// issue #6's (p50 within 1.3x of raw Zenoh get/queryable carrying the
/// same JSON-RPC bytes; the rate read as at least 1/1.3 of its rate) and
/// its cost over the channel's send of the same bytes.
fn targets(m: &Measured, all: &[Measured]) -> (String, String) {
    if m.subject != OBJECT_NAME {
        return (String::new(), String::new());
    }
    let same = |name: &str| {
        all.iter()
            .find(|o| o.subject == name && o.size == m.size && o.placement == m.placement)
    };
    let met = |ok: bool| if ok { "met" } else { "not met" };
    let (mut rate, mut p50) = (String::new(), String::new());
    if let Some(get) = same(AGAINST) {
        let (min_rate, max_p50) = (get.rate / TARGET, TARGET * get.latency.p50_us);
        rate.push_str(&format!(
            "; target ≥ {AGAINST} / {TARGET} = {} calls/s ({})",
            figure(min_rate),
            met(m.rate >= min_rate)
        ));
        p50.push_str(&format!(
            "; target ≤ {TARGET}x {AGAINST} = {} us ({})",
            figure(max_p50),
            met(m.latency.p50_us <= max_p50)
        ));
    }
    if let Some(channel) = same(CHANNEL_JSON_NAME) {
        rate.push_str(&format!(
            "; {:.2}x {CHANNEL_JSON_NAME}",
            m.rate / channel.rate
        ));
        p50.push_str(&format!(
            "; {:.2}x {CHANNEL_JSON_NAME}",
            m.latency.p50_us / channel.latency.p50_us
        ));
    }
    (rate, p50)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_name_the_size_and_the_figure() {
        assert_eq!(case(0, false), "0 B call");
        assert_eq!(case(10_000, true), "10000 B call, p50");
        assert_eq!(sizes(false), [0, 100, 1000, 10_000, 65_536, 1_048_576]);
    }

    #[test]
    fn the_target_compares_the_call_with_raw_json_rpc_of_its_case() {
        let m = |subject: &'static str, size: usize, rate: f64, p50: f64| Measured {
            subject,
            topology: "",
            role: Role::Troupe,
            placement: Placement::Any,
            size,
            rate,
            range: (rate, rate),
            latency: Latency {
                n: 1,
                p50_us: p50,
                p90_us: p50,
                p99_us: p50,
            },
        };
        let all = [
            m(AGAINST, 0, 1000.0, 100.0),
            m(AGAINST, 100, 10.0, 1.0),
            m(CHANNEL_JSON_NAME, 0, 2000.0, 50.0),
            m(OBJECT_NAME, 0, 800.0, 125.0),
            m(OBJECT_NAME, 1000, 800.0, 125.0),
        ];
        let (rate, p50) = targets(&all[3], &all);
        assert!(rate.contains("= 769.2 calls/s (met)"), "{rate}");
        assert!(p50.contains("= 130.0 us (met)"), "{p50}");
        assert!(
            p50.ends_with("; 2.50x troupe channel send, JSON-RPC bytes"),
            "{p50}"
        );
        let slow = m(OBJECT_NAME, 0, 700.0, 131.0);
        let (rate, p50) = targets(&slow, &all);
        assert!(
            rate.contains("(not met)") && p50.contains("(not met)"),
            "{rate} {p50}"
        );
        // No comparison in another case, nor for other subjects.
        assert_eq!(targets(&all[4], &all), (String::new(), String::new()));
        assert_eq!(targets(&all[2], &all), (String::new(), String::new()));
    }
}
