// SPDX-License-Identifier: GPL-2.0

//! Interleaving exploration of the driver's concurrent actors.
//!
//! A model of `mei_wdt.rs` built over the real [`Machine`]: the driver's
//! state lock (`inner`), registration lock, send lock and response
//! completion, the unregister work, the watchdog core's per-device lock,
//! and the firmware. Each actor runs a short program, split into steps at
//! the points where the driver can block or where another actor can run
//! in between (every `inner` critical section is one step: nothing in the
//! driver blocks under it). [`explore`] visits every reachable state of
//! every interleaving, depth first with a visited set, and checks the
//! invariants on the way:
//!
//! - no hang: while any actor is unfinished, some actor can move;
//! - no lost wakeup: a waiter whose answer came is woken before its bound;
//! - no stale ping: the firmware never gets a ping that was decided before
//!   the last stop it got (it would re-arm a stopped timer);
//! - a running watchdog is stopped before it is unregistered;
//! - nothing registers, and the unregister work does not run, after
//!   remove; remove leaves nothing registered;
//! - at the end, the state agrees with the registration.
//!
//! Time: a bounded wait runs out only when the driver can make no other
//! step (the bounds are seconds; the driver's steps are microseconds).
//! What comes from outside (a process's call, a notification, an
//! unsolicited message, unbind) can come at any time, before or after.
//!
//! The programs are bounded (so many pings, notifications, answers), so the
//! search is exhaustive; [`MAX_DEPTH`] catches a model that would loop.

extern crate std;

use crate::proto::*;
use std::collections::HashSet;
use std::format;
use std::string::String;
use std::vec;
use std::vec::Vec;

/// Longest path the search accepts; the programs below stay far under it.
const MAX_DEPTH: usize = 200;

/// What the firmware does with a start (ping) request (protocol v2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Answer {
    /// Answers, watchdog required.
    Ok,
    /// Answers NOT_REQUIRED (and stops caring about the timer).
    NotRequired,
    /// Never answers (but starts its timer, as on every start request).
    Silent,
    /// Acts on it, answers only after the waiter's bound ran out.
    Late,
    /// Acts on it, answers with a message that does not decode.
    Malformed,
}

/// A message from the firmware to the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Msg {
    /// A start response.
    Start { not_required: bool },
    /// A message that does not decode (or a failed receive).
    Malformed,
}

/// A deliberately broken driver, to show that the invariants can fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Variant {
    /// The driver as it is.
    Driver,
    /// Waits for an answer without a bound, as the C driver does.
    UnboundedWait,
    /// rx queues the unregister work without looking at `removing`.
    QueueWorkWhileRemoving,
    /// Sends a ping without checking, under the send lock, that the state
    /// still wants it.
    PingWithoutRecheck,
    /// Does not tell the machine that the device is being unregistered.
    KeepaliveWhileUnregistering,
    /// Sends no stop when the probe gives up on its ping.
    NoStopAfterUnansweredProbe,
    /// rx does not complete the wait on an answer in the wrong state.
    NoWakeInWrongState,
    /// The unregister work unregisters even when a notification asked for
    /// the device again (as C does).
    UnregisterEvenIfNotDue,
    /// Registration does not look at `removing`.
    RegisterWhileRemoving,
    /// No ping reaches the firmware.
    PingsNeverSent,
}

/// One exploration: the actors and what the firmware may do.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) variant: Variant,
    pub(crate) protocol_version: u8,
    /// Answers the probe's ping may get.
    pub(crate) probe_answers: Vec<Answer>,
    /// Answers every other ping may get.
    pub(crate) ping_answers: Vec<Answer>,
    /// Keepalives each opener sends between open and close.
    pub(crate) pings: u8,
    /// Processes that open, ping and close the device.
    pub(crate) openers: u8,
    /// ME notifications, at any time while bound.
    pub(crate) notifications: u8,
    /// Start answers the firmware sends unasked, at any time. Such a
    /// firmware can make the driver take one for the answer to a ping it
    /// then answers too, and believe the timer stopped when it is not:
    /// with them, the firmware's timer is not checked.
    pub(crate) unsolicited: u8,
    /// Some of them say NOT_REQUIRED.
    pub(crate) unsolicited_not_required: bool,
    /// The core stops the device without its lock, once, at any time
    /// (the watchdog abstraction allows it: reboot).
    pub(crate) unlocked_stop: bool,
    /// The device is unbound once the probe has returned.
    pub(crate) remove: bool,
    /// Start requests the firmware must have got at every end.
    pub(crate) starts: Option<u8>,
}

/// Figures of one exploration.
#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) states: usize,
    pub(crate) transitions: usize,
    pub(crate) ends: usize,
    pub(crate) longest: usize,
    /// The first invariant that failed, with the steps that led there.
    pub(crate) violation: Option<(String, Vec<String>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Res {
    Ok,
    Enodev,
    Etimedout,
    Eproto,
}

/// The routines of the actors' programs; the top-level ones first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Routine {
    /// `MeiWdt::start` (probe after enable).
    Probe,
    /// A process: open, `pings` keepalives, close.
    Opener,
    /// The MEI bus's rx work: `MeiWdt::rx` for each message.
    Rx,
    /// The MEI bus's notification work: `MeiWdt::notify`.
    Notify,
    /// The unregister work: `Wdt::run_unregister`.
    Work,
    /// Unbind: `Wdt::shut_down`, then the bus drops the callbacks.
    Remove,
    /// The core's stop without its lock.
    UnlockedStop,
    /// The firmware sending answers nobody asked for.
    Unsolicited,
    /// Watchdog op `ping`.
    Ping,
    /// Watchdog op `stop`.
    Stop,
    /// `Wdt::register`.
    Register,
    /// `Wdt::unregister(if_due)`.
    Unregister,
    /// The core's `watchdog_unregister_device` of the device registered
    /// as generation `a`.
    CoreUnregister,
    /// `Wdt::send` of a start request; `a`: the stop count when the ping
    /// was decided.
    SendStart,
    /// `Wdt::send` of a stop request; `a`: 1 from op stop.
    SendStop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Frame {
    routine: Routine,
    pc: u8,
    /// Locals, per routine.
    a: u8,
    b: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Actor {
    stack: Vec<Frame>,
    /// The return value of the last routine that returned.
    ret: Option<Res>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Lock {
    Reg,
    Send,
    /// The core's lock of registration generation `n`.
    Core(u8),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct World {
    m: Machine,
    removing: bool,
    response_error: bool,
    /// The response completion is done.
    done: bool,
    /// A message came (rx took it) since the current wait began.
    answered: bool,
    /// Held locks and their holders (actor index).
    locks: Vec<(Lock, u8)>,
    /// The registered device's generation, while the core knows it.
    registered: Option<u8>,
    /// The device node exists (new opens work).
    visible: bool,
    next_gen: u8,
    /// `WDOG_ACTIVE`: opened and started, not stopped, on the registered
    /// device.
    active: bool,
    /// The unregister work: queued, running.
    work_queued: bool,
    work_running: bool,
    /// Messages from the firmware not yet taken by rx.
    rx_queue: Vec<Msg>,
    /// An answer held back until the waiter's bound runs out.
    late: Option<Msg>,
    /// The firmware's timer is armed.
    fw_armed: bool,
    /// The firmware needs the OS watchdog: it says NOT_REQUIRED until the
    /// ME notifies.
    fw_required: bool,
    /// Start requests the firmware got.
    starts: u8,
    /// Stops of the watchdog (op stop) the firmware got; not the probe's
    /// or rx's, which stop a timer no ping of the device armed.
    stops: u8,
    /// The bus has dropped the callbacks: remove is over.
    removed: bool,
    actors: Vec<Actor>,
}

struct Model<'a> {
    cfg: &'a Config,
}

type Step = (World, String);

impl World {
    fn new(cfg: &Config) -> World {
        let mut actors = vec![
            Actor::top(Routine::Probe),
            Actor::top(Routine::Rx),
            Actor::top(Routine::Work),
        ];
        if cfg.notifications > 0 {
            actors.push(Actor::top_with(Routine::Notify, cfg.notifications));
        }
        for _ in 0..cfg.openers {
            actors.push(Actor::top(Routine::Opener));
        }
        if cfg.remove {
            actors.push(Actor::top(Routine::Remove));
        }
        if cfg.unlocked_stop {
            actors.push(Actor::top(Routine::UnlockedStop));
        }
        if cfg.unsolicited > 0 {
            actors.push(Actor::top_with(Routine::Unsolicited, cfg.unsolicited));
        }
        World {
            m: Machine::new(cfg.protocol_version),
            removing: false,
            response_error: false,
            done: false,
            answered: false,
            locks: Vec::new(),
            registered: None,
            visible: false,
            next_gen: 0,
            active: false,
            work_queued: false,
            work_running: false,
            rx_queue: Vec::new(),
            late: None,
            fw_armed: false,
            fw_required: true,
            starts: 0,
            stops: 0,
            removed: false,
            actors,
        }
    }

    fn holder(&self, l: Lock) -> Option<u8> {
        self.locks.iter().find(|(k, _)| *k == l).map(|(_, h)| *h)
    }

    /// Takes `l` for actor `i`, or says it must wait.
    fn lock(&mut self, l: Lock, i: usize) -> bool {
        match self.holder(l) {
            Some(h) => {
                assert_ne!(h as usize, i, "model: {l:?} taken twice");
                false
            }
            None => {
                self.locks.push((l, i as u8));
                self.locks.sort();
                true
            }
        }
    }

    fn unlock(&mut self, l: Lock, i: usize) {
        let before = self.locks.len();
        self.locks.retain(|(k, h)| !(*k == l && *h as usize == i));
        assert_eq!(before, self.locks.len() + 1, "model: {l:?} not held");
    }

    fn probe_over(&self) -> bool {
        self.actors[0].stack.is_empty()
    }
}

impl Frame {
    /// The step starts something from outside the driver (a process, the
    /// ME, the bus), which may come at any time, also after a bound ran
    /// out.
    fn comes_from_outside(&self) -> bool {
        matches!(
            (self.routine, self.pc),
            (Routine::Notify, 0)
                | (Routine::Unsolicited, 0)
                | (Routine::Opener, 0)
                | (Routine::Opener, 1)
                | (Routine::Remove, 0)
                | (Routine::UnlockedStop, 0)
        )
    }
}

impl Actor {
    /// At the top of its program's loop (a server waiting for input).
    fn idle(&self) -> bool {
        self.stack.len() == 1 && self.stack[0].pc == 0
    }

    fn top(routine: Routine) -> Actor {
        Actor::top_with(routine, 0)
    }

    fn top_with(routine: Routine, a: u8) -> Actor {
        Actor {
            stack: vec![Frame {
                routine,
                pc: 0,
                a,
                b: 0,
            }],
            ret: None,
        }
    }
}

/// The result of one step of actor `i`'s top frame.
enum Next {
    /// Cannot move now (waits for a lock, a message, a completion).
    Blocked,
    /// Moves to these states, each with a label.
    To(Vec<Step>),
    /// An invariant failed.
    Violation(String),
    /// A bound runs out (taken only when the driver can make no other
    /// step), with the invariant that fails if it is taken.
    Bound(World, String, Option<String>),
}

impl Model<'_> {
    fn answer_start(&self, w: &mut World, probe: bool) -> Vec<World> {
        if w.m.resp_required() {
            let answers = if probe {
                &self.cfg.probe_answers
            } else {
                &self.cfg.ping_answers
            };
            if !w.fw_required {
                w.rx_queue.push(Msg::Start { not_required: true });
                return vec![w.clone()];
            }
            answers
                .iter()
                .map(|a| {
                    let mut n = w.clone();
                    match a {
                        Answer::Ok => {
                            n.fw_armed = true;
                            n.rx_queue.push(Msg::Start {
                                not_required: false,
                            });
                        }
                        Answer::NotRequired => {
                            n.fw_armed = false;
                            n.fw_required = false;
                            n.rx_queue.push(Msg::Start { not_required: true });
                        }
                        // The stub arms its timer on every start request.
                        Answer::Silent => n.fw_armed = true,
                        Answer::Late => {
                            n.fw_armed = true;
                            n.late = Some(Msg::Start {
                                not_required: false,
                            });
                        }
                        Answer::Malformed => {
                            n.fw_armed = true;
                            n.rx_queue.push(Msg::Malformed);
                        }
                    }
                    n
                })
                .collect()
        } else {
            w.fw_armed = true;
            vec![w.clone()]
        }
    }

    /// One step of actor `i`.
    fn step(&self, w: &World, i: usize) -> Next {
        let Some(&f) = w.actors[i].stack.last() else {
            return Next::Blocked;
        };
        let mut n = w.clone();
        let label = format!("{i}:{:?}.{}", f.routine, f.pc);
        macro_rules! top {
            () => {
                n.actors[i].stack.last_mut().unwrap()
            };
        }
        macro_rules! goto {
            ($pc:expr) => {{
                top!().pc = $pc;
            }};
        }
        macro_rules! call {
            ($r:expr, $a:expr, $ret_pc:expr) => {{
                top!().pc = $ret_pc;
                n.actors[i].stack.push(Frame {
                    routine: $r,
                    pc: 0,
                    a: $a,
                    b: 0,
                });
            }};
        }
        macro_rules! ret {
            ($v:expr) => {{
                n.actors[i].stack.pop();
                n.actors[i].ret = $v;
            }};
        }
        macro_rules! lock_or_block {
            ($l:expr) => {
                if !n.lock($l, i) {
                    return Next::Blocked;
                }
            };
        }
        let one = |n: World| Next::To(vec![(n, label.clone())]);
        match (f.routine, f.pc) {
            // ---- MeiWdt::start: enable, callbacks, probe ----
            (Routine::Probe, 0) => {
                if n.m.probe() == ProbeAction::Register {
                    call!(Routine::Register, 0, 9);
                } else {
                    n.response_error = false;
                    n.done = false;
                    n.answered = false;
                    call!(Routine::SendStart, u8::MAX, 1);
                }
                one(n)
            }
            (Routine::Probe, 1) => {
                if n.done {
                    goto!(2);
                    return one(n);
                }
                let failed = bound_runs_out(&mut n, &label);
                goto!(3);
                Next::Bound(n, format!("{label} (bound ran out)"), failed)
            }
            (Routine::Probe, 2) => {
                if core::mem::take(&mut n.response_error) {
                    goto!(3);
                } else {
                    ret!(None);
                }
                one(n)
            }
            (Routine::Probe, 3) => {
                // MeiWdt::probe_unanswered
                if n.m.probe_timed_out() && self.cfg.variant != Variant::NoStopAfterUnansweredProbe
                {
                    call!(Routine::SendStop, 0, 9);
                } else {
                    ret!(None);
                }
                one(n)
            }
            (Routine::Probe, 9) => {
                ret!(None);
                one(n)
            }

            // ---- a process with the device open ----
            (Routine::Opener, 0) => {
                // open(): the device node must exist.
                let (Some(g), true) = (n.registered, n.visible) else {
                    // No device (yet): the process waits for one, and
                    // gives up when nothing else can happen.
                    ret!(None);
                    return Next::Bound(n, format!("{label} (no device)"), None);
                };
                if n.active {
                    // Another opener has it: EBUSY.
                    ret!(None);
                    return one(n);
                }
                top!().a = g;
                top!().b = self.cfg.pings;
                goto!(4);
                one(n)
            }
            (Routine::Opener, 4) => {
                // watchdog_start() from open, without the core's lock: it
                // may come after the unregistration's check for an active
                // device, while the core still passes on keepalives.
                if n.registered != Some(f.a) {
                    ret!(None);
                    return one(n);
                }
                n.m.op_start();
                n.active = true;
                goto!(1);
                one(n)
            }
            (Routine::Opener, 1) => {
                let g = f.a;
                lock_or_block!(Lock::Core(g));
                if n.registered != Some(g) {
                    // The core forgot the device: ENODEV, no op called.
                    n.unlock(Lock::Core(g), i);
                    ret!(None);
                    return one(n);
                }
                // watchdog_ping() and watchdog_stop() call no op on a device
                // the core has stopped.
                if f.b > 0 {
                    top!().b -= 1;
                    if n.active {
                        call!(Routine::Ping, 0, 2);
                    } else {
                        goto!(2);
                    }
                } else if n.active {
                    call!(Routine::Stop, 0, 3);
                } else {
                    goto!(3);
                }
                one(n)
            }
            (Routine::Opener, 2) => {
                n.unlock(Lock::Core(f.a), i);
                goto!(1);
                one(n)
            }
            (Routine::Opener, 3) => {
                if n.actors[i].ret == Some(Res::Ok) && n.registered == Some(f.a) {
                    n.active = false;
                }
                n.unlock(Lock::Core(f.a), i);
                ret!(None);
                one(n)
            }

            // ---- watchdog op ping ----
            (Routine::Ping, 0) => {
                if n.removing {
                    ret!(Some(Res::Enodev));
                    return one(n);
                }
                match n.m.op_ping() {
                    PingAction::Nothing => ret!(Some(Res::Ok)),
                    PingAction::Send { wait } => {
                        if wait {
                            n.response_error = false;
                            n.done = false;
                            n.answered = false;
                        }
                        top!().a = wait as u8;
                        let stops = n.stops;
                        call!(Routine::SendStart, stops, 1);
                    }
                }
                one(n)
            }
            (Routine::Ping, 1) => {
                if n.actors[i].ret == Some(Res::Enodev) {
                    // Not sent: stopped meanwhile.
                    let r = if n.removing { Res::Enodev } else { Res::Ok };
                    ret!(Some(r));
                    return one(n);
                }
                if f.a == 0 {
                    ret!(Some(Res::Ok));
                    return one(n);
                }
                if n.done {
                    goto!(2);
                    return one(n);
                }
                if self.cfg.variant == Variant::UnboundedWait {
                    return Next::Blocked;
                }
                let failed = bound_runs_out(&mut n, &label);
                ret!(Some(Res::Etimedout));
                Next::Bound(n, format!("{label} (bound ran out)"), failed)
            }
            (Routine::Ping, 2) => {
                let r = if n.removing {
                    Res::Enodev
                } else if core::mem::take(&mut n.response_error) {
                    Res::Eproto
                } else {
                    Res::Ok
                };
                ret!(Some(r));
                one(n)
            }

            // ---- watchdog op stop ----
            (Routine::Stop, 0) => {
                match n.m.op_stop() {
                    StopAction::Nothing => ret!(Some(Res::Ok)),
                    StopAction::SendStop => call!(Routine::SendStop, 1, 1),
                }
                one(n)
            }
            (Routine::Stop, 1) => {
                n.m.stop_sent(true);
                ret!(Some(Res::Ok));
                one(n)
            }

            // ---- Wdt::send ----
            (Routine::SendStart, 0) | (Routine::SendStop, 0) => {
                lock_or_block!(Lock::Send);
                goto!(1);
                one(n)
            }
            (Routine::SendStart, 1) => {
                let probe = f.a == u8::MAX;
                let wanted = probe
                    || (self.cfg.variant == Variant::PingWithoutRecheck || n.m.ping_still_wanted())
                        && self.cfg.variant != Variant::PingsNeverSent;
                n.unlock(Lock::Send, i);
                ret!(Some(if wanted { Res::Ok } else { Res::Enodev }));
                if !wanted {
                    return one(n);
                }
                if !probe && f.a != n.stops {
                    return Next::Violation(format!(
                        "stale ping: decided before stop {}, sent after it",
                        n.stops
                    ));
                }
                n.starts = n.starts.saturating_add(1);
                let outs = self.answer_start(&mut n, probe);
                Next::To(outs.into_iter().map(|o| (o, label.clone())).collect())
            }
            (Routine::SendStop, 1) => {
                n.fw_armed = false;
                if f.a == 1 {
                    n.stops = n.stops.saturating_add(1);
                }
                n.unlock(Lock::Send, i);
                ret!(None);
                one(n)
            }

            // ---- Wdt::register ----
            (Routine::Register, 0) => {
                lock_or_block!(Lock::Reg);
                let removing = n.removing && self.cfg.variant != Variant::RegisterWhileRemoving;
                if n.registered.is_some() || removing {
                    n.unlock(Lock::Reg, i);
                    ret!(None);
                } else {
                    n.m.registering();
                    goto!(1);
                }
                one(n)
            }
            (Routine::Register, 1) => {
                if n.removed {
                    return Next::Violation("registered after remove".into());
                }
                n.registered = Some(n.next_gen);
                n.visible = true;
                n.active = false;
                n.next_gen += 1;
                n.unlock(Lock::Reg, i);
                ret!(None);
                one(n)
            }

            // ---- Wdt::unregister(if_due) ----
            (Routine::Unregister, 0) => {
                lock_or_block!(Lock::Reg);
                let due =
                    n.m.unregister_due() || self.cfg.variant == Variant::UnregisterEvenIfNotDue;
                if f.a == 1 && !due {
                    n.unlock(Lock::Reg, i);
                    ret!(None);
                    return one(n);
                }
                match n.registered {
                    Some(g) => {
                        if self.cfg.variant != Variant::KeepaliveWhileUnregistering {
                            n.m.unregistering();
                        }
                        n.visible = false;
                        call!(Routine::CoreUnregister, g, 1);
                    }
                    None => goto!(1),
                }
                one(n)
            }
            (Routine::Unregister, 1) => {
                n.m.unregistered();
                n.unlock(Lock::Reg, i);
                ret!(None);
                one(n)
            }

            // ---- watchdog_unregister_device ----
            (Routine::CoreUnregister, 0) => {
                // stop_on_unregister: without the core's lock, after the
                // device node is gone. The core clears its running bits
                // first, so later keepalives and a close call no op.
                if n.active {
                    n.active = false;
                    call!(Routine::Stop, f.a, 1);
                } else {
                    goto!(1);
                }
                one(n)
            }
            (Routine::CoreUnregister, 1) => {
                lock_or_block!(Lock::Core(f.a));
                // A stop on its way (another actor's) counts as sent.
                let stop_on_its_way = n
                    .actors
                    .iter()
                    .any(|a| a.stack.iter().any(|f| f.routine == Routine::SendStop));
                if n.fw_armed && !stop_on_its_way && self.cfg.unsolicited == 0 {
                    return Next::Violation(format!(
                        "unregistered with the firmware's timer armed (state {})",
                        n.m.state()
                    ));
                }
                n.registered = None;
                n.active = false;
                n.unlock(Lock::Core(f.a), i);
                ret!(None);
                one(n)
            }

            // ---- MeiWdt::rx ----
            (Routine::Rx, 0) => {
                if n.rx_queue.is_empty() {
                    if n.removed {
                        ret!(None);
                        return one(n);
                    }
                    return Next::Blocked;
                }
                n.answered = true;
                let not_required = match n.rx_queue.remove(0) {
                    Msg::Start { not_required } => not_required,
                    Msg::Malformed => {
                        // Wdt::fail_waiting_ping
                        if n.m.resp_required() {
                            n.response_error = true;
                            n.done = true;
                        }
                        return one(n);
                    }
                };
                let action = n.m.response(&Response::Start {
                    status: STATUS_SUCCESS,
                    not_required,
                });
                top!().a = match action {
                    RxAction::Ignore => 0,
                    RxAction::Complete => 1,
                    RxAction::UnregisterLater => 2,
                    RxAction::StopAndRegister => 3,
                    RxAction::WrongState => 4,
                };
                goto!(if action == RxAction::Ignore { 0 } else { 1 });
                one(n)
            }
            (Routine::Rx, 1) => {
                if !(f.a == 4 && self.cfg.variant == Variant::NoWakeInWrongState) {
                    n.done = true;
                }
                match f.a {
                    2 => goto!(2),
                    3 => call!(Routine::SendStop, 0, 3),
                    _ => goto!(0),
                }
                one(n)
            }
            (Routine::Rx, 2) => {
                if !n.removing || self.cfg.variant == Variant::QueueWorkWhileRemoving {
                    n.work_queued = true;
                }
                goto!(0);
                one(n)
            }
            (Routine::Rx, 3) => {
                call!(Routine::Register, 0, 0);
                one(n)
            }

            // ---- MeiWdt::notify ----
            (Routine::Notify, 0) => {
                if f.a == 0 || n.removed {
                    ret!(None);
                    return one(n);
                }
                top!().a -= 1;
                n.fw_required = true;
                if n.m.notification() == NotifAction::Register {
                    call!(Routine::Register, 0, 0);
                }
                one(n)
            }

            // ---- the unregister work ----
            (Routine::Work, 0) => {
                if n.removed && !n.work_queued {
                    ret!(None);
                    return one(n);
                }
                if !n.work_queued {
                    return Next::Blocked;
                }
                if n.removed {
                    return Next::Violation("the unregister work runs after remove".into());
                }
                n.work_queued = false;
                n.work_running = true;
                call!(Routine::Unregister, 1, 1);
                one(n)
            }
            (Routine::Work, 1) => {
                n.work_running = false;
                goto!(0);
                one(n)
            }

            // ---- unbind: Wdt::shut_down, then the bus ----
            (Routine::Remove, 0) => {
                // The bus unbinds only after the probe returned.
                if !n.probe_over() {
                    return Next::Blocked;
                }
                n.removing = true;
                goto!(1);
                one(n)
            }
            (Routine::Remove, 1) => {
                n.done = true;
                goto!(2);
                one(n)
            }
            (Routine::Remove, 2) => {
                // work::cancel_sync
                if n.work_running {
                    return Next::Blocked;
                }
                n.work_queued = false;
                call!(Routine::Unregister, 0, 3);
                one(n)
            }
            (Routine::Remove, 3) => {
                // The bus drops the callbacks: it waits for rx and the
                // notification work in progress.
                let busy = |r: Routine| {
                    n.actors
                        .iter()
                        .any(|a| a.stack.first().is_some_and(|f| f.routine == r) && !a.idle())
                };
                if busy(Routine::Rx) || busy(Routine::Notify) {
                    return Next::Blocked;
                }
                if n.registered.is_some() {
                    return Next::Violation("remove left the device registered".into());
                }
                n.removed = true;
                ret!(None);
                one(n)
            }

            // ---- the core's stop without its lock ----
            (Routine::UnlockedStop, 0) => {
                if !n.active || n.removed {
                    // Only a started device is stopped: wait for one, give
                    // up when nothing else can happen.
                    ret!(None);
                    return Next::Bound(n, format!("{label} (not started)"), None);
                }
                call!(Routine::Stop, 0, 1);
                one(n)
            }
            (Routine::UnlockedStop, 1) => {
                ret!(None);
                one(n)
            }

            // ---- unsolicited answers ----
            (Routine::Unsolicited, 0) => {
                if f.a == 0 || n.removed {
                    ret!(None);
                    return one(n);
                }
                top!().a -= 1;
                let mut m = n.clone();
                n.rx_queue.push(Msg::Start {
                    not_required: false,
                });
                if !self.cfg.unsolicited_not_required {
                    return one(n);
                }
                m.rx_queue.push(Msg::Start { not_required: true });
                m.fw_armed = false;
                m.fw_required = false;
                Next::To(vec![(n, label.clone()), (m, label)])
            }
            (r, pc) => panic!("model: no step {r:?}.{pc}"),
        }
    }

    /// The invariants of a state where every actor is done.
    fn check_end(&self, w: &World) -> Result<(), String> {
        if let Some(want) = self.cfg.starts {
            if w.starts != want {
                return Err(format!("{} start requests sent, not {want}", w.starts));
            }
        }
        if w.fw_armed && !w.active && self.cfg.unsolicited == 0 {
            return Err(format!(
                "the firmware's timer runs, and no open device pings it (state {})",
                w.m.state()
            ));
        }
        if self.cfg.remove {
            if w.registered.is_some() {
                return Err("registered after remove".into());
            }
            return Ok(());
        }
        let st = w.m.state();
        let registered_states = [State::Idle, State::Start, State::Running, State::Stopping];
        if w.registered.is_some() != registered_states.contains(&st) {
            return Err(format!(
                "state {st} but {}",
                if w.registered.is_some() {
                    "registered"
                } else {
                    "not registered"
                }
            ));
        }
        Ok(())
    }
}

/// A wait's bound runs out: a late answer is sent now. A message that
/// came since the wait began should have ended it.
fn bound_runs_out(n: &mut World, label: &str) -> Option<String> {
    if let Some(msg) = n.late.take() {
        n.rx_queue.push(msg);
    }
    n.answered
        .then(|| format!("{label}: a message came, but only the bound ended the wait"))
}

impl Model<'_> {
    /// Successors of `w`: every actor's step; the bounds run out only
    /// when nothing else can move.
    fn successors(&self, w: &World) -> Result<Vec<Step>, String> {
        let mut out = Vec::new();
        let mut env = Vec::new();
        let mut timeouts = Vec::new();
        for i in 0..w.actors.len() {
            let outside = w.actors[i]
                .stack
                .last()
                .is_some_and(|f| f.comes_from_outside());
            match self.step(w, i) {
                Next::Blocked => {}
                Next::Violation(v) => return Err(v),
                Next::Bound(n, label, failed) => timeouts.push((n, label, failed)),
                Next::To(v) => {
                    for s in v {
                        if outside {
                            env.push(s);
                        } else {
                            out.push(s);
                        }
                    }
                }
            }
        }
        if out.is_empty() {
            for (n, label, failed) in timeouts {
                if let Some(v) = failed {
                    return Err(v);
                }
                out.push((n, label));
            }
        }
        out.append(&mut env);
        Ok(out)
    }
}

/// Visits every reachable state of `cfg`'s actors.
pub(crate) fn explore(cfg: &Config) -> Report {
    let model = Model { cfg };
    let mut report = Report::default();
    let start = World::new(cfg);
    let mut seen: HashSet<World> = HashSet::new();
    seen.insert(start.clone());
    // Depth-first: the state, its successors, the next one to visit.
    let mut stack: Vec<(World, Vec<Step>, usize)> = Vec::new();
    let mut path: Vec<String> = Vec::new();
    let first = match model.successors(&start) {
        Ok(s) => s,
        Err(v) => {
            report.violation = Some((v, path));
            return report;
        }
    };
    stack.push((start, first, 0));
    report.states = 1;
    while let Some((w, succ, next)) = stack.last_mut() {
        if *next == 0 && succ.is_empty() {
            let all_done = w.actors.iter().all(|a| {
                a.stack.is_empty()
                    || (a.idle() && matches!(a.stack[0].routine, Routine::Rx | Routine::Work))
            });
            let failed = if !all_done {
                Some("hang: no actor can move".into())
            } else {
                model.check_end(w).err()
            };
            if let Some(v) = failed {
                report.violation = Some((v, path.clone()));
                return report;
            }
            report.ends += 1;
        }
        if *next >= succ.len() {
            stack.pop();
            path.pop();
            continue;
        }
        let (n, label) = succ[*next].clone();
        *next += 1;
        report.transitions += 1;
        if !seen.insert(n.clone()) {
            continue;
        }
        report.states += 1;
        path.push(label);
        report.longest = report.longest.max(path.len());
        assert!(
            path.len() <= MAX_DEPTH,
            "model: a path longer than {MAX_DEPTH} steps"
        );
        match model.successors(&n) {
            Ok(s) => stack.push((n, s, 0)),
            Err(v) => {
                report.violation = Some((v, path));
                return report;
            }
        }
    }
    report
}

// ---- the explorations ----

extern crate std as host;
use host::println;

fn base() -> Config {
    Config {
        variant: Variant::Driver,
        protocol_version: 2,
        probe_answers: vec![Answer::Ok],
        ping_answers: vec![
            Answer::Ok,
            Answer::NotRequired,
            Answer::Silent,
            Answer::Late,
            Answer::Malformed,
        ],
        pings: 1,
        openers: 1,
        notifications: 1,
        unsolicited: 0,
        unsolicited_not_required: false,
        unlocked_stop: false,
        remove: true,
        starts: None,
    }
}

/// Explores `cfg`, prints its figures, and returns the violation if any.
fn run(name: &str, cfg: &Config) -> Option<(String, Vec<String>)> {
    let r = explore(cfg);
    println!(
        "{name}: {} states, {} transitions, {} end states, longest path {} steps, {}",
        r.states,
        r.transitions,
        r.ends,
        r.longest,
        match &r.violation {
            None => "no violation".into(),
            Some((v, _)) => format!("violation: {v}"),
        }
    );
    r.violation
}

fn assert_holds(name: &str, cfg: &Config) {
    if let Some((v, path)) = run(name, cfg) {
        panic!("{name}: {v}\n  after: {}", path.join("\n         "));
    }
}

#[test]
fn interleave_probe_v2() {
    let cfg = Config {
        probe_answers: vec![
            Answer::Ok,
            Answer::NotRequired,
            Answer::Silent,
            Answer::Late,
            Answer::Malformed,
        ],
        ping_answers: vec![Answer::Ok, Answer::NotRequired],
        ..base()
    };
    assert_holds("interleave_probe_v2", &cfg);
    assert_holds(
        "interleave_probe_v2 (no remove)",
        &Config {
            remove: false,
            ..cfg
        },
    );
}

#[test]
fn interleave_running_v2() {
    let cfg = Config { pings: 2, ..base() };
    assert_holds("interleave_running_v2", &cfg);
    assert_holds(
        "interleave_running_v2 (no remove)",
        &Config {
            remove: false,
            ..cfg.clone()
        },
    );
    assert_holds(
        "interleave_running_v2 (unlocked stop)",
        &Config {
            unlocked_stop: true,
            pings: 1,
            ..cfg
        },
    );
}

/// Every keepalive of an open device reaches a firmware that answers.
fn pings_go_out() -> Config {
    Config {
        ping_answers: vec![Answer::Ok],
        pings: 2,
        notifications: 0,
        remove: false,
        starts: Some(3),
        ..base()
    }
}

#[test]
fn interleave_pings_go_out() {
    assert_holds("interleave_pings_go_out", &pings_go_out());
}

#[test]
fn interleave_v1() {
    let cfg = Config {
        protocol_version: 1,
        pings: 2,
        unlocked_stop: true,
        ..base()
    };
    assert_holds("interleave_v1", &cfg);
}

#[test]
fn interleave_unsolicited_answers() {
    let cfg = Config {
        ping_answers: vec![Answer::Ok, Answer::Silent],
        unsolicited: 2,
        ..base()
    };
    assert_holds("interleave_unsolicited_answers", &cfg);
    assert_holds(
        "interleave_unsolicited_answers (NOT_REQUIRED too)",
        &Config {
            unsolicited_not_required: true,
            ..cfg
        },
    );
}

/// Each invariant check catches its broken driver.
#[test]
fn interleave_broken_models_fail() {
    let probe = Config {
        probe_answers: vec![Answer::Late],
        ping_answers: vec![Answer::Ok],
        ..base()
    };
    let cases = [
        (
            Variant::UnboundedWait,
            "hang",
            Config {
                remove: false,
                ..base()
            },
        ),
        (
            Variant::QueueWorkWhileRemoving,
            "work runs after remove",
            base(),
        ),
        (
            Variant::UnregisterEvenIfNotDue,
            "but not registered",
            Config {
                pings: 2,
                remove: false,
                ..base()
            },
        ),
        (Variant::RegisterWhileRemoving, "registered", base()),
        (
            Variant::PingsNeverSent,
            "start requests sent",
            pings_go_out(),
        ),
        (Variant::PingWithoutRecheck, "stale ping", base()),
        (
            Variant::KeepaliveWhileUnregistering,
            "timer armed",
            Config {
                pings: 2,
                remove: false,
                ..base()
            },
        ),
        (Variant::NoStopAfterUnansweredProbe, "timer", probe),
        (
            Variant::NoWakeInWrongState,
            "only the bound",
            Config {
                unlocked_stop: true,
                ..base()
            },
        ),
    ];
    for (variant, expect, cfg) in cases {
        let cfg = Config { variant, ..cfg };
        let v = run(
            &format!("interleave_broken_models_fail ({variant:?})"),
            &cfg,
        );
        let (v, _) = v.unwrap_or_else(|| panic!("{variant:?}: no violation found"));
        assert!(v.contains(expect), "{variant:?}: {v}");
    }
}
