//! The few C library calls std does not wrap: watchdog and MEI ioctls,
//! poll(2), tcdrain(3), the close-on-exec flag, kill(2), reboot(2) and
//! dropping root (setgroups, setgid, setuid). All `unsafe` of the crate
//! lives here.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::raw::{c_int, c_short, c_ulong};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

mod ffi {
    use std::os::raw::{c_int, c_ulong};

    extern "C" {
        pub fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
        pub fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
        pub fn kill(pid: c_int, sig: c_int) -> c_int;
        pub fn sync();
        pub fn reboot(howto: c_int) -> c_int;
        pub fn poll(fds: *mut super::PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
        pub fn tcdrain(fd: c_int) -> c_int;
        pub fn setgroups(size: usize, list: *const u32) -> c_int;
        pub fn setgid(gid: u32) -> c_int;
        pub fn setuid(uid: u32) -> c_int;
        pub fn syscall(number: std::os::raw::c_long, ...) -> std::os::raw::c_long;
    }
}

const F_GETFD: c_int = 1;
const F_SETFD: c_int = 2;
const FD_CLOEXEC: c_int = 1;

pub const SIGINT: c_int = 2;
pub const SIGKILL: c_int = 9;
pub const SIGTERM: c_int = 15;
pub const SIGCONT: c_int = 18;
pub const SIGSTOP: c_int = 19;

/// `_IOC(dir, 'W', nr, size)` from include/uapi/asm-generic/ioctl.h.
pub const fn wdioc(dir: c_ulong, nr: c_ulong, size: usize) -> c_ulong {
    (dir << 30) | ((size as c_ulong) << 16) | ((b'W' as c_ulong) << 8) | nr
}
pub const IOC_NONE: c_ulong = 0;
pub const IOC_WRITE: c_ulong = 1;
pub const IOC_READ: c_ulong = 2;
pub const IOC_READ_WRITE: c_ulong = 3;
const INT: usize = std::mem::size_of::<c_int>();

const WDIOC_GETSUPPORT: c_ulong = wdioc(IOC_READ, 0, std::mem::size_of::<WatchdogInfo>());

/// Watchdog ioctls whose argument is a single `int` (read, written or both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntIoctl {
    GetStatus,
    GetBootStatus,
    SetOptions,
    Keepalive,
    SetTimeout,
    GetTimeout,
    SetPretimeout,
    GetPretimeout,
    GetTimeleft,
}

impl IntIoctl {
    fn request(self) -> c_ulong {
        match self {
            IntIoctl::GetStatus => wdioc(IOC_READ, 1, INT),
            IntIoctl::GetBootStatus => wdioc(IOC_READ, 2, INT),
            IntIoctl::SetOptions => wdioc(IOC_READ, 4, INT),
            IntIoctl::Keepalive => wdioc(IOC_READ, 5, INT),
            IntIoctl::SetTimeout => wdioc(IOC_READ_WRITE, 6, INT),
            IntIoctl::GetTimeout => wdioc(IOC_READ, 7, INT),
            IntIoctl::SetPretimeout => wdioc(IOC_READ_WRITE, 8, INT),
            IntIoctl::GetPretimeout => wdioc(IOC_READ, 9, INT),
            IntIoctl::GetTimeleft => wdioc(IOC_READ, 10, INT),
        }
    }
}

/// `struct watchdog_info` from include/uapi/linux/watchdog.h.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WatchdogInfo {
    pub options: u32,
    pub firmware_version: u32,
    pub identity: [u8; 32],
}

impl WatchdogInfo {
    /// The identity up to its NUL terminator.
    pub fn identity(&self) -> String {
        let end = self.identity.iter().position(|&b| b == 0).unwrap_or(32);
        String::from_utf8_lossy(&self.identity[..end]).into_owned()
    }
}

/// Issues an int-argument watchdog ioctl with `value` as the argument and
/// returns the (possibly updated) argument.
pub fn ioctl_int(fd: &impl AsRawFd, request: IntIoctl, value: i32) -> io::Result<i32> {
    let mut arg: c_int = value;
    // SAFETY: every `IntIoctl` request reads and/or writes exactly one `int`
    // through its argument, and `arg` is a live, writable `c_int`.
    let ret = unsafe { ffi::ioctl(fd.as_raw_fd(), request.request(), &raw mut arg) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(arg)
}

/// An ioctl argument that points nowhere this process can read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadPointer {
    Null,
    /// One page up: nothing in this process maps it (below the kernel's
    /// `mmap_min_addr` on most kernels, and never asked for here).
    Unmapped,
    /// In the kernel's half of the address space.
    Kernel,
}

impl BadPointer {
    pub const ALL: [BadPointer; 3] = [BadPointer::Null, BadPointer::Unmapped, BadPointer::Kernel];

    fn addr(self) -> usize {
        match self {
            BadPointer::Null => 0,
            BadPointer::Unmapped => 0x1000,
            BadPointer::Kernel => 0xffff_ffff_8100_0000,
        }
    }
}

/// Issues `request` (any number, any size) with a [`BadPointer`] as the
/// argument; returns the result or the errno.
///
/// # Safety
///
/// `fd` is a watchdog device node. Its ioctls, and the generic ones the
/// VFS answers for every file, only read or write through the argument
/// (which a [`BadPointer`] makes fail with EFAULT) or change the file's own
/// flags; another kind of file may have requests that do more.
pub unsafe fn ioctl_bad_pointer(
    fd: &impl AsRawFd,
    request: c_ulong,
    arg: BadPointer,
) -> Result<c_int, i32> {
    // The argument is no address of this process's memory, and the fd is
    // a watchdog's (the caller's promise): nothing here changes.
    // SAFETY: as just said; the fd is valid for the call.
    let ret = unsafe { ffi::ioctl(fd.as_raw_fd(), request, arg.addr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(ret)
}

/// Makes this process nobody (uid and gid 65534, no supplementary groups):
/// after a setuid from root to another uid it has no capabilities either.
pub fn become_nobody() -> io::Result<()> {
    const NOBODY: u32 = 65534;
    // SAFETY: an empty list; the pointer is not read.
    if unsafe { ffi::setgroups(0, std::ptr::null()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain system calls with an integer argument.
    if unsafe { ffi::setgid(NOBODY) } < 0 || unsafe { ffi::setuid(NOBODY) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

const SYS_DELETE_MODULE: std::os::raw::c_long = 176;
const SYS_FINIT_MODULE: std::os::raw::c_long = 313;

/// delete_module(2) with O_NONBLOCK: the kernel's own answer, which
/// busybox rmmod turns into text (a module in use: EWOULDBLOCK).
pub fn delete_module(name: &str) -> io::Result<()> {
    let name = std::ffi::CString::new(name).map_err(io::Error::other)?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call; the
    // flags are an integer.
    let ret = unsafe { ffi::syscall(SYS_DELETE_MODULE, name.as_ptr(), O_NONBLOCK) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// finit_module(2) of the module file `module` with `params` (`a=b c=d`).
pub fn finit_module(module: &File, params: &str) -> io::Result<()> {
    let params = std::ffi::CString::new(params).map_err(io::Error::other)?;
    // SAFETY: an open file's descriptor and a NUL-terminated string that
    // outlives the call; the kernel only reads both.
    let ret = unsafe {
        ffi::syscall(
            SYS_FINIT_MODULE,
            module.as_raw_fd(),
            params.as_ptr(),
            0 as c_int,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// WDIOC_GETSUPPORT.
pub fn get_support(fd: &impl AsRawFd) -> io::Result<WatchdogInfo> {
    let mut info = WatchdogInfo::default();
    // SAFETY: WDIOC_GETSUPPORT writes one `struct watchdog_info`, which
    // `WatchdogInfo` mirrors field for field (`repr(C)`), into `info`.
    let ret = unsafe { ffi::ioctl(fd.as_raw_fd(), WDIOC_GETSUPPORT, &raw mut info) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// `IOCTL_MEI_CONNECT_CLIENT`: `_IOWR('H', 0x01, struct
/// mei_connect_client_data)`, a 16-byte union (include/uapi/linux/mei.h).
const IOCTL_MEI_CONNECT_CLIENT: c_ulong =
    (IOC_READ_WRITE << 30) | (16 << 16) | ((b'H' as c_ulong) << 8) | 0x01;

/// An open MEI character device (`/dev/meiN`), in non-blocking mode: the
/// only kind of file [`MeiFile::connect`] issues its ioctl on, because
/// another driver could give the same request number another meaning.
pub struct MeiFile {
    file: File,
}

impl MeiFile {
    /// Opens `node`, which must be the device of `/sys/class/mei/<its
    /// name>`: the same character device number.
    pub fn open(node: &Path) -> io::Result<Self> {
        let name = node
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| io::Error::other("not a device node name"))?;
        let class_dev = fs::read_to_string(Path::new("/sys/class/mei").join(name).join("dev"))?;
        // Checked before the open too: opening another device can act
        // (a watchdog node starts its watchdog).
        Self::check(&fs::metadata(node)?, node, name, &class_dev)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(O_NONBLOCK)
            .open(node)?;
        // And after, on what was opened: the node may have changed.
        Self::check(&file.metadata()?, node, name, &class_dev)?;
        Ok(Self { file })
    }

    /// Fails unless `meta` is the character device `class_dev` (`M:m`).
    fn check(meta: &fs::Metadata, node: &Path, name: &str, class_dev: &str) -> io::Result<()> {
        let rdev = meta.rdev();
        // The kernel's dev_t encoding, as glibc's major()/minor() read it.
        let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff);
        let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff);
        if !meta.file_type().is_char_device() || class_dev.trim() != format!("{major}:{minor}") {
            return Err(io::Error::other(format!(
                "{} is not the MEI device {name} ({})",
                node.display(),
                class_dev.trim()
            )));
        }
        Ok(())
    }

    /// `IOCTL_MEI_CONNECT_CLIENT`: connects to the ME client `uuid` (in the
    /// bus's little-endian layout). Returns the client's maximum message
    /// length and protocol version.
    pub fn connect(&self, uuid: &[u8; 16]) -> io::Result<(u32, u8)> {
        // In: the client's uuid_le; out: struct mei_client (u32
        // max_msg_length, u8 protocol_version, 3 reserved bytes).
        let mut data: [u8; 16] = *uuid;
        // SAFETY: `self.file` is a MEI character device (checked by `open`),
        // whose IOCTL_MEI_CONNECT_CLIENT reads and writes exactly 16 bytes at
        // its argument; `data` is a live, writable 16-byte buffer.
        let ret = unsafe {
            ffi::ioctl(
                self.file.as_raw_fd(),
                IOCTL_MEI_CONNECT_CLIENT,
                data.as_mut_ptr(),
            )
        };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        let max_len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]);
        Ok((max_len, data[4]))
    }

    /// Waits until a message can be read, for at most `limit`; false if
    /// none came in time.
    pub fn wait_readable(&self, limit: Duration) -> io::Result<bool> {
        let mut pfd = PollFd {
            fd: self.file.as_raw_fd(),
            events: POLLIN,
            revents: 0,
        };
        let ms = c_int::try_from(limit.as_millis()).unwrap_or(c_int::MAX);
        loop {
            // SAFETY: `pfd` is one live, writable `struct pollfd` (`PollFd`
            // mirrors it, `repr(C)`), and the count passed is 1.
            let ret = unsafe { ffi::poll(&raw mut pfd, 1, ms) };
            if ret < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if ret > 0 && pfd.revents & POLLIN == 0 {
                return Err(io::Error::other(format!(
                    "poll: revents {:#x} without POLLIN",
                    pfd.revents
                )));
            }
            return Ok(ret > 0);
        }
    }
}

impl Read for MeiFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Write for MeiFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// `struct pollfd` from <poll.h>.
#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

const POLLIN: c_short = 1;
const O_NONBLOCK: c_int = 0o4000;

/// Waits until everything written to the terminal `fd` has been sent.
pub fn tcdrain(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: tcdrain(3) takes no pointer; it only waits on `fd`.
    if unsafe { ffi::tcdrain(fd.as_raw_fd()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Lets `fd` survive exec (or not), so a child can use the same open file.
pub fn set_inheritable(fd: &impl AsRawFd, inheritable: bool) -> io::Result<()> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFD takes no argument and only reads the fd flags.
    let flags = unsafe { ffi::fcntl(raw, F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let flags = if inheritable {
        flags & !FD_CLOEXEC
    } else {
        flags | FD_CLOEXEC
    };
    // SAFETY: F_SETFD takes an int flag argument and changes only the flags
    // of `raw`, which `fd` keeps open for the duration of the call.
    if unsafe { ffi::fcntl(raw, F_SETFD, flags) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes ownership of a file descriptor inherited from the parent process.
pub fn inherited_file(fd: RawFd) -> io::Result<File> {
    if fd <= 2 {
        return Err(io::Error::from_raw_os_error(9)); // EBADF: not ours to take
    }
    // SAFETY: F_GETFD takes no argument; it only checks that `fd` is open.
    if unsafe { ffi::fcntl(fd, F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked above), was handed to this process by the
    // parent for its exclusive use, and nothing else in the process owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Sends `sig` to process `pid`.
pub fn send_signal(pid: u32, sig: c_int) -> io::Result<()> {
    let pid = c_int::try_from(pid).map_err(|_| io::Error::from_raw_os_error(3))?;
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { ffi::kill(pid, sig) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `RB_AUTOBOOT` from <sys/reboot.h>: LINUX_REBOOT_CMD_RESTART.
const RB_AUTOBOOT: c_int = 0x0123_4567;

/// Restarts the machine at once, as `reboot -f` does (the kernel's reboot
/// notifiers run, no init scripts). Returns only on failure.
pub fn restart() -> io::Error {
    // SAFETY: sync(2) has no preconditions; reboot(2) with RB_AUTOBOOT
    // takes no pointer and either restarts the machine or fails.
    if unsafe {
        ffi::sync();
        ffi::reboot(RB_AUTOBOOT)
    } < 0
    {
        return io::Error::last_os_error();
    }
    io::Error::other("reboot(2) returned")
}
