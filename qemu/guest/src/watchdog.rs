//! The iAMT watchdog as userspace sees it: /sys/class/watchdog and
//! /dev/watchdogN. Operations that enter the driver run in a child process
//! (this binary with `--child`) so that a blocked call cannot stall the suite.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::process;
use crate::sys::{self, IntIoctl, WatchdogInfo};

pub const IDENTITY: &str = "iamt_wdt";
const CLASS_DIR: &str = "/sys/class/watchdog";

pub const EIO: i32 = 5;
pub const EFAULT: i32 = 14;
pub const EINVAL: i32 = 22;
pub const ENODEV: i32 = 19;
pub const EOPNOTSUPP: i32 = 95;
pub const EPROTO: i32 = 71;
pub const ETIMEDOUT: i32 = 110;

/// A registered watchdog with identity `iamt_wdt`.
#[derive(Clone, Debug)]
pub struct Watchdog {
    /// `watchdogN`
    pub name: String,
    pub sysfs: PathBuf,
    /// `/dev/watchdogN`
    pub node: PathBuf,
    /// The MEI bus device it hangs off (`<me>-<guid>`).
    pub parent: String,
    /// Inode of the sysfs directory: tells a re-registered device from the
    /// old one even when it reuses the name.
    pub ino: u64,
}

/// All `iamt_wdt` watchdogs, sorted by name.
pub fn find_all() -> Vec<Watchdog> {
    let mut v: Vec<Watchdog> = fs::read_dir(CLASS_DIR)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let sysfs = fs::canonicalize(e.path()).ok()?;
            let identity = fs::read_to_string(sysfs.join("identity")).ok()?;
            if identity.trim() != IDENTITY {
                return None;
            }
            let parent = fs::canonicalize(sysfs.join("device"))
                .ok()
                .and_then(|p| Some(p.file_name()?.to_str()?.to_string()))
                .unwrap_or_default();
            let ino = fs::metadata(&sysfs).ok()?.ino();
            // sysfs shows the device a moment before devtmpfs has its node.
            let node = Path::new("/dev").join(&name);
            if !node.exists() {
                return None;
            }
            Some(Watchdog {
                node,
                name,
                sysfs,
                parent,
                ino,
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

impl Watchdog {
    /// A sysfs attribute, without its trailing newline.
    pub fn attr(&self, attr: &str) -> Result<String, String> {
        fs::read_to_string(self.sysfs.join(attr))
            .map(|s| s.trim_end().to_string())
            .map_err(|e| format!("{}/{attr}: {e}", self.name))
    }

    pub fn has_attr(&self, attr: &str) -> bool {
        self.sysfs.join(attr).exists()
    }

    /// Opens the device node, which starts the watchdog.
    pub fn open(&self) -> Result<WdFile, String> {
        OpenOptions::new()
            .write(true)
            .open(&self.node)
            .map(|file| WdFile {
                file,
                node: self.node.clone(),
            })
            .map_err(|e| format!("open {}: {e}", self.node.display()))
    }
}

/// An operation on an open watchdog run by a child process.
#[derive(Clone, Copy, Debug)]
pub enum ChildOp {
    Keepalive,
    SetTimeout(i32),
    GetTimeout,
    /// write(2) of one byte (not the magic 'V').
    Write,
}

impl ChildOp {
    fn args(self) -> Vec<String> {
        match self {
            ChildOp::Keepalive => vec!["keepalive".into()],
            ChildOp::SetTimeout(t) => vec!["settimeout".into(), t.to_string()],
            ChildOp::GetTimeout => vec!["gettimeout".into()],
            ChildOp::Write => vec!["write".into()],
        }
    }
}

/// What a bounded operation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Succeeded; the ioctl's int argument afterwards (bytes for a write).
    Ok(i32),
    Errno(i32),
    /// Still blocked at the bound, and SIGKILLed.
    Hang,
}

impl fmt::Display for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Ok(_) => write!(f, "ok"),
            OpResult::Errno(e) => write!(f, "errno {e}"),
            OpResult::Hang => write!(f, "hang"),
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Timed {
    pub result: OpResult,
    pub elapsed: Duration,
}

impl fmt::Display for Timed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} after {:.2} s",
            self.result,
            self.elapsed.as_secs_f64()
        )
    }
}

pub struct WdFile {
    file: File,
    node: PathBuf,
}

impl WdFile {
    pub fn support(&self) -> io::Result<WatchdogInfo> {
        sys::get_support(&self.file)
    }

    /// An int ioctl from this process: only for calls the watchdog core
    /// answers without entering the driver, or while the firmware answers
    /// (a silent one hangs the C driver, and this process with it).
    pub fn ioctl(&self, req: IntIoctl, value: i32) -> io::Result<i32> {
        sys::ioctl_int(&self.file, req, value)
    }

    /// Any ioctl request with a pointer that points nowhere; the same
    /// condition as [`WdFile::ioctl`].
    pub fn ioctl_bad_pointer(
        &self,
        request: std::os::raw::c_ulong,
        arg: sys::BadPointer,
    ) -> Result<i32, i32> {
        // SAFETY: a `WdFile` is an open watchdog device node.
        unsafe { sys::ioctl_bad_pointer(&self.file, request, arg) }
    }

    /// write(2) from this process; the same condition as [`WdFile::ioctl`]
    /// (every byte count but 0 pings).
    pub fn write_bytes(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    /// Runs `op` on this open file in a child process, killed after `bound`.
    pub fn bounded(&self, op: ChildOp, bound: Duration) -> Result<Timed, String> {
        self.start(op)?.finish(bound)
    }

    /// Starts `op` on this open file in a child process; [`PendingOp::finish`]
    /// waits for it.
    pub fn start(&self, op: ChildOp) -> Result<PendingOp, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let fd = self.file.as_raw_fd();
        let mut cmd = Command::new(exe);
        cmd.arg("--child").args(op.args()).arg(fd.to_string());
        // Only this child may inherit the fd: other children (wdctl, ...)
        // must not keep the device open.
        sys::set_inheritable(&self.file, true).map_err(|e| format!("fcntl: {e}"))?;
        let spawned = process::spawn(&mut cmd);
        sys::set_inheritable(&self.file, false).map_err(|e| format!("fcntl: {e}"))?;
        Ok(PendingOp {
            child: spawned?,
            op,
            node: self.node.clone(),
        })
    }
}

/// An operation running in a child process ([`WdFile::start`]).
pub struct PendingOp {
    child: process::Running,
    op: ChildOp,
    node: PathBuf,
}

impl PendingOp {
    /// SIGKILLs the child and waits up to `bound` for it to die; returns
    /// how long that took, or an error if it did not.
    pub fn kill(self, bound: Duration) -> Result<Duration, String> {
        self.child.signal(sys::SIGKILL)?;
        let killed = std::time::Instant::now();
        let done = self.child.finish(bound);
        match done.status {
            Some(_) => Ok(killed.elapsed()),
            None => Err(format!(
                "{:?} on {} did not die from SIGKILL within {:.1} s",
                self.op,
                self.node.display(),
                bound.as_secs_f64()
            )),
        }
    }

    /// Waits for the operation, killing it after `bound`.
    pub fn finish(self, bound: Duration) -> Result<Timed, String> {
        let (op, node) = (self.op, self.node);
        let done = self.child.finish(bound);
        let result = if done.hung() {
            OpResult::Hang
        } else {
            parse_child_output(&done.stdout).ok_or_else(|| {
                format!(
                    "{op:?} child on {} failed ({:?}): {}{}",
                    node.display(),
                    done.status,
                    done.stdout,
                    done.stderr
                )
            })?
        };
        if done.unkillable {
            return Err(format!(
                "{op:?} on {} hung and survived SIGKILL (uninterruptible wait)",
                node.display()
            ));
        }
        Ok(Timed {
            result,
            elapsed: done.elapsed,
        })
    }
}

fn parse_child_output(out: &str) -> Option<OpResult> {
    let mut words = out.split_whitespace();
    match (words.next()?, words.next()?.parse().ok()?) {
        ("ok", v) => Some(OpResult::Ok(v)),
        ("errno", e) => Some(OpResult::Errno(e)),
        _ => None,
    }
}

/// `mei-wdt-tests --open <path> r|w|rw`: opens `path` and prints `ok 0` or
/// `errno <n>` (for [`open_as_nobody`]).
pub fn open_main(args: &[String]) -> i32 {
    let [path, mode] = args else {
        eprintln!("usage: --open <path> r|w|rw");
        return 2;
    };
    if let Err(e) = sys::become_nobody() {
        println!("cannot become nobody: {e}");
        return 1;
    }
    let mut options = OpenOptions::new();
    match mode.as_str() {
        "r" => options.read(true),
        "w" => options.write(true),
        "rw" => options.read(true).write(true),
        _ => return 2,
    };
    match options.open(path) {
        Ok(_) => println!("ok 0"),
        Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(0)),
    }
    0
}

/// Opens `path` (`r`, `w` or `rw`) in a child process that makes itself nobody
/// (uid and gid 65534, no supplementary groups; a non-root uid has no
/// capabilities); returns what it printed, `ok 0` or `errno <n>`.
pub fn open_as_nobody(path: &Path, mode: &str) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let out = Command::new(exe)
        .arg("--open")
        .arg(path)
        .arg(mode)
        .output()
        .map_err(|e| format!("spawn as nobody: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `mei-wdt-tests --child <op> [arg] <fd>`: performs one operation on an
/// inherited watchdog fd and prints `ok <value>` or `errno <n>`.
pub fn child_main(args: &[String]) -> i32 {
    let usage = || {
        eprintln!("usage: --child keepalive|gettimeout|write|settimeout <secs> <fd>");
        2
    };
    let (op, value, fd) = match args {
        [op, fd] => (op.as_str(), 0, fd),
        [op, v, fd] if op == "settimeout" => match v.parse() {
            Ok(v) => ("settimeout", v, fd),
            Err(_) => return usage(),
        },
        _ => return usage(),
    };
    let Ok(fd) = fd.parse() else {
        return usage();
    };
    let mut file = match sys::inherited_file(fd) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("fd {fd}: {e}");
            return 1;
        }
    };
    let res = match op {
        "keepalive" => sys::ioctl_int(&file, IntIoctl::Keepalive, 0),
        "gettimeout" => sys::ioctl_int(&file, IntIoctl::GetTimeout, 0),
        "settimeout" => sys::ioctl_int(&file, IntIoctl::SetTimeout, value),
        "write" => file.write(b"k").map(|n| n as i32),
        _ => return usage(),
    };
    match res {
        Ok(v) => println!("ok {v}"),
        Err(e) => println!("errno {}", e.raw_os_error().unwrap_or(-1)),
    }
    // The fd is shared with the parent: closing our copy does not release
    // the device, the parent's close does.
    0
}
