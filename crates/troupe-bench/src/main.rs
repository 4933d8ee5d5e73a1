//! `troupe-bench`: troupe's speed, measured side by side with its floor in
//! the same run.
//!
//! ```text
//! troupe-bench [--quick] [--json FILE] [SCENARIO...]
//! ```
//!
//! Scenarios: `spawn` (start-to-running and start-to-end latency through the
//! server against `std::process::Command` spawn-and-wait of the same
//! program; 200 instances started and stopped), `control` (control
//! operations per second), `mem` (server resident memory, idle and with 200
//! instances). The server runs as a separate process, as a user runs it.
//!
//! Transport scenarios, troupe's patterns (requester/responder,
//! publisher/subscriber: see `troupe_patterns.rs`), its floor (raw TCP) and
//! its peers (raw Zenoh, libzmq with the `zmq` feature) measured side by
//! side: `rtt` (request/reply round trips, p50/p90/p99, both ends on one CPU
//! and unpinned), `thr` (one publisher to one subscriber, messages/s and
//! bytes/s), `fanout` (one publisher to 1, 10, 100 subscribers), `channel`
//! (named channels in the shape of MESSIP's table: synchronous round trips
//! per second against raw Zenoh requests, ping-pong and TCP; asynchronous
//! messages per second against raw Zenoh and TCP streams), `object`
//! (remote calls: calls per second and p50/p99 against raw Zenoh
//! get/queryable carrying the same JSON-RPC bytes, the channel's send of
//! those bytes, plain raw Zenoh get/queryable and TCP), `status` (status
//! updates per second from an emitter process through a troupe server to a
//! follower, against raw Zenoh through a router, raw Zenoh re-put by a
//! router's subscriber, and raw TCP through a relay process), `device`
//! (devices and parameters: get round trips per second and p50/p99 of a
//! small and a 1 KiB value against raw Zenoh get/queryable carrying the
//! same JSON; updates delivered per second from one publisher to 100
//! subscriptions in 4 processes against raw Zenoh put of the same bytes).
//! Each far end
//! is this program re-executed as `--peer KIND PLACEMENT ARGS...`.
//!
//! `--quick` runs each scenario briefly and asserts nothing about speed. In
//! a full run, a troupe subject that fails leaves a note (FAILED, and why)
//! instead of its figures, and the run goes on.
//!
//! Environment: `TROUPE_BENCH_ONLY=TEXT[,TEXT...]` measures only the
//! transport subjects whose name contains one of the TEXTs (to profile one);
//! `TROUPE_BENCH_SIZES=BYTES[,BYTES...]` sets the message sizes of `rtt` and
//! `thr` (to profile one case); `TROUPE_LOG` (an
//! `EnvFilter`, such as `troupe=debug`) turns on the logs of the bench, its
//! peers and its servers.

mod channel;
mod device;
mod fanout;
mod jsonrpc;
mod object;
mod peer;
mod pin;
mod report;
mod rtt;
mod server_proc;
mod spawn;
mod stats;
mod status;
mod status_floor;
mod tcp;
mod thr;
mod troupe_channel;
mod troupe_object;
mod troupe_patterns;
mod troupe_status;
mod wire;
mod zenoh_raw;
#[cfg(feature = "zmq")]
mod zmq_peer;

use clap::Parser;
use std::path::PathBuf;

/// Benchmarks of troupe against its floor.
#[derive(Debug, Parser)]
#[command(name = "troupe-bench")]
struct Args {
    /// Run every scenario briefly (seconds): checks that each runs and
    /// produces figures.
    #[arg(long)]
    quick: bool,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Scenarios to run (default: all): spawn, control, mem, rtt, thr,
    /// fanout, channel, object, status, device.
    scenarios: Vec<String>,
    /// Internal: run a server on this configuration file and port.
    #[arg(long, hide = true, num_args = 2, value_names = ["CONFIG", "ENDPOINT"])]
    serve: Option<Vec<String>>,
    /// Internal: run the far end of a transport scenario.
    #[arg(long, hide = true, num_args = 2.., allow_hyphen_values = true, value_name = "KIND PLACEMENT ARGS")]
    peer: Option<Vec<String>>,
}

const ALL: [&str; 10] = [
    "spawn", "control", "mem", "rtt", "thr", "fanout", "channel", "object", "status", "device",
];

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve.is_some() {
        // A server process, as `troupe server` runs it (one thread yet).
        troupe_server::tune_zenoh_runtime();
    }
    // Logs of the troupe library (and Zenoh), off unless asked for: the
    // bench, its peers and its servers all read `TROUPE_LOG`.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("TROUPE_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .try_init();
    }
    if let Some(peer) = &args.peer {
        // No runtime of ours: a peer starts only the threads its transport
        // needs, after pinning itself.
        return peer::run(peer).map_err(|e| {
            eprintln!("troupe-bench peer {}: {e:#}", peer.join(" "));
            e
        });
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if let Some(serve) = args.serve {
        return rt.block_on(server_proc::serve(&serve[0], &serve[1]));
    }
    let scenarios: Vec<String> = if args.scenarios.is_empty() {
        ALL.iter().map(|s| s.to_string()).collect()
    } else {
        args.scenarios.clone()
    };
    for s in &scenarios {
        anyhow::ensure!(
            ALL.contains(&s.as_str()),
            "unknown scenario {s:?} (known: {})",
            ALL.join(", ")
        );
    }
    let mut report = report::Report::new(args.quick);
    println!("{}", report.machine_line());
    rt.block_on(async {
        for s in &scenarios {
            match s.as_str() {
                "spawn" => spawn::spawn(&mut report, args.quick).await?,
                "control" => spawn::control(&mut report, args.quick).await?,
                "mem" => spawn::mem(&mut report, args.quick).await?,
                "rtt" => rtt::rtt(&mut report, args.quick).await?,
                "thr" => thr::thr(&mut report, args.quick).await?,
                "fanout" => fanout::fanout(&mut report, args.quick).await?,
                "channel" => channel::channel(&mut report, args.quick).await?,
                "object" => object::object(&mut report, args.quick).await?,
                "status" => status::status(&mut report, args.quick).await?,
                "device" => device::device(&mut report, args.quick).await?,
                _ => unreachable!("checked above"),
            }
        }
        anyhow::Ok(())
    })?;
    report.print();
    if let Some(path) = &args.json {
        std::fs::write(path, report.json()?)?;
        println!("figures written to {}", path.display());
    }
    anyhow::ensure!(!report.is_empty(), "no figures were produced");
    Ok(())
}
