//! `fanout`: one publisher to 1, 10 and 100 subscribers, each in its own
//! process, with the subjects and the method of [`crate::thr`].

use crate::report::Report;
use crate::rtt::size_label;
use crate::thr::{measure, row, subjects, target, Plan};

/// Subscriber counts: 1, 10, 100 (quick: 1, 10).
fn fans(quick: bool) -> Vec<usize> {
    if quick {
        vec![1, 10]
    } else {
        vec![1, 10, 100]
    }
}

/// Message sizes: 8 B and 64 KiB.
const SIZES: [usize; 2] = [8, 64 << 10];

/// The `fanout` scenario.
///
/// # Errors
///
/// A subject failed.
pub async fn fanout(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let plan = Plan::new(quick);
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
        for sinks in fans(quick) {
            let measured = measure(subject.as_ref(), sinks, &SIZES, plan, "fanout").await;
            let what = format!("fanout, {}, 1 to {sinks}", subject.name());
            if let Some(m) = report.tolerate(quick, subject.role(), &what, measured)? {
                all.extend(m);
            }
        }
    }
    if !cfg!(feature = "zmq") {
        report.note(crate::rtt::ZMQ_ABSENT);
    }
    report.note(
        "fanout: figure = messages/s received by every subscriber (the slowest), as in thr; \
         the detail adds the bytes/s delivered to all subscribers together",
    );
    // In the table, grouped by case: size, then number of sinks (the sort
    // is stable: subjects stay in their order).
    all.sort_by_key(|m| (m.size, m.sinks));
    let rows = all
        .iter()
        .map(|m| {
            let case = format!("{}, 1 to {}", size_label(m.size), m.sinks);
            let mut r = row("fanout", case, m, plan);
            r.detail.push_str(&target(m, &all));
            (m.role, r)
        })
        .collect();
    report.add_compared(rows);
    Ok(())
}
