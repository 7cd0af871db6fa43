// SPDX-License-Identifier: GPL-2.0

//! Intel Management Engine Interface (Intel MEI) iAMT watchdog driver.
//!
//! A drop-in replacement for `drivers/watchdog/mei_wdt.c`: it binds to the
//! AMT watchdog ME client, registers a watchdog device (`iamt_wdt`) and
//! turns start/stop/ping into management-control messages. Unlike the C
//! driver, every state change happens under one lock, the watchdog info is
//! per device, and a silent firmware cannot block a caller forever: a ping
//! waits at most `ping_timeout_ms`.

#[path = "abstractions/bindings.rs"]
mod bindings;
#[path = "abstractions/completion.rs"]
mod completion;
#[path = "abstractions/debugfs.rs"]
#[allow(dead_code)] // Shared with the ME stub, which uses the rest.
mod debugfs;
#[path = "abstractions/device.rs"]
mod device;
#[path = "abstractions/mei_cl.rs"]
mod mei_cl;
#[path = "abstractions/param.rs"]
mod param;
/// The wire format and the state machine.
#[path = "mei_wdt_proto.rs"]
pub mod proto;
#[path = "abstractions/watchdog.rs"]
mod watchdog;
#[path = "abstractions/work.rs"]
mod work;

use completion::{Completion, WaitResult};
use core::fmt::Write;
use core::pin::Pin;
use device::{code, dev_err, dev_err_ratelimited, dev_warn, dev_warn_ratelimited, RateLimit};
use kernel::alloc::KBox;
use kernel::prelude::*;
use kernel::sync::{Arc, Mutex};
use kernel::types::ARef;
use kernel::{c_str, new_mutex};
use proto::{Machine, NotifAction, PingAction, ProbeAction, Response, RxAction, StopAction};

module! {
    type: MeiWdtModule,
    name: "mei_wdt",
    author: "mei_wdt-rs developers",
    description: "Intel MEI iAMT Watchdog Driver",
    license: "GPL",
    alias: ["mei:*:05b79a6f-4628-4d7f-899d-a91514cb32ab:*:*"],
}

// Named as userspace sees it (`ping_timeout_ms=` at load, sysfs).
#[allow(non_upper_case_globals)]
mod params {
    crate::param::module_param_uint!(
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

/// Identity reported to userspace, as the C driver's `INTEL_AMT_WATCHDOG_ID`.
const IDENTITY: &str = "iamt_wdt";

/// AMT watchdog client GUID 05B79A6F-4628-4D7F-899D-A91514CB32AB, in the
/// `uuid_le` byte order of the MEI bus.
const WDT_UUID: [u8; 16] = [
    0x6f, 0x9a, 0xb7, 0x05, 0x28, 0x46, 0x7f, 0x4d, 0x89, 0x9d, 0xa9, 0x15, 0x14, 0xcb, 0x32, 0xab,
];

/// Room for a response longer than a start response, to notice one.
const RECV_LEN: usize = 16;

static DEBUGFS: debugfs::Root = debugfs::Root::new();

/// State behind the state lock.
struct Inner {
    machine: Machine,
    /// Timeout sent with every ping, seconds.
    timeout: u16,
    /// Set by remove: nothing registers any more, pings fail.
    removing: bool,
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
    /// The registered watchdog device; this lock orders registration and
    /// unregistration (as the C driver's `reg_lock`) and is never taken by
    /// the watchdog operations, which run under the core's lock.
    #[pin]
    registration: Mutex<Option<Pin<KBox<watchdog::Registration<Wdt>>>>>,
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
    log_limit: RateLimit,
}

impl Wdt {
    fn dev(&self) -> &device::Device {
        self.cldev.dev()
    }

    fn send(&self, msg: &[u8]) -> Result {
        let _one_at_a_time = self.send_lock.lock();
        self.cldev.send(msg, bound_ms()).map(|_| ())
    }

    /// Sends a start (ping) request with the current timeout.
    fn send_ping(&self, timeout: u16) -> Result {
        self.send(&proto::encode_start(timeout)).inspect_err(|e| {
            dev_err_ratelimited!(
                self.log_limit,
                self.dev(),
                "ping send failed: {}\n",
                e.to_errno()
            );
        })
    }

    fn send_stop(&self) -> Result {
        self.send(&proto::encode_stop()).inspect_err(|e| {
            dev_err_ratelimited!(
                self.log_limit,
                self.dev(),
                "stop send failed: {}\n",
                e.to_errno()
            );
        })
    }

    /// Registers the watchdog device unless it is, or the device is going
    /// away (C `mei_wdt_register`).
    fn register(this: &Arc<Wdt>) {
        let mut reg = this.registration.lock();
        if reg.is_some() || this.inner.lock().removing {
            return;
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
        };
        match watchdog::Registration::new(this.dev(), &info, this.clone(), &THIS_MODULE) {
            Ok(r) => *reg = Some(r),
            Err(e) => dev_err!(
                this.dev(),
                "unable to register watchdog device: {}\n",
                e.to_errno()
            ),
        }
        // As in C, IDLE whether or not the registration worked.
        this.inner.lock().machine.registered();
    }

    /// Unregisters the watchdog device, if registered. Must not run under
    /// the watchdog core's lock (from an operation).
    fn unregister(&self) {
        let reg = self.registration.lock().take();
        drop(reg);
        self.inner.lock().machine.unregistered();
    }

    fn show_state(&self, w: &mut dyn Write) -> core::fmt::Result {
        writeln!(w, "state: {}", self.inner.lock().machine.state().as_str())
    }

    fn show_activation(&self, w: &mut dyn Write) -> core::fmt::Result {
        let activated = self.registration.lock().is_some();
        writeln!(
            w,
            "{}",
            if activated {
                "activated"
            } else {
                "deactivated"
            }
        )
    }
}

#[vtable]
impl watchdog::Operations for Wdt {
    fn start(&self, wdd: &watchdog::Device) -> Result {
        let mut inner = self.inner.lock();
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

    fn ping(&self, _wdd: &watchdog::Device) -> Result {
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
                        self.response.reinit();
                    }
                    (wait, inner.timeout)
                }
            }
        };
        self.send_ping(timeout)?;
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
                dev_err_ratelimited!(
                    self.log_limit,
                    self.dev(),
                    "no ping response from the firmware in {} ms\n",
                    bound
                );
                Err(code::etimedout())
            }
            WaitResult::Killed => Err(ERESTARTSYS),
        }
    }

    fn set_timeout(&self, wdd: &watchdog::Device, timeout: u32) -> Result {
        // The core checked the range already; the wire field is 16 bits.
        let t = proto::wire_timeout(timeout).ok_or(EINVAL)?;
        self.inner.lock().timeout = t;
        wdd.set_timeout(timeout);
        Ok(())
    }
}

/// Per client device: the watchdog, its deferred unregistration and its
/// debugfs files.
#[pin_data]
struct MeiWdt {
    wdt: Arc<Wdt>,
    /// Unregisters when the firmware says NOT_REQUIRED while running: the
    /// watchdog core's lock is held by the waiting ping then.
    #[pin]
    unregister_work: work::Work<MeiWdt>,
    _debugfs: debugfs::Files<Wdt>,
}

work::impl_work_handler!(MeiWdt, unregister_work, run_unregister);

impl MeiWdt {
    fn run_unregister(&self) {
        self.wdt.unregister();
    }
}

impl mei_cl::Driver for MeiWdt {
    const NAME: &'static CStr = c_str!("mei_wdt");
    const ID_TABLE: &'static [mei_cl::DeviceId] = &[mei_cl::DeviceId {
        uuid: WDT_UUID,
        version: mei_cl::DeviceId::VERSION_ANY,
    }];

    fn probe(dev: &mei_cl::Device) -> impl PinInit<Self, Error> {
        let wdt = Arc::pin_init(
            pin_init!(Wdt {
                cldev: dev.get(),
                inner <- new_mutex!(Inner {
                    machine: Machine::new(dev.version()),
                    timeout: proto::DEFAULT_TIMEOUT,
                    removing: false,
                    response_error: None,
                }),
                registration <- new_mutex!(None),
                response <- Completion::new(),
                send_lock <- new_mutex!(()),
                log_limit: RateLimit::new(),
            }),
            GFP_KERNEL,
        );
        let files = wdt.as_ref().map_err(|e| *e).and_then(|w| {
            debugfs::Files::new(
                dev.dev().name(),
                &DEBUGFS,
                w.clone(),
                &[
                    (c_str!("state"), Wdt::show_state),
                    (c_str!("activation"), Wdt::show_activation),
                ],
                &THIS_MODULE,
            )
        });
        try_pin_init!(MeiWdt {
            wdt: wdt?,
            unregister_work <- work::Work::new(),
            _debugfs: files?,
        }? Error)
    }

    fn start(self: Pin<&Self>, dev: &mei_cl::Device) -> Result {
        let wdt = &self.wdt;
        dev.enable().inspect_err(|e| {
            dev_err!(dev.dev(), "Could not enable cl device: {}\n", e.to_errno())
        })?;
        let res = (|| {
            dev.register_rx::<Self>().inspect_err(|e| {
                dev_err!(dev.dev(), "Could not reg rx event: {}\n", e.to_errno())
            })?;
            // Notification is optional.
            match dev.register_notify::<Self>() {
                Err(e) if e != code::eopnotsupp() => {
                    dev_err!(dev.dev(), "Could not reg notif event: {}\n", e.to_errno());
                    return Err(e);
                }
                _ => {}
            }
            let action = {
                let mut inner = wdt.inner.lock();
                let action = inner.machine.probe();
                if action == ProbeAction::Ping {
                    inner.response_error = None;
                    wdt.response.reinit();
                }
                action
            };
            match action {
                ProbeAction::Register => Wdt::register(wdt),
                ProbeAction::Ping => {
                    // EFAULT: the MEI core saw the client's write state
                    // change while the send waited for its completion. The
                    // message may well have gone out (seen on SMP, with the
                    // firmware's answer arriving), so the answer decides.
                    let sent = wdt.send(&proto::encode_start(proto::DEFAULT_TIMEOUT));
                    let bound = bound_ms();
                    let wait = match sent {
                        Err(e) if e != EFAULT => Err(e),
                        _ => Ok(wdt.response.wait_killable_timeout(bound)),
                    };
                    match (wait, sent) {
                        (Ok(WaitResult::Completed), _) => {}
                        (Ok(wait), Ok(())) => self.probe_unanswered(wait, bound),
                        (Err(e), _) | (Ok(_), Err(e)) => {
                            dev_err!(dev.dev(), "probe ping send failed: {}\n", e.to_errno());
                            return Err(e);
                        }
                    }
                }
            }
            Ok(())
        })();
        if res.is_err() {
            let _ = dev.disable();
        }
        res
    }

    fn remove(self: Pin<&Self>, dev: &mei_cl::Device) {
        let wdt = &self.wdt;
        wdt.inner.lock().removing = true;
        // Free a ping waiting on a firmware that will not answer now.
        wdt.response.complete();
        self.unregister_work.cancel_sync();
        wdt.unregister();
        let _ = dev.disable();
    }

    fn rx(self: Pin<&Self>, dev: &mei_cl::Device) {
        let wdt = &self.wdt;
        let mut buf = [0u8; RECV_LEN];
        let len = match dev.recv(&mut buf) {
            Ok(len) => len,
            Err(e) => {
                dev_err_ratelimited!(
                    wdt.log_limit,
                    dev.dev(),
                    "failure in recv {}\n",
                    e.to_errno()
                );
                return;
            }
        };
        let msg = if len > proto::START_RES_LEN {
            // Extra bytes: the C driver reads only a start response's worth.
            dev_warn_ratelimited!(
                wdt.log_limit,
                dev.dev(),
                "oversize response ({} bytes), using the first {}\n",
                len,
                proto::START_RES_LEN
            );
            &buf[..proto::START_RES_LEN]
        } else {
            &buf[..len]
        };
        let response = match proto::decode_response(msg) {
            Ok(r) => r,
            Err(e) => {
                dev_err_ratelimited!(wdt.log_limit, dev.dev(), "bad response: {}\n", e);
                // Fail the waiting ping now instead of at its bound.
                let mut inner = wdt.inner.lock();
                if inner.machine.resp_required() {
                    inner.response_error = Some(code::eproto());
                    wdt.response.complete();
                }
                return;
            }
        };
        if let Response::Start { status, .. } = response {
            if status != proto::STATUS_SUCCESS {
                dev_err_ratelimited!(wdt.log_limit, dev.dev(), "firmware status {}\n", status);
            }
        }
        let (action, state) = {
            let mut inner = wdt.inner.lock();
            let state = inner.machine.state();
            (inner.machine.response(&response), state)
        };
        match action {
            RxAction::Ignore => return,
            RxAction::Complete => {}
            RxAction::UnregisterLater => self.unregister_work.queue(),
            RxAction::StopAndRegister => {
                let _ = wdt.send_stop();
                Wdt::register(wdt);
            }
            RxAction::WrongState => {
                dev_warn!(
                    dev.dev(),
                    "not in correct state {}[{}]\n",
                    state.as_str(),
                    state as u32
                );
            }
        }
        // Every action but Ignore: the ping or the probe waits for this.
        wdt.response.complete();
    }

    fn notify(self: Pin<&Self>, _dev: &mei_cl::Device) {
        let action = self.wdt.inner.lock().machine.notification();
        if action == NotifAction::Register {
            Wdt::register(&self.wdt);
        }
    }
}

impl MeiWdt {
    /// The probe ping got no answer within `bound` ms: say so instead of
    /// leaving the device silently absent; a late answer or a notification
    /// registers it.
    fn probe_unanswered(&self, wait: WaitResult, bound: u32) {
        let why = match wait {
            WaitResult::Killed => "killed while waiting for the probe ping's response, at most",
            _ => "no response to the probe ping in",
        };
        self.wdt.inner.lock().machine.probe_timed_out();
        dev_err!(
            self.wdt.dev(),
            "{} {} ms: watchdog not registered until the firmware answers, the ME notifies or the device is rebound\n",
            why,
            bound
        );
    }
}

struct MeiWdtModule {
    driver: Option<Pin<KBox<mei_cl::Registration<MeiWdt>>>>,
}

impl kernel::Module for MeiWdtModule {
    fn init(module: &'static ThisModule) -> Result<Self> {
        DEBUGFS.create(c_str!("mei_wdt"));
        match mei_cl::Registration::new(module) {
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
