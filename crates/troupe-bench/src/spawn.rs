//! Scenarios of the application server: `spawn`, `control`, `mem`.

use crate::report::{Report, Row};
use crate::server_proc::ServerProcess;
use crate::stats::Latency;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use troupe::State;

const CONFIG: &str = r#"
keep_terminated = 1000
[[app]]
name = "true"
executable = "true"
multiple = "unlimited"
[[app]]
name = "sleeper"
executable = "sleep"
args = ["1000"]
multiple = "unlimited"
stopping_time = "5s"
"#;

/// The program `name` resolved on PATH, as the server resolves it.
fn which(name: &str) -> String {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .map(|d| std::path::Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| name.to_string())
}

fn row(
    scenario: &str,
    case: &str,
    subject: &str,
    value: f64,
    unit: &str,
    floor: Option<f64>,
    detail: String,
) -> Row {
    Row {
        scenario: scenario.into(),
        case: case.into(),
        subject: subject.into(),
        value,
        unit: unit.into(),
        floor,
        detail,
        placement: None,
        peers: Vec::new(),
    }
}

fn lat_detail(l: &Latency) -> String {
    format!("p90 {:.0} us, p99 {:.0} us, n={}", l.p90_us, l.p99_us, l.n)
}

const T: Duration = Duration::from_secs(30);

/// `spawn`: latency of a start through the server against a plain spawn.
pub async fn spawn(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let n = if quick { 20 } else { 2000 };
    let many = if quick { 20 } else { 200 };
    let server_proc = ServerProcess::start(CONFIG)?;
    let server = server_proc.connect().await?;
    let true_bin = which("true");
    let sleep_bin = which("sleep");

    // Warm up both paths.
    for _ in 0..(n / 10).max(5) {
        server
            .start("true", &[] as &[&str])
            .await?
            .wait_for(Some(T))
            .await?;
        Command::new(&true_bin).status()?;
    }

    // Start to end of `true`, against spawn-and-wait of `true`.
    let (mut troupe_s, mut plain_s) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let t = Instant::now();
        Command::new(&true_bin).stdout(Stdio::null()).status()?;
        plain_s.push(t.elapsed());
        let t = Instant::now();
        let info = server
            .start("true", &[] as &[&str])
            .await?
            .wait_for(Some(T))
            .await?;
        troupe_s.push(t.elapsed());
        anyhow::ensure!(info.state == State::Success, "true ended {}", info.state);
    }
    let plain = Latency::of(&mut plain_s);
    let tr = Latency::of(&mut troupe_s);
    report.add(row(
        "spawn",
        "start→end of `true` (p50)",
        "std Command spawn+wait",
        plain.p50_us,
        "us",
        None,
        lat_detail(&plain),
    ));
    report.add(row(
        "spawn",
        "start→end of `true` (p50)",
        "troupe start+wait_for",
        tr.p50_us,
        "us",
        Some(plain.p50_us),
        format!(
            "{}; target ≤ 1.5x + 1 ms = {:.0} us",
            lat_detail(&tr),
            plain.p50_us * 1.5 + 1000.0
        ),
    ));

    // The same through a server that holds 1 GiB of heap: a fork would copy
    // its page tables (tens of ms); posix_spawn does not.
    {
        let big = ServerProcess::start_with_ballast(CONFIG, if quick { 64 } else { 1024 })?;
        let big_server = big.connect().await?;
        let mut samples = Vec::with_capacity(n / 4);
        for i in 0..(n / 4).max(10) {
            let t = Instant::now();
            big_server
                .start("true", &[] as &[&str])
                .await?
                .wait_for(Some(T))
                .await?;
            if i >= 3 {
                samples.push(t.elapsed());
            }
        }
        let l = Latency::of(&mut samples);
        report.add(row(
            "spawn",
            "start→end of `true` (p50)",
            &format!("troupe, server RSS {:.0} MiB", big.rss_mib()),
            l.p50_us,
            "us",
            Some(tr.p50_us),
            format!("{}; ratio is to the small server", lat_detail(&l)),
        ));
    }

    // Start to running of `sleep 1000` (starting_time 0s), against spawn.
    let (mut troupe_s, mut plain_s) = (Vec::new(), Vec::new());
    for _ in 0..(n / 4).max(10) {
        let t = Instant::now();
        let mut c = Command::new(&sleep_bin).arg("1000").spawn()?;
        plain_s.push(t.elapsed());
        c.kill()?;
        c.wait()?;
        let t = Instant::now();
        let inst = server.start("sleeper", &[] as &[&str]).await?;
        let info = inst.wait_for_state(&[State::Running], Some(T)).await?;
        troupe_s.push(t.elapsed());
        anyhow::ensure!(info.state == State::Running, "sleeper is {}", info.state);
        inst.stop_and_wait(Some(T)).await?;
    }
    let plain = Latency::of(&mut plain_s);
    let tr = Latency::of(&mut troupe_s);
    report.add(row(
        "spawn",
        "start→running of `sleep` (p50)",
        "std Command spawn",
        plain.p50_us,
        "us",
        None,
        lat_detail(&plain),
    ));
    report.add(row(
        "spawn",
        "start→running of `sleep` (p50)",
        "troupe start+wait running",
        tr.p50_us,
        "us",
        Some(plain.p50_us),
        format!(
            "{}; against a bare spawn (no wait): no target",
            lat_detail(&tr)
        ),
    ));

    // Many instances started, then stopped.
    let t = Instant::now();
    let mut children = Vec::new();
    for _ in 0..many {
        children.push(Command::new(&sleep_bin).arg("1000").spawn()?);
    }
    let plain_start = t.elapsed();
    let t = Instant::now();
    for c in &mut children {
        c.kill()?;
    }
    for c in &mut children {
        c.wait()?;
    }
    let plain_stop = t.elapsed();

    let t = Instant::now();
    let mut insts = Vec::new();
    for _ in 0..many {
        insts.push(server.start("sleeper", &[] as &[&str]).await?);
    }
    for i in &insts {
        i.wait_for_state(&[State::Running], Some(T)).await?;
    }
    let tr_start = t.elapsed();
    let t = Instant::now();
    for i in &insts {
        i.stop().await?;
    }
    for i in &insts {
        let info = i.wait_for(Some(T)).await?;
        anyhow::ensure!(
            info.state == State::Stopped,
            "a sleeper ended {}",
            info.state
        );
    }
    let tr_stop = t.elapsed();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let case_start = format!("start {many} instances");
    let case_stop = format!("stop {many} instances");
    report.add(row(
        "spawn",
        &case_start,
        "std Command spawn",
        ms(plain_start),
        "ms",
        None,
        String::new(),
    ));
    report.add(row(
        "spawn",
        &case_start,
        "troupe start, all running",
        ms(tr_start),
        "ms",
        Some(ms(plain_start)),
        format!("{:.2} ms per instance", ms(tr_start) / many as f64),
    ));
    report.add(row(
        "spawn",
        &case_stop,
        "std kill+wait",
        ms(plain_stop),
        "ms",
        None,
        String::new(),
    ));
    report.add(row(
        "spawn",
        &case_stop,
        "troupe stop, all stopped",
        ms(tr_stop),
        "ms",
        Some(ms(plain_stop)),
        format!("{:.2} ms per instance", ms(tr_stop) / many as f64),
    ));
    Ok(())
}

/// `control`: control operations per second.
pub async fn control(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let server_proc = ServerProcess::start(CONFIG)?;
    let server = server_proc.connect().await?;
    let n = if quick { 50 } else { 5000 };
    for _ in 0..n / 10 {
        server.instances().await?;
    }
    let mut samples = Vec::with_capacity(n);
    let t = Instant::now();
    for _ in 0..n {
        let s = Instant::now();
        server.instances().await?;
        samples.push(s.elapsed());
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let l = Latency::of(&mut samples);
    report.add(row(
        "control",
        "list instances (ps)",
        "troupe",
        rate,
        "ops/s",
        None,
        lat_detail(&l),
    ));

    let cycles = if quick { 10 } else { 300 };
    let t = Instant::now();
    for _ in 0..cycles {
        let i = server.start("sleeper", &[] as &[&str]).await?;
        i.stop_and_wait(Some(T)).await?;
    }
    let rate = cycles as f64 / t.elapsed().as_secs_f64();
    report.add(row(
        "control",
        "start+stop cycle of `sleep`",
        "troupe",
        rate,
        "cycles/s",
        None,
        format!("n={cycles}"),
    ));
    Ok(())
}

/// `mem`: resident memory of the server, idle and with many instances.
pub async fn mem(report: &mut Report, quick: bool) -> anyhow::Result<()> {
    let many = if quick { 20 } else { 200 };
    let server_proc = ServerProcess::start(CONFIG)?;
    let server = server_proc.connect().await?;
    tokio::time::sleep(Duration::from_millis(if quick { 200 } else { 2000 })).await;
    let idle = server_proc.rss_mib();
    report.add(row(
        "mem",
        "server RSS, idle",
        "troupe",
        idle,
        "MiB",
        None,
        String::new(),
    ));
    let mut insts = Vec::new();
    for _ in 0..many {
        insts.push(server.start("sleeper", &[] as &[&str]).await?);
    }
    for i in &insts {
        i.wait_for_state(&[State::Running], Some(T)).await?;
    }
    tokio::time::sleep(Duration::from_millis(if quick { 200 } else { 1000 })).await;
    let busy = server_proc.rss_mib();
    report.add(row(
        "mem",
        &format!("server RSS, {many} instances"),
        "troupe",
        busy,
        "MiB",
        None,
        format!(
            "{:.1} KiB per instance",
            (busy - idle) * 1024.0 / many as f64
        ),
    ));
    for i in &insts {
        i.stop().await?;
    }
    for i in &insts {
        i.wait_for(Some(T)).await?;
    }
    Ok(())
}
