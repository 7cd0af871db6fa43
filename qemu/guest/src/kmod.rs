//! Loading and unloading the modules under test (busybox insmod/rmmod).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::framework::{wait_until, Timeouts};

pub const STUB: &str = "mei_stub";
pub const DRIVER: &str = "mei_wdt";

fn kernel_release() -> Result<String, String> {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("cannot read the kernel release: {e}"))
}

/// Where scripts/initramfs.sh puts the modules it is given.
pub fn module_path(name: &str) -> Result<PathBuf, String> {
    let dir = modules_dir()?.join("extra");
    let path = dir.join(format!("{name}.ko"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{name}.ko not found in {}", dir.display()))
    }
}

pub fn is_loaded(name: &str) -> bool {
    Path::new("/sys/module")
        .join(name)
        .join("initstate")
        .exists()
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        return Ok(());
    }
    let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if msg.is_empty() {
        msg = out.status.to_string();
    }
    Err(msg)
}

/// Loads `name` from its file, with module parameters (`name=value`).
pub fn insmod(name: &str, params: &[&str]) -> Result<(), String> {
    let path = module_path(name)?;
    run(Command::new("insmod").arg(&path).args(params)).map_err(|e| {
        let mut cmdline = format!("insmod {name}");
        for p in params {
            cmdline.push(' ');
            cmdline.push_str(p);
        }
        format!("{cmdline}: {e}")
    })
}

/// Loads a module the way a hotplug handler does: busybox modprobe with
/// `what` (a module name or a device's modalias), resolved through the
/// modules.dep and modules.alias that depmod wrote. Returns modprobe's
/// output.
pub fn modprobe(what: &str) -> Result<String, String> {
    let out = Command::new("modprobe")
        .arg("-v")
        .arg(what)
        .output()
        .map_err(|e| format!("cannot run modprobe: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("modprobe {what}: {}: {}", out.status, text.trim()))
    }
}

/// Where depmod put the module index for the running kernel.
pub fn modules_dir() -> Result<PathBuf, String> {
    Ok(PathBuf::from(format!("/lib/modules/{}", kernel_release()?)))
}

/// One `rmmod name`, without retrying: its error if it fails.
pub fn try_rmmod(name: &str) -> Result<(), String> {
    run(Command::new("rmmod").arg(name))
}

/// Unloads `name`, retrying while it is still in use (an fd being closed by
/// a dying child, a work item finishing).
pub fn rmmod(name: &str, t: &Timeouts) -> Result<(), String> {
    let mut last = String::new();
    let unloaded = wait_until(
        &format!("rmmod {name}"),
        t.scale(Duration::from_secs(3)),
        || {
            if !is_loaded(name) {
                return Some(());
            }
            match run(Command::new("rmmod").arg(name)) {
                Ok(()) => Some(()),
                Err(e) => {
                    last = e;
                    None
                }
            }
        },
    );
    unloaded.map_err(|e| format!("{e}: {last}"))
}
