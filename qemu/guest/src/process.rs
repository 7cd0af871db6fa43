//! Child processes with a deadline: a test step that may block forever in
//! the kernel runs in a child, which is SIGKILLed when it overruns.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::sys;

/// How long a SIGKILLed child may take to die before we give up on it
/// (a task in an uninterruptible wait never does).
const REAP_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

/// A spawned child. Dropping it unfinished SIGKILLs and reaps it, so a
/// failed step leaves no process holding the device.
pub struct Running {
    child: Child,
    started: Instant,
    output: Option<(JoinHandle<String>, JoinHandle<String>)>,
}

#[derive(Debug)]
pub struct Finished {
    /// None when the child overran its bound and was killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// The child did not even die from SIGKILL (stuck uninterruptibly).
    pub unkillable: bool,
}

impl Finished {
    pub fn hung(&self) -> bool {
        self.status.is_none()
    }

    /// The exit code, or a description of why there is none.
    pub fn exit_code(&self) -> Result<i32, String> {
        match self.status {
            None => Err(format!(
                "hung (killed after {:.1} s)",
                self.elapsed.as_secs_f64()
            )),
            Some(st) => st.code().ok_or_else(|| format!("terminated by {st}")),
        }
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        // A read error only truncates the captured output.
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

pub fn spawn(cmd: &mut Command) -> Result<Running, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));
    Ok(Running {
        child,
        started: Instant::now(),
        output: Some((stdout, stderr)),
    })
}

/// Runs `cmd` to completion, killing it after `bound`.
pub fn run(cmd: &mut Command, bound: Duration) -> Result<Finished, String> {
    Ok(spawn(cmd)?.finish(bound))
}

impl Running {
    pub fn signal(&self, sig: i32) -> Result<(), String> {
        sys::send_signal(self.child.id(), sig).map_err(|e| format!("kill: {e}"))
    }

    fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// SIGKILLs the child and waits briefly for it to die.
    fn kill(&mut self) -> bool {
        let _ = self.child.kill();
        self.wait_until(Instant::now() + REAP_GRACE).is_some()
    }

    /// Waits for the child for up to `bound` (from its start), then kills it.
    pub fn finish(mut self, bound: Duration) -> Finished {
        let status = self.wait_until(self.started + bound);
        let elapsed = self.started.elapsed();
        let mut unkillable = false;
        if status.is_none() {
            unkillable = !self.kill();
        }
        let output = self.output.take().expect("finish runs once");
        let (stdout, stderr) = if unkillable {
            // Its pipes stay open as long as it lives: leave the readers be.
            (String::new(), String::new())
        } else {
            (
                output.0.join().unwrap_or_default(),
                output.1.join().unwrap_or_default(),
            )
        };
        Finished {
            status,
            stdout,
            stderr,
            elapsed,
            unkillable,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.output.is_some() {
            // A stopped child dies from SIGKILL too.
            self.kill();
        }
    }
}
