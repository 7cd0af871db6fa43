//! The kernel log as /dev/kmsg serves it: what the drivers printed while a
//! scenario ran.

use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use crate::framework::wait_until;

const KMSG: &str = "/dev/kmsg";
const O_NONBLOCK: i32 = 0o4000;
/// EPIPE: records were overwritten since the last read; reading goes on.
const EPIPE: i32 = 32;
/// Log lines of mei_wdt bound to a device start with the driver name and a
/// space (`mei_wdt 0000:00:01.0-<guid>: ...`); module-level ones with a colon.
const DRIVER_PREFIX: &str = "mei_wdt ";

/// Prefixes of the driver stack under test: mei_wdt's (above); the MEI
/// core's, which prints on the ME's parent, a PCI device bound to the stub
/// (`mei_stub 0000:00:01.0: `, the stub's own lines start `mei_stub: `), on
/// client devices without a driver (`mei 0000:00:01.0-<guid>: `) and on the
/// class device (`mei mei0: `); the watchdog core's, `watchdog: ` and on
/// its devices `watchdog watchdog0: `.
const STACK_PREFIXES: &[&str] = &[
    DRIVER_PREFIX,
    "mei_wdt:",
    "mei ",
    "mei:",
    "mei_stub",
    "watchdog: ",
    "watchdog watchdog",
];

/// Whether a kernel log line comes from mei_wdt, the MEI bus and core or the
/// watchdog core, and not from elsewhere in the kernel (the emulator's
/// "hrtimer: interrupt took ... ns" and the like, which come and go).
fn from_stack(line: &str) -> bool {
    STACK_PREFIXES.iter().any(|p| line.starts_with(p))
        // The MEI client layer, named in messages (and call traces) of its own.
        || line.contains(" mei_cl")
        // "watchdog<N>: ", as some watchdog code prints a device without pr_fmt.
        || line.strip_prefix("watchdog").is_some_and(|rest| {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            digits > 0 && rest[digits..].starts_with(": ")
        })
}

/// One record: its sequence number and the message (without the
/// `SUBSYSTEM=`/`DEVICE=` continuation lines).
struct Record {
    seq: u64,
    text: String,
}

fn parse(raw: &[u8]) -> Option<Record> {
    let raw = String::from_utf8_lossy(raw);
    let (header, rest) = raw.split_once(';')?;
    let seq = header.split(',').nth(1)?.parse().ok()?;
    let text = rest.split('\n').next().unwrap_or("").to_string();
    Some(Record { seq, text })
}

/// Every record still in the kernel's log buffer, oldest first.
fn records() -> Result<Vec<Record>, String> {
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(KMSG)
        .map_err(|e| format!("open {KMSG}: {e}"))?;
    let mut out = Vec::new();
    // One record per read(2); a record is at most about 8 KiB.
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend(parse(&buf[..n])),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(EPIPE) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read {KMSG}: {e}")),
        }
    }
    Ok(out)
}

/// A point in the kernel log: later messages are "new".
#[derive(Clone, Copy, Debug)]
pub struct Mark(u64);

pub fn mark() -> Result<Mark, String> {
    Ok(Mark(records()?.last().map_or(0, |r| r.seq + 1)))
}

impl Mark {
    /// Kernel log messages printed since the mark.
    pub fn since(&self) -> Result<Vec<String>, String> {
        Ok(records()?
            .into_iter()
            .filter(|r| r.seq >= self.0)
            .map(|r| r.text)
            .collect())
    }

    /// What mei_wdt printed about a device since the mark, without the
    /// `mei_wdt <device>: ` prefix.
    pub fn driver_lines(&self) -> Result<Vec<String>, String> {
        Ok(self
            .since()?
            .iter()
            .filter_map(|m| m.strip_prefix(DRIVER_PREFIX))
            .map(|m| m.split_once(": ").map_or(m, |(_, text)| text).to_string())
            .collect())
    }

    /// What the driver stack under test (mei_wdt, the MEI bus and core, the
    /// watchdog core) printed since the mark, whole lines: for assertions on
    /// the exact log, which other kernel lines would make flaky.
    pub fn stack_lines(&self) -> Result<Vec<String>, String> {
        Ok(self
            .since()?
            .into_iter()
            .filter(|m| from_stack(m))
            .collect())
    }

    /// Waits until a message containing `needle` has been printed since the
    /// mark, and returns it.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Result<String, String> {
        let mut seen = Vec::new();
        wait_until(&format!("kernel log: {needle:?}"), timeout, || {
            seen = self.since().unwrap_or_default();
            seen.iter().find(|m| m.contains(needle)).cloned()
        })
        .map_err(|e| format!("{e}; new kernel log lines: {seen:?}"))
    }

    /// Whether a message containing `needle` has been printed since the mark.
    pub fn has(&self, needle: &str) -> Result<bool, String> {
        Ok(self.since()?.iter().any(|m| m.contains(needle)))
    }
}
