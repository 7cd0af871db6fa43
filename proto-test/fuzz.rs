// SPDX-License-Identifier: GPL-2.0

//! Seeded fuzzing of the decoder and the state machine: arbitrary bytes
//! into [`decode_response`], arbitrary event sequences into [`Machine`],
//! with the properties every input must keep. Fixed seeds and sizes, so a
//! failure reproduces; each run prints its seed and counts.

extern crate std;

use crate::proto::*;
use std::println;
use std::vec::Vec;

/// xorshift64*: small, fast, and the same on every host.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

const SEED: u64 = 0x6d65_695f_7764_7400;

/// A valid start response, then mutated: most fuzz inputs should get past
/// the first checks.
fn message(rng: &mut Rng) -> Vec<u8> {
    let mut buf: Vec<u8> = if rng.below(2) == 0 {
        let len = rng.below(65) as usize;
        (0..len).map(|_| rng.byte()).collect()
    } else {
        let mut b = [
            MEI_MANAGEMENT_CONTROL,
            4,
            START_WD_TIMER_RES,
            MC_VERSION_NUMBER,
            0,
            0,
        ]
        .to_vec();
        for _ in 0..rng.below(3) {
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.byte();
        }
        b.truncate(rng.below(8) as usize);
        b
    };
    if rng.below(8) == 0 {
        buf.clear();
    }
    buf
}

#[test]
fn fuzz_decoder() {
    let mut rng = Rng(SEED);
    let (mut ok, mut err) = (0u32, 0u32);
    const N: u32 = 200_000;
    for _ in 0..N {
        let buf = message(&mut rng);
        let r = decode_response(&buf);
        match r {
            Ok(Response::Empty) => assert!(buf.is_empty()),
            Ok(Response::Start {
                status,
                not_required,
            }) => {
                assert_eq!(buf.len(), START_RES_LEN);
                assert_eq!(
                    (buf[0], buf[2], buf[3]),
                    (
                        MEI_MANAGEMENT_CONTROL,
                        START_WD_TIMER_RES,
                        MC_VERSION_NUMBER
                    )
                );
                assert_eq!(status, buf[4]);
                assert_eq!(not_required, buf[5] & WDSTATE_NOT_REQUIRED != 0);
            }
            Err(DecodeError::Short(n)) => {
                assert!(n == buf.len() && (1..START_RES_LEN).contains(&n))
            }
            Err(DecodeError::Oversize(n)) => assert!(n == buf.len() && n > START_RES_LEN),
            Err(DecodeError::WrongCommand(c)) => assert_eq!(c, buf[0]),
            Err(DecodeError::WrongVersion(v)) => assert_eq!(v, buf[3]),
            Err(DecodeError::UnsupportedSubcommand(s)) => assert_eq!(s, buf[2]),
        }
        if r.is_ok() {
            ok += 1;
        } else {
            err += 1;
        }
    }
    println!("fuzz_decoder: seed {SEED:#x}, {N} messages, {ok} decoded, {err} rejected");
    assert!(
        ok > N / 10 && err > N / 10,
        "the inputs reach both outcomes"
    );
}

#[test]
fn fuzz_machine() {
    let mut rng = Rng(SEED ^ 1);
    const RUNS: u32 = 20_000;
    const EVENTS: u32 = 64;
    let mut states = [0u32; 6];
    for _ in 0..RUNS {
        let version = 1 + rng.below(2) as u8;
        let mut m = Machine::new(version);
        let mut registered = false;
        for _ in 0..EVENTS {
            let before = m;
            let s = before.state();
            match rng.below(11) {
                0 => {
                    let a = m.probe();
                    assert_eq!(a == ProbeAction::Ping, version > 1);
                }
                1 => {
                    m.registering();
                    registered = true;
                    assert_eq!(m.state(), State::Idle);
                    assert_eq!(m.op_ping(), PingAction::Nothing);
                }
                2 => {
                    m.op_start();
                    assert_eq!(m.state(), State::Start);
                }
                3 => {
                    let a = m.op_stop();
                    assert_eq!(a == StopAction::SendStop, s == State::Running);
                    if a == StopAction::SendStop {
                        assert_eq!(m.state(), State::Stopping);
                        assert!(!m.ping_still_wanted());
                        m.stop_sent(rng.below(2) == 0);
                    } else {
                        assert_eq!(m.state(), s);
                    }
                }
                4 => match m.op_ping() {
                    PingAction::Nothing => assert_eq!(m, before),
                    PingAction::Send { wait } => {
                        assert!(matches!(s, State::Start | State::Running));
                        assert_eq!(wait, m.resp_required());
                        assert_eq!(m.state(), State::Running);
                        assert!(m.ping_still_wanted());
                    }
                },
                5 | 6 => {
                    let buf = message(&mut rng);
                    if let Ok(r) = decode_response(&buf) {
                        let a = m.response(&r);
                        if r == Response::Empty {
                            assert_eq!((a, m), (RxAction::Ignore, before));
                        }
                        if a == RxAction::WrongState {
                            assert_eq!(m.state(), s);
                        }
                        if a == RxAction::UnregisterLater {
                            assert!(m.unregister_due());
                        }
                    }
                }
                7 => {
                    let gave_up = m.probe_timed_out();
                    assert_eq!(gave_up, s == State::Probe);
                    if !gave_up {
                        assert_eq!(m, before);
                    }
                }
                8 => match m.notification() {
                    NotifAction::Ignore => assert_eq!(m, before),
                    NotifAction::Register => {
                        assert_eq!(s, State::NotRequired);
                        assert!(!m.unregister_due());
                        assert!(matches!(m.state(), State::Idle | State::Start));
                    }
                },
                9 if registered => {
                    m.unregistering();
                    assert_eq!(m.op_ping(), PingAction::Nothing);
                    assert!(!m.ping_still_wanted());
                    m.unregistered();
                    registered = false;
                }
                _ => {
                    if m.ping_still_wanted() {
                        assert_eq!(m.state(), State::Running);
                    }
                }
            }
            states[m.state() as usize] += 1;
        }
    }
    println!(
        "fuzz_machine: seed {:#x}, {RUNS} runs of {EVENTS} events, states visited \
         (PROBE IDLE START RUNNING STOPPING NOT_REQUIRED) {states:?}",
        SEED ^ 1
    );
    assert!(states.iter().all(|&n| n > 0), "every state reached");
}
