//! The status commands: `troupe status [MASK...] [--follow] [--json]`,
//! `troupe status set PATH JSON`, `troupe status rm PATH`.
//!
//! They open a client session through the server at `--endpoint`; that
//! server numbers what `set` and `rm` send and answers for the whole realm's
//! tree. `set` and `rm` check their arguments before connecting, then wait
//! (bounded by `--request-timeout`) until the server applied the update, so
//! that a `troupe status` run right after shows it.
//!
//! The tree prints as one `path = value` line per leaf by default: it reads
//! at a glance, sorts, and greps (`troupe status | grep cpu`) where pretty
//! JSON spreads one value over several lines; `--json` gives the JSON.

use crate::args::{Cli, StatusAction, StatusArgs};
use crate::console::{fail, open_session, print_json, Failure, Outcome};
use crate::patterns::{print_line, Interrupts};
use serde_json::Value;
use std::time::Duration;
use troupe::status::{self, StatusUpdater};
use troupe::{Error, Mode, StatusOp, StatusUpdate};

/// The longest a `--follow` waits in one call: a slice of its endless loop.
const NEXT_SLICE: Duration = Duration::from_millis(500);

/// Runs `troupe status ...`.
pub(crate) async fn run(cli: &Cli, a: &StatusArgs) -> Outcome {
    match &a.action {
        Some(StatusAction::Set { path, value }) => set(cli, path, value).await,
        Some(StatusAction::Rm { path }) => rm(cli, path).await,
        None if a.follow => follow(cli, a).await,
        None => show(cli, a).await,
    }
}

/// `troupe status set PATH JSON`.
async fn set(cli: &Cli, path: &str, text: &str) -> Outcome {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        fail(
            2,
            format!(
                "invalid: {text:?} is not a JSON value ({e}); a string is quoted: '\"{}\"'",
                text.replace('\'', "")
            ),
        )
    })?;
    troupe_protocol::status::check_set(path, &value).map_err(|e| fail(2, e.to_string()))?;
    let session = open_session(cli, Mode::Client).await?;
    let updater = StatusUpdater::new(&session).await?;
    updater.emit(path, &value).await?;
    updater.flush(cli.request_timeout).await?;
    Ok(0)
}

/// `troupe status rm PATH`.
async fn rm(cli: &Cli, path: &str) -> Outcome {
    troupe_protocol::status::check_remove(path).map_err(|e| fail(2, e.to_string()))?;
    let session = open_session(cli, Mode::Client).await?;
    let updater = StatusUpdater::new(&session).await?;
    updater.remove(path).await?;
    updater.flush(cli.request_timeout).await?;
    Ok(0)
}

/// Checks the masks before connecting.
fn check_masks(masks: &[String]) -> Result<(), Failure> {
    troupe_protocol::status::normalize_masks(masks)
        .map(|_| ())
        .map_err(|e| fail(2, e.to_string()))
}

/// What the masks select, for people.
fn under(masks: &[String]) -> String {
    if masks.is_empty() || masks.iter().any(String::is_empty) {
        "the status tree".into()
    } else {
        format!("the status tree under {}", masks.join(", "))
    }
}

/// `troupe status [MASK...]`.
async fn show(cli: &Cli, a: &StatusArgs) -> Outcome {
    check_masks(&a.masks)?;
    let session = open_session(cli, Mode::Client).await?;
    let tree = status::read(&session, &a.masks, cli.request_timeout).await?;
    if a.json {
        return print_json(&tree);
    }
    let lines = flatten(&tree);
    if lines.is_empty() {
        eprintln!("troupe: nothing in {}", under(&a.masks));
    }
    for line in lines {
        if !print_line(&line)? {
            break;
        }
    }
    Ok(0)
}

/// `troupe status [MASK...] --follow`.
async fn follow(cli: &Cli, a: &StatusArgs) -> Outcome {
    check_masks(&a.masks)?;
    let mut interrupts = Interrupts::catch()?;
    let session = tokio::select! {
        s = open_session(cli, Mode::Client) => s?,
        w = interrupts.recv() => return stopped(w, 0),
    };
    let mut follower = tokio::select! {
        f = status::follow(&session, &a.masks, cli.request_timeout) => f?,
        w = interrupts.recv() => return stopped(w, 0),
    };
    let snapshot = follower.snapshot().clone();
    let mut open = if a.json {
        print_line(&json_line("snapshot", "", &snapshot, None))?
    } else {
        print_tree(&snapshot)?
    };
    eprintln!(
        "troupe: following {} through server {} (Ctrl-C ends)",
        under(&a.masks),
        follower.server()
    );
    let mut n = 0u64;
    let why = loop {
        if !open {
            break "standard output closed";
        }
        let update = tokio::select! {
            u = follower.next(NEXT_SLICE) => u,
            w = interrupts.recv() => break w,
        };
        match update {
            Ok(u) => {
                n += 1;
                if u.op == StatusOp::Reset {
                    eprintln!("troupe: fell behind or missed updates: the tree was read again");
                }
                open = if a.json {
                    print_line(&json_line(u.op.as_str(), &u.path, &u.value, Some(&u)))?
                } else {
                    print_update(&u)?
                };
            }
            Err(Error::Timeout(_)) => {}
            Err(e) => return Err(fail(2, e.to_string())),
        }
    };
    stopped(why, n)
}

/// The end of a `--follow`: says why and how many updates came; exit 0.
fn stopped(why: &str, n: u64) -> Outcome {
    eprintln!(
        "troupe: {why}: {n} status update{}",
        if n == 1 { "" } else { "s" }
    );
    Ok(0)
}

/// Prints the tree as `path = value` lines; `false` once stdout is closed.
fn print_tree(tree: &Value) -> Result<bool, Failure> {
    for line in flatten(tree) {
        if !print_line(&line)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Prints one update: `set PATH = VALUE`, `remove PATH`, or `reset` then
/// the tree.
fn print_update(u: &StatusUpdate) -> Result<bool, Failure> {
    match u.op {
        StatusOp::Set => print_line(&format!("set {} = {}", shown(&u.path), u.value)),
        StatusOp::Remove => print_line(&format!("remove {}", shown(&u.path))),
        StatusOp::Reset => Ok(print_line("reset")? && print_tree(&u.value)?),
    }
}

/// A path for people: the root is `.`.
fn shown(path: &str) -> &str {
    if path.is_empty() {
        "."
    } else {
        path
    }
}

/// One JSON line: `{"op", "path", "value"}` and, for an update, where it
/// came from.
fn json_line(op: &str, path: &str, value: &Value, u: Option<&StatusUpdate>) -> String {
    let mut o = serde_json::Map::new();
    o.insert("op".into(), op.into());
    o.insert("path".into(), path.into());
    o.insert("value".into(), value.clone());
    if let Some(u) = u {
        o.insert("origin".into(), u.origin.clone().into());
        o.insert("seq".into(), u.seq.into());
        o.insert("time_unix_ms".into(), u.time_unix_ms.into());
    }
    Value::Object(o).to_string()
}

/// One `path = value` line per leaf (a non-object, or an empty object),
/// paths sorted, values as compact JSON.
fn flatten(tree: &Value) -> Vec<String> {
    fn walk(path: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, v, out);
                }
            }
            _ if path.is_empty() => {}
            v => out.push(format!("{path} = {v}")),
        }
    }
    let mut out = Vec::new();
    walk("", tree, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trees_print_one_leaf_a_line() {
        let tree = json!({
            "system": {"foo": {"cpu": 0.3, "name": "a \"b\"\nc"}, "empty": {}},
            "list": [1, {"x": 2}],
            "n": null
        });
        assert_eq!(
            flatten(&tree),
            [
                "list = [1,{\"x\":2}]",
                "n = null",
                "system.empty = {}",
                "system.foo.cpu = 0.3",
                "system.foo.name = \"a \\\"b\\\"\\nc\"",
            ]
        );
        assert!(flatten(&json!({})).is_empty());
    }

    #[test]
    fn json_lines_say_where_an_update_came_from() {
        let u = StatusUpdate {
            origin: "lab-1".into(),
            seq: 4,
            time_unix_ms: 9,
            op: StatusOp::Remove,
            path: "a.b".into(),
            value: Value::Null,
        };
        let line: Value =
            serde_json::from_str(&json_line("remove", "a.b", &u.value, Some(&u))).expect("JSON");
        assert_eq!(
            line,
            json!({"op": "remove", "path": "a.b", "value": null, "origin": "lab-1", "seq": 4, "time_unix_ms": 9})
        );
        assert_eq!(under(&[]), "the status tree");
        assert_eq!(
            under(&["a".into(), "b.c".into()]),
            "the status tree under a, b.c"
        );
    }
}
