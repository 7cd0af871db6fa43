//! The ME firmware stub (qemu/mestub) seen through its debugfs files, and
//! the MEI bus devices it makes appear.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::framework::{wait_until, Timeouts, POLL};

pub const STUB_DIR: &str = "/sys/kernel/debug/mei_stub";
/// Polls in a row that must find the stub idle for [`Me::settle`].
const IDLE_POLLS: u32 = 3;
pub const MEI_DEVICES: &str = "/sys/bus/mei/devices";
/// The MEI bus driver directory of mei_wdt (bind, unbind).
pub const DRIVER_DIR: &str = "/sys/bus/mei/drivers/mei_wdt";
/// The iAMT watchdog client's GUID, as the MEI bus names its devices.
pub const WDT_GUID: &str = "05b79a6f-4628-4d7f-899d-a91514cb32ab";

/// Writes `text` to a debugfs or sysfs file in a single write(2).
pub fn write_file(path: &Path, text: &str) -> Result<(), String> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("write {text:?} to {}: {e}", path.display()))
}

pub fn read_file(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))
}

/// Indices N of the stub's `me<N>` directories.
pub fn device_indices() -> Vec<u32> {
    let mut v: Vec<u32> = fs::read_dir(STUB_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("me")?.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// MEI bus devices of the watchdog client, sorted by name.
pub fn wdt_clients() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(MEI_DEVICES)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.to_ascii_lowercase().contains(WDT_GUID))
        .collect();
    v.sort();
    v
}

/// The one watchdog client device on the MEI bus.
pub fn only_wdt_client() -> Result<String, String> {
    match wdt_clients().as_slice() {
        [one] => Ok(one.clone()),
        other => Err(format!(
            "want one watchdog client on the MEI bus, got {other:?}"
        )),
    }
}

/// Whether a stub config string leaves the watchdog client enumerated.
pub fn config_has_wd(config: &str) -> bool {
    !config.split_whitespace().any(|kv| kv == "wd=0")
}

/// One stub ME device, `me<N>`.
#[derive(Clone, Debug)]
pub struct Me {
    pub index: u32,
    dir: PathBuf,
}

/// Creates a stub ME device and returns it once its directory exists.
pub fn add(config: &str, t: &Timeouts) -> Result<Me, String> {
    let before = device_indices();
    write_file(&Path::new(STUB_DIR).join("add"), config)?;
    let index = wait_until("the new me<N> directory", t.probe, || {
        device_indices().into_iter().find(|i| !before.contains(i))
    })?;
    Ok(Me {
        index,
        dir: Path::new(STUB_DIR).join(format!("me{index}")),
    })
}

pub fn remove(me: &Me) -> Result<(), String> {
    write_file(&Path::new(STUB_DIR).join("remove"), &me.index.to_string())
}

/// The firmware-side record of watchdog-client traffic.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Trace {
    pub text: String,
}

impl Trace {
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.text.lines()
    }

    /// Lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines().filter(|l| l.contains(needle)).count()
    }

    /// Start requests carrying `timeout=<secs>`.
    pub fn start_requests_with(&self, secs: u32) -> usize {
        let tag = format!("timeout={secs}");
        self.lines()
            .filter(|l| l.contains("start-request") && l.split_whitespace().any(|w| w == tag))
            .count()
    }

    /// The last start- or stop-request line ("" if none).
    pub fn last_request(&self) -> &str {
        self.lines()
            .filter(|l| l.contains("start-request") || l.contains("stop-request"))
            .last()
            .unwrap_or("")
    }

    /// The lines after the first `n`.
    pub fn lines_after(&self, n: usize) -> Vec<&str> {
        self.lines().skip(n).collect()
    }
}

/// `me<N>/timer`: `state=.. timeout=.. expired=.. starts=..`.
#[derive(Clone, Debug, Default)]
pub struct Timer {
    pub state: String,
    pub timeout: u64,
    pub expired: u64,
    /// Start requests received since the last `clear`.
    pub starts: u64,
    pub raw: String,
}

impl Me {
    pub fn name(&self) -> String {
        format!("me{}", self.index)
    }

    /// Writes one or more `key=value` settings to `config`.
    pub fn set(&self, settings: &str) -> Result<(), String> {
        write_file(&self.dir.join("config"), settings)
    }

    /// The name of the PCI device the stub put this ME on.
    pub fn parent(&self) -> Result<String, String> {
        read_file(&self.dir.join("parent")).map(|s| s.trim().to_string())
    }

    /// `notify`, `reset` or `clear`.
    pub fn ctl(&self, cmd: &str) -> Result<(), String> {
        write_file(&self.dir.join("ctl"), cmd)
    }

    pub fn trace(&self) -> Result<Trace, String> {
        read_file(&self.dir.join("trace")).map(|text| Trace { text })
    }

    pub fn timer(&self) -> Result<Timer, String> {
        let raw = read_file(&self.dir.join("timer"))?;
        let mut t = Timer {
            raw: raw.trim().to_string(),
            ..Timer::default()
        };
        for kv in raw.split_whitespace() {
            match kv.split_once('=') {
                Some(("state", v)) => t.state = v.to_string(),
                Some(("timeout", v)) => t.timeout = v.parse().unwrap_or(0),
                Some(("expired", v)) => t.expired = v.parse().unwrap_or(0),
                Some(("starts", v)) => t.starts = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        Ok(t)
    }

    /// Waits until the trace satisfies `pred`.
    pub fn wait_trace(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Trace) -> bool,
    ) -> Result<Trace, String> {
        let mut last = Err(String::new());
        wait_until(&format!("{} trace: {what}", self.name()), timeout, || {
            last = self.trace();
            last.as_ref().ok().filter(|t| pred(t)).cloned()
        })
        .map_err(|e| match &last {
            Ok(t) => format!("{e}; trace was:\n{}", t.text),
            Err(read) => format!("{e}; {read}"),
        })
    }

    /// `idle`, or `busy: <what is going on>` (see the stub's `idle` file).
    pub fn idle_state(&self) -> Result<String, String> {
        read_file(&self.dir.join("idle")).map(|s| s.trim_end().to_string())
    }

    /// Waits until the firmware and the host are done with each other, so
    /// that the next step's messages cannot interleave with this one's:
    /// the stub says it is idle (nothing queued for the host, no late
    /// write, no MEI core or bus callback work), [`IDLE_POLLS`] times in a
    /// row with the trace unchanged. Returns that trace. (With `trace=0`,
    /// as the benchmark runs, the trace stays empty and the idle state
    /// decides alone.)
    pub fn settle(&self, t: &Timeouts) -> Result<Trace, String> {
        let deadline = Instant::now() + t.settle_max;
        let mut last = self.trace()?;
        let mut idle_polls = 0;
        loop {
            thread::sleep(POLL);
            let state = self.idle_state()?;
            let now = self.trace()?;
            if now != last || state != "idle" {
                last = now;
                idle_polls = 0;
            } else {
                idle_polls += 1;
                if idle_polls >= IDLE_POLLS {
                    return Ok(last);
                }
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not idle within {:.1} s ({state}); trace:\n{}",
                    self.name(),
                    t.settle_max.as_secs_f64(),
                    last.text
                ));
            }
        }
    }
}

/// Registers or unregisters the stub's filler watchdogs until there are
/// `n`; the watchdog core has 32 ids, so 32 fillers make every further
/// registration fail.
pub fn set_fillers(n: usize) -> Result<(), String> {
    write_file(&Path::new(STUB_DIR).join("watchdogs"), &n.to_string())
}

/// The MEI bus device `cldev` has a driver bound.
pub fn is_bound(cldev: &str) -> bool {
    Path::new(MEI_DEVICES).join(cldev).join("driver").exists()
}
