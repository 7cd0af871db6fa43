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
    let dir = PathBuf::from(format!("/lib/modules/{}/extra", kernel_release()?));
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

pub fn insmod(name: &str) -> Result<(), String> {
    let path = module_path(name)?;
    run(Command::new("insmod").arg(&path)).map_err(|e| format!("insmod {name}: {e}"))
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
