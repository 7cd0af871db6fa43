// SPDX-License-Identifier: GPL-2.0

//! Intel Management Engine Interface (Intel MEI) iAMT watchdog driver.
//!
//! A drop-in replacement for `drivers/watchdog/mei_wdt.c`: it binds to the
//! AMT watchdog ME client, registers a watchdog device (`iamt_wdt`) and
//! turns start/stop/ping into management-control messages. Unlike the C
//! driver, every state change happens under one lock, the watchdog info is
//! per device, and a silent firmware cannot block a caller forever: a ping
//! waits at most `ping_timeout_ms`.

pub mod abstractions;
/// The wire format and the state machine.
#[path = "mei_wdt_proto.rs"]
pub mod proto;

use abstractions::aref::ARef;
use abstractions::completion::{Completion, WaitResult};
use abstractions::device::{
    code, dev_err, dev_err_int, dev_err_int_ratelimited, dev_err_ratelimited, dev_warn,
    dev_warn_ratelimited, RateLimit,
};
use abstractions::{debugfs, mei_cl, watchdog, work};
use core::fmt;
use core::pin::Pin;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::{c_str, new_mutex};
use proto::{Machine, NotifAction, PingAction, ProbeAction, Response, RxAction, StopAction};

module! {
    type: MeiWdtModule,
    name: "mei_wdt",
    description: "Intel MEI iAMT Watchdog Driver",
    license: "GPL",
}

// Named as userspace sees it (`ping_timeout_ms=` at load, sysfs).
#[allow(non_upper_case_globals)]
mod params {
    crate::abstractions::param::module_param_uint!(
        ping_timeout_ms,
        5000,
        0o644,
        "Longest wait for the firmware to answer a ping or accept a message, ms (100..60000, default 5000)"
    );
}
use params::ping_timeout_ms;

/// The bound on firmware waits, ms: the parameter, kept within reason (0
/// would mean "no wait" to some calls and "forever" to others).
fn bound_ms() -> u32 {
    ping_timeout_ms.get().clamp(100, 60_000)
}

/// How often the probe's wait for its answer looks at the link, ms.
const LINK_POLL_MS: u32 = 20;

/// Identity reported to userspace, as the C driver's `INTEL_AMT_WATCHDOG_ID`.
const IDENTITY: &str = "iamt_wdt";

/// AMT watchdog client GUID 05B79A6F-4628-4D7F-899D-A91514CB32AB, in the
/// `uuid_le` byte order of the MEI bus.
const WDT_UUID: [u8; 16] = [
    0x6f, 0x9a, 0xb7, 0x05, 0x28, 0x46, 0x7f, 0x4d, 0x89, 0x9d, 0xa9, 0x15, 0x14, 0xcb, 0x32, 0xab,
];

/// Room for a response longer than a start response, to notice one.
const RECV_LEN: usize = 16;

/// `mei_wdt/` in debugfs, with a directory per device.
static DEBUGFS: debugfs::ModuleDir = debugfs::ModuleDir::new();

mei_cl::mei_cl_device_table!(
    MEI_WDT_TABLE,
    (),
    [(
        mei_cl::DeviceId::new(WDT_UUID, mei_cl::DeviceId::VERSION_ANY),
        ()
    )]
);

/// A send fails with EFAULT when its wait for the write ends without the
/// write complete: if the connection is gone (a link reset, a disconnect
/// request of the firmware), userspace is told ENODEV, not "bad address".
fn link_lost_is_enodev(dev: &mei_cl::Device, e: Error) -> Error {
    if e == EFAULT && !dev.enabled() {
        ENODEV
    } else {
        e
    }
}

/// `mei_cldev_enable` fails with ENOTTY when the ME no longer lists the
/// client (or refuses it as unknown), and with EFAULT when a link reset
/// cuts its connect request short: there is no client to drive, which the
/// probe's caller (a bind, a module load) is told as ENODEV. The bus'
/// errno is logged.
fn client_gone_is_enodev(e: Error) -> Error {
    if e == EFAULT || e == ENOTTY {
        ENODEV
    } else {
        e
    }
}

/// State behind the state lock.
struct Inner {
    machine: Machine,
    /// Timeout sent with every ping, seconds.
    timeout: u16,
    /// Set by remove: nothing registers any more, pings fail.
    removing: bool,
    /// Set while the watchdog core registers the device: see `start` in
    /// the watchdog operations below.
    registering: bool,
    /// Why the last awaited response failed, for the waiting ping.
    response_error: Option<Error>,
}

/// The watchdog: shared by the bus callbacks and the watchdog operations.
#[pin_data]
struct Wdt {
    cldev: ARef<mei_cl::Device>,
    /// Every state change happens under this lock.
    #[pin]
    inner: Mutex<Inner>,
    /// The registered watchdog device; this lock is held across each
    /// registration and unregistration (as the C driver's `reg_lock`), so
    /// one device goes before the next comes, and is never taken by the
    /// watchdog operations, which run under the core's lock.
    #[pin]
    registration: Mutex<Option<watchdog::Registration<Wdt>>>,
    /// Completed by a ping's response.
    #[pin]
    response: Completion,
    /// Held across every send. The MEI core keeps one write state per
    /// client: a send started while another still waits for its write to
    /// complete resets that state, and the first send then fails with
    /// EFAULT. The probe's ping and the stop that the rx callback sends on
    /// its answer do overlap on SMP (the C driver then fails its probe and
    /// frees the watchdog the rx callback has just registered).
    #[pin]
    send_lock: Mutex<()>,
    /// Unregisters when the firmware says NOT_REQUIRED while running: the
    /// watchdog core's lock is held by the waiting ping then.
    #[pin]
    unregister_work: work::Work<Wdt>,
    log_limit: RateLimit,
}

work::impl_work_handler!(Wdt, unregister_work, run_unregister);

impl Wdt {
    fn dev(&self) -> &mei_cl::Device {
        &self.cldev
    }

    fn send(&self, msg: &[u8]) -> Result {
        let _one_at_a_time = self.send_lock.lock();
        self.cldev.send(msg, bound_ms()).map(|_| ())
    }

    /// Sends a start (ping) request with the current timeout, unless a
    /// stop went out since the ping was decided: `Ok(false)`. (The core
    /// calls stop without its lock, on unregister and on reboot.)
    fn send_ping(&self, timeout: u16) -> Result<bool> {
        let _one_at_a_time = self.send_lock.lock();
        if !self.inner.lock().machine.ping_still_wanted() {
            return Ok(false);
        }
        self.cldev
            .send(&proto::encode_start(timeout), bound_ms())
            .map(|_| true)
            .map_err(|e| link_lost_is_enodev(&self.cldev, e))
            .inspect_err(|e| {
                dev_err_int_ratelimited!(
                    self.log_limit,
                    self.dev(),
                    "ping send failed: %d\n",
                    e.to_errno()
                );
            })
    }

    /// Fails a ping (or the probe) waiting for an answer with `err` now,
    /// instead of at its bound: `EPROTO`, what came cannot be an answer;
    /// `ENODEV`, the link went before the answer could be fetched.
    fn fail_waiting_ping(&self, err: Error) {
        let mut inner = self.inner.lock();
        if inner.machine.resp_required() {
            inner.response_error = Some(err);
            self.response.complete();
        }
    }

    /// Waits at most `bound` ms for the answer to the probe's ping, or
    /// `None` as soon as the connection is down: after a link reset the
    /// MEI core's rescan waits for this probe (the device lock) before it
    /// can replace the client device, so the wait must not outlast the
    /// link.
    fn wait_probe_answer(&self, bound: u32) -> Option<WaitResult> {
        let mut left = bound;
        loop {
            let slice = left.min(LINK_POLL_MS);
            match self.response.wait_killable_timeout(slice) {
                WaitResult::TimedOut => {}
                ended => return Some(ended),
            }
            if !self.cldev.enabled() {
                return None;
            }
            left -= slice;
            if left == 0 {
                return Some(WaitResult::TimedOut);
            }
        }
    }

    fn send_stop(&self) -> Result {
        self.send(&proto::encode_stop())
            .map_err(|e| link_lost_is_enodev(&self.cldev, e))
            .inspect_err(|e| {
                dev_err_int_ratelimited!(
                    self.log_limit,
                    self.dev(),
                    "stop send failed: %d\n",
                    e.to_errno()
                );
            })
    }

    /// Registers the watchdog device unless it is, or the device is going
    /// away (C `mei_wdt_register`).
    fn register(this: &Arc<Wdt>) -> Result {
        let mut reg = this.registration.lock();
        {
            let mut inner = this.inner.lock();
            if reg.is_some() || inner.removing {
                return Ok(());
            }
            inner.machine.registering();
            inner.registering = true;
        }
        let info = watchdog::Info {
            identity: IDENTITY,
            options: watchdog::options::KEEPALIVEPING
                | watchdog::options::SETTIMEOUT
                | watchdog::options::ALARMONLY,
            firmware_version: this.cldev.version().into(),
            timeout: proto::DEFAULT_TIMEOUT.into(),
            min_timeout: proto::MIN_TIMEOUT.into(),
            max_timeout: proto::MAX_TIMEOUT.into(),
            stop_on_reboot: true,
            stop_on_unregister: true,
        };
        let registered = watchdog::Registration::new(this.dev().as_ref(), &info, this.clone());
        this.inner.lock().registering = false;
        registered.map(|r| *reg = Some(r)).inspect_err(|e| {
            dev_err_int!(
                this.dev(),
                "unable to register watchdog device: %d\n",
                e.to_errno()
            )
        })
    }

    /// Unregisters the watchdog device, if registered; `if_due`: only if
    /// no notification asked for it again since NOT_REQUIRED. Must not run
    /// under the watchdog core's lock (from an operation).
    fn unregister(&self, if_due: bool) {
        let mut reg = self.registration.lock();
        {
            let mut inner = self.inner.lock();
            if if_due && !inner.machine.unregister_due() {
                return;
            }
            if reg.is_some() {
                inner.machine.unregistering();
            }
        }
        // Dropped (unregistered) under the lock: a registration waits
        // until this device and its id are gone.
        drop(reg.take());
        self.inner.lock().machine.unregistered();
    }

    fn run_unregister(&self) {
        self.unregister(true);
    }

    /// Stops everything for good: no registration any more, a waiting ping
    /// freed, the unregister work cancelled, the device unregistered. For
    /// remove and a failed probe (whose ping may have been answered).
    fn shut_down(this: &Arc<Wdt>) {
        this.inner.lock().removing = true;
        // Free a ping waiting on a firmware that will not answer now.
        this.response.complete();
        work::cancel_sync(this);
        this.unregister(false);
    }

    /// debugfs `state`, as the C driver's.
    fn show_state(this: &Arc<Wdt>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "state: {}", this.inner.lock().machine.state().as_str())
    }

    /// debugfs `activation`, as the C driver's.
    fn show_activation(this: &Arc<Wdt>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let activated = this.registration.lock().is_some();
        writeln!(
            f,
            "{}",
            if activated {
                "activated"
            } else {
                "deactivated"
            }
        )
    }
}

watchdog::declare_ops!(Wdt);

#[vtable]
impl watchdog::Operations for Wdt {
    /// Fails with EBUSY while the core is still registering the device.
    /// The core makes the device openable (and sends its uevent) before it
    /// checks whether the hardware runs, and takes a module and a device
    /// reference for a running one: an open in between that started the
    /// device would leave those references to nobody (6.12 and 7.3
    /// `watchdog_cdev_register`). An opener that udev starts at once may
    /// see EBUSY, as if the device were open, and can retry.
    fn start(&self, wdd: &watchdog::Device<watchdog::Serialized>) -> Result {
        let mut inner = self.inner.lock();
        if inner.registering {
            return Err(EBUSY);
        }
        inner.machine.op_start();
        wdd.set_timeout(inner.timeout.into());
        Ok(())
    }

    fn stop(&self, _wdd: &watchdog::Device) -> Result {
        if self.inner.lock().machine.op_stop() == StopAction::Nothing {
            return Ok(());
        }
        let res = self.send_stop();
        self.inner.lock().machine.stop_sent(res.is_ok());
        res
    }

    fn ping(&self, _wdd: &watchdog::Device<watchdog::Serialized>) -> Result {
        let (wait, timeout) = {
            let mut inner = self.inner.lock();
            if inner.removing {
                return Err(ENODEV);
            }
            match inner.machine.op_ping() {
                PingAction::Nothing => return Ok(()),
                PingAction::Send { wait } => {
                    if wait {
                        inner.response_error = None;
                        self.response.reset();
                    }
                    (wait, inner.timeout)
                }
            }
        };
        if !self.send_ping(timeout)? {
            // Stopped meanwhile: nothing went out, nothing to wait for.
            return if self.inner.lock().removing {
                Err(ENODEV)
            } else {
                Ok(())
            };
        }
        if !wait {
            return Ok(());
        }
        let bound = bound_ms();
        match self.response.wait_killable_timeout(bound) {
            WaitResult::Completed => {
                let mut inner = self.inner.lock();
                if inner.removing {
                    return Err(ENODEV);
                }
                inner.response_error.take().map_or(Ok(()), Err)
            }
            WaitResult::TimedOut => {
                dev_err_int_ratelimited!(
                    self.log_limit,
                    self.dev(),
                    "no ping response from the firmware in %d ms\n",
                    bound as i32
                );
                Err(code::etimedout())
            }
            WaitResult::Killed => Err(ERESTARTSYS),
        }
    }

    fn set_timeout(&self, wdd: &watchdog::Device<watchdog::Serialized>, timeout: u32) -> Result {
        // The core checked the range already; the wire field is 16 bits.
        let t = proto::wire_timeout(timeout).ok_or(EINVAL)?;
        self.inner.lock().timeout = t;
        wdd.set_timeout(timeout);
        Ok(())
    }
}

/// Per client device: the watchdog and its debugfs files.
#[pin_data]
struct MeiWdt {
    wdt: Arc<Wdt>,
    _debugfs: Option<Pin<KBox<debugfs::Scope<Arc<Wdt>>>>>,
}

impl mei_cl::Driver for MeiWdt {
    type IdInfo = ();
    const ID_TABLE: mei_cl::IdTable<()> = &MEI_WDT_TABLE;

    fn probe(dev: &mei_cl::Device, _id_info: &()) -> impl PinInit<Self, Error> {
        let wdt = Arc::pin_init(
            pin_init!(Wdt {
                cldev: dev.get(),
                inner <- new_mutex!(Inner {
                    machine: Machine::new(dev.version()),
                    timeout: proto::DEFAULT_TIMEOUT,
                    removing: false,
                    registering: false,
                    response_error: None,
                }),
                registration <- new_mutex!(None),
                response <- Completion::new(),
                send_lock <- new_mutex!(()),
                unregister_work <- work::Work::new(),
                log_limit: RateLimit::new(),
            }),
            GFP_KERNEL,
        );
        let files = wdt.as_ref().map_err(|e| *e).and_then(|w| {
            DEBUGFS
                .get()
                .map(|root| {
                    let name = dev.as_ref().name();
                    let dir = root.scope(w.clone(), name, |wdt, dir| {
                        dir.read_callback_file(c_str!("state"), wdt, &Wdt::show_state);
                        dir.read_callback_file(c_str!("activation"), wdt, &Wdt::show_activation);
                    });
                    KBox::pin_init(dir, GFP_KERNEL)
                })
                .transpose()
        });
        try_pin_init!(MeiWdt {
            wdt: wdt?,
            _debugfs: files?,
        }? Error)
    }

    fn start(
        self: Pin<&Self>,
        dev: &mei_cl::Device,
        callbacks: mei_cl::Callbacks<'_, Self>,
    ) -> Result {
        dev.enable()
            .inspect_err(|e| dev_err_int!(dev, "Could not enable cl device: %d\n", e.to_errno()))
            .map_err(client_gone_is_enodev)?;
        let res = self.start_enabled(dev, &callbacks);
        if res.is_err() {
            // The probe ping may have gone out although its send failed
            // (EINTR, EIO), and its answer registered the watchdog.
            Wdt::shut_down(&self.wdt);
        }
        res
    }

    fn unbind(self: Pin<&Self>, _dev: &mei_cl::Device) {
        Wdt::shut_down(&self.wdt);
    }

    fn rx(self: Pin<&Self>, dev: &mei_cl::Device) {
        let wdt = &self.wdt;
        let mut buf = [0u8; RECV_LEN];
        let len = match dev.recv(&mut buf) {
            Ok(len) => len,
            Err(e) => {
                // EMSGSIZE: the answer did not fit the client's MTU. ENODEV,
                // or any failure with the connection gone: a link reset
                // (between the answer and this work) or a disconnect request
                // of the firmware took the answer with it.
                dev_err_int_ratelimited!(wdt.log_limit, dev, "failure in recv %d\n", e.to_errno());
                wdt.fail_waiting_ping(if e == ENODEV || !dev.enabled() {
                    ENODEV
                } else {
                    code::eproto()
                });
                return;
            }
        };
        let msg = if len > proto::START_RES_LEN {
            // Extra bytes: the C driver reads only a start response's worth.
            // A full buffer may have been cut short by `recv`.
            let more = if len == RECV_LEN { " or more" } else { "" };
            dev_warn_ratelimited!(
                wdt.log_limit,
                dev,
                "oversize response ({} bytes{}), using the first {}\n",
                len,
                more,
                proto::START_RES_LEN
            );
            &buf[..proto::START_RES_LEN]
        } else {
            &buf[..len]
        };
        let response = match proto::decode_response(msg) {
            Ok(r) => r,
            Err(e) => {
                // Through `fmt::Arguments`: 7.3's `dev_err!` takes only the
                // kernel crate's own `Display`.
                dev_err_ratelimited!(
                    wdt.log_limit,
                    dev,
                    "bad response: {}\n",
                    format_args!("{e}")
                );
                wdt.fail_waiting_ping(code::eproto());
                return;
            }
        };
        if let Response::Start { status, .. } = response {
            if status != proto::STATUS_SUCCESS {
                dev_err_int_ratelimited!(wdt.log_limit, dev, "firmware status %d\n", status.into());
            }
        }
        let (action, state) = {
            let mut inner = wdt.inner.lock();
            let state = inner.machine.state();
            (inner.machine.response(&response), state)
        };
        if action == RxAction::Ignore {
            return;
        }
        // Every other action: the ping or the probe waits for this. Before
        // the stop-request below, which may take up to its bound: the
        // probe's wait must not run out on it.
        wdt.response.complete();
        match action {
            RxAction::Ignore | RxAction::Complete => {}
            RxAction::UnregisterLater => {
                // Under the lock that remove sets `removing` with, before
                // it cancels the work: nothing is queued after that. (A
                // guard in the `if` condition would be dropped before the
                // block.)
                let inner = wdt.inner.lock();
                if !inner.removing {
                    work::queue(wdt);
                }
            }
            RxAction::StopAndRegister => {
                let _ = wdt.send_stop();
                // Logged; the probe (or a later notification) copes.
                let _ = Wdt::register(wdt);
            }
            RxAction::WrongState => {
                dev_warn!(
                    dev,
                    "not in correct state {}[{}]\n",
                    state.as_str(),
                    state as u32
                );
            }
        }
    }

    fn notify(self: Pin<&Self>, _dev: &mei_cl::Device) {
        let action = self.wdt.inner.lock().machine.notification();
        if action == NotifAction::Register {
            let _ = Wdt::register(&self.wdt);
        }
    }
}

/// Why the probe ping did not lead to a registration.
enum Unanswered {
    /// No answer within the bound, ms.
    Silent(u32),
    /// modprobe (or the bind writer) was killed while waiting, at most ms.
    Killed(u32),
    /// The answer was malformed (logged by rx).
    Malformed,
}

impl MeiWdt {
    /// Connects, registers the callbacks and probes the firmware (C
    /// `mei_wdt_probe` after `mei_cldev_enable`).
    fn start_enabled(
        &self,
        dev: &mei_cl::Device,
        callbacks: &mei_cl::Callbacks<'_, Self>,
    ) -> Result {
        let wdt = &self.wdt;
        callbacks
            .register_rx()
            .inspect_err(|e| dev_err_int!(dev, "Could not reg rx event ret=%d\n", e.to_errno()))?;
        // Notification is optional.
        match callbacks.register_notify() {
            Err(e) if e != code::eopnotsupp() => {
                dev_err_int!(dev, "Could not reg notif event ret=%d\n", e.to_errno());
                return Err(e);
            }
            _ => {}
        }
        let action = {
            let mut inner = wdt.inner.lock();
            let action = inner.machine.probe();
            if action == ProbeAction::Ping {
                inner.response_error = None;
                wdt.response.reset();
            }
            action
        };
        if action == ProbeAction::Register {
            // As C: a v1 device that cannot be registered fails the probe.
            return Wdt::register(wdt);
        }
        // EFAULT: the send's wait ended without the write complete (seen
        // on SMP, with the firmware's answer arriving; and when the link
        // goes); ETIME: the completion came late. The message may well
        // have gone out, so the answer decides.
        let sent = wdt.send(&proto::encode_start(proto::DEFAULT_TIMEOUT));
        let bound = bound_ms();
        let wait = match sent {
            Err(e) if e != EFAULT && e != code::etime() => Err(e),
            _ => Ok(wdt.wait_probe_answer(bound)),
        };
        // After a link reset the bus removes this client device, under the
        // device lock this probe holds, and adds a new one that probes
        // afresh; after a disconnect request of the firmware the device
        // stays unbound until it is bound again.
        let connection_lost = || {
            dev_err!(
                dev,
                "connection lost while waiting for the probe ping's response\n"
            );
            Err(ENODEV)
        };
        match (wait, sent) {
            (Ok(None), _) => return connection_lost(),
            (Ok(Some(WaitResult::Completed)), _) => {
                let error = wdt.inner.lock().response_error.take();
                match error {
                    // The connection went with the answer (rx).
                    Some(e) if e == ENODEV => return connection_lost(),
                    Some(_) => self.probe_unanswered(Unanswered::Malformed),
                    None => {}
                }
            }
            (Ok(Some(WaitResult::Killed)), Ok(())) => {
                self.probe_unanswered(Unanswered::Killed(bound))
            }
            (Ok(Some(WaitResult::TimedOut)), Ok(())) => {
                self.probe_unanswered(Unanswered::Silent(bound))
            }
            (Err(e), _) | (Ok(_), Err(e)) => {
                dev_err_int!(dev, "probe ping send failed: %d\n", e.to_errno());
                return Err(link_lost_is_enodev(dev, e));
            }
        }
        Ok(())
    }

    /// The probe ping got no (valid) answer: say so instead of leaving the
    /// device silently absent; a late answer or a notification registers
    /// it.
    fn probe_unanswered(&self, why: Unanswered) {
        if self.wdt.inner.lock().machine.probe_timed_out() {
            // The firmware may have started its timer on the ping; a late
            // answer or a notification registers the device anyway. Failure
            // is logged.
            let _ = self.wdt.send_stop();
        }
        const UNTIL: &str = "watchdog not registered until the firmware answers, the ME notifies or the device is rebound";
        match why {
            Unanswered::Silent(ms) => {
                dev_err!(
                    self.wdt.dev(),
                    "no response to the probe ping in {} ms: {}\n",
                    ms,
                    UNTIL
                )
            }
            Unanswered::Killed(ms) => dev_err!(
                self.wdt.dev(),
                "killed while waiting for the probe ping's response, at most {} ms: {}\n",
                ms,
                UNTIL
            ),
            Unanswered::Malformed => {
                dev_err!(
                    self.wdt.dev(),
                    "malformed response to the probe ping: {}\n",
                    UNTIL
                )
            }
        }
    }
}

struct MeiWdtModule {
    driver: Option<mei_cl::Registration<MeiWdt>>,
}

impl kernel::Module for MeiWdtModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        // Without debugfs the driver works all the same.
        let _ = DEBUGFS.create(c_str!("mei_wdt"));
        match mei_cl::Registration::new(c_str!("mei_wdt"), module) {
            Ok(driver) => Ok(MeiWdtModule {
                driver: Some(driver),
            }),
            Err(e) => {
                DEBUGFS.remove();
                Err(e)
            }
        }
    }
}

impl Drop for MeiWdtModule {
    fn drop(&mut self) {
        // Unbind every device (removing its directory) before the root.
        drop(self.driver.take());
        DEBUGFS.remove();
    }
}
