//! The guardian: no instance outlives its server unnoticed.
//!
//! At start the server spawns one small `sh` process, the guardian, and
//! writes to its standard input `+PGID` when an instance's process group is
//! created and `-PGID` when it is gone. The guardian ignores the usual
//! terminal signals. When its standard input reaches end of file — the server
//! exited, cleanly or by `kill -9` — it kills every process group still
//! listed, then exits. This keeps instance spawns on `posix_spawn` (no
//! `pre_exec` hook, no `PR_SET_PDEATHSIG`, which fires when the spawning
//! *thread* ends, not the process).

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

// `kill -s KILL -- -PGID`, the POSIX form: dash refuses `kill -KILL -- -PGID`
// ("Illegal number: -"), which left every instance alive after a `kill -9`.
const SCRIPT: &str = r#"trap '' INT TERM HUP QUIT PIPE
pgs=" "
while read -r op pg; do
  case "$op" in
    +) pgs="$pgs$pg " ;;
    -) case "$pgs" in *" $pg "*) pgs="${pgs%% $pg *} ${pgs#* $pg }" ;; esac ;;
  esac
done
for pg in $pgs; do kill -s KILL -- "-$pg" 2>/dev/null; done
"#;

/// The handle to the guardian process.
#[derive(Debug)]
pub(crate) struct Guardian {
    inner: Mutex<Option<(Child, ChildStdin)>>,
}

impl Guardian {
    /// Spawns the guardian.
    pub(crate) fn spawn() -> std::io::Result<Self> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .arg("troupe-guardian")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        Ok(Self {
            inner: Mutex::new(Some((child, stdin))),
        })
    }

    fn send(&self, line: String) {
        let mut g = self.inner.lock().expect("guardian lock");
        if let Some((_, stdin)) = g.as_mut() {
            if stdin.write_all(line.as_bytes()).is_err() {
                tracing::error!("the guardian process is gone: instances may outlive this server");
            }
        }
    }

    /// Records a new process group.
    pub(crate) fn watch(&self, pgid: u32) {
        self.send(format!("+ {pgid}\n"));
    }

    /// Forgets a process group that is gone.
    pub(crate) fn forget(&self, pgid: u32) {
        self.send(format!("- {pgid}\n"));
    }

    /// Closes the guardian's input (it kills what is still listed) and reaps it.
    pub(crate) fn close(&self) {
        let taken = self.inner.lock().expect("guardian lock").take();
        if let Some((mut child, stdin)) = taken {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

impl Drop for Guardian {
    fn drop(&mut self) {
        self.close();
    }
}
