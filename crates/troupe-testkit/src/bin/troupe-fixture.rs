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

use std::io::{BufRead, Write};
use std::time::Duration;

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
        other => {
            eprintln!("troupe-fixture: unknown mode {other:?}");
            std::process::exit(64);
        }
    }
}
