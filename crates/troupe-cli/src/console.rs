//! The console commands.

use crate::args::{Cli, Command, ServerArgs, StartArgs, ThisAction};
use crate::{channel, objects, patterns, table};
use futures::StreamExt;
use std::fmt;
use std::io::Write;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use troupe::{Instance, InstanceInfo, OutputKind, Server, State, This};

/// A console failure: a one-line message and an exit status.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) code: i32,
    pub(crate) message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<troupe::Error> for Failure {
    fn from(e: troupe::Error) -> Self {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure {
            code: 2,
            message: e.to_string(),
        }
    }
}

pub(crate) fn fail(code: i32, message: impl Into<String>) -> Failure {
    Failure {
        code,
        message: message.into(),
    }
}

pub(crate) type Outcome = Result<i32, Failure>;

/// Runs a parsed command line; returns the exit status.
pub async fn run(cli: Cli) -> i32 {
    match dispatch(cli).await {
        Ok(code) => code,
        Err(f) => {
            eprintln!("troupe: error: {f}");
            f.code
        }
    }
}

pub(crate) async fn connect(cli: &Cli) -> Result<Server, Failure> {
    let server = Server::connect(&cli.endpoint, Duration::from_secs(3)).await?;
    Ok(server.with_timeout(cli.request_timeout))
}

/// A session of `mode` through the server at `--endpoint`, once a troupe
/// server answered there (bounded by the request timeout): what the
/// commands that reach the realm by name (channels, objects, status,
/// logs, devices) start from.
pub(crate) async fn open_session(
    cli: &Cli,
    mode: troupe::Mode,
) -> Result<troupe::Session, Failure> {
    let opts = troupe::SessionOptions {
        mode,
        timeout: cli.request_timeout,
        ..troupe::SessionOptions::default()
    };
    let server = Server::connect_with(&cli.endpoint, opts).await?;
    Ok(server.session().clone())
}

pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> Outcome {
    let s = serde_json::to_string_pretty(v).map_err(|e| fail(2, e.to_string()))?;
    println!("{s}");
    Ok(0)
}

async fn dispatch(cli: Cli) -> Outcome {
    match &cli.command {
        Command::Server(args) => server(args).await,
        Command::This { action } => this(action).await,
        Command::Publish(a) => patterns::publish(&cli, a).await,
        Command::Subscribe(a) => patterns::subscribe(&cli, a).await,
        Command::Respond(a) => patterns::respond(&cli, a).await,
        Command::Request(a) => patterns::request(&cli, a).await,
        Command::Channel { action } => channel::run(&cli, action).await,
        Command::Status(a) => crate::status::run(&cli, a).await,
        Command::Objects(f) => objects::objects(&cli, f).await,
        Command::Describe(a) => objects::describe(&cli, a).await,
        Command::Call(a) => objects::call(&cli, a).await,
        Command::Attr(a) => objects::attr(&cli, a).await,
        Command::Devices(a) => crate::devices::devices(&cli, a).await,
        Command::Get(a) => crate::devices::get(&cli, a).await,
        Command::Set(a) => crate::devices::set(&cli, a).await,
        Command::Monitor(a) => crate::devices::monitor(&cli, a).await,
        Command::Logs(a) => crate::logs::logs(&cli, a).await,
        Command::Logdump(a) => crate::logs::logdump(&cli, a).await,
        Command::Apps(f) => {
            let apps = connect(&cli).await?.apps().await?;
            if f.json {
                return print_json(&apps);
            }
            let rows: Vec<Vec<String>> = apps
                .iter()
                .map(|a| {
                    vec![
                        a.name.clone(),
                        a.live.to_string(),
                        a.multiple.map_or("unlimited".into(), |m| m.to_string()),
                        a.restart.clone(),
                        a.description.clone(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &["APP", "LIVE", "MULTIPLE", "RESTART", "DESCRIPTION"],
                    &rows
                )
            );
            Ok(0)
        }
        Command::Ps(f) => {
            let list = connect(&cli).await?.instances().await?;
            if f.json {
                return print_json(&list);
            }
            let now = troupe_protocol::now_ms();
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|i| {
                    let uptime = i
                        .started_ms
                        .map(|s| {
                            let end = i.ended_ms.unwrap_or(now);
                            let secs = end.saturating_sub(s) / 1000;
                            humantime::format_duration(Duration::from_secs(secs)).to_string()
                        })
                        .unwrap_or_else(|| "-".into());
                    vec![
                        i.id.to_string(),
                        i.app.clone(),
                        i.pid.map_or("-".into(), |p| p.to_string()),
                        i.state.to_string(),
                        exit_text(i),
                        i.restarts.to_string(),
                        uptime,
                        shell_words(&i.args),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(
                    &["ID", "APP", "PID", "STATE", "EXIT", "RESTARTS", "UPTIME", "ARGS"],
                    &rows
                )
            );
            Ok(0)
        }
        Command::Start(a) => {
            let server = connect(&cli).await?;
            let inst = server.start(&a.app, &a.args).await?;
            let info = inst.info().await?;
            println!("{}", info.id);
            if info.state == State::Error {
                return Err(fail(
                    1,
                    format!(
                        "instance {} of {} failed: {}",
                        info.id,
                        info.app,
                        info.reason.unwrap_or_default()
                    ),
                ));
            }
            Ok(0)
        }
        Command::Exec(a) => exec(&cli, a).await,
        Command::Connect(t) => {
            let server = connect(&cli).await?;
            let inst = server.find(&t.target).await?;
            tokio::select! {
                r = stream_output(&inst) => r?,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("troupe: detached from instance {} ({} goes on)", inst.id(), inst.app());
                    return Ok(0);
                }
            }
            let info = inst.wait_for(Some(Duration::from_secs(10))).await?;
            eprintln!(
                "troupe: instance {} ({}) {}",
                info.id,
                info.app,
                describe(&info)
            );
            Ok(0)
        }
        Command::Stop(a) | Command::Kill(a) => {
            let server = connect(&cli).await?;
            let inst = server.find(&a.target).await?;
            let info = if matches!(cli.command, Command::Stop(_)) {
                inst.stop_and_wait(Some(a.timeout)).await?
            } else {
                inst.kill_and_wait(Some(a.timeout)).await?
            };
            if a.json {
                return print_json(&info);
            }
            println!("{}", describe_line(&info));
            Ok(0)
        }
        Command::Wait(a) => {
            let server = connect(&cli).await?;
            let inst = server.find(&a.target).await?;
            let info = inst.wait_for(Some(a.timeout)).await?;
            if a.json {
                print_json(&info)?;
            } else {
                println!("{}", describe_line(&info));
            }
            Ok(if info.state == State::Success { 0 } else { 1 })
        }
        Command::Result(a) => {
            let server = connect(&cli).await?;
            let inst = server.find(&a.target).await?;
            let info = inst.wait_for(Some(a.timeout)).await?;
            match inst.result().await? {
                Some(bytes) => {
                    let mut out = std::io::stdout();
                    out.write_all(&bytes)?;
                    if !bytes.ends_with(b"\n") {
                        out.write_all(b"\n")?;
                    }
                    Ok(0)
                }
                None => Err(fail(
                    1,
                    format!(
                        "instance {} ({}) ended {} without a result",
                        info.id,
                        info.app,
                        describe(&info)
                    ),
                )),
            }
        }
        Command::Watch(f) => {
            let server = connect(&cli).await?;
            let mut events = server.watch().await?;
            loop {
                tokio::select! {
                    ev = events.next() => match ev {
                        Some(ev) => {
                            if f.json {
                                println!("{}", serde_json::to_string(&ev).unwrap_or_default());
                            } else {
                                let time = humantime::format_rfc3339_millis(
                                    std::time::UNIX_EPOCH + Duration::from_millis(ev.time_ms),
                                );
                                println!(
                                    "{time} #{} {} {} {}{}{}",
                                    ev.seq,
                                    ev.id,
                                    ev.app,
                                    ev.state,
                                    ev.pid.map(|p| format!(" pid={p}")).unwrap_or_default(),
                                    ev.reason.map(|r| format!(" ({r})")).unwrap_or_default()
                                );
                            }
                            let _ = std::io::stdout().flush();
                        }
                        None => return Err(fail(2, format!("server {} went away", server.name()))),
                    },
                    _ = tokio::signal::ctrl_c() => return Ok(0),
                }
            }
        }
        Command::Info(a) => {
            let server = connect(&cli).await?;
            let info = server.find(&a.target).await?.info().await?;
            if a.json {
                return print_json(&info);
            }
            println!("instance {} of {} on {}", info.id, info.app, info.server);
            println!("  state     {}", info.state);
            if let Some(r) = &info.reason {
                println!("  reason    {r}");
            }
            println!(
                "  pid       {}",
                info.pid.map_or("-".into(), |p| p.to_string())
            );
            println!("  exit      {}", exit_text(&info));
            println!("  restarts  {}", info.restarts);
            println!("  args      {}", shell_words(&info.args));
            if info.attached {
                println!("  attached  yes (not started by the server)");
            }
            if let Some(starter) = info.starter {
                match &info.starter_server {
                    Some(other) => println!("  linked to instance {starter} of server {other}"),
                    None => println!("  linked to instance {starter}"),
                }
            }
            println!(
                "  result    {}",
                if info.has_result { "set" } else { "none" }
            );
            println!("  history");
            for h in &info.history {
                let t = humantime::format_rfc3339_millis(
                    std::time::UNIX_EPOCH + Duration::from_millis(h.time_ms),
                );
                println!(
                    "    {t} #{} {}{}",
                    h.seq,
                    h.state,
                    h.reason
                        .as_ref()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                );
            }
            Ok(0)
        }
        Command::Kv(a) => {
            let server = connect(&cli).await?;
            let inst = server.find(&a.target).await?;
            match &a.key {
                None => {
                    for k in inst.keys().await? {
                        println!("{k}");
                    }
                }
                Some(k) => {
                    let v = inst.get(k, a.wait).await?;
                    let mut out = std::io::stdout();
                    out.write_all(&v)?;
                    out.write_all(b"\n")?;
                }
            }
            Ok(0)
        }
    }
}

fn exit_text(i: &InstanceInfo) -> String {
    match (i.exit_code, i.signal) {
        (Some(c), _) => c.to_string(),
        (None, Some(s)) => format!("sig{s}"),
        _ => "-".into(),
    }
}

fn describe(info: &InstanceInfo) -> String {
    let mut s = info.state.to_string();
    match (info.exit_code, info.signal) {
        (Some(c), _) => s.push_str(&format!(" (exit code {c})")),
        (None, Some(sig)) => s.push_str(&format!(" (signal {sig})")),
        _ => {}
    }
    if info.state == State::Error {
        if let Some(r) = &info.reason {
            s.push_str(&format!(": {r}"));
        }
    }
    s
}

fn describe_line(info: &InstanceInfo) -> String {
    format!("{} {} {}", info.id, info.app, describe(info))
}

fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Copies an instance's output to our stdout and stderr until its end.
async fn stream_output(inst: &Instance) -> Result<(), Failure> {
    let mut output = inst.output().await?;
    if output.dropped() > 0 {
        eprintln!(
            "troupe: the first {} lines of output are no longer kept",
            output.dropped()
        );
    }
    let mut missed = 0;
    while let Some(line) = output.next().await {
        if output.missed() > missed {
            eprintln!(
                "troupe: {} lines of output lost here",
                output.missed() - missed
            );
            missed = output.missed();
        }
        match line.stream {
            OutputKind::Out => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.text.as_bytes());
                let _ = out.write_all(b"\n");
                let _ = out.flush();
            }
            OutputKind::Err => {
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(line.text.as_bytes());
                let _ = err.write_all(b"\n");
            }
        }
    }
    if output.server_died() {
        return Err(fail(
            2,
            format!("server {} went away", inst.server().name()),
        ));
    }
    Ok(())
}

/// Exit status for an instance's terminal state, as a shell would give it.
fn exit_status(info: &InstanceInfo) -> i32 {
    match (info.state, info.exit_code, info.signal) {
        (State::Success, _, _) => 0,
        (_, Some(c), _) => c,
        (_, None, Some(s)) => 128 + s,
        _ => 1,
    }
}

async fn exec(cli: &Cli, a: &StartArgs) -> Outcome {
    // Catch Ctrl-C before the instance exists: one pressed while it starts
    // then stops it, instead of killing us and leaving it running.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let server = connect(cli).await?;
    let inst = server.start(&a.app, &a.args).await?;
    let info = inst.info().await?;
    if info.state == State::Error && info.pid.is_none() {
        return Err(fail(
            1,
            format!(
                "instance {} of {} failed: {}",
                info.id,
                info.app,
                info.reason.unwrap_or_default()
            ),
        ));
    }
    // Forward our stdin; at its end, close the instance's.
    let forward = {
        let inst = inst.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match stdin.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = inst.close_stdin().await;
                        return;
                    }
                    Ok(n) => {
                        if inst.write_stdin(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
        })
    };
    let output = stream_output(&inst);
    tokio::pin!(output);
    let mut interrupts = 0;
    loop {
        tokio::select! {
            r = &mut output => { r?; break; }
            _ = interrupt.recv() => {
                interrupts += 1;
                if interrupts == 1 {
                    eprintln!("troupe: stopping instance {} (Ctrl-C again to kill)", inst.id());
                    let _ = inst.stop().await;
                } else {
                    eprintln!("troupe: killing instance {}", inst.id());
                    let _ = inst.kill().await;
                }
            }
        }
    }
    forward.abort();
    let info = inst.wait_for(Some(Duration::from_secs(30))).await?;
    if info.state != State::Success {
        eprintln!(
            "troupe: instance {} ({}) {}",
            info.id,
            info.app,
            describe(&info)
        );
    }
    Ok(exit_status(&info))
}

async fn server(args: &ServerArgs) -> Outcome {
    let mut config = match &args.config {
        Some(path) => troupe_server::Config::load(path).map_err(|e| fail(2, e.to_string()))?,
        None => troupe_server::Config::embedded(),
    };
    if !args.listen.is_empty() {
        config.listen = args.listen.clone();
    }
    if let Some(name) = &args.name {
        troupe_protocol::validate_name("server", name).map_err(|e| fail(2, e.to_string()))?;
        config.name = name.clone();
    }
    if args.check {
        println!(
            "{}: server {} (realm {}), listen {}, {} application{}: {}",
            config.source,
            config.name,
            config.realm,
            config.listen.join(", "),
            config.apps.len(),
            if config.apps.len() == 1 { "" } else { "s" },
            config
                .apps
                .iter()
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return Ok(0);
    }
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("signal received: shutting down");
    };
    troupe_server::run(config, shutdown)
        .await
        .map_err(|e| fail(2, e.to_string()))?;
    Ok(0)
}

async fn this(action: &ThisAction) -> Outcome {
    let this = This::init().await?;
    match action {
        ThisAction::Running => {
            this.set_running().await?;
        }
        ThisAction::Result { value } => this.set_result(value.as_bytes()).await?,
        ThisAction::Store { key, value } => this.store(key, value.as_bytes()).await?,
        ThisAction::Remove { key } => {
            if !this.remove(key).await? {
                return Err(fail(1, format!("no key {key:?}")));
            }
        }
        ThisAction::Whoami => println!("{} {} {}", this.server_name(), this.app(), this.id()),
    }
    Ok(0)
}
