//! The console as a user runs it: the real `troupe` binary against a real
//! `troupe server` process, over loopback.

mod common;

use common::{
    run_with, signal, troupe_command, write_config, Background, ServerProcess, COMMAND_TIMEOUT,
};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

/// The error commands must answer within this.
const QUICK: Duration = Duration::from_secs(5);

#[test]
fn readme_flow_apps_exec_start_ps_stop() {
    let server = ServerProcess::start(None);

    let apps = server.run(&["apps"]);
    let names: Vec<&str> = apps
        .ok()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // The example's first applications need only /bin/sh; more may follow.
    assert_eq!(
        names.get(..6),
        Some(&["hello", "ticker", "sleeper", "failing", "cat", "env"][..]),
        "{apps:#?}"
    );

    let hello = server.run(&["exec", "hello", "a", "b c"]);
    let text = hello.ok();
    assert!(
        text.starts_with("hello from troupe, instance "),
        "{hello:#?}"
    );
    assert!(text.lines().any(|l| l == "args: a b c"), "{hello:#?}");

    let id = server.run(&["start", "ticker"]).ok().to_string();
    assert!(id.parse::<u64>().is_ok(), "start printed {id:?}");
    server.wait_state(&id, "running");

    let ps = server.run(&["ps"]);
    let row = ps
        .ok()
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .unwrap_or_else(|| panic!("no row for {id}: {ps:#?}"));
    assert!(row.contains("ticker") && row.contains("running"), "{ps:#?}");

    let list = server.ps();
    assert!(list.len() >= 2, "{list:#?}");
    for item in &list {
        for field in ["id", "app", "pid", "state", "exit_code", "restarts"] {
            assert!(item.get(field).is_some(), "no {field} in {item}");
        }
        let state = item["state"].as_str().expect("state is a string");
        assert_eq!(state, state.to_lowercase(), "{item}");
    }
    let ticker = server.instance(&id);
    assert_eq!(ticker["app"], "ticker");
    assert_eq!(ticker["state"], "running");
    assert!(ticker["pid"].as_u64().is_some(), "{ticker}");
    assert!(ticker["exit_code"].is_null(), "{ticker}");
    assert_eq!(ticker["restarts"], 0);

    let stop = server.run(&["stop", "ticker"]);
    let line = stop.ok();
    assert!(
        line.starts_with(&format!("{id} ticker stopped")),
        "{stop:#?}"
    );
    assert_eq!(server.state(&id), "stopped");
}

#[test]
fn wait_exits_0_on_success_1_on_error_2_on_timeout() {
    let server = ServerProcess::start(None);

    let hello = server.run(&["start", "hello"]).ok().to_string();
    let wait = server.run(&["wait", &hello]);
    assert!(wait.ok().contains("success"), "{wait:#?}");

    let failing = server.run(&["start", "failing"]).ok().to_string();
    let wait = server.run(&["wait", &failing]);
    wait.expect_code(1);
    assert!(
        wait.stdout.contains(&format!("{failing} failing error")),
        "{wait:#?}"
    );
    assert_eq!(server.instance(&failing)["restarts"], 2);

    let ticker = server.run(&["start", "ticker"]).ok().to_string();
    let wait = server.run(&["wait", &ticker, "--timeout", "300ms"]);
    wait.expect_code(2).expect_one_line_error();
    assert!(wait.stderr.contains("timeout"), "{wait:#?}");
    assert!(wait.elapsed < QUICK, "{wait:#?}");
    assert_eq!(server.state(&ticker), "running");
}

#[test]
fn exec_exits_with_the_apps_code_and_forwards_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "troupe.toml",
        r#"
[[app]]
name = "three"
executable = "sh"
args = ["-c", "echo before; exit 3"]

[[app]]
name = "cat"
executable = "cat"
"#,
    );
    let server = ServerProcess::start(Some(&config));

    let three = server.run(&["exec", "three"]);
    three.expect_code(3);
    assert_eq!(three.stdout, "before\n", "{three:#?}");

    let mut cmd = server.console(&["exec", "cat"]);
    cmd.env_remove("TROUPE_ENDPOINT");
    let cat = run_with(cmd, Some("hi\nthere\n"), COMMAND_TIMEOUT);
    assert_eq!(cat.ok(), "hi\nthere", "{cat:#?}");
}

#[test]
fn the_endpoint_may_come_from_the_environment() {
    let server = ServerProcess::start(None);
    let mut cmd = troupe_command();
    cmd.env("TROUPE_ENDPOINT", server.endpoint())
        .args(["exec", "cat"]);
    let cat = run_with(cmd, Some("hi\n"), COMMAND_TIMEOUT);
    assert_eq!(cat.ok(), "hi", "{cat:#?}");
}

/// Waits (bounded) for the first instance of `app` and returns its id.
fn first_instance(server: &ServerProcess, app: &str) -> String {
    let mut id = None;
    troupe_testkit::wait_until(
        &format!("an instance of {app}"),
        Duration::from_secs(20),
        || {
            id = server
                .ps()
                .iter()
                .find(|i| i["app"] == app)
                .map(|i| i["id"].to_string());
            id.is_some()
        },
    )
    .unwrap();
    id.unwrap()
}

#[test]
fn sigint_to_exec_stops_the_instance() {
    let server = ServerProcess::start(None);
    let exec = Background::spawn(server.console(&["exec", "sleeper"]));
    let id = first_instance(&server, "sleeper");
    server.wait_state(&id, "running");
    sigint_ends_exec_and_stops(&server, exec, &id);
}

#[test]
fn sigint_to_exec_while_the_instance_starts_stops_it() {
    let server = ServerProcess::start(None);
    let exec = Background::spawn(server.console(&["exec", "sleeper"]));
    // As soon as the instance exists (the sleeper is `starting` for 1 s).
    let id = first_instance(&server, "sleeper");
    sigint_ends_exec_and_stops(&server, exec, &id);
}

#[track_caller]
fn sigint_ends_exec_and_stops(server: &ServerProcess, exec: Background, id: &str) {
    signal(exec.pid(), Signal::SIGINT);
    let (status, stderr) = exec.finish(Duration::from_secs(20));
    let status = status.expect("exec ends after SIGINT");
    assert_ne!(status.code(), Some(0), "{stderr}");
    assert!(status.code().is_some(), "exec died of the signal: {stderr}");
    assert!(
        stderr.contains(&format!("stopping instance {id}")),
        "{stderr}"
    );
    assert_eq!(server.state(id), "stopped");
}

#[test]
fn errors_are_one_line_and_quick() {
    let server = ServerProcess::start(None);

    let nope = server.run(&["start", "nope"]);
    nope.expect_code(2).expect_one_line_error();
    assert!(nope.stderr.contains("\"nope\""), "{nope:#?}");
    assert!(nope.elapsed < QUICK, "{nope:#?}");

    let wait = server.run(&["wait", "999"]);
    wait.expect_code(2).expect_one_line_error();
    assert!(wait.stderr.contains("999"), "{wait:#?}");
    assert!(wait.elapsed < QUICK, "{wait:#?}");
}

#[test]
fn unreachable_server_is_one_line_and_quick() {
    let port = troupe_testkit::free_port();
    let mut cmd = troupe_command();
    cmd.args(["-e", &format!("tcp/127.0.0.1:{port}"), "apps"]);
    let out = run_with(cmd, None, COMMAND_TIMEOUT);
    out.expect_code(2).expect_one_line_error();
    assert!(out.stderr.contains("unreachable"), "{out:#?}");
    assert!(out.elapsed < QUICK, "{out:#?}");
}

/// A configuration whose apps run the troupe binary itself (`troupe this`).
fn this_config(dir: &std::path::Path) -> std::path::PathBuf {
    let go = dir.join("go");
    let text = r#"
[[app]]
name = "answer"
executable = "sh"
args = ["-c", '"$TROUPE_BIN" this result 42']
env = { TROUPE_BIN = "@BIN@" }

[[app]]
name = "manual"
executable = "sh"
args = ["-c", 'while [ ! -e "$GO" ]; do sleep 0.05; done; "$TROUPE_BIN" this running && exec sleep 1000']
env = { TROUPE_BIN = "@BIN@", GO = "@GO@" }
starting_time = "manual"

[[app]]
name = "keeper"
executable = "sh"
args = ["-c", '"$TROUPE_BIN" this store color blue && exec sleep 1000']
env = { TROUPE_BIN = "@BIN@" }
"#
    .replace("@BIN@", common::troupe_bin())
    .replace("@GO@", &go.display().to_string());
    write_config(dir, "troupe.toml", &text)
}

#[test]
fn result_set_by_the_app_is_printed() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Some(&this_config(dir.path())));
    let id = server.run(&["start", "answer"]).ok().to_string();
    let result = server.run(&["result", &id]);
    assert_eq!(result.ok(), "42", "{result:#?}; log: {}", server.log_text());
    assert_eq!(server.state(&id), "success");
}

#[test]
fn this_running_makes_a_manual_instance_running() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Some(&this_config(dir.path())));
    let id = server.run(&["start", "manual"]).ok().to_string();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.state(&id), "starting");
    std::fs::write(dir.path().join("go"), "").unwrap();
    server.wait_state(&id, "running");
}

#[test]
fn kv_waits_for_a_key_stored_by_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Some(&this_config(dir.path())));
    let id = server.run(&["start", "keeper"]).ok().to_string();
    let kv = server.run(&["kv", &id, "color", "--wait", "5s"]);
    assert_eq!(kv.ok(), "blue", "{kv:#?}; log: {}", server.log_text());
    let keys = server.run(&["kv", &id]);
    assert_eq!(keys.ok(), "color", "{keys:#?}");

    let missing = server.run(&["kv", &id, "size", "--wait", "300ms"]);
    missing.expect_code(2).expect_one_line_error();
    assert!(missing.elapsed < QUICK, "{missing:#?}");
}

#[test]
fn this_outside_an_instance_is_a_clear_error() {
    let mut cmd = troupe_command();
    cmd.args(["this", "running"]);
    let out = run_with(cmd, None, COMMAND_TIMEOUT);
    out.expect_code(2).expect_one_line_error();
    assert!(
        out.stderr.contains("not managed by a troupe server"),
        "{out:#?}"
    );
    assert!(out.elapsed < QUICK, "{out:#?}");
}

#[test]
fn watch_json_prints_start_and_stop_events_in_order() {
    let server = ServerProcess::start(None);
    let watch = Background::spawn(server.console(&["watch", "--json"]));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut events: Vec<serde_json::Value> = Vec::new();
    let next = |events: &mut Vec<serde_json::Value>| -> serde_json::Value {
        let line = watch
            .next_line(deadline)
            .unwrap_or_else(|| panic!("no more events; got {events:#?}"));
        let ev: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        events.push(ev.clone());
        ev
    };

    // The watch subscribes some time after it starts: run `hello` until
    // the watch reports it.
    loop {
        assert!(
            Instant::now() < deadline,
            "the watch saw nothing: {events:#?}"
        );
        let id = server.run(&["start", "hello"]).ok().to_string();
        server.run(&["wait", &id]).expect_code(0);
        if let Some(line) = watch.next_line(Instant::now() + Duration::from_millis(500)) {
            events.push(serde_json::from_str(&line).unwrap());
            break;
        }
    }

    let id: u64 = server.run(&["start", "ticker"]).ok().parse().unwrap();
    server.run(&["stop", &id.to_string()]).ok();
    let mut ticker_states = Vec::new();
    while ticker_states.last().map(String::as_str) != Some("stopped") {
        let ev = next(&mut events);
        if ev["id"] == id {
            assert_eq!(ev["app"], "ticker");
            assert_eq!(ev["server"], server.name());
            ticker_states.push(ev["state"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(
        ticker_states,
        ["starting", "running", "stopping", "stopped"],
        "{events:#?}"
    );
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "seq not increasing: {seqs:?}"
    );
    drop(watch);
}

#[test]
fn connect_to_a_finished_instance_prints_its_kept_output() {
    let server = ServerProcess::start(None);
    let id = server.run(&["start", "hello", "x", "y"]).ok().to_string();
    server.run(&["wait", &id]).expect_code(0);
    let out = server.run(&["connect", &id]);
    let text = out.ok();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            format!("hello from troupe, instance {id}").as_str(),
            "args: x y"
        ],
        "{out:#?}"
    );
    assert!(out.elapsed < QUICK, "{out:#?}");
}
