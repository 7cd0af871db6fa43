//! The userspace ABI with inputs no well-behaved client sends: every 'W'
//! ioctl number with pointers that point nowhere, random requests, every
//! timeout edge, every `WDIOC_SETOPTIONS` bit, writes of every length; the
//! sysfs attributes and the debugfs files read at odd offsets and sizes,
//! and written; opens by an unprivileged user.
//! The errno of every call goes into the trace (`== errno table`), so that
//! the C driver's golden file is the reference for both drivers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{Rng, V2};
use crate::expect::debugfs_dir;
use crate::framework::{Ctx, Outcome};
use crate::sys::{self, BadPointer, IntIoctl, IOC_NONE, IOC_READ, IOC_READ_WRITE, IOC_WRITE};
use crate::watchdog;

/// Numbers whose answers differ between kernels, not drivers: the
/// pretimeout pair (Debian's kernel emulates one for every watchdog) and
/// GETTIMELEFT (7.3 estimates it, 6.12 refuses). Their direct tests are in
/// `ops` and `tools`.
const KERNEL_DEPENDENT: [u64; 3] = [8, 9, 10];

const ENOTTY: i32 = 25;
/// `sizeof(struct watchdog_info)`.
const INFO: usize = 40;
const SEED: u64 = 0x6162_7573_6500_0001;

fn errno(e: std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

fn show(r: Result<i32, i32>) -> String {
    match r {
        Ok(v) => format!("ok {v}"),
        Err(e) => format!("errno {e}"),
    }
}

pub fn abuse_ioctls(ctx: &mut Ctx) -> Outcome {
    let (_me, wd) = ctx.setup(V2)?;
    let mut f = wd.open()?;
    let mut table = String::new();
    let mut calls = 0u32;

    // Every number, in every encoding the core's requests use.
    let encodings: [(u64, usize, &str); 5] = [
        (IOC_NONE, 0, "_IO"),
        (IOC_READ, 4, "_IOR(int)"),
        (IOC_WRITE, 4, "_IOW(int)"),
        (IOC_READ_WRITE, 4, "_IOWR(int)"),
        (IOC_READ, INFO, "_IOR(info)"),
    ];
    let mut enotty = 0u32;
    for nr in 0..=255u64 {
        if KERNEL_DEPENDENT.contains(&nr) {
            continue;
        }
        for (dir, size, name) in encodings {
            for p in BadPointer::ALL {
                calls += 1;
                match f.ioctl_bad_pointer(sys::wdioc(dir, nr, size), p) {
                    Err(ENOTTY) => enotty += 1,
                    r => table.push_str(&format!("W {nr:3} {name:10} {p:?}: {}\n", show(r))),
                }
            }
        }
    }
    table.push_str(&format!(
        "other 'W' requests: errno {ENOTTY} ({enotty} calls)\n"
    ));

    // Random requests of any type, size and direction.
    let mut rng = Rng(SEED);
    let mut random_enotty = 0u32;
    const RANDOM: u32 = 2000;
    for _ in 0..RANDOM {
        let req = rng.next() & 0xffff_ffff;
        // Skip the watchdog's own type: covered above.
        if (req >> 8) & 0xff == u64::from(b'W') {
            continue;
        }
        calls += 1;
        let p = BadPointer::ALL[(rng.next() % 3) as usize];
        match f.ioctl_bad_pointer(req, p) {
            Err(ENOTTY) => random_enotty += 1,
            r => table.push_str(&format!("request {req:#010x} {p:?}: {}\n", show(r))),
        }
    }
    table.push_str(&format!(
        "random requests (seed {SEED:#x}): errno {ENOTTY} ({random_enotty} calls)\n"
    ));

    // Timeouts at and past every edge; each accepted one pings.
    for t in [0, 1, 119, 120, 65535, 65536, i32::MAX, -1, 120] {
        calls += 1;
        let r = f.ioctl(IntIoctl::SetTimeout, t).map_err(errno);
        table.push_str(&format!("SETTIMEOUT {t}: {}\n", show(r)));
    }

    // Every single option bit, then seeded random masks. DISABLECARD
    // stops, ENABLECARD starts: the trace shows both.
    let mut masks: Vec<i32> = (0..32).map(|b| (1u32 << b) as i32).collect();
    masks.extend((0..16).map(|_| rng.next() as i32));
    masks.push(2);
    for m in masks {
        calls += 1;
        let r = f.ioctl(IntIoctl::SetOptions, m).map_err(errno);
        table.push_str(&format!("SETOPTIONS {:#010x}: {}\n", m as u32, show(r)));
    }

    // write() of 0 to 64 bytes, without and then with the magic 'V' last.
    let mut odd_writes = 0;
    for magic in [false, true] {
        for len in 0..=64usize {
            calls += 1;
            let mut buf = vec![b'x'; len];
            if magic && len > 0 {
                buf[len - 1] = b'V';
            }
            let r = f.write_bytes(&buf);
            if !matches!(r, Ok(n) if n == len) {
                odd_writes += 1;
                table.push_str(&format!("write {len} magic={magic}: {r:?}\n"));
            }
        }
    }
    table.push_str(&format!(
        "writes: 130, {} returned their length\n",
        130 - odd_writes
    ));
    // The files, while the watchdog runs: sysfs (the core's) and debugfs
    // (the driver's own). Not `timeleft`, `pretimeout` and `status`, whose
    // values depend on the kernel (see KERNEL_DEPENDENT and `ops`), nor
    // `nowayout`: writing 1 there cannot be undone.
    let dbg = debugfs_dir(ctx.driver, &wd.parent);
    let files: Vec<(String, std::path::PathBuf)> =
        ["identity", "timeout", "bootstatus", "fw_version"]
            .iter()
            .map(|a| (format!("sysfs {a}"), wd.sysfs.join(a)))
            .chain(
                ["state", "activation"]
                    .iter()
                    .map(|n| (format!("debugfs {n}"), dbg.join(n))),
            )
            .collect();
    for (name, path) in &files {
        calls += file_abuse(name, path, &mut table);
    }

    // Opens by a user without privileges: the device node, a sysfs
    // attribute and a debugfs file, in every mode.
    for (name, path) in [
        ("device node", wd.node.clone()),
        ("sysfs identity", wd.sysfs.join("identity")),
        ("debugfs state", dbg.join("state")),
    ] {
        for mode in ["r", "w", "rw"] {
            calls += 1;
            let r = watchdog::open_as_nobody(&path, mode)?;
            table.push_str(&format!("{name} open {mode} as nobody: {r}\n"));
        }
    }

    ctx.log(format!("{calls} calls"));
    ctx.trace_section("errno table", &table);
    // The last write ended in 'V': this close stops the watchdog.
    drop(f);
    Ok(())
}

/// Reads `path` at odd offsets and sizes and writes to it; one line per
/// call into `table`. Returns the number of calls.
fn file_abuse(name: &str, path: &Path, table: &mut String) -> u32 {
    let mut calls = 0;
    match File::open(path) {
        Err(e) => table.push_str(&format!("{name}: open: errno {}\n", errno(e))),
        Ok(f) => {
            for (off, len) in [(0, 1), (1, 3), (3, 4096), (4095, 1), (1 << 20, 8), (0, 0)] {
                calls += 1;
                let mut buf = vec![0u8; len];
                let r = f.read_at(&mut buf, off);
                let shown = match r {
                    Ok(n) => format!("{:?}", String::from_utf8_lossy(&buf[..n])),
                    Err(e) => format!("errno {}", errno(e)),
                };
                table.push_str(&format!("{name} read {len} at {off}: {shown}\n"));
            }
        }
    }
    for data in [&b"1"[..], b"", b"stop\n"] {
        calls += 1;
        let r = OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write(data));
        let shown = match r {
            Ok(n) => format!("ok {n}"),
            Err(e) => format!("errno {}", errno(e)),
        };
        table.push_str(&format!(
            "{name} write {:?}: {shown}\n",
            String::from_utf8_lossy(data)
        ));
    }
    calls
}
