// SPDX-License-Identifier: GPL-2.0

//! Firmware side of the stubbed Intel ME: the HBM (host bus message) protocol
//! and the AMT watchdog application, as plain Rust over `core` only.
//!
//! This is the independent party of the test bed: it decodes what the host
//! sends with its own code, written from the MEI HBM and AMT watchdog wire
//! formats, and never shares code with the driver's codec. The kernel glue
//! (`mei_stub.rs`) feeds it host writes and drains its messages for the host;
//! `cargo test` runs it on the host.

use core::fmt::{self, Write};
use core::ops::DerefMut;

/// Size of one MEI slot in bytes.
pub const SLOT_SIZE: usize = 4;
/// Largest message payload the stub queues (HBM and client): above the
/// watchdog client's MTU, so an answer can overflow the host's buffer.
pub const MAX_MSG: usize = 128;
/// Client MTU advertised for the watchdog client.
pub const WD_MTU: u32 = 64;
/// How long the ME withholds its HBM answers after `reset_after_answer`'s
/// reset, ms: the enumeration, and with it the bus' replacement of the
/// client device, waits, so the driver's waiter runs first.
pub const RESET_AFTER_ANSWER_DOWN_MS: u64 = 1000;
/// ME address of the AMT watchdog client.
pub const WD_ME_ADDR: u8 = 2;
/// AMT watchdog client GUID 05B79A6F-4628-4D7F-899D-A91514CB32AB, in the
/// little-endian `uuid_le` byte order HBM uses.
pub const WD_GUID: [u8; 16] = [
    0x6f, 0x9a, 0xb7, 0x05, 0x28, 0x46, 0x7f, 0x4d, 0x89, 0x9d, 0xa9, 0x15, 0x14, 0xcb, 0x32, 0xab,
];

// HBM commands (drivers/misc/mei/hw.h wire values).
const HOST_START_REQ: u8 = 0x01;
const HOST_STOP_REQ: u8 = 0x02;
const ME_STOP_REQ: u8 = 0x03;
const HOST_ENUM_REQ: u8 = 0x04;
const HOST_CLIENT_PROPERTIES_REQ: u8 = 0x05;
const CLIENT_CONNECT_REQ: u8 = 0x06;
const CLIENT_DISCONNECT_REQ: u8 = 0x07;
const FLOW_CONTROL: u8 = 0x08;
const NOTIFY_REQ: u8 = 0x10;
const NOTIFICATION: u8 = 0x11;
const RES_BIT: u8 = 0x80;

// HBM status values.
const HBMS_SUCCESS: u8 = 0;
const HBMS_CLIENT_NOT_FOUND: u8 = 1;
const HBMS_ALREADY_EXISTS: u8 = 2;
const HBMS_NOT_ALLOWED: u8 = 5;

// AMT management-control watchdog messages.
const MC_COMMAND: u8 = 0x02;
const MC_VERSION: u8 = 0x10;
const MC_START_REQ: u8 = 0x13;
const MC_START_RES: u8 = 0x83;
const MC_STOP_REQ: u8 = 0x14;
const MC_START_REQ_LEN: usize = 23;
const MC_STOP_REQ_LEN: usize = 4;
const WDSTATE_NOT_REQUIRED: u8 = 0x1;

/// The name of `value` in a table of config values and their names.
fn name_in<T: PartialEq>(table: &[(T, &'static str)], value: T) -> &'static str {
    table
        .iter()
        .find(|(v, _)| *v == value)
        .map_or("?", |(_, n)| n)
}

/// The config value named `name` in such a table.
fn parse_in<T: Copy>(table: &[(T, &'static str)], name: &str) -> Option<T> {
    table.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
}

/// A fault applied to every start/ping response while configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Well-formed response.
    None,
    /// No response at all.
    Drop,
    /// Response sent after `delay_ms`.
    Delay,
    /// Zero-length response.
    Empty,
    /// Response shorter than the management-control header.
    Short,
    /// Response longer than a start response.
    Oversize,
    /// Header command is not management control.
    WrongCommand,
    /// Header version number is not 0x10.
    WrongVersion,
    /// Subcommand is not the start response.
    WrongSubcommand,
    /// Nonzero status byte.
    BadStatus,
    /// A good start response cut or zero-padded to `answer_len` bytes.
    Length,
}

const FAULTS: [(Fault, &str); 11] = [
    (Fault::None, "none"),
    (Fault::Drop, "drop"),
    (Fault::Delay, "delay"),
    (Fault::Empty, "empty"),
    (Fault::Short, "short"),
    (Fault::Oversize, "oversize"),
    (Fault::WrongCommand, "wrong_command"),
    (Fault::WrongVersion, "wrong_version"),
    (Fault::WrongSubcommand, "wrong_subcommand"),
    (Fault::BadStatus, "bad_status"),
    (Fault::Length, "length"),
];

impl Fault {
    fn name(self) -> &'static str {
        name_in(&FAULTS, self)
    }

    fn parse(s: &str) -> Option<Fault> {
        parse_in(&FAULTS, s)
    }
}

/// How the host's write of a watchdog-client message completes, as the
/// MEI core sees it. The firmware receives the message in every case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteFault {
    /// The write completes at once.
    None,
    /// The hardware write fails (`-EIO`) although the message got through.
    Error,
    /// The write completes `write_late_ms` after the message got through.
    Late,
}

const WRITE_FAULTS: [(WriteFault, &str); 3] = [
    (WriteFault::None, "none"),
    (WriteFault::Error, "error"),
    (WriteFault::Late, "late"),
];

impl WriteFault {
    fn name(self) -> &'static str {
        name_in(&WRITE_FAULTS, self)
    }

    fn parse(s: &str) -> Option<WriteFault> {
        parse_in(&WRITE_FAULTS, s)
    }
}

/// What the host write of a message comes to (see [`WriteFault`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteResult {
    /// Completes at once.
    Done,
    /// Report a failed write to the MEI core.
    Error,
    /// Complete it at this time (ms), not before.
    CompleteAt(u64),
}

/// What the fuzz mode does with one start request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuzzAction {
    /// The well-formed answer.
    Good,
    /// 0 to 64 random bytes.
    Random,
    /// The answer with one bit flipped, cut short, or lengthened with
    /// random bytes.
    Mutate,
    /// No answer.
    Drop,
    /// The answer twice.
    Duplicate,
    /// The answer, and the same again, unasked, up to `fuzz_delay_ms`
    /// later.
    Unsolicited,
    /// The answer up to `fuzz_delay_ms` late.
    Delay,
    /// The answer, and a notification up to `fuzz_delay_ms` later.
    Notify,
    /// No answer: a link reset instead.
    Reset,
    /// The answer, then a link reset.
    AnswerThenReset,
}

/// The fuzz actions and their names (`fuzz` file), drawn uniformly; every
/// answer of any of them has NOT_REQUIRED flipped one time in four.
pub const FUZZ_ACTIONS: [(FuzzAction, &str); 10] = [
    (FuzzAction::Good, "good"),
    (FuzzAction::Random, "random"),
    (FuzzAction::Mutate, "mutate"),
    (FuzzAction::Drop, "drop"),
    (FuzzAction::Duplicate, "duplicate"),
    (FuzzAction::Unsolicited, "unsolicited"),
    (FuzzAction::Delay, "delay"),
    (FuzzAction::Notify, "notify"),
    (FuzzAction::Reset, "reset"),
    (FuzzAction::AnswerThenReset, "answer_then_reset"),
];

/// Firmware configuration, set from the `config` control file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// AMT watchdog client present (enumerated); absent is "AMT disabled".
    pub wd: bool,
    /// Watchdog client protocol version.
    pub version: u8,
    /// Set the NOT_REQUIRED bit in start responses.
    pub not_required: bool,
    /// Accept notification requests.
    pub notify: bool,
    /// HBM version the firmware offers, as (major, minor).
    pub hbm: (u8, u8),
    /// Fault applied to start/ping responses.
    pub fault: Fault,
    /// Delay for [`Fault::Delay`], in milliseconds.
    pub delay_ms: u32,
    /// Least time between a start request and its answer, in milliseconds
    /// (for every answer, before any [`Fault::Delay`]): a real ME takes
    /// some; 0 answers in the same pass that completes the host's write.
    pub answer_gap_ms: u32,
    /// Firmware timer clock: one firmware second lasts this many ms.
    pub ms_per_fw_second: u32,
    /// How host writes of watchdog-client messages complete.
    pub write_fault: WriteFault,
    /// Delay for [`WriteFault::Late`], in milliseconds.
    pub write_late_ms: u32,
    /// Send a notification this many ms after each start response (with
    /// notifications enabled), or never if `None`.
    pub notify_after_ms: Option<u32>,
    /// Length of the answer for [`Fault::Length`], at most [`MAX_MSG`].
    pub answer_len: usize,
    /// Refuse the watchdog client's connect requests (`NOT_ALLOWED`).
    pub connect_refused: bool,
    /// Fail the host's flow-control writes for the watchdog client (the
    /// read requests a registered rx callback starts) with `-EIO`.
    pub read_fault: bool,
    /// Record watchdog-client traffic in the trace. Off for the benchmark:
    /// a full trace shifts its records on every message.
    pub trace: bool,
    /// Fuzz seed, 0 for off: every start request then gets a seeded
    /// random treatment ([`FuzzAction`]) instead of `fault`.
    pub fuzz: u64,
    /// Longest random delay of a fuzzed answer, ms.
    pub fuzz_delay_ms: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            wd: true,
            version: 2,
            not_required: false,
            notify: true,
            hbm: (2, 0),
            fault: Fault::None,
            delay_ms: 0,
            answer_gap_ms: 0,
            ms_per_fw_second: 1000,
            write_fault: WriteFault::None,
            write_late_ms: 0,
            notify_after_ms: None,
            answer_len: 6,
            connect_refused: false,
            read_fault: false,
            trace: true,
            fuzz: 0,
            fuzz_delay_ms: 0,
        }
    }
}

/// Why a configuration string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Not `key=value`, or an unknown key.
    UnknownKey,
    /// A value out of range or not understood.
    BadValue,
}

fn parse_bool(v: &str) -> Result<bool, ConfigError> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(ConfigError::BadValue),
    }
}

fn parse_u32(v: &str) -> Result<u32, ConfigError> {
    v.parse::<u32>().map_err(|_| ConfigError::BadValue)
}

impl Config {
    /// Applies `key=value` pairs separated by white space; all or nothing.
    pub fn apply(&mut self, s: &str) -> Result<(), ConfigError> {
        let mut new = *self;
        for token in s.split_ascii_whitespace() {
            let (key, val) = token.split_once('=').ok_or(ConfigError::UnknownKey)?;
            match key {
                "wd" => new.wd = parse_bool(val)?,
                "version" => {
                    new.version = val.parse::<u8>().map_err(|_| ConfigError::BadValue)?;
                }
                "not_required" => new.not_required = parse_bool(val)?,
                "notify" => new.notify = parse_bool(val)?,
                "hbm" => {
                    new.hbm = match val {
                        "1.0" => (1, 0),
                        "1.1" => (1, 1),
                        "2.0" => (2, 0),
                        _ => return Err(ConfigError::BadValue),
                    }
                }
                "fault" => new.fault = Fault::parse(val).ok_or(ConfigError::BadValue)?,
                "delay_ms" => new.delay_ms = parse_u32(val)?,
                "ms_per_fw_second" => {
                    new.ms_per_fw_second = parse_u32(val)?;
                    if new.ms_per_fw_second == 0 {
                        return Err(ConfigError::BadValue);
                    }
                }
                "write_fault" => {
                    new.write_fault = WriteFault::parse(val).ok_or(ConfigError::BadValue)?;
                }
                "write_late_ms" => new.write_late_ms = parse_u32(val)?,
                "answer_gap_ms" => new.answer_gap_ms = parse_u32(val)?,
                "notify_after_ms" => {
                    new.notify_after_ms = match val {
                        "off" => None,
                        v => Some(parse_u32(v)?),
                    }
                }
                "answer_len" => {
                    new.answer_len = parse_u32(val)? as usize;
                    if new.answer_len > MAX_MSG {
                        return Err(ConfigError::BadValue);
                    }
                }
                "connect_refused" => new.connect_refused = parse_bool(val)?,
                "read_fault" => new.read_fault = parse_bool(val)?,
                "trace" => new.trace = parse_bool(val)?,
                "fuzz" => {
                    new.fuzz = match val.strip_prefix("0x") {
                        Some(hex) => u64::from_str_radix(hex, 16),
                        None => val.parse::<u64>(),
                    }
                    .map_err(|_| ConfigError::BadValue)?;
                }
                "fuzz_delay_ms" => new.fuzz_delay_ms = parse_u32(val)?,
                _ => return Err(ConfigError::UnknownKey),
            }
        }
        *self = new;
        Ok(())
    }

    /// Writes one `key=value` line per setting.
    pub fn write_to(&self, w: &mut dyn Write) -> fmt::Result {
        writeln!(w, "wd={}", u8::from(self.wd))?;
        writeln!(w, "version={}", self.version)?;
        writeln!(w, "not_required={}", u8::from(self.not_required))?;
        writeln!(w, "notify={}", u8::from(self.notify))?;
        writeln!(w, "hbm={}.{}", self.hbm.0, self.hbm.1)?;
        writeln!(w, "fault={}", self.fault.name())?;
        writeln!(w, "delay_ms={}", self.delay_ms)?;
        writeln!(w, "answer_gap_ms={}", self.answer_gap_ms)?;
        writeln!(w, "ms_per_fw_second={}", self.ms_per_fw_second)?;
        writeln!(w, "write_fault={}", self.write_fault.name())?;
        writeln!(w, "write_late_ms={}", self.write_late_ms)?;
        match self.notify_after_ms {
            Some(ms) => writeln!(w, "notify_after_ms={ms}")?,
            None => writeln!(w, "notify_after_ms=off")?,
        }
        writeln!(w, "answer_len={}", self.answer_len)?;
        writeln!(w, "connect_refused={}", u8::from(self.connect_refused))?;
        writeln!(w, "read_fault={}", u8::from(self.read_fault))?;
        writeln!(w, "trace={}", u8::from(self.trace))?;
        writeln!(w, "fuzz={:#x}", self.fuzz)?;
        writeln!(w, "fuzz_delay_ms={}", self.fuzz_delay_ms)
    }
}

/// One message, HBM or client, with its MEI header fields.
#[derive(Clone, Copy)]
pub struct Msg {
    /// ME client address (0 for HBM).
    pub me_addr: u8,
    /// Host client address (0 for HBM).
    pub host_addr: u8,
    len: usize,
    data: [u8; MAX_MSG],
}

impl Msg {
    fn new(me_addr: u8, host_addr: u8, payload: &[u8]) -> Msg {
        let mut data = [0; MAX_MSG];
        let len = payload.len().min(MAX_MSG);
        data[..len].copy_from_slice(&payload[..len]);
        Msg {
            me_addr,
            host_addr,
            len,
            data,
        }
    }

    fn hbm(payload: &[u8]) -> Msg {
        Msg::new(0, 0, payload)
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.data[..self.len]
    }

    /// The 32-bit MEI message header (complete, not extended).
    pub fn header(&self) -> u32 {
        u32::from(self.me_addr)
            | u32::from(self.host_addr) << 8
            | (self.len as u32 & 0x1ff) << 16
            | 1 << 31
    }
}

/// Decodes a 32-bit MEI message header into (me_addr, host_addr, length).
/// Returns `None` for headers the stub does not accept (extended, DMA ring,
/// reserved bits, incomplete).
pub fn decode_header(hdr: u32) -> Option<(u8, u8, usize)> {
    let me_addr = (hdr & 0xff) as u8;
    let host_addr = (hdr >> 8 & 0xff) as u8;
    let len = (hdr >> 16 & 0x1ff) as usize;
    let flags_ok = hdr & (0x7 << 25) == 0 && hdr & (0x7 << 28) == 0 && hdr >> 31 == 1;
    flags_ok.then_some((me_addr, host_addr, len))
}

#[derive(Clone, Copy)]
struct Queued {
    msg: Msg,
    ready_at: u64,
    /// A client message: needs a flow-control credit from the host.
    needs_credit: bool,
    /// Queueing order, for messages ready at the same time.
    seq: u64,
}

const QUEUE_LEN: usize = 16;

/// Kinds of trace records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    HostMsg,
    FwMsg,
    HostConnect,
    HostDisconnect,
    HostNotifyReq,
    FwNotification,
    FwDropped,
    TimerExpired,
    NotConnected,
    /// A v1 start request: real v1 firmware does not answer pings.
    FwNoAnswer,
    /// The host's write was reported failed (arg 0) or late (arg 1).
    WriteFaulted,
    /// The host's flow-control write for the client was reported failed.
    ReadFaulted,
}

/// One trace record. The trace storage is a slice of `Option<Record>`
/// the caller allocates (see [`Firmware::new`]).
#[derive(Clone, Copy)]
pub struct Record {
    event: Event,
    arg: u8,
    len: usize,
    data: [u8; MAX_MSG],
}

/// Trace records a firmware should keep.
pub const TRACE_LEN: usize = 256;

/// State of the firmware-side watchdog timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerState {
    /// Never armed or stopped.
    Idle,
    /// Armed: expires at `deadline` (ms) unless pinged or stopped.
    Armed {
        /// Absolute expiry time, ms.
        deadline: u64,
    },
    /// Expired since the last start.
    Expired,
}

/// The stubbed ME firmware. The trace lives in `T`, storage the caller
/// allocates: the records are too large for a kernel stack, which a
/// by-value construction would go through.
pub struct Firmware<T: DerefMut<Target = [Option<Record>]>> {
    /// Settings from the control files.
    pub config: Config,
    /// Config in force for the current enumeration (wd presence, version).
    enumerated: Config,
    hbm_started: bool,
    /// Host address of the watchdog connection, if connected.
    wd_host_addr: Option<u8>,
    wd_notify: bool,
    /// Flow-control credits the host gave for watchdog-client messages.
    host_credits: u32,
    queue: [Option<Queued>; QUEUE_LEN],
    /// Message being read by the host: header taken or not.
    current: Option<(Msg, bool)>,
    trace: T,
    trace_next: usize,
    trace_dropped: usize,
    timer: TimerState,
    timer_timeout: u16,
    expired: u32,
    /// Start requests received since the last clear: the benchmark checks
    /// that every keepalive it timed reached the firmware, with no trace.
    starts: u32,
    /// A late write completes at this time (ms).
    write_held_until: Option<u64>,
    /// Messages queued so far: the next one's `seq`.
    queued_total: u64,
    /// The fuzz generator's state, and the seed it was started from.
    fuzz_state: u64,
    fuzz_seed: u64,
    /// How often each [`FuzzAction`] was taken, by its index.
    fuzz_counts: [u32; FUZZ_ACTIONS.len()],
    /// A fuzz action asked for a link reset, which the stub carries out.
    reset_wanted: bool,
    /// Armed by [`Firmware::reset_after_answer`]: the next watchdog-client
    /// answer the host reads is followed by a link reset.
    reset_after_answer: bool,
    /// That answer was read: the stub resets the link at once.
    reset_now: bool,
    /// After that reset the ME answers no HBM message before this time
    /// (ms): `recv` fails with ENODEV only until the link is enabled again
    /// (after that the answer, still on the client's completed list, would
    /// be handed over).
    hbm_quiet_until: u64,
}

/// Why a control action was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionError {
    /// The watchdog client is not connected or did not enable notifications.
    NotConnected,
    /// The outgoing queue is full.
    Busy,
}

impl<T: DerefMut<Target = [Option<Record>]>> Firmware<T> {
    /// A firmware with `config`, before the host starts HBM, keeping its
    /// trace in `trace` (whose length is the number of records kept).
    pub fn new(config: Config, mut trace: T) -> Self {
        trace.fill(None);
        Firmware {
            config,
            enumerated: config,
            hbm_started: false,
            wd_host_addr: None,
            wd_notify: false,
            host_credits: 0,
            queue: [None; QUEUE_LEN],
            current: None,
            trace,
            trace_next: 0,
            trace_dropped: 0,
            timer: TimerState::Idle,
            timer_timeout: 0,
            expired: 0,
            starts: 0,
            write_held_until: None,
            queued_total: 0,
            fuzz_state: 0,
            fuzz_seed: 0,
            fuzz_counts: [0; FUZZ_ACTIONS.len()],
            reset_wanted: false,
            reset_after_answer: false,
            reset_now: false,
            hbm_quiet_until: 0,
        }
    }

    /// Arms a link reset right after the next watchdog-client answer the
    /// host reads, before the client's driver can fetch it.
    pub fn reset_after_answer(&mut self) {
        self.reset_after_answer = true;
    }

    /// Whether the answer [`Firmware::reset_after_answer`] waited for was
    /// read since the last call: the link must go now (`now`, ms); HBM
    /// answers wait [`RESET_AFTER_ANSWER_DOWN_MS`].
    pub fn take_reset_now(&mut self, now: u64) -> bool {
        let reset = core::mem::take(&mut self.reset_now);
        if reset {
            self.hbm_quiet_until = now + RESET_AFTER_ANSWER_DOWN_MS;
        }
        reset
    }

    /// Whether a fuzz action asked for a link reset since the last call.
    pub fn take_reset_wanted(&mut self) -> bool {
        core::mem::take(&mut self.reset_wanted)
    }

    /// The next fuzz number (xorshift64*), from `config.fuzz` again when
    /// the seed changed.
    fn fuzz_next(&mut self) -> u64 {
        if self.fuzz_seed != self.config.fuzz {
            self.fuzz_seed = self.config.fuzz;
            self.fuzz_state = self.config.fuzz | 1;
            self.fuzz_counts = [0; FUZZ_ACTIONS.len()];
        }
        let mut x = self.fuzz_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.fuzz_state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A fuzz number below `n` (> 0).
    fn fuzz_below(&mut self, n: u64) -> u64 {
        self.fuzz_next() % n
    }

    /// Writes `action=count` for each fuzz action taken under the current
    /// seed.
    pub fn write_fuzz_counts(&self, w: &mut dyn Write) -> fmt::Result {
        writeln!(w, "seed={:#x}", self.fuzz_seed)?;
        for (i, (_, name)) in FUZZ_ACTIONS.iter().enumerate() {
            writeln!(w, "{name}={}", self.fuzz_counts[i])?;
        }
        Ok(())
    }

    /// ME link reset: connections, credits and queued messages are gone.
    /// The watchdog timer keeps running: the firmware does not know why the
    /// host went away.
    pub fn link_reset(&mut self) {
        self.hbm_started = false;
        self.wd_host_addr = None;
        self.wd_notify = false;
        self.host_credits = 0;
        self.queue = [None; QUEUE_LEN];
        self.current = None;
        self.write_held_until = None;
        self.reset_after_answer = false;
    }

    /// Clears the trace and the timer record.
    pub fn clear(&mut self) {
        self.trace.fill(None);
        self.trace_next = 0;
        self.trace_dropped = 0;
        self.expired = 0;
        self.starts = 0;
        if self.timer == TimerState::Expired {
            self.timer = TimerState::Idle;
        }
    }

    fn record(&mut self, event: Event, arg: u8, payload: &[u8]) {
        if !self.config.trace {
            return;
        }
        if self.trace_next == self.trace.len() {
            if self.trace.is_empty() {
                return;
            }
            self.trace.copy_within(1.., 0);
            self.trace_next -= 1;
            self.trace_dropped += 1;
        }
        let msg = Msg::new(0, 0, payload);
        self.trace[self.trace_next] = Some(Record {
            event,
            arg,
            len: msg.len,
            data: msg.data,
        });
        self.trace_next += 1;
    }

    fn push(&mut self, msg: Msg, ready_at: u64, needs_credit: bool) -> Result<(), ActionError> {
        let queued_total = self.queued_total;
        let slot = self
            .queue
            .iter_mut()
            .find(|q| q.is_none())
            .ok_or(ActionError::Busy)?;
        *slot = Some(Queued {
            msg,
            ready_at,
            needs_credit,
            seq: queued_total,
        });
        self.queued_total += 1;
        Ok(())
    }

    fn push_hbm(&mut self, payload: &[u8], now: u64) {
        // A full queue means the host stopped reading; dropping an HBM
        // reply then makes the host time out and reset, as with real FW.
        let at = now.max(self.hbm_quiet_until);
        let _ = self.push(Msg::hbm(payload), at, false);
    }

    /// Handles one message the host wrote: `hdr` is the MEI header and
    /// `payload` the bytes after it. `now` is the time in ms. Returns how
    /// the write is to complete for the MEI core.
    pub fn host_write(&mut self, hdr: u32, payload: &[u8], now: u64) -> WriteResult {
        let Some((me_addr, host_addr, len)) = decode_header(hdr) else {
            return WriteResult::Done;
        };
        let payload = &payload[..len.min(payload.len())];
        if me_addr == 0 && host_addr == 0 {
            if self.config.read_fault
                && payload.first() == Some(&FLOW_CONTROL)
                && payload.get(1) == Some(&WD_ME_ADDR)
                && self
                    .wd_host_addr
                    .is_some_and(|h| payload.get(2) == Some(&h))
            {
                self.record(Event::ReadFaulted, 0, &[]);
                return WriteResult::Error;
            }
            self.hbm(payload, now);
        } else if me_addr == WD_ME_ADDR {
            let connected = self.wd_host_addr == Some(host_addr);
            self.wd_client(host_addr, payload, now);
            if connected {
                return self.write_result(now);
            }
        }
        WriteResult::Done
    }

    fn write_result(&mut self, now: u64) -> WriteResult {
        match self.config.write_fault {
            WriteFault::None => WriteResult::Done,
            WriteFault::Error => {
                self.record(Event::WriteFaulted, 0, &[]);
                WriteResult::Error
            }
            WriteFault::Late => {
                self.record(Event::WriteFaulted, 1, &[]);
                let at = now + u64::from(self.config.write_late_ms);
                self.write_held_until = Some(at);
                WriteResult::CompleteAt(at)
            }
        }
    }

    /// Nothing for the host at `now` or later: no message queued (ready or
    /// delayed) or being read, no late write pending. The timer does not
    /// count: it only expires, silently to the host.
    pub fn idle(&self, now: u64) -> bool {
        self.current.is_none()
            && self.queue.iter().all(Option::is_none)
            && !matches!(self.write_held_until, Some(at) if now < at)
    }

    /// Whether the MEI core must not see writes complete at `now` (a late
    /// write is pending); the hold ends by itself at its time.
    pub fn writes_held(&mut self, now: u64) -> bool {
        match self.write_held_until {
            Some(at) if now < at => true,
            _ => {
                self.write_held_until = None;
                false
            }
        }
    }

    fn hbm(&mut self, p: &[u8], now: u64) {
        let Some(&cmd) = p.first() else { return };
        let byte = |i: usize| p.get(i).copied().unwrap_or(0);
        let (major, minor) = self.config.hbm;
        match cmd {
            HOST_START_REQ => {
                // The host offers its version (minor, major): if we support
                // it the host keeps it, else it falls back to ours.
                let supported = (byte(3), byte(2)) <= (major, minor);
                self.hbm_started = true;
                self.enumerated = self.config;
                self.push_hbm(
                    &[HOST_START_REQ | RES_BIT, u8::from(supported), minor, major],
                    now,
                );
            }
            HOST_STOP_REQ => {
                self.hbm_started = false;
                self.push_hbm(&[HOST_STOP_REQ | RES_BIT, 0, 0, 0], now);
            }
            ME_STOP_REQ => {}
            HOST_ENUM_REQ => {
                let mut res = [0u8; 36];
                res[0] = HOST_ENUM_REQ | RES_BIT;
                if self.enumerated.wd {
                    res[4 + usize::from(WD_ME_ADDR / 8)] |= 1 << (WD_ME_ADDR % 8);
                }
                self.push_hbm(&res, now);
            }
            HOST_CLIENT_PROPERTIES_REQ => {
                let addr = byte(1);
                let mut res = [0u8; 28];
                res[0] = HOST_CLIENT_PROPERTIES_REQ | RES_BIT;
                res[1] = addr;
                if addr == WD_ME_ADDR && self.enumerated.wd {
                    res[4..20].copy_from_slice(&WD_GUID);
                    res[20] = self.enumerated.version;
                    res[21] = 1; // max_number_of_connections
                    res[22] = 0; // fixed_address
                    res[23] = 0; // single_recv_buf, vt_supported
                    res[24..28].copy_from_slice(&WD_MTU.to_le_bytes());
                } else {
                    res[2] = HBMS_CLIENT_NOT_FOUND;
                }
                self.push_hbm(&res, now);
            }
            CLIENT_CONNECT_REQ => {
                let (me, host) = (byte(1), byte(2));
                let status = if me != WD_ME_ADDR || !self.enumerated.wd {
                    HBMS_CLIENT_NOT_FOUND
                } else if self.config.connect_refused {
                    HBMS_NOT_ALLOWED
                } else if self.wd_host_addr.is_some() {
                    HBMS_ALREADY_EXISTS
                } else {
                    HBMS_SUCCESS
                };
                if me == WD_ME_ADDR {
                    self.record(Event::HostConnect, status, &[]);
                }
                self.push_hbm(&[CLIENT_CONNECT_REQ | RES_BIT, me, host, status], now);
                if status == HBMS_SUCCESS {
                    self.wd_host_addr = Some(host);
                    self.wd_notify = false;
                    self.host_credits = 0;
                    // One credit: the host may send one message.
                    self.push_hbm(&[FLOW_CONTROL, me, host, 0, 0, 0, 0, 0], now);
                }
            }
            CLIENT_DISCONNECT_REQ => {
                let (me, host) = (byte(1), byte(2));
                if me == WD_ME_ADDR && self.wd_host_addr == Some(host) {
                    self.record(Event::HostDisconnect, 0, &[]);
                    self.wd_host_addr = None;
                    self.wd_notify = false;
                    self.host_credits = 0;
                    for q in self.queue.iter_mut() {
                        if q.is_some_and(|q| q.needs_credit) {
                            *q = None;
                        }
                    }
                }
                self.push_hbm(&[CLIENT_DISCONNECT_REQ | RES_BIT, me, host, 0], now);
            }
            FLOW_CONTROL => {
                let (me, host) = (byte(1), byte(2));
                if me == WD_ME_ADDR && self.wd_host_addr == Some(host) {
                    self.host_credits += 1;
                }
            }
            NOTIFY_REQ => {
                let (me, host, start) = (byte(1), byte(2), byte(3));
                let ok = me == WD_ME_ADDR && self.wd_host_addr == Some(host);
                if me == WD_ME_ADDR {
                    self.record(Event::HostNotifyReq, start, &[]);
                }
                let status = if !ok {
                    HBMS_CLIENT_NOT_FOUND
                } else if !self.config.notify {
                    HBMS_NOT_ALLOWED
                } else {
                    self.wd_notify = start != 0;
                    HBMS_SUCCESS
                };
                self.push_hbm(
                    &[NOTIFY_REQ | RES_BIT, me, host, status, start, 0, 0, 0],
                    now,
                );
            }
            _ => {}
        }
    }

    fn wd_client(&mut self, host_addr: u8, p: &[u8], now: u64) {
        if self.wd_host_addr != Some(host_addr) {
            self.record(Event::NotConnected, 0, p);
            return;
        }
        self.record(Event::HostMsg, 0, p);
        // The message used the host's one credit: give it another.
        self.push_hbm(&[FLOW_CONTROL, WD_ME_ADDR, host_addr, 0, 0, 0, 0, 0], now);
        match decode_mc(p) {
            McMsg::StartRequest { timeout } => {
                self.starts = self.starts.wrapping_add(1);
                self.timer_timeout = timeout;
                let ms = u64::from(timeout) * u64::from(self.config.ms_per_fw_second);
                self.timer = TimerState::Armed { deadline: now + ms };
                self.respond(host_addr, now);
                if let Some(ms) = self.config.notify_after_ms {
                    // After the response (queued first), so it is read after.
                    let _ = self.notify(now + u64::from(ms));
                }
            }
            McMsg::StopRequest => {
                if matches!(self.timer, TimerState::Armed { .. }) {
                    self.timer = TimerState::Idle;
                }
            }
            _ => {}
        }
    }

    fn respond(&mut self, host_addr: u8, now: u64) {
        if self.enumerated.version < 2 {
            self.record(Event::FwNoAnswer, 0, &[]);
            return;
        }
        let wdstate = if self.config.not_required {
            WDSTATE_NOT_REQUIRED
        } else {
            0
        };
        let good = [MC_COMMAND, 4, MC_START_RES, MC_VERSION, 0, wdstate];
        let mut ready_at = now + u64::from(self.config.answer_gap_ms);
        if self.config.fuzz != 0 {
            self.fuzz_respond(host_addr, good, ready_at);
            return;
        }
        let mut buf = [0u8; MAX_MSG];
        let body: &[u8] = match self.config.fault {
            Fault::None => &good,
            Fault::Drop => {
                self.record(Event::FwDropped, 0, &good);
                return;
            }
            Fault::Delay => {
                ready_at += u64::from(self.config.delay_ms);
                &good
            }
            Fault::Empty => &[],
            Fault::Short => &good[..3],
            Fault::Oversize => {
                buf[..6].copy_from_slice(&good);
                buf[1] = 8;
                &buf[..10]
            }
            Fault::WrongCommand => {
                buf[..6].copy_from_slice(&good);
                buf[0] = 0x03;
                &buf[..6]
            }
            Fault::WrongVersion => {
                buf[..6].copy_from_slice(&good);
                buf[3] = 0x11;
                &buf[..6]
            }
            Fault::WrongSubcommand => {
                buf[..6].copy_from_slice(&good);
                buf[2] = 0x93;
                &buf[..6]
            }
            Fault::BadStatus => {
                buf[..6].copy_from_slice(&good);
                buf[4] = 1;
                &buf[..6]
            }
            Fault::Length => {
                let n = self.config.answer_len;
                buf[..6].copy_from_slice(&good);
                if n > 6 {
                    // The header's byte count covers the padding.
                    buf[1] = (n - 2).min(255) as u8;
                }
                &buf[..n]
            }
        };
        let _ = self.push(Msg::new(WD_ME_ADDR, host_addr, body), ready_at, true);
    }

    /// Answers a start request as the fuzz generator says: see
    /// [`FuzzAction`].
    fn fuzz_respond(&mut self, host_addr: u8, mut good: [u8; 6], ready_at: u64) {
        let action = FUZZ_ACTIONS[self.fuzz_below(FUZZ_ACTIONS.len() as u64) as usize].0;
        self.fuzz_counts[action as usize] += 1;
        if self.fuzz_below(4) == 0 {
            good[5] ^= WDSTATE_NOT_REQUIRED;
        }
        let max_delay = u64::from(self.config.fuzz_delay_ms) + 1;
        let mut buf = [0u8; MAX_MSG];
        let len = match action {
            FuzzAction::Good
            | FuzzAction::Duplicate
            | FuzzAction::Unsolicited
            | FuzzAction::Delay
            | FuzzAction::Notify
            | FuzzAction::AnswerThenReset => {
                buf[..6].copy_from_slice(&good);
                6
            }
            FuzzAction::Random => {
                let n = self.fuzz_below(65) as usize;
                for b in &mut buf[..n] {
                    *b = self.fuzz_next() as u8;
                }
                n
            }
            FuzzAction::Mutate => {
                buf[..6].copy_from_slice(&good);
                match self.fuzz_below(3) {
                    0 => {
                        let at = self.fuzz_below(6) as usize;
                        buf[at] ^= 1 << self.fuzz_below(8);
                        6
                    }
                    1 => self.fuzz_below(6) as usize,
                    _ => {
                        let n = 7 + self.fuzz_below(58) as usize;
                        for b in &mut buf[6..n] {
                            *b = self.fuzz_next() as u8;
                        }
                        n
                    }
                }
            }
            FuzzAction::Drop => {
                self.record(Event::FwDropped, 0, &good);
                return;
            }
            FuzzAction::Reset => {
                self.reset_wanted = true;
                return;
            }
        };
        let body = &buf[..len];
        let at = match action {
            FuzzAction::Delay => ready_at + self.fuzz_below(max_delay),
            _ => ready_at,
        };
        let _ = self.push(Msg::new(WD_ME_ADDR, host_addr, body), at, true);
        match action {
            FuzzAction::Duplicate => {
                let _ = self.push(Msg::new(WD_ME_ADDR, host_addr, body), at, true);
            }
            FuzzAction::Unsolicited => {
                let later = at + self.fuzz_below(max_delay);
                let _ = self.push(Msg::new(WD_ME_ADDR, host_addr, body), later, true);
            }
            FuzzAction::Notify => {
                let later = at + self.fuzz_below(max_delay);
                let _ = self.notify(later);
            }
            FuzzAction::AnswerThenReset => self.reset_wanted = true,
            _ => {}
        }
    }

    /// Sends an ME notification event to the watchdog client.
    pub fn notify(&mut self, now: u64) -> Result<(), ActionError> {
        let host = self.wd_host_addr.ok_or(ActionError::NotConnected)?;
        if !self.wd_notify {
            return Err(ActionError::NotConnected);
        }
        // Recorded when the host reads it (`rx_pending`), in order with
        // the client messages.
        self.push(Msg::hbm(&[NOTIFICATION, WD_ME_ADDR, host, 0]), now, false)
    }

    /// Runs the firmware clock: records a timer expiry due at `now`.
    pub fn tick(&mut self, now: u64) {
        if let TimerState::Armed { deadline } = self.timer {
            if now >= deadline {
                self.timer = TimerState::Expired;
                self.expired += 1;
                self.record(Event::TimerExpired, 0, &[]);
            }
        }
    }

    /// The next time (ms) at which [`Firmware::tick`] or a queued message
    /// needs attention, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        let timer = match self.timer {
            TimerState::Armed { deadline } => Some(deadline),
            _ => None,
        };
        let held = self.write_held_until;
        let queued = self
            .queue
            .iter()
            .flatten()
            .filter(|q| !q.needs_credit || self.host_credits > 0)
            .map(|q| q.ready_at)
            .min();
        [timer, queued, held].into_iter().flatten().min()
    }

    /// Selects the next message for the host, if one is deliverable at
    /// `now`, and returns whether a message is waiting to be read.
    pub fn rx_pending(&mut self, now: u64) -> bool {
        if self.current.is_some() {
            return true;
        }
        let credits = self.host_credits;
        // Oldest deliverable message first; slot order is not age order,
        // so pick the earliest ready time, then the first queued.
        let pick = self
            .queue
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.map(|q| (i, q)))
            .filter(|(_, q)| q.ready_at <= now && (!q.needs_credit || credits > 0))
            .min_by_key(|(_, q)| (q.ready_at, q.seq));
        let Some((i, q)) = pick else { return false };
        self.queue[i] = None;
        if q.needs_credit {
            self.host_credits -= 1;
            self.record(Event::FwMsg, 0, q.msg.payload());
            self.reset_now |= core::mem::take(&mut self.reset_after_answer);
        } else if q.msg.payload().first() == Some(&NOTIFICATION) {
            self.record(Event::FwNotification, 0, &[]);
        }
        self.current = Some((q.msg, false));
        true
    }

    /// MEI slots the host must read for the current message.
    pub fn rx_slots(&self) -> i32 {
        match &self.current {
            None => 0,
            Some((m, taken)) => {
                let data = m.len.div_ceil(SLOT_SIZE) as i32;
                if *taken {
                    data
                } else {
                    data + 1
                }
            }
        }
    }

    /// Returns the header of the current message (0 if none). A message
    /// without payload is complete once its header is read.
    pub fn rx_header(&mut self) -> u32 {
        let Some((msg, taken)) = self.current.as_mut() else {
            return 0;
        };
        *taken = true;
        let hdr = msg.header();
        if msg.len == 0 {
            self.current = None;
        }
        hdr
    }

    /// Copies the current message's payload into `buf` and completes it.
    pub fn rx_payload(&mut self, buf: &mut [u8]) {
        if let Some((msg, _)) = self.current.take() {
            let n = buf.len().min(msg.len);
            buf[..n].copy_from_slice(&msg.payload()[..n]);
        }
    }

    /// Writes the trace, one line per record.
    pub fn write_trace(&self, w: &mut dyn Write) -> fmt::Result {
        if self.trace_dropped > 0 {
            writeln!(w, "({} older lines dropped)", self.trace_dropped)?;
        }
        for r in self.trace.iter().flatten() {
            let data = &r.data[..r.len];
            match r.event {
                Event::HostMsg => {
                    write!(w, "host>")?;
                    write_hex(w, data)?;
                    writeln!(w, " | {}", decode_mc(data))?;
                }
                Event::FwMsg => {
                    write!(w, "fw<")?;
                    write_hex(w, data)?;
                    writeln!(w, " | {}", decode_mc(data))?;
                }
                Event::NotConnected => {
                    write!(w, "host> (not connected)")?;
                    write_hex(w, data)?;
                    writeln!(w)?;
                }
                Event::HostConnect if r.arg == HBMS_SUCCESS => writeln!(w, "host: connect")?,
                Event::HostConnect => writeln!(w, "host: connect refused status={}", r.arg)?,
                Event::HostDisconnect => writeln!(w, "host: disconnect")?,
                Event::HostNotifyReq => writeln!(w, "host: notify-request start={}", r.arg)?,
                Event::FwNotification => writeln!(w, "fw: notification")?,
                Event::FwDropped => writeln!(w, "fw: start-response dropped")?,
                Event::TimerExpired => writeln!(w, "fw: timer expired")?,
                Event::FwNoAnswer => writeln!(w, "fw: no start-response (v1)")?,
                Event::WriteFaulted if r.arg == 0 => writeln!(w, "fw: write reported failed")?,
                Event::WriteFaulted => writeln!(w, "fw: write completion late")?,
                Event::ReadFaulted => writeln!(w, "fw: flow-control write reported failed")?,
            }
        }
        Ok(())
    }

    /// Writes the timer line: `state=... timeout=... expired=... starts=...`.
    pub fn write_timer(&self, w: &mut dyn Write) -> fmt::Result {
        let state = match self.timer {
            TimerState::Idle => "idle",
            TimerState::Armed { .. } => "armed",
            TimerState::Expired => "expired",
        };
        writeln!(
            w,
            "state={} timeout={} expired={} starts={}",
            state, self.timer_timeout, self.expired, self.starts
        )
    }

    /// The timer state.
    pub fn timer(&self) -> TimerState {
        self.timer
    }
}

fn write_hex(w: &mut dyn Write, data: &[u8]) -> fmt::Result {
    for b in data {
        write!(w, " {b:02x}")?;
    }
    Ok(())
}

/// A decoded AMT management-control message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum McMsg {
    /// Zero bytes.
    Empty,
    /// Fewer bytes than the 4-byte header.
    Short(usize),
    /// Header command is not management control.
    UnknownCommand(u8),
    /// Header version number is not 0x10.
    UnknownVersion(u8),
    /// Start (or ping) request with its timeout in seconds.
    StartRequest {
        /// Timeout, seconds.
        timeout: u16,
    },
    /// Stop request.
    StopRequest,
    /// Start response; `extra` bytes beyond the 6-byte response.
    StartResponse {
        /// Status byte.
        status: u8,
        /// wdstate byte.
        wdstate: u8,
        /// Trailing bytes.
        extra: usize,
    },
    /// A known subcommand with the wrong length or bytecount.
    BadLength(u8, usize),
    /// Subcommand not known.
    UnknownSubcommand(u8),
}

/// Decodes a management-control message (both directions).
pub fn decode_mc(p: &[u8]) -> McMsg {
    if p.is_empty() {
        return McMsg::Empty;
    }
    if p.len() < 4 {
        return McMsg::Short(p.len());
    }
    if p[0] != MC_COMMAND {
        return McMsg::UnknownCommand(p[0]);
    }
    if p[3] != MC_VERSION {
        return McMsg::UnknownVersion(p[3]);
    }
    let bytecount_ok = usize::from(p[1]) == p.len() - 2;
    match p[2] {
        MC_START_REQ if p.len() == MC_START_REQ_LEN && bytecount_ok => McMsg::StartRequest {
            timeout: u16::from_le_bytes([p[4], p[5]]),
        },
        MC_STOP_REQ if p.len() == MC_STOP_REQ_LEN && bytecount_ok => McMsg::StopRequest,
        MC_START_RES if p.len() >= 6 => McMsg::StartResponse {
            status: p[4],
            wdstate: p[5],
            extra: p.len() - 6,
        },
        s @ (MC_START_REQ | MC_STOP_REQ | MC_START_RES) => McMsg::BadLength(s, p.len()),
        s => McMsg::UnknownSubcommand(s),
    }
}

impl fmt::Display for McMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            McMsg::Empty => write!(f, "empty"),
            McMsg::Short(n) => write!(f, "short ({n} bytes)"),
            McMsg::UnknownCommand(c) => write!(f, "unknown command 0x{c:02x}"),
            McMsg::UnknownVersion(v) => write!(f, "unknown version 0x{v:02x}"),
            McMsg::StartRequest { timeout } => write!(f, "start-request timeout={timeout}"),
            McMsg::StopRequest => write!(f, "stop-request"),
            McMsg::StartResponse {
                status,
                wdstate,
                extra,
            } => {
                write!(f, "start-response status={status} wdstate={wdstate}")?;
                if extra > 0 {
                    write!(f, " +{extra} bytes")?;
                }
                Ok(())
            }
            McMsg::BadLength(s, n) => write!(f, "subcommand 0x{s:02x} with bad length {n}"),
            McMsg::UnknownSubcommand(s) => write!(f, "unknown subcommand 0x{s:02x}"),
        }
    }
}
