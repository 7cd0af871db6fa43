// SPDX-License-Identifier: GPL-2.0

//! Intel AMT watchdog (MEI client) wire format and driver state machine.
//!
//! Pure `core` code shared by the kernel module and the host tests, so the
//! protocol and the transitions of `drivers/watchdog/mei_wdt.c` can be
//! checked without a kernel. The kernel side owns the locking, the MEI bus
//! I/O and the watchdog registration; it feeds events into [`Machine`] and
//! executes the returned actions.

use core::fmt;

/// Timeout used until user space sets one, in seconds.
pub const DEFAULT_TIMEOUT: u16 = 120;
/// Smallest timeout the firmware accepts, in seconds.
pub const MIN_TIMEOUT: u16 = 120;
/// Largest timeout: the wire field is 16 bits, in seconds.
pub const MAX_TIMEOUT: u16 = 65535;

/// Management Control command byte.
pub const MEI_MANAGEMENT_CONTROL: u8 = 0x02;
/// Management Control version number.
pub const MC_VERSION_NUMBER: u8 = 0x10;
/// Start (and ping) watchdog timer request subcommand.
pub const START_WD_TIMER_REQ: u8 = 0x13;
/// Start watchdog timer response subcommand.
pub const START_WD_TIMER_RES: u8 = 0x83;
/// Stop watchdog timer request subcommand.
pub const STOP_WD_TIMER_REQ: u8 = 0x14;
/// Start response status for success; the C driver never checks it.
pub const STATUS_SUCCESS: u8 = 0;
/// `wdstate` bit: the firmware does not need the OS watchdog.
pub const WDSTATE_NOT_REQUIRED: u8 = 0x1;

/// Size of `struct mei_mc_hdr`.
pub const HDR_LEN: usize = 4;
/// Size of `struct mei_wdt_start_request`.
pub const START_REQ_LEN: usize = 23;
/// Size of `struct mei_wdt_stop_request`.
pub const STOP_REQ_LEN: usize = HDR_LEN;
/// Size of `struct mei_wdt_start_response`.
pub const START_RES_LEN: usize = 6;

/// `bytecount` counts the bytes after itself, i.e. from `subcommand` on.
const fn bytecount(len: usize) -> u8 {
    (len - 2) as u8
}

/// Builds a start/ping request; the firmware treats every start as a ping.
pub const fn encode_start(timeout: u16) -> [u8; START_REQ_LEN] {
    let t = timeout.to_le_bytes();
    let mut buf = [0u8; START_REQ_LEN];
    buf[0] = MEI_MANAGEMENT_CONTROL;
    buf[1] = bytecount(START_REQ_LEN);
    buf[2] = START_WD_TIMER_REQ;
    buf[3] = MC_VERSION_NUMBER;
    buf[4] = t[0];
    buf[5] = t[1];
    // buf[6..23] is the legacy reserved area, left zero as C's memset does.
    buf
}

/// Builds a stop request (header only).
pub const fn encode_stop() -> [u8; STOP_REQ_LEN] {
    [
        MEI_MANAGEMENT_CONTROL,
        bytecount(STOP_REQ_LEN),
        STOP_WD_TIMER_REQ,
        MC_VERSION_NUMBER,
    ]
}

/// A message received from the firmware that the driver acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Zero-length message; C accepts it because it "can be sent on stop".
    Empty,
    /// Start/ping response.
    Start {
        /// Operation status; C ignores it, exposed so the driver can log it.
        status: u8,
        /// `wdstate` has [`WDSTATE_NOT_REQUIRED`] set.
        not_required: bool,
    },
}

/// Why a received message was dropped.
///
/// On every decode error the C driver logs and returns without completing
/// the ping response, so a waiting ping keeps waiting; the Rust driver must
/// do the same and not feed the error into [`Machine`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// 1..=5 bytes. C only rejects fewer than [`HDR_LEN`] bytes and then
    /// reads uninitialised status bytes for 4 or 5; we reject both.
    Short(usize),
    /// More than [`START_RES_LEN`] bytes. Only seen when the caller receives
    /// into a larger buffer: `mei_cldev_recv()` into a 6-byte buffer (as C
    /// does) truncates silently and the prefix is decoded instead.
    Oversize(usize),
    /// Header command is not [`MEI_MANAGEMENT_CONTROL`].
    WrongCommand(u8),
    /// Header version is not [`MC_VERSION_NUMBER`].
    WrongVersion(u8),
    /// Subcommand is not [`START_WD_TIMER_RES`].
    UnsupportedSubcommand(u8),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Short(n) => write!(f, "short response ({n} bytes)"),
            Self::Oversize(n) => write!(f, "oversize response ({n} bytes)"),
            Self::WrongCommand(c) => write!(f, "wrong command {c:#04x}"),
            Self::WrongVersion(v) => write!(f, "wrong version {v:#04x}"),
            Self::UnsupportedSubcommand(s) => write!(f, "unsupported subcommand {s:#04x}"),
        }
    }
}

/// Decodes one received message, checking length, command, version and
/// subcommand in that order.
pub fn decode_response(buf: &[u8]) -> Result<Response, DecodeError> {
    match buf.len() {
        0 => return Ok(Response::Empty),
        n if n < START_RES_LEN => return Err(DecodeError::Short(n)),
        n if n > START_RES_LEN => return Err(DecodeError::Oversize(n)),
        _ => {}
    }
    if buf[0] != MEI_MANAGEMENT_CONTROL {
        return Err(DecodeError::WrongCommand(buf[0]));
    }
    if buf[3] != MC_VERSION_NUMBER {
        return Err(DecodeError::WrongVersion(buf[3]));
    }
    if buf[2] != START_WD_TIMER_RES {
        return Err(DecodeError::UnsupportedSubcommand(buf[2]));
    }
    Ok(Response::Start {
        status: buf[4],
        not_required: buf[5] & WDSTATE_NOT_REQUIRED != 0,
    })
}

/// The 16-bit wire field for a timeout of `t` seconds that user space may
/// set, or `None` out of range. The watchdog core checks the same range;
/// the Rust ops check again rather than trust a `u32` to fit the field.
pub const fn wire_timeout(t: u32) -> Option<u16> {
    if t >= MIN_TIMEOUT as u32 && t <= MAX_TIMEOUT as u32 {
        Some(t as u16)
    } else {
        None
    }
}

/// Driver state, `enum mei_wdt_state` in C.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Probing; waiting for the firmware to answer the probe ping (v2).
    Probe,
    /// Registered and not opened.
    Idle,
    /// Opened: start was called, no ping sent yet.
    Start,
    /// Pings are being sent.
    Running,
    /// Stop requested; becomes [`State::Idle`] once the stop is sent.
    Stopping,
    /// Firmware said the watchdog is not required; wait for a notification.
    NotRequired,
}

impl State {
    /// Name as printed by C's `mei_wdt_state_str()`, for debugfs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Probe => "PROBE",
            Self::Idle => "IDLE",
            Self::Start => "START",
            Self::Running => "RUNNING",
            Self::Stopping => "STOPPING",
            Self::NotRequired => "NOT_REQUIRED",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do at probe time after the client is enabled.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeAction {
    /// Protocol v2: send a start request and do not wait; the response
    /// (handled by [`Machine::response`]) decides whether to register.
    Ping,
    /// Protocol v1 (no responses): register the watchdog device now (the
    /// state is IDLE already), calling [`Machine::registering`] first.
    Register,
}

/// What the watchdog `stop` op must do.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopAction {
    /// Not running: return success without sending anything.
    Nothing,
    /// Send [`encode_stop`], then report the result to [`Machine::stop_sent`].
    SendStop,
}

/// What the watchdog `ping` op must do.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingAction {
    /// Not started: return success without sending anything.
    Nothing,
    /// Send [`encode_start`] with the current timeout.
    Send {
        /// Reinitialise the response completion before sending, then wait
        /// (killable) for it after a successful send.
        wait: bool,
    },
}

/// What the receive callback must do with a decoded [`Response`]. Every
/// action but [`RxAction::Ignore`] completes the response first, which
/// the pinging thread or the probe waits for.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxAction {
    /// Empty message: return.
    Ignore,
    /// The answer to a ping, or a probe answer saying NOT_REQUIRED.
    Complete,
    /// Schedule the unregister work (it must not run here: unregistering
    /// waits on the watchdog core lock held by the pinging thread).
    UnregisterLater,
    /// Send a stop request (result ignored, as in C), register the watchdog
    /// device (the state is IDLE already) calling [`Machine::registering`] first.
    StopAndRegister,
    /// Unexpected response for the current state: warn with
    /// [`Machine::state`].
    WrongState,
}

/// What the notification callback must do.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifAction {
    /// Firmware wants the watchdog again: register it unless it still is
    /// (the state is IDLE already), calling [`Machine::registering`] first.
    Register,
    /// Nothing to do.
    Ignore,
}

/// The C driver's state machine. Fields are private so that state only
/// changes through the transitions below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Machine {
    state: State,
    resp_required: bool,
    /// The probe ping timed out and no answer came since: a late answer
    /// still counts as the probe's.
    late_probe_answer: bool,
    /// The core started the device and has not stopped it (it is open).
    opened: bool,
    /// The device is being unregistered: the core may still call its ops
    /// (after its stop on unregister), but no ping goes out any more.
    unregistering: bool,
}

impl Machine {
    /// New machine in [`State::Probe`]; only client versions above 1 answer
    /// start requests.
    pub const fn new(protocol_version: u8) -> Self {
        Self {
            state: State::Probe,
            resp_required: protocol_version > 1,
            late_probe_answer: false,
            opened: false,
            unregistering: false,
        }
    }

    /// Current state.
    pub const fn state(&self) -> State {
        self.state
    }

    /// Whether pings wait for a response (protocol v2).
    pub const fn resp_required(&self) -> bool {
        self.resp_required
    }

    /// Probe decision: v2 stays in [`State::Probe`] for the ping's answer,
    /// v1 registers at once.
    pub fn probe(&mut self) -> ProbeAction {
        if self.resp_required {
            ProbeAction::Ping
        } else {
            self.state = State::Idle;
            ProbeAction::Register
        }
    }

    /// A new watchdog device is about to be registered (the old one, if
    /// any, is gone): nobody has it open, so it starts IDLE, whatever a
    /// notification that raced the old one's unregistration decided.
    /// Called before the device becomes visible, so that an open and a
    /// ping that land while it is being registered are kept. (C sets IDLE
    /// after `watchdog_register_device()` and forgets them.)
    pub fn registering(&mut self) {
        self.state = State::Idle;
        self.opened = false;
        self.unregistering = false;
    }

    /// The watchdog device is about to be unregistered (for good, or to
    /// be replaced): from now on pings send nothing. The core stops an
    /// active device as it unregisters it, but until the device is gone it
    /// still passes on a keepalive that raced that stop, or one after an
    /// open that started the device after the core's check for an active
    /// one; such a keepalive must not start the firmware's timer again.
    /// (C never opens that window: its notification does not make an open
    /// device START again.)
    pub fn unregistering(&mut self) {
        self.unregistering = true;
    }

    /// Watchdog `start` op: nothing is sent, the first ping starts the timer.
    pub fn op_start(&mut self) {
        self.opened = true;
        self.state = State::Start;
    }

    /// Watchdog `stop` op; only a running watchdog is stopped.
    pub fn op_stop(&mut self) -> StopAction {
        self.opened = false;
        if self.state != State::Running {
            return StopAction::Nothing;
        }
        self.state = State::Stopping;
        StopAction::SendStop
    }

    /// Result of sending the stop after [`StopAction::SendStop`]. On failure
    /// C returns the error and stays in STOPPING, so later pings are no-ops
    /// until the next start; we keep that.
    pub fn stop_sent(&mut self, ok: bool) {
        if ok {
            self.state = State::Idle;
        }
    }

    /// Watchdog `ping` op; also the first keepalive after start. The state
    /// is RUNNING before the send, even if the send then fails, as in C.
    pub fn op_ping(&mut self) -> PingAction {
        match self.state {
            State::Start | State::Running if !self.unregistering => {
                self.state = State::Running;
                PingAction::Send {
                    wait: self.resp_required,
                }
            }
            _ => PingAction::Nothing,
        }
    }

    /// Whether a ping that [`Machine::op_ping`] asked for is still to be
    /// sent: checked under the lock that orders the sends, right before
    /// the ping goes out. The core calls stop without its lock (on
    /// unregister, on reboot), so a stop can go out between the ping's
    /// decision and its send; the ping must not then start the timer the
    /// stop has just stopped.
    pub fn ping_still_wanted(&self) -> bool {
        self.state == State::Running && !self.unregistering
    }

    /// A decoded message arrived (decode errors never get here).
    pub fn response(&mut self, r: &Response) -> RxAction {
        let not_required = match *r {
            Response::Empty => return RxAction::Ignore,
            Response::Start { not_required, .. } => not_required,
        };
        if core::mem::take(&mut self.late_probe_answer) && self.state == State::NotRequired {
            // The answer to a probe ping that timed out: as at probe.
            self.state = State::Probe;
        }
        match self.state {
            State::Running if not_required => {
                self.state = State::NotRequired;
                RxAction::UnregisterLater
            }
            State::Running => RxAction::Complete,
            // C returns before its completion in both probe branches; the
            // Rust probe waits for it, so it is completed here too.
            State::Probe if not_required => {
                self.state = State::NotRequired;
                RxAction::Complete
            }
            State::Probe => {
                self.state = State::Idle;
                RxAction::StopAndRegister
            }
            _ => RxAction::WrongState,
        }
    }

    /// The probe ping got no answer within the bound, or a malformed one.
    ///
    /// Not in C, which waits for ever and ignores later notifications while
    /// in PROBE: the Rust driver treats such a firmware like one that said
    /// NOT_REQUIRED, so that the ME's notification registers the device.
    /// A late answer is still taken as the probe's, so a slow firmware gets
    /// its watchdog registered too.
    ///
    /// Returns whether the probe gave up here: then the driver sends a stop
    /// request (result ignored), because the firmware starts its timer on
    /// every start request, answered or not, and nobody would stop it.
    pub fn probe_timed_out(&mut self) -> bool {
        if self.state == State::Probe {
            self.state = State::NotRequired;
            self.late_probe_answer = true;
            true
        } else {
            false
        }
    }
    /// Firmware event notification; only meaningful after NOT_REQUIRED.
    /// The state leaves NOT_REQUIRED at once, so that an unregistration
    /// still pending from the NOT_REQUIRED answer is called off
    /// ([`Machine::unregister_due`]). A device the core still has open
    /// (it stops it on unregister) is kept active: START, so its next
    /// keepalive re-arms the firmware; any other is IDLE.
    pub fn notification(&mut self) -> NotifAction {
        if self.state == State::NotRequired {
            self.late_probe_answer = false;
            self.state = if self.opened {
                State::Start
            } else {
                State::Idle
            };
            NotifAction::Register
        } else {
            NotifAction::Ignore
        }
    }

    /// Whether the unregistration that [`RxAction::UnregisterLater`] asked
    /// for is still wanted when its work runs: not if a notification came
    /// in between (C unregisters anyway, and the device the firmware asked
    /// for again is gone until the next notification).
    pub fn unregister_due(&self) -> bool {
        self.state == State::NotRequired
    }

    /// The unregister work ran. C leaves the state as is (NOT_REQUIRED), so
    /// a later notification registers again; kept as an explicit no-op.
    pub fn unregistered(&mut self) {}
}
