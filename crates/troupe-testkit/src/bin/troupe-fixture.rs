//! `troupe-fixture MODE [ARGS]`: a program for tests, well-behaved or not.
//!
//! | mode | behaviour |
//! | --- | --- |
//! | `exit CODE` | exits at once with CODE |
//! | `crash` | dies of SIGSEGV |
//! | `sleep SECS` | sleeps, then exits 0 |
//! | `ignore-term` | prints `ready`, ignores SIGTERM (prints `ignored TERM`), runs until killed |
//! | `fork N` | starts N `sleep 1000` children, prints their pids one a line, then sleeps |
//! | `flood BYTES` | writes BYTES of 100-byte numbered lines to stdout as fast as it can, then exits 0 |
//! | `lines N` | prints `line 1` .. `line N` (stdout) and `err 1` .. (stderr every tenth), exits 0 |
//! | `echo` | copies stdin to stdout line by line until EOF, then exits 0 |
//! | `env` | prints the TROUPE_* variables, exits 0 |
//! | `manual-running MS` | troupe-aware: says it runs after MS milliseconds, then sleeps |
//! | `result TEXT` | troupe-aware: sets TEXT as its result, exits 0 |
//! | `store KEY VALUE MS` | troupe-aware: stores KEY after MS milliseconds, then sleeps |
//! | `graceful` | troupe-aware: handles stop requests, prints `stopping cleanly`, sets result `clean`, exits 0 |
//! | `attach ENDPOINT APP` | attaches itself to a server under APP, prints its id, then runs until stopped (detaches `stopped`) |
//! | `publish NAME N [OPTION..]` | troupe-aware: publishes the texts `1` .. `N` on NAME, ends the stream, sets result `published N`, exits 0. Options: `sync M` synchronised on M subscribers; `wait M` waits for M subscribers (`wait_for_subscribers`) first; `window W`; `gate` reads a line on stdin before declaring the publisher; `drop` drops the publisher without ending the stream, prints `dropped`, then sleeps; `mixed` makes every 7th message two-part (header `two`) and every 100th a text of the number and 20,000 spaces with the header `big`; `report` prints `batched B` (`Publisher::batched`) after the last send |
//! | `publish-forever NAME MS` | troupe-aware: a plain publisher of `1`, `2`, ... one every MS milliseconds until killed; prints `publishing` after the first |
//! | `publish-kinds NAME` | troupe-aware: synchronised on 1 subscriber, publishes one message of each kind ([`kinds`]), ends, exits 0 |
//! | `publish-twice NAME` | troupe-aware: declares publisher NAME, then NAME again, another name and bad names; prints `what: ok/refused/invalid/error ...` for each, exits 0 |
//! | `subscribe ID NAME` | troupe-aware: subscribes to NAME of instance ID of its server, reads to the end, sets result `received=R missed=M first=F last=L gaps=G` (G: numbers not following the previous one), exits 0 |
//! | `respond NAME [workers K] [gate]` | troupe-aware: handles stop requests; K workers (default 1) serve NAME, declared after a line on stdin with `gate`; prints `ready`; each text request is a command (see [`serve`]), anything else is echoed; on stop sets result `served R` (R requests received), exits 0 |
//! | `request ID NAME TEXT` | troupe-aware: sends TEXT to the responder NAME of instance ID, sets the text answer as its result, exits 0 |
//! | `starter APP [ARGS..]` | troupe-aware: starts APP with ARGS linked to itself (`This::start`) and again unlinked (`This::start_unlinked`), prints `linked ID` and `unlinked ID`, exits 0 at a line on stdin |
//! | `channel-owner NAME [echo\|hold] [bound N] [max N]` | troupe-aware: creates the channel NAME (async bound N, largest message N bytes), prints `ready` (or `taken: REASON` and exits 2 when the name is taken); then receives: `echo` (default) answers each synchronous message with itself, `hold` keeps them unanswered and prints `holding <n>`; prints `async TEXT` for an asynchronous message and `disconnected CLIENT` for a notice; on stop drops the channel and exits 0 |
//! | `channel-client NAME` | troupe-aware: connects to the channel NAME, prints `connected <client id>`, then sleeps until killed |
//! | `status-emit PATH JSON [PATH JSON..]` | troupe-aware: emits each JSON value at its PATH in the realm's status tree, flushes, prints `emitted SEQ` (the server's number of the last one), exits 0 |
//! | `status-count PATH N` | troupe-aware: emits `1` .. `N` at PATH as fast as it can, prints `counting` after the first, flushes, prints `counted N`, exits 0 |
//! | `log N LEVEL [OPTION..]` | troupe-aware: installs distributed logging (`troupe::log::init_with` at LEVEL) and logs `record 1` .. `record N` at LEVEL with the field `n` (the number), as fast as it can; then flushes, prints `logged N in MS ms: sent S dropped D` and sets it as its result, exits 0. Options: `bridge` logs through the `log` crate instead of `tracing`; `quiet` prints nothing on stderr; `queue Q` sets the layer's queue |
//! | `object ID` | troupe-aware: serves a [`troupe_testkit::probe::Probe`] under the object id ID, prints `serving` (or `taken: REASON` and exits 2), runs until stopped (prints `stopped`) |
//! | `device-service DEVICE [name N] [server-id S] [prefix P] [aware] [current] [tick MS]` | troupe-aware: serves DEVICE with a [`troupe_testkit::supply::Supply`] (pollers every MS ms, default 50), the options given at run time (the app's `[app.device]` wins); prints `settings NAME SERVER_ID PREFIX aware=B first=F overridden=K,..`, then `serving` (or `taken: REASON` and exits 2), then `started DEVICE/PROPERTY SELECTOR` and `stopped ...` (`-` for no selector) at each monitoring event; runs until stopped |
//! | `device-client ADDRESS [SELECTOR]` | troupe-aware: subscribes to ADDRESS (`device/property`), prints `subscribed`, then `update SEQ VALUE` or `error SEQ MESSAGE` for each update, until killed |

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use troupe::{
    Channel, ChannelClient, ChannelOptions, Event, Message, PublisherOptions, Request, Server,
    SubscriberOptions, This,
};

fn arg(args: &[String], i: usize, what: &str) -> String {
    args.get(i)
        .cloned()
        .unwrap_or_else(|| panic!("troupe-fixture: missing {what}"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = arg(&args, 0, "mode");
    match mode.as_str() {
        "exit" => std::process::exit(arg(&args, 1, "code").parse().expect("code")),
        "crash" => {
            // The first SIGSEGV meets the Rust runtime's stack-overflow
            // handler, which restores the default action; the second kills.
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSEGV);
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSEGV);
            std::process::exit(99);
        }
        "sleep" => {
            let secs: f64 = arg(&args, 1, "seconds").parse().expect("seconds");
            tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        }
        "ignore-term" => {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("TERM handler");
            println!("ready");
            loop {
                term.recv().await;
                println!("ignored TERM");
            }
        }
        "fork" => {
            let n: usize = arg(&args, 1, "count").parse().expect("count");
            let mut children = Vec::new();
            for _ in 0..n {
                let c = std::process::Command::new("sleep")
                    .arg("1000")
                    .spawn()
                    .expect("spawn sleep");
                println!("{}", c.id());
                children.push(c);
            }
            std::io::stdout().flush().expect("flush");
            tokio::time::sleep(Duration::from_secs(1000)).await;
        }
        "flood" => {
            let bytes: usize = arg(&args, 1, "bytes").parse().expect("bytes");
            let out = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, out.lock());
            let mut written = 0;
            let mut n = 0u64;
            while written < bytes {
                n += 1;
                let line = format!("{n:>12} {}\n", "x".repeat(86));
                out.write_all(line.as_bytes()).expect("write");
                written += line.len();
            }
            out.flush().expect("flush");
        }
        "lines" => {
            let n: u64 = arg(&args, 1, "count").parse().expect("count");
            for i in 1..=n {
                println!("line {i}");
                if i % 10 == 0 {
                    eprintln!("err {i}");
                }
            }
        }
        "echo" => {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                let line = line.expect("stdin");
                println!("{line}");
                std::io::stdout().flush().expect("flush");
            }
        }
        "env" => {
            let mut vars: Vec<_> = std::env::vars()
                .filter(|(k, _)| k.starts_with("TROUPE_"))
                .collect();
            vars.sort();
            for (k, v) in vars {
                println!("{k}={v}");
            }
        }
        "manual-running" => {
            let ms: u64 = arg(&args, 1, "milliseconds").parse().expect("ms");
            let this = troupe::This::init().await.expect("This::init");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            this.set_running().await.expect("set_running");
            println!("said running");
            tokio::time::sleep(Duration::from_secs(1000)).await;
        }
        "result" => {
            let this = troupe::This::init().await.expect("This::init");
            this.set_result(arg(&args, 1, "text").as_bytes())
                .await
                .expect("set_result");
        }
        "store" => {
            let this = troupe::This::init().await.expect("This::init");
            let ms: u64 = arg(&args, 3, "milliseconds").parse().expect("ms");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            this.store(&arg(&args, 1, "key"), arg(&args, 2, "value").as_bytes())
                .await
                .expect("store");
            println!("stored");
            tokio::time::sleep(Duration::from_secs(1000)).await;
        }
        "graceful" => {
            let this = troupe::This::init().await.expect("This::init");
            let mut stop = this.on_stop().await.expect("on_stop");
            println!("ready");
            stop.wait().await;
            println!("stopping cleanly");
            this.set_result(b"clean").await.expect("set_result");
        }
        "attach" => {
            let this = troupe::This::attach(&arg(&args, 1, "endpoint"), &arg(&args, 2, "app"))
                .await
                .expect("attach");
            let mut stop = this.on_stop().await.expect("on_stop");
            println!("{}", this.id());
            std::io::stdout().flush().expect("flush");
            stop.wait().await;
            this.detach(troupe::State::Stopped).await.expect("detach");
        }
        "publish" => publish(&args).await,
        "publish-forever" => publish_forever(&args).await,
        "publish-kinds" => publish_kinds(&arg(&args, 1, "name")).await,
        "publish-twice" => publish_twice(&arg(&args, 1, "name")).await,
        "subscribe" => subscribe(&args).await,
        "respond" => respond(&args).await,
        "request" => request(&args).await,
        "starter" => starter(&args).await,
        "starter-on" => starter_on(&args).await,
        "channel-owner" => channel_owner(&args).await,
        "channel-client" => channel_client(&args).await,
        "status-emit" => status_emit(&args).await,
        "status-count" => status_count(&args).await,
        "object" => object(&args).await,
        "device-service" => device_service(&args).await,
        "device-client" => device_client(&args).await,
        "log" => log_records(&args).await,
        other => {
            eprintln!("troupe-fixture: unknown mode {other:?}");
            std::process::exit(64);
        }
    }
}

/// How long the pattern modes wait for the other side (a test's bound).
const WAIT: Duration = Duration::from_secs(20);

async fn init() -> This {
    This::init().await.expect("This::init")
}

fn num<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> T {
    arg(args, i, what)
        .parse()
        .unwrap_or_else(|_| panic!("troupe-fixture: {what} is not a number"))
}

/// The value after the word `name` in `args`, if there.
fn option(args: &[String], name: &str) -> Option<String> {
    let i = args.iter().position(|a| a == name)?;
    Some(arg(args, i + 1, name))
}

/// Waits for a line on standard input.
async fn gate() {
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)
    })
    .await
    .expect("stdin task")
    .expect("read stdin");
}

/// A line on stdout, flushed (stdout is a pipe).
fn say(text: impl std::fmt::Display) {
    println!("{text}");
    std::io::stdout().flush().expect("flush");
}

async fn publish(args: &[String]) {
    let name = arg(args, 1, "name");
    let n: u64 = num(args, 2, "count");
    let this = init().await;
    let mut opts = PublisherOptions {
        send_timeout: WAIT,
        ..PublisherOptions::default()
    };
    if let Some(m) = option(args, "sync") {
        opts.synchronised = Some(m.parse().expect("sync count"));
    }
    if let Some(w) = option(args, "window") {
        opts.window = w.parse().expect("window");
    }
    if args.iter().any(|a| a == "gate") {
        gate().await;
    }
    let publisher = this
        .publisher_with(&name, opts)
        .await
        .expect("declare the publisher");
    if let Some(m) = option(args, "wait") {
        publisher
            .wait_for_subscribers(m.parse().expect("wait count"), WAIT)
            .await
            .expect("wait for subscribers");
    }
    let mixed = args.iter().any(|a| a == "mixed");
    for i in 1..=n {
        let m = match i {
            i if mixed && i % 100 == 0 => {
                Message::text(format!("{i}{}", " ".repeat(20_000))).with_header(b"big".to_vec())
            }
            i if mixed && i % 7 == 0 => Message::text(i.to_string()).with_header(b"two".to_vec()),
            i => Message::text(i.to_string()),
        };
        publisher.send(m).await.expect("send");
    }
    if args.iter().any(|a| a == "report") {
        say(format!("batched {}", publisher.batched()));
    }
    if args.iter().any(|a| a == "drop") {
        drop(publisher);
        say("dropped");
        tokio::time::sleep(Duration::from_secs(1000)).await;
        return;
    }
    publisher.end().await.expect("end");
    this.set_result(format!("published {n}").as_bytes())
        .await
        .expect("set_result");
}

async fn publish_forever(args: &[String]) {
    let name = arg(args, 1, "name");
    let every = Duration::from_millis(num(args, 2, "milliseconds"));
    let this = init().await;
    let publisher = this.publisher(&name).await.expect("declare the publisher");
    for i in 1u64.. {
        publisher.send(i.to_string()).await.expect("send");
        if i == 1 {
            say("publishing");
        }
        if every.is_zero() {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(every).await;
        }
    }
}

/// The JSON message of [`kinds`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// A name.
    pub sensor: String,
    /// Some numbers.
    pub values: Vec<f64>,
    /// A flag.
    pub ok: bool,
}

/// One message of each kind, as `publish-kinds` sends them (the tests keep
/// their own copy).
fn kinds() -> Vec<Message> {
    let reading = Reading {
        sensor: "t-1".into(),
        values: vec![20.5, -3.0],
        ok: true,
    };
    vec![
        Message::bytes(vec![0u8, 1, 255]),
        Message::text("héllo, wörld"),
        Message::json(&reading).expect("json"),
        Message::f64s(&[1.5, -2.25, f64::MAX]),
        Message::i32s(&[1, -2, i32::MIN]),
        Message::f64s(&[0.5]).with_header(b"frame 7".to_vec()),
    ]
}

async fn publish_kinds(name: &str) {
    let this = init().await;
    let opts = PublisherOptions {
        send_timeout: WAIT,
        ..PublisherOptions::synchronised(1)
    };
    let publisher = this.publisher_with(name, opts).await.expect("declare");
    for m in kinds() {
        publisher.send(m).await.expect("send");
    }
    publisher.end().await.expect("end");
}

fn outcome<T>(r: &troupe::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(troupe::Error::Refused(_)) => "refused".into(),
        Err(troupe::Error::Invalid(_)) => "invalid".into(),
        Err(e) => format!("error {e}"),
    }
}

async fn publish_twice(name: &str) {
    let this = init().await;
    let first = this.publisher(name).await;
    say(format!("first: {}", outcome(&first)));
    let second = this.publisher(name).await;
    say(format!("second: {}", outcome(&second)));
    let other = this.publisher(&format!("{name}-2")).await;
    say(format!("other: {}", outcome(&other)));
    for bad in ["", "a b", ".hidden", "x/y", "*"] {
        let r = this.publisher(bad).await;
        say(format!("bad {bad:?}: {}", outcome(&r)));
    }
    drop((first, second, other));
    // Once the first is gone, the name is free again.
    let again = this.publisher(name).await;
    say(format!("again: {}", outcome(&again)));
}

async fn subscribe(args: &[String]) {
    let id: u64 = num(args, 1, "instance id");
    let name = arg(args, 2, "name");
    let this = init().await;
    let instance = this.server().instance(id).await.expect("the instance");
    let opts = SubscriberOptions {
        timeout: Some(WAIT),
        ..SubscriberOptions::default()
    };
    let mut sub = instance
        .subscriber_with(&name, opts)
        .await
        .expect("subscribe");
    let (mut received, mut first, mut last, mut gaps) = (0u64, 0u64, 0u64, 0u64);
    while let Some(m) = sub.recv().await.expect("recv") {
        let n: u64 = m.as_text().expect("text").parse().expect("a number");
        if received == 0 {
            first = n;
        } else if n != last + 1 {
            gaps += 1;
        }
        received += 1;
        last = n;
    }
    let result = format!(
        "received={received} missed={} first={first} last={last} gaps={gaps}",
        sub.missed()
    );
    this.set_result(result.as_bytes())
        .await
        .expect("set_result");
}

async fn respond(args: &[String]) {
    let name = arg(args, 1, "name");
    let workers: u32 = option(args, "workers").map_or(1, |k| k.parse().expect("workers"));
    let this = init().await;
    let mut stop = this.on_stop().await.expect("on_stop");
    if args.iter().any(|a| a == "gate") {
        gate().await;
    }
    let counts = Arc::new(Counts::default());
    for k in 1..=workers {
        let mut responder = this.responder(&name).await.expect("declare a worker");
        let counts = counts.clone();
        tokio::spawn(async move {
            // Requests held unanswered (`hold`) live as long as the worker.
            let mut held = Vec::new();
            while let Ok(request) = responder.recv().await {
                counts.received.fetch_add(1, Ordering::Relaxed);
                if let Some(r) = serve(request, k, &counts).await {
                    held.push(r);
                }
            }
        });
    }
    say("ready");
    stop.wait().await;
    let received = counts.received.load(Ordering::Relaxed);
    this.set_result(format!("served {received}").as_bytes())
        .await
        .expect("set_result");
}

/// What the workers of `respond` count.
#[derive(Debug, Default)]
struct Counts {
    received: AtomicU64,
    held: AtomicU64,
}

/// Answers one request of worker `k`. A text request is a command:
///
/// | request | answer |
/// | --- | --- |
/// | `worker` | `w<k>` |
/// | `from` | the request's `from()` |
/// | `sleep MS TEXT` | TEXT, after MS milliseconds (the worker is busy meanwhile) |
/// | `hold` | none: the request is kept (returned), the process prints `holding <n>` |
/// | `parts K MS` | `part 1` .. `part K-1` as parts, MS milliseconds apart, then `part K` as the final reply |
/// | `fail REASON` | a failure with REASON |
/// | `drop` | none: the request is dropped unanswered |
///
/// Anything else (and any other content) is echoed unchanged.
async fn serve(request: Request, k: u32, counts: &Counts) -> Option<Request> {
    let text = request.message().as_text().unwrap_or_default().to_string();
    let mut words = text.splitn(3, ' ');
    let ms = |w: Option<&str>| Duration::from_millis(w.and_then(|w| w.parse().ok()).unwrap_or(0));
    let sent = match words.next().unwrap_or_default() {
        "worker" => request.reply(format!("w{k}")).await,
        "from" => {
            let from = request.from().to_string();
            request.reply(from).await
        }
        "sleep" => {
            tokio::time::sleep(ms(words.next())).await;
            let answer = words.next().unwrap_or_default().to_string();
            request.reply(answer).await
        }
        "hold" => {
            let n = counts.held.fetch_add(1, Ordering::Relaxed) + 1;
            say(format!("holding {n}"));
            return Some(request);
        }
        "parts" => {
            let mut request = request;
            let k: u32 = words.next().and_then(|w| w.parse().ok()).unwrap_or(1);
            let gap = ms(words.next());
            for i in 1..k {
                request
                    .reply_part(format!("part {i}"))
                    .await
                    .expect("reply_part");
                tokio::time::sleep(gap).await;
            }
            request.reply(format!("part {k}")).await
        }
        "fail" => {
            let reason = text.strip_prefix("fail ").unwrap_or_default().to_string();
            request.fail(&reason).await
        }
        "drop" => {
            drop(request);
            Ok(())
        }
        _ => {
            let echo = request.message().clone();
            request.reply(echo).await
        }
    };
    sent.expect("reply");
    None
}

async fn request(args: &[String]) {
    let id: u64 = num(args, 1, "instance id");
    let name = arg(args, 2, "name");
    let text = arg(args, 3, "text");
    let this = init().await;
    let instance = this.server().instance(id).await.expect("the instance");
    let opts = troupe::RequesterOptions {
        timeout: Some(WAIT),
    };
    let requester = instance
        .requester_with(&name, opts)
        .await
        .expect("requester");
    let answer = requester.request(text).await.expect("request");
    this.set_result(answer.as_text().expect("a text answer").as_bytes())
        .await
        .expect("set_result");
}

/// `starter-on ENDPOINT APP ARGS...`: starts APP on the server at ENDPOINT,
/// linked to this instance, says `remote <id>`, and waits for a line on
/// stdin.
async fn starter_on(args: &[String]) {
    let endpoint = arg(args, 1, "endpoint");
    let app = arg(args, 2, "app");
    let rest = &args[3..];
    let this = init().await;
    let other = Server::connect(&endpoint, WAIT)
        .await
        .expect("connect to the other server");
    let linked = this
        .start_on(&other, &app, rest)
        .await
        .expect("start on the other server");
    say(format!("remote {}", linked.id()));
    gate().await;
}

async fn starter(args: &[String]) {
    let app = arg(args, 1, "app");
    let rest = &args[2..];
    let this = init().await;
    let linked = this.start(&app, rest).await.expect("start linked");
    let unlinked = this
        .start_unlinked(&app, rest)
        .await
        .expect("start unlinked");
    say(format!("linked {}", linked.id()));
    say(format!("unlinked {}", unlinked.id()));
    gate().await;
}

/// `channel-owner NAME [echo|hold] [bound N] [max N]`: see the table above.
async fn channel_owner(args: &[String]) {
    let name = arg(args, 1, "name");
    let hold = args.iter().skip(2).any(|a| a == "hold");
    let defaults = ChannelOptions::default();
    let opts = ChannelOptions {
        async_bound: option(args, "bound")
            .map_or(defaults.async_bound, |n| n.parse().expect("bound")),
        max_message: option(args, "max").map_or(defaults.max_message, |n| n.parse().expect("max")),
    };
    let this = init().await;
    let mut stop = this.on_stop().await.expect("on_stop");
    let mut channel = match Channel::create(this.server().session(), &name, opts).await {
        Ok(channel) => channel,
        Err(troupe::Error::NameTaken(e)) => {
            say(format!("taken: {e}"));
            std::process::exit(2);
        }
        Err(e) => panic!("troupe-fixture: create channel {name}: {e}"),
    };
    say("ready");
    // Messages held unanswered (`hold`) live as long as the channel.
    let mut held = Vec::new();
    loop {
        let event = tokio::select! {
            () = stop.wait() => break,
            // An hour: `Duration::MAX` makes `recv` panic (overflow).
            event = channel.recv(Duration::from_secs(3600)) => event,
        };
        match event {
            Ok(Event::Sync(m)) if hold => {
                held.push(m);
                say(format!("holding {}", held.len()));
            }
            Ok(Event::Sync(m)) => {
                let echo = m.message().clone();
                m.reply(echo).await.expect("reply");
            }
            Ok(Event::Async(m)) => say(format!(
                "async {}",
                m.message().as_text().unwrap_or("(not text)")
            )),
            Ok(Event::Disconnected { client, .. }) => say(format!("disconnected {client}")),
            Ok(other) => say(format!("event {other:?}")),
            Err(troupe::Error::Timeout(_)) => {}
            Err(e) => {
                say(format!("recv failed: {e}"));
                std::process::exit(3);
            }
        }
    }
    drop((held, channel));
    say("closed");
}

/// `channel-client NAME`: see the table above.
async fn channel_client(args: &[String]) {
    let name = arg(args, 1, "name");
    let this = init().await;
    let client = ChannelClient::connect(this.server().session(), &name, WAIT)
        .await
        .expect("connect to the channel");
    say(format!("connected {}", client.id()));
    tokio::time::sleep(Duration::from_secs(1000)).await;
    drop(client);
}

/// `object ID`: see the table above.
async fn object(args: &[String]) {
    let id = arg(args, 1, "id");
    let this = init().await;
    let mut stop = this.on_stop().await.expect("on_stop");
    let probe = troupe_testkit::probe::Probe::default();
    let mut served = match troupe::object::serve(this.server().session(), &id, probe).await {
        Ok(served) => served,
        Err(troupe::Error::NameTaken(e)) => {
            say(format!("taken: {e}"));
            std::process::exit(2);
        }
        Err(e) => panic!("troupe-fixture: serve object {id}: {e}"),
    };
    say("serving");
    tokio::select! {
        () = stop.wait() => {}
        e = served.closed() => say(format!("ended: {e}")),
    }
    served.stop().await;
    say("stopped");
}

/// `log N LEVEL [bridge] [quiet] [queue Q]`: see the table above.
async fn log_records(args: &[String]) {
    let n: u64 = arg(args, 1, "count").parse().expect("count");
    let level: tracing::Level = arg(args, 2, "level").parse().expect("level");
    let options = &args[3..];
    let has = |o: &str| options.iter().any(|x| x == o);
    let queue = options.iter().position(|o| o == "queue").map(|i| {
        arg(options, i + 1, "queue size")
            .parse()
            .expect("queue size")
    });
    let this = This::init().await.expect("This::init");
    let opts = troupe::log::LogOptions {
        level,
        stderr: !has("quiet"),
        queue: queue.unwrap_or(troupe::log::LogOptions::default().queue),
        ..troupe::log::LogOptions::default()
    };
    let logs = troupe::log::init_with(this.server().session(), opts)
        .await
        .expect("log init");
    let bridge = has("bridge");
    let start = std::time::Instant::now();
    for i in 1..=n {
        if bridge {
            let level = match level {
                tracing::Level::TRACE => log::Level::Trace,
                tracing::Level::DEBUG => log::Level::Debug,
                tracing::Level::INFO => log::Level::Info,
                tracing::Level::WARN => log::Level::Warn,
                _ => log::Level::Error,
            };
            log::log!(level, "record {i}");
        } else {
            match level {
                tracing::Level::TRACE => tracing::trace!(n = i, "record {i}"),
                tracing::Level::DEBUG => tracing::debug!(n = i, "record {i}"),
                tracing::Level::INFO => tracing::info!(n = i, "record {i}"),
                tracing::Level::WARN => tracing::warn!(n = i, "record {i}"),
                _ => tracing::error!(n = i, "record {i}"),
            }
        }
    }
    let ms = start.elapsed().as_millis();
    logs.flush(Duration::from_secs(15)).await.expect("flush");
    let said = format!(
        "logged {n} in {ms} ms: sent {} dropped {}",
        logs.sent(),
        logs.dropped()
    );
    println!("{said}");
    this.set_result(said.as_bytes()).await.expect("set_result");
}

/// `status-emit PATH JSON [PATH JSON..]`: see the table above.
async fn status_emit(args: &[String]) {
    let this = init().await;
    let updater = troupe::StatusUpdater::new(this.server().session())
        .await
        .expect("status updater");
    for pair in args[1..].chunks(2) {
        let [path, json] = pair else {
            panic!("troupe-fixture: status-emit takes PATH JSON pairs");
        };
        let value: serde_json::Value = serde_json::from_str(json).expect("a JSON value");
        updater.emit(path, &value).await.expect("emit");
    }
    let seq = updater.flush(WAIT).await.expect("flush");
    say(format!("emitted {seq}"));
}

/// `status-count PATH N`: see the table above.
async fn status_count(args: &[String]) {
    let path = arg(args, 1, "path");
    let n: u64 = num(args, 2, "count");
    let this = init().await;
    let updater = troupe::StatusUpdater::new(this.server().session())
        .await
        .expect("status updater");
    for i in 1..=n {
        updater.emit(&path, &i).await.expect("emit");
        if i == 1 {
            say("counting");
        }
    }
    updater.flush(WAIT).await.expect("flush");
    say(format!("counted {n}"));
}

/// `device-service DEVICE [name N] [server-id S] [prefix P] [aware]
/// [current] [tick MS]`: see the table above.
async fn device_service(args: &[String]) {
    use troupe::device::{DeviceService, FirstUpdate, MonitorEvent};
    let device = arg(args, 1, "device");
    let tick = option(args, "tick").map_or(50, |t| t.parse().expect("tick"));
    let this = init().await;
    let mut stop = this.on_stop().await.expect("on_stop");
    let session = this.server().session();
    let mut builder =
        DeviceService::builder(session).device(&device, &troupe_testkit::supply::PROPERTIES);
    if let Some(n) = option(args, "name") {
        builder = builder.name(&n);
    }
    if let Some(s) = option(args, "server-id") {
        builder = builder.server_id(&s);
    }
    if let Some(p) = option(args, "prefix") {
        builder = builder.prefix(&p);
    }
    if args.iter().any(|a| a == "aware") {
        builder = builder.selector_aware(true);
    }
    if args.iter().any(|a| a == "current") {
        builder = builder.first_update(FirstUpdate::Current);
    }
    let (settings, overridden) = builder.settings().expect("device settings");
    say(format!(
        "settings {} {} {} aware={} first={} overridden={}",
        settings.name,
        settings.server_id,
        settings.prefix,
        settings.selector_aware,
        settings.first_update,
        overridden.join(",")
    ));
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let supply = troupe_testkit::supply::Supply::new(Duration::from_millis(tick)).with_events(tx);
    let service = match builder.serve(supply).await {
        Ok(service) => service,
        Err(troupe::Error::NameTaken(e)) => {
            say(format!("taken: {e}"));
            std::process::exit(2);
        }
        Err(e) => panic!("troupe-fixture: serve device {device}: {e}"),
    };
    say("serving");
    loop {
        tokio::select! {
            () = stop.wait() => break,
            Some(event) = events.recv() => {
                let m = event.monitored();
                let verb = if matches!(event, MonitorEvent::Started { .. }) { "started" } else { "stopped" };
                say(format!("{verb} {}/{} {}", m.device, m.property, m.selector.as_deref().unwrap_or("-")));
            }
        }
    }
    service.stop().await;
    say("stopped");
}

/// `device-client ADDRESS [SELECTOR]`: see the table above.
async fn device_client(args: &[String]) {
    let address = arg(args, 1, "address");
    let selector = args.get(2).map(String::as_str);
    let this = init().await;
    let client = troupe::DeviceClient::new(this.server().session()).with_timeout(WAIT);
    let mut sub = client
        .subscribe(&address, selector)
        .await
        .expect("subscribe");
    say("subscribed");
    loop {
        match sub.next(Duration::from_secs(3600)).await {
            Ok(u) => match u.value {
                Ok(v) => say(format!("update {} {v}", u.header.seq)),
                Err(e) => say(format!("error {} {e}", u.header.seq)),
            },
            Err(troupe::Error::Timeout(_)) => {}
            Err(e) => panic!("troupe-fixture: device updates: {e}"),
        }
    }
}
