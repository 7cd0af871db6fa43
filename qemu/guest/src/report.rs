//! The result protocol read by scripts/vm-run.py, one record per line:
//! `RESULT <name> PASS|FAIL <reason>`, `TRACE <name> BEGIN|END`, `LOG <text>`,
//! and `REBOOT <name>` just before a scenario restarts the machine (its
//! trace and result then come from the stub's lines on the console).
//! (/init writes `LOCKDEP debug_locks <n>` on kernels with lockdep, then
//! `DONE`, once the kmemleak scan is over.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;

use crate::sys;

/// Where the guest writes results; the kernel log has ttyS0 to itself.
pub const RESULTS_TTY: &str = "/dev/ttyS1";

const O_NOCTTY: i32 = 0o400;

pub struct Reporter {
    out: Box<dyn Write + Send>,
    /// The results port, for [`Reporter::drain`].
    tty: Option<File>,
}

impl Reporter {
    pub fn open(to_stdout: bool) -> io::Result<Self> {
        if to_stdout {
            return Ok(Self {
                out: Box::new(io::stdout()),
                tty: None,
            });
        }
        let tty: File = OpenOptions::new()
            .write(true)
            .custom_flags(O_NOCTTY)
            .open(RESULTS_TTY)?;
        Ok(Self {
            out: Box::new(tty.try_clone()?),
            tty: Some(tty),
        })
    }

    /// Waits until what was written has left the results port: the
    /// emulated serial port sends at its baud rate, by interrupts, which
    /// would slow whatever the guest measures next.
    pub fn drain(&mut self) {
        if let Some(tty) = &self.tty {
            if let Err(e) = sys::tcdrain(tty) {
                eprintln!("mei-wdt-tests: cannot drain {RESULTS_TTY}: {e}");
            }
        }
    }

    fn line(&mut self, text: &str) {
        // The host only sees what reaches the port; a write error here has
        // nowhere better to go than the console.
        if let Err(e) = writeln!(self.out, "{text}").and_then(|()| self.out.flush()) {
            eprintln!("mei-wdt-tests: cannot write results: {e}");
        }
    }

    /// One `LOG` record per line of `text`.
    pub fn log(&mut self, text: &str) {
        for l in text.lines() {
            self.line(&format!("LOG {l}"));
        }
    }

    pub fn trace(&mut self, name: &str, text: &str) {
        self.line(&format!("TRACE {name} BEGIN"));
        for l in text.lines() {
            self.line(l);
        }
        self.line(&format!("TRACE {name} END"));
    }

    /// A benchmark record (see the `bench` module).
    pub fn bench(&mut self, text: &str) {
        self.line(&format!("BENCH {text}"));
    }

    /// Says that scenario `name` restarts the machine now.
    pub fn reboot(&mut self, name: &str) {
        self.line(&format!("REBOOT {name}"));
    }

    pub fn result(&mut self, name: &str, outcome: &Result<(), String>) {
        match outcome {
            Ok(()) => self.line(&format!("RESULT {name} PASS")),
            Err(why) => {
                // The reason must stay on the record's line.
                let why = why.replace(['\n', '\r'], " | ");
                self.line(&format!("RESULT {name} FAIL {why}"));
            }
        }
    }
}
