//! The `troupe server` process: no instance outlives it, whether it is
//! killed (`kill -9`) or asked to stop (SIGTERM); its Zenoh settings are
//! its own.

mod common;

use common::{descendants_of, write_config, ServerProcess};
use std::time::Duration;
use troupe_testkit::{process_gone, wait_until};

/// Applications that leave processes behind unless their whole process
/// group is killed.
fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let text = r#"
[[app]]
name = "forks"
executable = "sh"
args = ["-c", "sleep 1000 & sleep 1000"]

[[app]]
name = "fixture"
executable = "FIXTURE"
args = ["fork", "2"]
"#
    .replace("FIXTURE", &troupe_testkit::fixture());
    write_config(dir, "troupe.toml", &text)
}

/// Starts both apps and returns every process they made (at least the
/// expected ones), and the server's guardian.
fn start_instances(server: &ServerProcess) -> (Vec<u32>, Vec<u32>) {
    let fixture = troupe_testkit::fixture();
    assert!(
        std::path::Path::new(&fixture).exists(),
        "{fixture} is missing: run `cargo build -p troupe-testkit --bins` first"
    );
    let mut pids = Vec::new();
    // `sh` and its background sleep (the shell may exec its last command);
    // the fixture and its 2 sleeps.
    for (app, children) in [("forks", 1), ("fixture", 2)] {
        let id = server.run(&["start", app]).ok().to_string();
        server.wait_state(&id, "running");
        let pid = server.instance(&id)["pid"].as_u64().expect("a pid") as u32;
        let mut tree = Vec::new();
        wait_until(
            &format!("the processes of {app}"),
            Duration::from_secs(20),
            || {
                tree = descendants_of(pid);
                tree.len() >= children
            },
        )
        .unwrap();
        pids.push(pid);
        pids.extend(tree);
    }
    let guardian: Vec<u32> = troupe_testkit::children_of(server.pid())
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains("troupe-guardian"))
                .unwrap_or(false)
        })
        .collect();
    assert_eq!(guardian.len(), 1, "one guardian expected");
    (pids, guardian)
}

fn alive(pids: &[u32]) -> Vec<u32> {
    pids.iter().copied().filter(|p| !process_gone(*p)).collect()
}

#[test]
fn no_instance_outlives_a_killed_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(Some(&config(dir.path())));
    let (pids, guardian) = start_instances(&server);
    assert!(pids.len() >= 5, "{pids:?}");
    assert_eq!(alive(&pids), pids);

    server.kill9();
    let res = wait_until(
        "every instance process gone",
        Duration::from_secs(10),
        || alive(&pids).is_empty(),
    );
    let left = alive(&pids);
    // Leave nothing behind, even when failing.
    for p in &left {
        common::signal(*p, nix::sys::signal::Signal::SIGKILL);
    }
    res.unwrap_or_else(|e| panic!("{e}: still alive: {left:?}"));
    wait_until("the guardian gone", Duration::from_secs(10), || {
        alive(&guardian).is_empty()
    })
    .unwrap();
}

#[test]
fn sigterm_stops_the_instances_and_the_server_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(Some(&config(dir.path())));
    let (pids, guardian) = start_instances(&server);
    let server_pid = server.pid();
    let status = server.terminate(Duration::from_secs(20));
    let left = alive(&pids);
    for p in &left {
        common::signal(*p, nix::sys::signal::Signal::SIGKILL);
    }
    let status = status.expect("the server exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "server {server_pid}: {status}");
    assert!(
        left.is_empty(),
        "still alive after the server exited: {left:?}"
    );
    assert!(
        alive(&guardian).is_empty(),
        "the guardian outlived the server"
    );
}

/// `troupe server` gives its own Zenoh runtimes two transmit threads
/// (`ZENOH_RUNTIME`), and its instances do not inherit that; an app that
/// sets the variable in its `env` keeps its value.
#[test]
fn the_servers_zenoh_settings_stay_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let text = r#"
[[app]]
name = "plain"
executable = "sh"
args = ["-c", 'echo "ZR=${ZENOH_RUNTIME-unset}"']

[[app]]
name = "own"
executable = "sh"
args = ["-c", 'echo "ZR=${ZENOH_RUNTIME-unset}"']
env = { ZENOH_RUNTIME = "(rx: (worker_threads: 3))" }
"#;
    let server = ServerProcess::start(Some(&write_config(dir.path(), "troupe.toml", text)));
    // Its transmit runtime has two threads (`tx-0`, `tx-1`) once a console
    // has linked to it (ServerProcess::start ran `troupe apps`).
    let tx_threads = || {
        std::fs::read_dir(format!("/proc/{}/task", server.pid()))
            .map(|tasks| {
                tasks
                    .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                    .filter(|comm| comm.starts_with("tx-"))
                    .count()
            })
            .unwrap_or(0)
    };
    wait_until("two transmit threads", Duration::from_secs(10), || {
        tx_threads() == 2
    })
    .unwrap_or_else(|e| panic!("{e}: {} tx threads", tx_threads()));
    let plain = server.run(&["exec", "plain"]);
    assert_eq!(plain.ok().trim(), "ZR=unset", "{plain:?}");
    let own = server.run(&["exec", "own"]);
    assert_eq!(own.ok().trim(), "ZR=(rx: (worker_threads: 3))", "{own:?}");
}
