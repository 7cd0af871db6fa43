//! The result protocol read by scripts/vm-run.py, one record per line:
//! `RESULT <name> PASS|FAIL <reason>`, `TRACE <name> BEGIN|END`, `LOG <text>`,
//! and `REBOOT <name>` just before a scenario restarts the machine (its
//! trace and result then come from the stub's lines on the console).
//! (/init writes `LOCKDEP debug_locks <n>` on kernels with lockdep, then
//! `DONE`, once the kmemleak scan is over.)

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;

/// Where the guest writes results; the kernel log has ttyS0 to itself.
pub const RESULTS_TTY: &str = "/dev/ttyS1";

const O_NOCTTY: i32 = 0o400;

pub struct Reporter {
    out: Box<dyn Write>,
}

impl Reporter {
    pub fn open(to_stdout: bool) -> io::Result<Self> {
        let out: Box<dyn Write> = if to_stdout {
            Box::new(io::stdout())
        } else {
            let tty: File = OpenOptions::new()
                .write(true)
                .custom_flags(O_NOCTTY)
                .open(RESULTS_TTY)?;
            Box::new(tty)
        };
        Ok(Self { out })
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
