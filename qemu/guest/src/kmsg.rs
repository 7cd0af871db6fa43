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
/// space (`mei_wdt mei_stub.0-<guid>: ...`); module-level ones with a colon.
const DRIVER_PREFIX: &str = "mei_wdt ";

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
