// SPDX-License-Identifier: GPL-2.0

//! Tests of the firmware model against hand-written wire bytes.

extern crate std;
use crate::fw::*;
use std::string::String;
use std::vec::Vec;

const HOST: u8 = 3;

type Fw = Firmware<Vec<Option<Record>>>;

fn new_fw(config: Config) -> Fw {
    Firmware::new(config, std::vec![None; TRACE_LEN])
}

fn hdr(me: u8, host: u8, len: usize) -> u32 {
    u32::from(me) | u32::from(host) << 8 | (len as u32) << 16 | 1 << 31
}

fn hbm(fw: &mut Fw, p: &[u8]) {
    fw.host_write(hdr(0, 0, p.len()), p, 0);
}

/// Drains every message deliverable at `now`, as (me, host, payload).
fn drain(fw: &mut Fw, now: u64) -> Vec<(u8, u8, Vec<u8>)> {
    let mut out = Vec::new();
    while fw.rx_pending(now) {
        let slots = fw.rx_slots();
        let h = fw.rx_header();
        let len = (h >> 16 & 0x1ff) as usize;
        assert_eq!(slots as usize, 1 + len.div_ceil(4));
        let mut buf = [0u8; MAX_MSG];
        if len > 0 {
            fw.rx_payload(&mut buf[..len]);
        }
        out.push(((h & 0xff) as u8, (h >> 8 & 0xff) as u8, buf[..len].to_vec()));
    }
    out
}

fn trace(fw: &Fw) -> String {
    let mut s = String::new();
    fw.write_trace(&mut s).unwrap();
    s
}

fn start_req(timeout: u16) -> [u8; 23] {
    let mut r = [0u8; 23];
    r[..4].copy_from_slice(&[0x02, 21, 0x13, 0x10]);
    r[4..6].copy_from_slice(&timeout.to_le_bytes());
    r
}

/// Brings the firmware to a connected watchdog client with one credit each
/// way, and returns it.
fn connected(config: Config) -> Fw {
    let mut fw = new_fw(config);
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    let msgs = drain(&mut fw, 0);
    assert_eq!(msgs[0].2, [0x86, WD_ME_ADDR, HOST, 0]);
    assert_eq!(msgs[1].2, [0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0]);
    hbm(&mut fw, &[0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0]);
    fw
}

fn ping(fw: &mut Fw, timeout: u16, now: u64) {
    let r = start_req(timeout);
    fw.host_write(hdr(WD_ME_ADDR, HOST, r.len()), &r, now);
}

#[test]
fn hbm_start_enumeration_and_properties() {
    let mut fw = new_fw(Config::default());
    // A newer host (2.2) falls back to our 2.0; an older one keeps its own.
    hbm(&mut fw, &[0x01, 0, 2, 2]);
    assert_eq!(drain(&mut fw, 0), [(0, 0, [0x81, 0, 0, 2].to_vec())]);
    hbm(&mut fw, &[0x01, 0, 0, 1]);
    assert_eq!(drain(&mut fw, 0), [(0, 0, [0x81, 1, 0, 2].to_vec())]);
    hbm(&mut fw, &[0x04, 0, 0, 0]);
    let enumr = drain(&mut fw, 0).remove(0).2;
    assert_eq!(enumr.len(), 36);
    assert_eq!(enumr[0], 0x84);
    assert_eq!(enumr[4], 1 << WD_ME_ADDR);
    assert!(enumr[5..].iter().all(|&b| b == 0));
    hbm(&mut fw, &[0x05, WD_ME_ADDR, 0, 0]);
    let props = drain(&mut fw, 0).remove(0).2;
    assert_eq!(props[..4], [0x85, WD_ME_ADDR, 0, 0]);
    assert_eq!(props[4..20], WD_GUID);
    assert_eq!(props[20], 2);
    assert_eq!(
        u32::from_le_bytes(props[24..28].try_into().unwrap()),
        WD_MTU
    );
    hbm(&mut fw, &[0x05, 7, 0, 0]);
    assert_eq!(drain(&mut fw, 0)[0].2[2], 1, "unknown client is not found");
}

#[test]
fn guid_bytes_match_the_textual_guid() {
    // 05B79A6F-4628-4D7F-899D-A91514CB32AB in uuid_le layout.
    assert_eq!(
        u32::from_le_bytes(WD_GUID[0..4].try_into().unwrap()),
        0x05B7_9A6F
    );
    assert_eq!(u16::from_le_bytes([WD_GUID[4], WD_GUID[5]]), 0x4628);
    assert_eq!(u16::from_le_bytes([WD_GUID[6], WD_GUID[7]]), 0x4D7F);
    assert_eq!(
        WD_GUID[8..],
        [0x89, 0x9D, 0xA9, 0x15, 0x14, 0xCB, 0x32, 0xAB]
    );
}

#[test]
fn amt_disabled_enumerates_nothing_and_refuses_connect() {
    let mut fw = new_fw(Config {
        wd: false,
        ..Config::default()
    });
    hbm(&mut fw, &[0x01, 0, 2, 2]);
    hbm(&mut fw, &[0x04, 0, 0, 0]);
    let msgs = drain(&mut fw, 0);
    assert!(msgs[1].2[4..].iter().all(|&b| b == 0));
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    assert_eq!(drain(&mut fw, 0)[0].2[3], 1);
}

#[test]
fn version_and_presence_change_at_next_enumeration_only() {
    let mut fw = new_fw(Config::default());
    hbm(&mut fw, &[0x01, 0, 2, 2]);
    fw.config.apply("version=1").unwrap();
    hbm(&mut fw, &[0x05, WD_ME_ADDR, 0, 0]);
    assert_eq!(drain(&mut fw, 0)[1].2[20], 2);
    fw.link_reset();
    hbm(&mut fw, &[0x01, 0, 2, 2]);
    hbm(&mut fw, &[0x05, WD_ME_ADDR, 0, 0]);
    assert_eq!(drain(&mut fw, 0)[1].2[20], 1);
}

#[test]
fn ping_gets_start_response_and_credit() {
    let mut fw = connected(Config::default());
    ping(&mut fw, 120, 0);
    let msgs = drain(&mut fw, 0);
    assert_eq!(msgs.len(), 2);
    assert_eq!(
        msgs[0],
        (0, 0, [0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0].to_vec())
    );
    assert_eq!(
        msgs[1],
        (WD_ME_ADDR, HOST, [2, 4, 0x83, 0x10, 0, 0].to_vec())
    );
    assert_eq!(
        trace(&fw),
        "host: connect\n\
         host> 02 15 13 10 78 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 | start-request timeout=120\n\
         fw< 02 04 83 10 00 00 | start-response status=0 wdstate=0\n"
    );
}

#[test]
fn client_message_waits_for_host_credit() {
    let mut fw = new_fw(Config::default());
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    drain(&mut fw, 0);
    ping(&mut fw, 120, 0);
    // Only the flow-control credit: the response needs the host's credit.
    assert_eq!(drain(&mut fw, 0).len(), 1);
    assert_eq!(fw.next_deadline(), Some(120_000), "only the timer is due");
    hbm(&mut fw, &[0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0]);
    assert_eq!(drain(&mut fw, 0)[0].0, WD_ME_ADDR);
}

#[test]
fn not_required_bit() {
    let mut fw = connected(Config {
        not_required: true,
        ..Config::default()
    });
    ping(&mut fw, 120, 0);
    assert_eq!(drain(&mut fw, 0)[1].2, [2, 4, 0x83, 0x10, 0, 1]);
}

#[test]
fn every_fault_class() {
    let cases: [(&str, Option<&[u8]>); 9] = [
        ("drop", None),
        ("empty", Some(&[])),
        ("short", Some(&[2, 4, 0x83])),
        ("oversize", Some(&[2, 8, 0x83, 0x10, 0, 0, 0, 0, 0, 0])),
        ("wrong_command", Some(&[3, 4, 0x83, 0x10, 0, 0])),
        ("wrong_version", Some(&[2, 4, 0x83, 0x11, 0, 0])),
        ("wrong_subcommand", Some(&[2, 4, 0x93, 0x10, 0, 0])),
        ("bad_status", Some(&[2, 4, 0x83, 0x10, 1, 0])),
        ("none", Some(&[2, 4, 0x83, 0x10, 0, 0])),
    ];
    for (fault, want) in cases {
        let mut config = Config::default();
        config.apply(&std::format!("fault={fault}")).unwrap();
        let mut fw = connected(config);
        ping(&mut fw, 120, 0);
        let client: Vec<_> = drain(&mut fw, 0)
            .into_iter()
            .filter(|m| m.0 == WD_ME_ADDR)
            .map(|m| m.2)
            .collect();
        match want {
            None => {
                assert!(client.is_empty(), "{fault}");
                assert!(trace(&fw).ends_with("fw: start-response dropped\n"));
            }
            Some(w) => assert_eq!(client, [w.to_vec()], "{fault}"),
        }
    }
}

#[test]
fn answers_of_any_length() {
    for (len, want) in [
        (0, &[][..]),
        (4, &[2, 4, 0x83, 0x10][..]),
        (5, &[2, 4, 0x83, 0x10, 0][..]),
        (6, &[2, 4, 0x83, 0x10, 0, 0][..]),
    ] {
        let mut fw = connected(Config {
            fault: Fault::Length,
            answer_len: len,
            ..Config::default()
        });
        ping(&mut fw, 120, 0);
        let msgs = drain(&mut fw, 0);
        assert_eq!(msgs.last().unwrap().2, want, "{len}");
    }
    for len in [17, 64, 65, MAX_MSG] {
        let mut fw = connected(Config {
            fault: Fault::Length,
            answer_len: len,
            ..Config::default()
        });
        ping(&mut fw, 120, 0);
        let answer = drain(&mut fw, 0).pop().unwrap().2;
        assert_eq!(answer.len(), len);
        assert_eq!(answer[..6], [2, (len - 2) as u8, 0x83, 0x10, 0, 0]);
        assert!(answer[6..].iter().all(|&b| b == 0), "{len}");
    }
}

#[test]
fn refused_connect_and_failed_read_requests() {
    let mut fw = new_fw(Config {
        connect_refused: true,
        ..Config::default()
    });
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    assert_eq!(
        drain(&mut fw, 0),
        [(0, 0, [0x86, WD_ME_ADDR, HOST, 5].to_vec())]
    );
    assert_eq!(trace(&fw), "host: connect refused status=5\n");

    let mut fw = new_fw(Config {
        read_fault: true,
        ..Config::default()
    });
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    drain(&mut fw, 0);
    let fc = [0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0];
    assert_eq!(
        fw.host_write(hdr(0, 0, fc.len()), &fc, 0),
        WriteResult::Error
    );
    assert!(trace(&fw).ends_with("fw: flow-control write reported failed\n"));
    // No credit was given: the firmware does not answer a ping.
    ping(&mut fw, 120, 0);
    assert!(drain(&mut fw, 0).iter().all(|m| m.0 != WD_ME_ADDR));
    // Once cleared, the host's next read request counts.
    fw.config.read_fault = false;
    assert_eq!(
        fw.host_write(hdr(0, 0, fc.len()), &fc, 0),
        WriteResult::Done
    );
    ping(&mut fw, 120, 0);
    assert!(drain(&mut fw, 0).iter().any(|m| m.0 == WD_ME_ADDR));
}

#[test]
fn delayed_response() {
    let mut fw = connected(Config {
        fault: Fault::Delay,
        delay_ms: 500,
        ..Config::default()
    });
    ping(&mut fw, 120, 1000);
    assert_eq!(drain(&mut fw, 1000).len(), 1, "credit only");
    assert_eq!(fw.next_deadline(), Some(1500));
    assert!(drain(&mut fw, 1499).is_empty());
    assert_eq!(drain(&mut fw, 1500)[0].2, [2, 4, 0x83, 0x10, 0, 0]);
}

#[test]
fn answer_gap_then_delay() {
    let mut fw = connected(Config {
        answer_gap_ms: 20,
        ..Config::default()
    });
    ping(&mut fw, 120, 1000);
    assert_eq!(drain(&mut fw, 1000).len(), 1, "credit only");
    assert_eq!(fw.next_deadline(), Some(1020));
    assert!(drain(&mut fw, 1019).is_empty());
    assert_eq!(drain(&mut fw, 1020)[0].2, [2, 4, 0x83, 0x10, 0, 0]);
    // A delay fault comes on top of the gap.
    let mut fw = connected(Config {
        answer_gap_ms: 20,
        fault: Fault::Delay,
        delay_ms: 500,
        ..Config::default()
    });
    ping(&mut fw, 120, 1000);
    drain(&mut fw, 1000);
    assert_eq!(fw.next_deadline(), Some(1520));
}

#[test]
fn firmware_timer_expires_without_pings_and_not_after_stop() {
    let mut fw = connected(Config {
        ms_per_fw_second: 10,
        ..Config::default()
    });
    ping(&mut fw, 120, 0);
    drain(&mut fw, 0);
    fw.tick(1199);
    assert_eq!(fw.timer(), TimerState::Armed { deadline: 1200 });
    ping(&mut fw, 121, 1000); // re-arms with the new timeout
    drain(&mut fw, 1000);
    fw.tick(2209);
    assert_eq!(fw.timer(), TimerState::Armed { deadline: 2210 });
    fw.tick(2210);
    assert_eq!(fw.timer(), TimerState::Expired);
    let mut s = String::new();
    fw.write_timer(&mut s).unwrap();
    assert_eq!(s, "state=expired timeout=121 expired=1 starts=2\n");
    assert!(trace(&fw).ends_with("fw: timer expired\n"));

    fw.clear();
    ping(&mut fw, 120, 3000);
    drain(&mut fw, 3000);
    let stop = [2u8, 2, 0x14, 0x10];
    fw.host_write(hdr(WD_ME_ADDR, HOST, 4), &stop, 3100);
    assert_eq!(drain(&mut fw, 3100).len(), 1, "credit, no response to stop");
    fw.tick(100_000);
    assert_eq!(fw.timer(), TimerState::Idle);
    assert_eq!(fw.next_deadline(), None);
    assert!(trace(&fw).contains("host> 02 02 14 10 | stop-request\n"));
    let mut s = String::new();
    fw.write_timer(&mut s).unwrap();
    assert_eq!(
        s, "state=idle timeout=120 expired=0 starts=1\n",
        "cleared, then one start"
    );
}

#[test]
fn malformed_requests_do_not_arm_the_timer() {
    let mut fw = connected(Config::default());
    let mut bad = start_req(120);
    bad[1] = 20; // wrong bytecount
    fw.host_write(hdr(WD_ME_ADDR, HOST, 23), &bad, 0);
    assert_eq!(fw.timer(), TimerState::Idle);
    assert!(trace(&fw).contains("subcommand 0x13 with bad length 23"));
    assert_eq!(drain(&mut fw, 0).len(), 1, "credit, no response");
}

#[test]
fn notification_needs_connection_and_enable() {
    let mut fw = new_fw(Config::default());
    assert_eq!(fw.notify(0), Err(ActionError::NotConnected));
    let mut fw = connected(Config::default());
    assert_eq!(fw.notify(0), Err(ActionError::NotConnected));
    hbm(&mut fw, &[0x10, WD_ME_ADDR, HOST, 1]);
    assert_eq!(
        drain(&mut fw, 0)[0].2,
        [0x90, WD_ME_ADDR, HOST, 0, 1, 0, 0, 0]
    );
    fw.notify(0).unwrap();
    assert_eq!(drain(&mut fw, 0)[0].2, [0x11, WD_ME_ADDR, HOST, 0]);
    assert!(trace(&fw).ends_with("host: notify-request start=1\nfw: notification\n"));
}

#[test]
fn notification_refused_when_unsupported() {
    let mut fw = connected(Config {
        notify: false,
        ..Config::default()
    });
    hbm(&mut fw, &[0x10, WD_ME_ADDR, HOST, 1]);
    assert_eq!(drain(&mut fw, 0)[0].2[3], 5);
    assert_eq!(fw.notify(0), Err(ActionError::NotConnected));
}

#[test]
fn disconnect_drops_connection_and_pending_client_messages() {
    let mut fw = connected(Config {
        fault: Fault::Delay,
        delay_ms: 100,
        ..Config::default()
    });
    ping(&mut fw, 120, 0);
    hbm(&mut fw, &[0x07, WD_ME_ADDR, HOST, 0]);
    let msgs = drain(&mut fw, 1000);
    assert!(msgs.iter().all(|m| m.0 == 0));
    assert!(msgs.iter().any(|m| m.2 == [0x87, WD_ME_ADDR, HOST, 0]));
    ping(&mut fw, 120, 1000);
    assert!(trace(&fw).ends_with("host: disconnect\nhost> (not connected) 02 15 13 10 78 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00\n"));
}

#[test]
fn second_connect_is_refused() {
    let mut fw = connected(Config::default());
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST + 1, 0]);
    assert_eq!(drain(&mut fw, 0)[0].2, [0x86, WD_ME_ADDR, HOST + 1, 2]);
}

#[test]
fn link_reset_forgets_connection_but_keeps_timer() {
    let mut fw = connected(Config::default());
    ping(&mut fw, 120, 0);
    fw.link_reset();
    assert!(!fw.rx_pending(0));
    assert!(matches!(fw.timer(), TimerState::Armed { .. }));
    assert_eq!(fw.notify(0), Err(ActionError::NotConnected));
}

#[test]
fn reset_after_answer_waits_for_the_client_answer_and_is_one_shot() {
    let mut fw = connected(Config {
        fault: Fault::Delay,
        delay_ms: 500,
        ..Config::default()
    });
    fw.reset_after_answer();
    ping(&mut fw, 120, 0);
    // The flow-control message is HBM, not the answer.
    assert_eq!(drain(&mut fw, 0).len(), 1, "credit only");
    assert!(!fw.take_reset_now(0));
    assert_eq!(drain(&mut fw, 500).len(), 1, "the answer");
    assert!(fw.take_reset_now(500));
    assert!(!fw.take_reset_now(500));
    // The stub resets the link (its hw_reset); HBM answers wait a while.
    fw.link_reset();
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    let up = 500 + RESET_AFTER_ANSWER_DOWN_MS;
    assert!(drain(&mut fw, up - 1).is_empty());
    assert_eq!(drain(&mut fw, up).len(), 2, "connect answer and credit");
    hbm(&mut fw, &[0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0]);
    ping(&mut fw, 120, up);
    assert_eq!(drain(&mut fw, up + 500).len(), 2);
    assert!(!fw.take_reset_now(up + 500));
    // A link reset disarms it.
    fw.reset_after_answer();
    fw.link_reset();
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    assert_eq!(drain(&mut fw, 3000).len(), 2);
    hbm(&mut fw, &[0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0]);
    ping(&mut fw, 120, 3000);
    assert_eq!(drain(&mut fw, 3500).len(), 2);
    assert!(!fw.take_reset_now(3500));
}

#[test]
fn bad_headers_are_ignored() {
    let mut fw = new_fw(Config::default());
    // Incomplete message (msg_complete clear) and extended header.
    fw.host_write(4 << 16, &[0x01, 0, 2, 2], 0);
    fw.host_write(hdr(0, 0, 4) | 1 << 28, &[0x01, 0, 2, 2], 0);
    assert!(!fw.rx_pending(0));
}

#[test]
fn config_round_trip_and_errors() {
    let mut c = Config::default();
    c.apply("wd=0 version=1 not_required=1 notify=0 hbm=1.0 fault=wrong_version delay_ms=7 answer_gap_ms=3 ms_per_fw_second=10")
        .unwrap();
    let mut s = String::new();
    c.write_to(&mut s).unwrap();
    assert_eq!(
        s,
        "wd=0\nversion=1\nnot_required=1\nnotify=0\nhbm=1.0\nfault=wrong_version\ndelay_ms=7\nanswer_gap_ms=3\nms_per_fw_second=10\n\
         write_fault=none\nwrite_late_ms=0\nnotify_after_ms=off\nanswer_len=6\nconnect_refused=0\nread_fault=0\ntrace=1\n\
         fuzz=0x0\nfuzz_delay_ms=0\n"
    );
    c.apply("answer_len=128 connect_refused=1 read_fault=1")
        .unwrap();
    assert_eq!(
        (c.answer_len, c.connect_refused, c.read_fault),
        (128, true, true)
    );
    assert_eq!(c.apply("answer_len=129"), Err(ConfigError::BadValue));
    c.apply("write_fault=late write_late_ms=300 notify_after_ms=5")
        .unwrap();
    assert_eq!(
        (c.write_fault, c.write_late_ms, c.notify_after_ms),
        (WriteFault::Late, 300, Some(5))
    );
    c.apply("write_fault=error notify_after_ms=off").unwrap();
    assert_eq!(
        (c.write_fault, c.notify_after_ms),
        (WriteFault::Error, None)
    );
    assert_eq!(c.apply("write_fault=sometimes"), Err(ConfigError::BadValue));
    let before = c;
    assert_eq!(c.apply("wd=1 bogus=1"), Err(ConfigError::UnknownKey));
    assert_eq!(c.apply("wd=2"), Err(ConfigError::BadValue));
    assert_eq!(c.apply("fault=melt"), Err(ConfigError::BadValue));
    assert_eq!(c.apply("ms_per_fw_second=0"), Err(ConfigError::BadValue));
    assert_eq!(c.apply("wd"), Err(ConfigError::UnknownKey));
    assert_eq!(c, before, "a refused string changes nothing");
}

#[test]
fn decode_mc_classes() {
    assert_eq!(decode_mc(&[]), McMsg::Empty);
    assert_eq!(decode_mc(&[2, 2]), McMsg::Short(2));
    assert_eq!(decode_mc(&[9, 2, 0x14, 0x10]), McMsg::UnknownCommand(9));
    assert_eq!(decode_mc(&[2, 2, 0x14, 0x11]), McMsg::UnknownVersion(0x11));
    assert_eq!(decode_mc(&[2, 2, 0x14, 0x10]), McMsg::StopRequest);
    assert_eq!(decode_mc(&[2, 3, 0x14, 0x10, 0]), McMsg::BadLength(0x14, 5));
    assert_eq!(
        decode_mc(&start_req(0xfffe)),
        McMsg::StartRequest { timeout: 0xfffe }
    );
    assert_eq!(
        decode_mc(&[2, 2, 0x55, 0x10]),
        McMsg::UnknownSubcommand(0x55)
    );
}

#[test]
fn trace_keeps_newest_lines() {
    let mut fw = connected(Config::default());
    for _ in 0..200 {
        ping(&mut fw, 120, 0);
        hbm(&mut fw, &[0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0]);
        drain(&mut fw, 0);
    }
    let t = trace(&fw);
    assert!(t.starts_with("(145 older lines dropped)\n"));
    assert_eq!(t.lines().count(), 257);
}

#[test]
fn trace_storage_is_the_callers() {
    let mut fw = Firmware::new(Config::default(), std::vec![None; 2]);
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    hbm(&mut fw, &[0x07, WD_ME_ADDR, HOST, 0]);
    hbm(&mut fw, &[0x06, WD_ME_ADDR, HOST, 0]);
    let mut s = String::new();
    fw.write_trace(&mut s).unwrap();
    assert_eq!(
        s,
        "(1 older lines dropped)\nhost: disconnect\nhost: connect\n"
    );
    let mut none = Firmware::new(Config::default(), std::vec![]);
    hbm(&mut none, &[0x06, WD_ME_ADDR, HOST, 0]);
}

#[test]
fn v1_firmware_does_not_answer_pings() {
    let mut fw = connected(Config {
        version: 1,
        ..Config::default()
    });
    ping(&mut fw, 120, 0);
    let msgs = drain(&mut fw, 0);
    // Only the credit for the next message, no start response.
    assert_eq!(
        msgs,
        [(0, 0, std::vec![0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0])]
    );
    assert!(trace(&fw).ends_with("fw: no start-response (v1)\n"));
    assert!(matches!(fw.timer(), TimerState::Armed { .. }));
}

#[test]
fn idle_until_the_host_has_read_everything() {
    let mut fw = connected(Config {
        fault: Fault::Delay,
        delay_ms: 100,
        ..Config::default()
    });
    assert!(fw.idle(0));
    ping(&mut fw, 120, 0);
    assert!(!fw.idle(0));
    // The credit now, the delayed response still queued: busy.
    assert_eq!(drain(&mut fw, 0).len(), 1);
    assert!(!fw.idle(50));
    assert_eq!(drain(&mut fw, 100).len(), 1);
    // The armed timer does not count.
    assert!(fw.idle(100));

    let mut late = connected(Config {
        write_fault: WriteFault::Late,
        write_late_ms: 300,
        ..Config::default()
    });
    late.host_write(hdr(WD_ME_ADDR, HOST, 4), &[0x02, 2, 0x14, 0x10], 0);
    drain(&mut late, 0);
    assert!(!late.idle(299));
    assert!(late.idle(300));
}

#[test]
fn write_faults_deliver_the_message() {
    let stop = [0x02, 2, 0x14, 0x10];
    let mut fw = connected(Config {
        write_fault: WriteFault::Error,
        ..Config::default()
    });
    let r = fw.host_write(hdr(WD_ME_ADDR, HOST, 4), &stop, 0);
    assert_eq!(r, WriteResult::Error);
    assert!(trace(&fw).contains("stop-request\nfw: write reported failed\n"));
    // HBM writes are never faulted.
    assert_eq!(
        fw.host_write(hdr(0, 0, 4), &[0x07, WD_ME_ADDR, HOST, 0], 0),
        WriteResult::Done
    );

    let mut fw = connected(Config {
        write_fault: WriteFault::Late,
        write_late_ms: 300,
        ..Config::default()
    });
    let r = start_req(120);
    assert_eq!(
        fw.host_write(hdr(WD_ME_ADDR, HOST, r.len()), &r, 1000),
        WriteResult::CompleteAt(1300)
    );
    // The answer is not held back, only the write's completion.
    assert_eq!(drain(&mut fw, 1000).len(), 2);
    assert!(fw.writes_held(1299));
    assert_eq!(fw.next_deadline(), Some(1300));
    assert!(!fw.writes_held(1300));
    assert!(trace(&fw).contains("fw: write completion late\n"));
}

#[test]
fn notification_after_a_start_response() {
    let mut fw = connected(Config {
        notify_after_ms: Some(0),
        ..Config::default()
    });
    hbm(&mut fw, &[0x10, WD_ME_ADDR, HOST, 1]);
    drain(&mut fw, 0);
    ping(&mut fw, 120, 0);
    let msgs = drain(&mut fw, 0);
    let kinds: Vec<u8> = msgs.iter().map(|m| m.2[0]).collect();
    // Credit, start response, then the notification: queued in that
    // order and ready at the same time.
    assert_eq!(kinds, [0x08, 0x02, 0x11]);

    let mut late = connected(Config {
        notify_after_ms: Some(50),
        ..Config::default()
    });
    hbm(&mut late, &[0x10, WD_ME_ADDR, HOST, 1]);
    drain(&mut late, 0);
    ping(&mut late, 120, 0);
    assert_eq!(drain(&mut late, 0).len(), 2);
    assert_eq!(drain(&mut late, 49).len(), 0);
    assert_eq!(drain(&mut late, 50)[0].2[0], 0x11);
}

#[test]
fn trace_off_records_nothing_and_still_answers() {
    let mut fw = connected(Config::default());
    let before = trace(&fw);
    fw.config.apply("trace=0").unwrap();
    ping(&mut fw, 120, 0);
    let msgs = drain(&mut fw, 0);
    assert!(
        msgs.iter()
            .any(|(me, host, p)| (*me, *host) == (WD_ME_ADDR, HOST)
                && p[..4] == [0x02, 0x04, 0x83, 0x10]),
        "no start response in {msgs:?}"
    );
    assert_eq!(trace(&fw), before);
    let mut timer = String::new();
    fw.write_timer(&mut timer).unwrap();
    assert!(
        timer.ends_with(" starts=1\n"),
        "counted with no trace: {timer}"
    );
    fw.config.apply("trace=1").unwrap();
    ping(&mut fw, 120, 0);
    drain(&mut fw, 0);
    assert!(trace(&fw).contains("start-request"), "{}", trace(&fw));
}

/// One fuzzed ping: what reached the host by `until`, and whether a link
/// reset was asked for.
fn fuzz_ping(fw: &mut Fw, now: u64, until: u64) -> (Vec<Vec<u8>>, bool) {
    ping(fw, 120, now);
    let msgs = drain(fw, until)
        .into_iter()
        .filter(|(me, _, _)| *me == WD_ME_ADDR)
        .map(|(_, _, p)| p)
        .collect();
    // The credit the host's read request gives back.
    hbm(fw, &[0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0]);
    (msgs, fw.take_reset_wanted())
}

#[test]
fn fuzz_is_seeded_and_takes_every_action() {
    let mut config = Config::default();
    config.apply("fuzz=0x5eed fuzz_delay_ms=50").unwrap();
    let run = || {
        let mut fw = connected(config);
        let mut out = Vec::new();
        for i in 0..2000u64 {
            let now = i * 100;
            out.push(fuzz_ping(&mut fw, now, now + 60));
            // The credits of extra answers, and any still queued.
            for _ in 0..3 {
                hbm(&mut fw, &[0x08, WD_ME_ADDR, HOST, 0, 0, 0, 0, 0]);
            }
            drain(&mut fw, now + 99);
        }
        let mut counts = String::new();
        fw.write_fuzz_counts(&mut counts).unwrap();
        (out, counts)
    };
    let (first, counts) = run();
    assert_eq!(first, run().0, "the same seed, the same firmware");
    assert!(counts.starts_with("seed=0x5eed\n"), "{counts}");
    for line in counts.lines().skip(1) {
        let (name, n) = line.split_once('=').unwrap();
        let n: u32 = n.parse().unwrap();
        assert!(n > 100, "fuzz action {name} taken {n} times in 2000");
    }
    let lens: Vec<usize> = first
        .iter()
        .flat_map(|(m, _)| m.iter().map(Vec::len))
        .collect();
    assert!(lens.iter().all(|&n| n <= 64), "an answer over 64 bytes");
    for want in [0, 5, 6, 7, 64] {
        assert!(lens.contains(&want), "no answer of {want} bytes");
    }
    assert!(first.iter().any(|(m, _)| m.is_empty()), "never silent");
    assert!(
        first.iter().any(|(m, _)| m.len() >= 2),
        "never a second answer"
    );
    assert!(first.iter().any(|(_, reset)| *reset), "never a link reset");
    let other = {
        let mut c = config;
        c.apply("fuzz=0x5eee").unwrap();
        let mut fw = connected(c);
        (0..50u64)
            .map(|i| fuzz_ping(&mut fw, i * 100, i * 100 + 60))
            .collect::<Vec<_>>()
    };
    assert_ne!(first[..50], other[..], "another seed, the same firmware");
}

#[test]
fn fuzz_off_answers_as_configured() {
    let mut fw = connected(Config::default());
    let (msgs, reset) = fuzz_ping(&mut fw, 0, 0);
    assert_eq!(msgs, [[0x02, 4, 0x83, 0x10, 0, 0].to_vec()]);
    assert!(!reset);
}
