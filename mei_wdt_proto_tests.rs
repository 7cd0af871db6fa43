// SPDX-License-Identifier: GPL-2.0

//! Host tests for `mei_wdt_proto.rs`: golden wire bytes from the C structs
//! and every transition of the C driver's state machine.

extern crate std;

use crate::proto::*;
use std::string::ToString;

const ALL_STATES: [State; 6] = [
    State::Probe,
    State::Idle,
    State::Start,
    State::Running,
    State::Stopping,
    State::NotRequired,
];

const OK: Response = Response::Start {
    status: STATUS_SUCCESS,
    not_required: false,
};
const NOT_REQ: Response = Response::Start {
    status: STATUS_SUCCESS,
    not_required: true,
};

/// Drives a fresh machine into `target` through the public transitions only.
fn machine_in(version: u8, target: State) -> Machine {
    let mut m = Machine::new(version);
    if target == State::Probe {
        return m;
    }
    if m.probe() == ProbeAction::Ping {
        assert_eq!(m.response(&OK), RxAction::StopAndRegister);
    }
    m.registering();
    if target == State::Idle {
        return m;
    }
    m.op_start();
    if target == State::Start {
        return m;
    }
    let _ = m.op_ping();
    match target {
        State::Running => {}
        State::Stopping => {
            assert_eq!(m.op_stop(), StopAction::SendStop);
            m.stop_sent(false);
        }
        State::NotRequired => {
            let _ = m.response(&NOT_REQ);
        }
        _ => unreachable!(),
    }
    m
}

#[test]
fn machine_in_reaches_every_state() {
    for v in [1, 2] {
        for s in ALL_STATES {
            assert_eq!(machine_in(v, s).state(), s);
        }
    }
}

// ---- constants and codec ----

#[test]
fn constants_match_c() {
    assert_eq!(DEFAULT_TIMEOUT, 120);
    assert_eq!(MIN_TIMEOUT, 120);
    assert_eq!(MAX_TIMEOUT, 65535);
    assert_eq!(MEI_MANAGEMENT_CONTROL, 0x02);
    assert_eq!(MC_VERSION_NUMBER, 0x10);
    assert_eq!(START_WD_TIMER_REQ, 0x13);
    assert_eq!(START_WD_TIMER_RES, 0x83);
    assert_eq!(STOP_WD_TIMER_REQ, 0x14);
    assert_eq!(STATUS_SUCCESS, 0);
    assert_eq!(WDSTATE_NOT_REQUIRED, 0x1);
    assert_eq!(
        (HDR_LEN, START_REQ_LEN, STOP_REQ_LEN, START_RES_LEN),
        (4, 23, 4, 6)
    );
}

fn golden_start(lo: u8, hi: u8) -> [u8; 23] {
    let mut g = [0u8; 23];
    g[..6].copy_from_slice(&[0x02, 0x15, 0x13, 0x10, lo, hi]);
    g
}

#[test]
fn encode_start_golden() {
    assert_eq!(encode_start(120), golden_start(0x78, 0x00));
    assert_eq!(encode_start(65535), golden_start(0xff, 0xff));
    assert_eq!(encode_start(0x1234), golden_start(0x34, 0x12));
    assert_eq!(encode_start(0), golden_start(0x00, 0x00));
    let req = encode_start(DEFAULT_TIMEOUT);
    assert_eq!(req.len(), 23);
    // bytecount covers everything after the bytecount byte.
    assert_eq!(usize::from(req[1]), req.len() - 2);
    assert!(req[6..].iter().all(|&b| b == 0));
    assert_eq!(req[6..].len(), 17);
}

#[test]
fn encode_stop_golden() {
    assert_eq!(encode_stop(), [0x02, 0x02, 0x14, 0x10]);
}

#[test]
fn decode_start_response() {
    assert_eq!(
        decode_response(&[0x02, 0x04, 0x83, 0x10, 0x00, 0x00]),
        Ok(Response::Start {
            status: 0,
            not_required: false
        })
    );
    assert_eq!(
        decode_response(&[0x02, 0x04, 0x83, 0x10, 0x00, 0x01]),
        Ok(Response::Start {
            status: 0,
            not_required: true
        })
    );
}

#[test]
fn decode_wdstate_is_a_bit_test() {
    // C tests `wdstate & MEI_WDT_WDSTATE_NOT_REQUIRED`, not equality.
    let dec = |w| decode_response(&[0x02, 0x04, 0x83, 0x10, 0x00, w]);
    for (w, nr) in [(0x02, false), (0x03, true), (0xfe, false), (0xff, true)] {
        assert_eq!(
            dec(w),
            Ok(Response::Start {
                status: 0,
                not_required: nr
            }),
            "wdstate {w:#x}"
        );
    }
}

#[test]
fn decode_nonzero_status_is_not_an_error() {
    assert_eq!(
        decode_response(&[0x02, 0x04, 0x83, 0x10, 0x07, 0x01]),
        Ok(Response::Start {
            status: 7,
            not_required: true
        })
    );
}

#[test]
fn decode_bytecount_is_not_checked() {
    // C never looks at the response bytecount.
    assert_eq!(
        decode_response(&[0x02, 0x99, 0x83, 0x10, 0x00, 0x00]),
        Ok(OK)
    );
}

#[test]
fn decode_empty() {
    assert_eq!(decode_response(&[]), Ok(Response::Empty));
}

#[test]
fn decode_short() {
    let good = [0x02, 0x04, 0x83, 0x10, 0x00, 0x00];
    for n in 1..=5 {
        assert_eq!(decode_response(&good[..n]), Err(DecodeError::Short(n)));
    }
    assert_eq!(
        DecodeError::Short(3).to_string(),
        "short response (3 bytes)"
    );
}

#[test]
fn decode_oversize() {
    let mut big = [0u8; 64];
    big[..6].copy_from_slice(&[0x02, 0x04, 0x83, 0x10, 0x00, 0x00]);
    for n in [7, 23, 64] {
        assert_eq!(decode_response(&big[..n]), Err(DecodeError::Oversize(n)));
    }
    assert_eq!(
        DecodeError::Oversize(7).to_string(),
        "oversize response (7 bytes)"
    );
}

#[test]
fn decode_wrong_command() {
    assert_eq!(
        decode_response(&[0x03, 0x04, 0x83, 0x10, 0x00, 0x00]),
        Err(DecodeError::WrongCommand(0x03))
    );
    assert_eq!(
        DecodeError::WrongCommand(0x03).to_string(),
        "wrong command 0x03"
    );
}

#[test]
fn decode_wrong_version() {
    assert_eq!(
        decode_response(&[0x02, 0x04, 0x83, 0x11, 0x00, 0x00]),
        Err(DecodeError::WrongVersion(0x11))
    );
    assert_eq!(
        DecodeError::WrongVersion(0x11).to_string(),
        "wrong version 0x11"
    );
}

#[test]
fn decode_unsupported_subcommand() {
    // A stop request echoed back, say.
    assert_eq!(
        decode_response(&[0x02, 0x04, 0x14, 0x10, 0x00, 0x00]),
        Err(DecodeError::UnsupportedSubcommand(0x14))
    );
    assert_eq!(
        DecodeError::UnsupportedSubcommand(0x14).to_string(),
        "unsupported subcommand 0x14"
    );
    assert_eq!(
        DecodeError::UnsupportedSubcommand(0xff).to_string(),
        "unsupported subcommand 0xff"
    );
}

#[test]
fn decode_check_order() {
    // Length wins over everything.
    assert_eq!(decode_response(&[0xff; 5]), Err(DecodeError::Short(5)));
    assert_eq!(decode_response(&[0xff; 7]), Err(DecodeError::Oversize(7)));
    // Then command, version, subcommand.
    assert_eq!(
        decode_response(&[0xff; 6]),
        Err(DecodeError::WrongCommand(0xff))
    );
    assert_eq!(
        decode_response(&[0x02, 0xff, 0xff, 0xff, 0xff, 0xff]),
        Err(DecodeError::WrongVersion(0xff))
    );
    assert_eq!(
        decode_response(&[0x02, 0xff, 0xff, 0x10, 0xff, 0xff]),
        Err(DecodeError::UnsupportedSubcommand(0xff))
    );
}

#[test]
fn wire_timeout_bounds() {
    assert_eq!(wire_timeout(0), None);
    assert_eq!(wire_timeout(119), None);
    assert_eq!(wire_timeout(120), Some(120));
    assert_eq!(wire_timeout(3600), Some(3600));
    assert_eq!(wire_timeout(65535), Some(65535));
    assert_eq!(wire_timeout(65536), None);
    assert_eq!(wire_timeout(u32::MAX), None);
}

// ---- state machine ----

#[test]
fn state_names() {
    let names = [
        "PROBE",
        "IDLE",
        "START",
        "RUNNING",
        "STOPPING",
        "NOT_REQUIRED",
    ];
    for (s, n) in ALL_STATES.iter().zip(names) {
        assert_eq!(s.as_str(), n);
        assert_eq!(s.to_string(), n);
    }
}

#[test]
fn new_machine() {
    for (v, req) in [(0, false), (1, false), (2, true), (3, true), (255, true)] {
        let m = Machine::new(v);
        assert_eq!(m.state(), State::Probe);
        assert_eq!(m.resp_required(), req, "version {v}");
    }
}

#[test]
fn probe_in_every_state() {
    for s in ALL_STATES {
        // v1 registers at once: IDLE before the device is visible.
        let mut m = machine_in(1, s);
        assert_eq!(m.probe(), ProbeAction::Register);
        assert_eq!(m.state(), State::Idle);
        let mut m = machine_in(2, s);
        assert_eq!(m.probe(), ProbeAction::Ping);
        assert_eq!(m.state(), s);
    }
}

#[test]
fn registering_in_every_state() {
    for v in [1, 2] {
        for s in ALL_STATES {
            let mut m = machine_in(v, s);
            m.registering();
            assert_eq!(m.state(), State::Idle, "from {s}");
        }
    }
}

#[test]
fn op_start_in_every_state() {
    for v in [1, 2] {
        for s in ALL_STATES {
            let mut m = machine_in(v, s);
            m.op_start();
            assert_eq!(m.state(), State::Start, "from {s}");
        }
    }
}

#[test]
fn op_stop_in_every_state() {
    for v in [1, 2] {
        for s in ALL_STATES {
            let mut m = machine_in(v, s);
            if s == State::Running {
                assert_eq!(m.op_stop(), StopAction::SendStop);
                assert_eq!(m.state(), State::Stopping);
            } else {
                assert_eq!(m.op_stop(), StopAction::Nothing, "from {s}");
                assert_eq!(m.state(), s);
            }
        }
    }
}

#[test]
fn stop_sent_ok_and_failed() {
    for v in [1, 2] {
        let mut m = machine_in(v, State::Running);
        assert_eq!(m.op_stop(), StopAction::SendStop);
        m.stop_sent(true);
        assert_eq!(m.state(), State::Idle);

        // C returns the error and leaves STOPPING behind.
        let mut m = machine_in(v, State::Running);
        assert_eq!(m.op_stop(), StopAction::SendStop);
        m.stop_sent(false);
        assert_eq!(m.state(), State::Stopping);
        // ... where stop and ping are no-ops until the next start.
        assert_eq!(m.op_stop(), StopAction::Nothing);
        assert_eq!(m.op_ping(), PingAction::Nothing);
        assert_eq!(m.state(), State::Stopping);
        m.op_start();
        assert_eq!(m.state(), State::Start);
    }
}

#[test]
fn op_ping_in_every_state() {
    for (v, wait) in [(1, false), (2, true)] {
        for s in ALL_STATES {
            let mut m = machine_in(v, s);
            match s {
                State::Start | State::Running => {
                    assert_eq!(m.op_ping(), PingAction::Send { wait });
                    assert_eq!(m.state(), State::Running);
                }
                _ => {
                    assert_eq!(m.op_ping(), PingAction::Nothing, "from {s}");
                    assert_eq!(m.state(), s);
                }
            }
        }
    }
}

#[test]
fn response_empty_in_every_state() {
    for v in [1, 2] {
        for s in ALL_STATES {
            let mut m = machine_in(v, s);
            assert_eq!(m.response(&Response::Empty), RxAction::Ignore);
            assert_eq!(m.state(), s);
        }
    }
}

#[test]
fn response_start_in_every_state() {
    use State::*;
    const WRONG: RxAction = RxAction::WrongState;
    const UNREG: RxAction = RxAction::UnregisterLater;
    // (state, not_required, expected action, next state)
    let table = [
        (Probe, false, RxAction::StopAndRegister, Idle),
        (Probe, true, RxAction::Complete, NotRequired),
        (Idle, false, WRONG, Idle),
        (Idle, true, WRONG, Idle),
        (Start, false, WRONG, Start),
        (Start, true, WRONG, Start),
        (Running, false, RxAction::Complete, Running),
        (Running, true, UNREG, NotRequired),
        (Stopping, false, WRONG, Stopping),
        (Stopping, true, WRONG, Stopping),
        (NotRequired, false, WRONG, NotRequired),
        (NotRequired, true, WRONG, NotRequired),
    ];
    assert_eq!(table.len(), ALL_STATES.len() * 2);
    for v in [1, 2] {
        for (s, nr, act, next) in table {
            // The status byte never changes the outcome.
            for status in [STATUS_SUCCESS, 0x42] {
                let mut m = machine_in(v, s);
                let r = Response::Start {
                    status,
                    not_required: nr,
                };
                assert_eq!(m.response(&r), act, "{s} nr={nr} status={status}");
                assert_eq!(m.state(), next, "{s} nr={nr}");
            }
        }
    }
}

#[test]
fn notification_in_every_state() {
    for v in [1, 2] {
        for s in ALL_STATES {
            let mut m = machine_in(v, s);
            // machine_in reaches NOT_REQUIRED through an open device.
            let (want, next) = if s == State::NotRequired {
                (NotifAction::Register, State::Start)
            } else {
                (NotifAction::Ignore, s)
            };
            assert_eq!(m.notification(), want, "in {s}");
            assert_eq!(m.state(), next);
            assert_eq!(m.unregister_due(), next == State::NotRequired);
        }
    }
}

#[test]
fn unregistered_in_every_state() {
    for v in [1, 2] {
        for s in ALL_STATES {
            let mut m = machine_in(v, s);
            m.unregistered();
            assert_eq!(m.state(), s);
        }
    }
}

// ---- the C driver's flows, end to end ----

/// v2 firmware: probe ping, stop+register, open, ping with wait, close,
/// firmware says NOT_REQUIRED while running, then wants it back.
#[test]
fn flow_v2() {
    let mut m = Machine::new(2);
    assert_eq!(m.probe(), ProbeAction::Ping);
    assert_eq!(m.state(), State::Probe);
    // Stray empty message during probe changes nothing.
    assert_eq!(m.response(&Response::Empty), RxAction::Ignore);
    // IDLE before the device is registered (and visible).
    assert_eq!(m.response(&OK), RxAction::StopAndRegister);
    assert_eq!(m.state(), State::Idle);
    m.registering();
    assert_eq!(m.state(), State::Idle);

    // open: start op, then the core's first ping.
    m.op_start();
    assert_eq!(m.state(), State::Start);
    assert_eq!(m.op_ping(), PingAction::Send { wait: true });
    assert_eq!(m.state(), State::Running);
    assert_eq!(m.response(&OK), RxAction::Complete);
    assert_eq!(m.op_ping(), PingAction::Send { wait: true });
    assert_eq!(m.response(&OK), RxAction::Complete);

    // close: stop, maybe followed by an empty message from the firmware.
    assert_eq!(m.op_stop(), StopAction::SendStop);
    assert_eq!(m.state(), State::Stopping);
    m.stop_sent(true);
    assert_eq!(m.state(), State::Idle);
    assert_eq!(m.response(&Response::Empty), RxAction::Ignore);
    assert_eq!(m.op_stop(), StopAction::Nothing);

    // reopen; firmware no longer needs us.
    m.op_start();
    assert_eq!(m.op_ping(), PingAction::Send { wait: true });
    assert_eq!(m.response(&NOT_REQ), RxAction::UnregisterLater);
    assert_eq!(m.state(), State::NotRequired);
    // The core may still ping/stop before the work unregisters us.
    assert_eq!(m.op_ping(), PingAction::Nothing);
    assert_eq!(m.op_stop(), StopAction::Nothing);
    assert!(m.unregister_due());
    m.unregistered();
    assert_eq!(m.state(), State::NotRequired);

    // Firmware wants the watchdog again.
    assert_eq!(m.notification(), NotifAction::Register);
    assert_eq!(m.state(), State::Idle);
    m.registering();
    assert_eq!(m.state(), State::Idle);
    assert_eq!(m.notification(), NotifAction::Ignore);
}

/// v2 firmware that does not need the watchdog at probe time.
#[test]
fn flow_v2_not_required_at_probe() {
    let mut m = Machine::new(2);
    assert_eq!(m.probe(), ProbeAction::Ping);
    assert_eq!(m.response(&NOT_REQ), RxAction::Complete);
    assert_eq!(m.state(), State::NotRequired);
    // A late or duplicate response is a wrong-state warning.
    assert_eq!(m.response(&OK), RxAction::WrongState);
    assert_eq!(m.notification(), NotifAction::Register);
    m.registering();
    assert_eq!(m.state(), State::Idle);
}

/// v1 firmware: registers at probe, pings never wait.
#[test]
fn flow_v1() {
    let mut m = Machine::new(1);
    assert!(!m.resp_required());
    assert_eq!(m.probe(), ProbeAction::Register);
    m.registering();
    assert_eq!(m.state(), State::Idle);
    m.op_start();
    assert_eq!(m.op_ping(), PingAction::Send { wait: false });
    assert_eq!(m.op_ping(), PingAction::Send { wait: false });
    assert_eq!(m.op_stop(), StopAction::SendStop);
    m.stop_sent(true);
    assert_eq!(m.state(), State::Idle);
}

/// Open and close without any ping: nothing goes on the wire.
#[test]
fn flow_start_then_stop_sends_nothing() {
    let mut m = machine_in(2, State::Idle);
    m.op_start();
    assert_eq!(m.op_stop(), StopAction::Nothing);
    assert_eq!(m.state(), State::Start);
}

#[test]
fn probe_timeout_waits_for_a_notification() {
    let mut m = Machine::new(2);
    assert_eq!(m.probe(), ProbeAction::Ping);
    // The unanswered probe ping may have started the firmware's timer:
    // the driver stops it, once.
    assert!(m.probe_timed_out());
    assert!(!m.probe_timed_out());
    assert_eq!(m.state(), State::NotRequired);
    assert_eq!(m.notification(), NotifAction::Register);
    m.registering();
    assert_eq!(m.state(), State::Idle);
}

#[test]
fn probe_timeout_after_an_answer_changes_nothing() {
    for answered in [State::Idle, State::NotRequired, State::Running] {
        let mut m = Machine::new(2);
        let _ = m.probe();
        match answered {
            State::Idle => {
                let _ = m.response(&OK);
                m.registering();
            }
            State::NotRequired => {
                let _ = m.response(&NOT_REQ);
            }
            _ => {
                let _ = m.response(&OK);
                m.registering();
                m.op_start();
                let _ = m.op_ping();
            }
        }
        assert!(!m.probe_timed_out());
        assert_eq!(m.state(), answered);
    }
}

/// A v2 machine whose probe ping got no answer in time.
fn probe_timed_out() -> Machine {
    let mut m = Machine::new(2);
    let _ = m.probe();
    m.probe_timed_out();
    m
}

#[test]
fn late_probe_answer_registers() {
    let mut m = probe_timed_out();
    assert_eq!(m.response(&OK), RxAction::StopAndRegister);
    m.registering();
    assert_eq!(m.state(), State::Idle);
    // Only the first answer counts as the probe's.
    assert_eq!(m.response(&OK), RxAction::WrongState);
}

#[test]
fn late_probe_answer_not_required_stays_not_required() {
    let mut m = probe_timed_out();
    assert_eq!(m.response(&NOT_REQ), RxAction::Complete);
    assert_eq!(m.state(), State::NotRequired);
    assert_eq!(m.notification(), NotifAction::Register);
}

#[test]
fn notification_after_probe_timeout_ends_the_wait_for_a_late_answer() {
    let mut m = probe_timed_out();
    assert_eq!(m.notification(), NotifAction::Register);
    m.registering();
    assert_eq!(m.response(&OK), RxAction::WrongState);
}

/// The device is visible from `device_add` on, before its registration
/// returns: an open and a ping in between must not be forgotten when it
/// does (C sets IDLE after registering, dropping both: later keepalives do
/// nothing and the close sends no stop).
#[test]
fn ops_during_registration_are_kept() {
    for (v, first) in [(2, OK), (1, Response::Empty)] {
        let mut m = Machine::new(v);
        if v == 2 {
            assert_eq!(m.probe(), ProbeAction::Ping);
            assert_eq!(m.response(&first), RxAction::StopAndRegister);
        } else {
            assert_eq!(m.probe(), ProbeAction::Register);
        }
        m.registering();
        // The device is visible from here on, before its registration
        // returns.
        m.op_start();
        assert_eq!(m.op_ping(), PingAction::Send { wait: v == 2 });
        assert_eq!(m.state(), State::Running, "v{v}");
        assert_eq!(m.op_stop(), StopAction::SendStop, "v{v}");
    }
}

/// A notification right after a NOT_REQUIRED answer, before the unregister
/// work ran: the work must leave the device registered (C unregisters it,
/// and the firmware's request is lost until its next notification).
#[test]
fn notification_before_the_unregister_work_keeps_the_device() {
    let mut m = machine_in(2, State::Running);
    assert_eq!(m.response(&NOT_REQ), RxAction::UnregisterLater);
    assert_eq!(m.notification(), NotifAction::Register);
    assert!(!m.unregister_due());
    // Still open and active in the core, which will not call start again:
    // the next keepalive must re-arm the firmware, and the close stop it.
    assert_eq!(m.op_ping(), PingAction::Send { wait: true });
    assert_eq!(m.op_stop(), StopAction::SendStop);
}

/// The notification while the unregister work is unregistering (it found
/// the unregistration due): the device that replaces the old one starts
/// IDLE, not in the old one's START.
#[test]
fn notification_during_the_unregistration_gives_an_idle_device() {
    let mut m = machine_in(2, State::Running);
    assert_eq!(m.response(&NOT_REQ), RxAction::UnregisterLater);
    assert!(m.unregister_due());
    assert_eq!(m.notification(), NotifAction::Register);
    // The core stops the old device as it unregisters it.
    assert_eq!(m.op_stop(), StopAction::Nothing);
    m.unregistered();
    m.registering();
    assert_eq!(m.state(), State::Idle);
    assert_eq!(m.op_ping(), PingAction::Nothing);
}

/// The same notification after the unregister work ran: a new device,
/// IDLE until it is opened.
#[test]
fn notification_after_the_unregister_work_registers_anew() {
    let mut m = machine_in(2, State::Running);
    assert_eq!(m.response(&NOT_REQ), RxAction::UnregisterLater);
    assert!(m.unregister_due());
    // The core stops an active device when it is unregistered.
    assert_eq!(m.op_stop(), StopAction::Nothing);
    m.unregistered();
    assert_eq!(m.notification(), NotifAction::Register);
    assert_eq!(m.state(), State::Idle);
    assert_eq!(m.op_ping(), PingAction::Nothing);
}

/// A keepalive that the core passes on while it unregisters the device
/// (one that raced its stop, or one after an open that started the device
/// after the core's check for an active one), here after a notification
/// made the device being unregistered START again: it must not start the
/// firmware's timer, which nobody would stop.
#[test]
fn keepalive_during_the_unregistration_sends_nothing() {
    let mut m = machine_in(2, State::Running);
    assert_eq!(m.response(&NOT_REQ), RxAction::UnregisterLater);
    assert!(m.unregister_due());
    m.unregistering();
    assert_eq!(m.notification(), NotifAction::Register);
    assert_eq!(m.op_stop(), StopAction::Nothing);
    assert_eq!(m.op_ping(), PingAction::Nothing);
    m.unregistered();
    // The new device works as any other.
    m.registering();
    m.op_start();
    assert_eq!(m.op_ping(), PingAction::Send { wait: true });
    assert!(m.ping_still_wanted());
}

/// A ping decided before a stop that the core sent without its lock
/// (unregister, reboot) must not go out after that stop.
#[test]
fn ping_overtaken_by_a_stop_is_not_sent() {
    for v in [1, 2] {
        let mut m = machine_in(v, State::Running);
        assert!(matches!(m.op_ping(), PingAction::Send { .. }));
        assert!(m.ping_still_wanted());
        assert_eq!(m.op_stop(), StopAction::SendStop);
        assert!(!m.ping_still_wanted(), "v{v}, stopping");
        m.stop_sent(true);
        assert!(!m.ping_still_wanted(), "v{v}, stopped");
    }
    // Nor after the device began to be unregistered.
    let mut m = machine_in(2, State::Running);
    assert!(matches!(m.op_ping(), PingAction::Send { .. }));
    m.unregistering();
    assert!(!m.ping_still_wanted());
}
