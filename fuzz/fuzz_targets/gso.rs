//! GSO frames and super-packet segmentation: classifying any payload and
//! segmenting any checked super-packet never panic, and the segments add up
//! to the super-packet: every segment is an IP packet whose length field
//! says its length, and their payloads, in order, are the super-packet's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::gso::{self, Payload, SuperPacket};

fuzz_target!(|data: &[u8]| {
    let Payload::Gso(frame) = gso::classify(data) else { return };
    let Ok(sp) = SuperPacket::new_checked(frame.packet, frame.gso_size) else { return };
    assert!(sp.segments() <= gso::MAX_SEGMENTS);
    let mut out = Vec::new();
    let mut lens = Vec::new();
    sp.segment(&mut out, |len| lens.push(len));
    assert_eq!(lens.len(), sp.segments());
    assert_eq!(lens.iter().sum::<usize>(), out.len());
    let header = sp.header_len();
    let mut payload = Vec::new();
    let mut at = 0;
    for len in lens {
        let seg = &out[at..at + len];
        at += len;
        assert!(len >= header && len - header <= usize::from(frame.gso_size));
        let declared = if sp.is_v6() {
            40 + usize::from(u16::from_be_bytes([seg[4], seg[5]]))
        } else {
            usize::from(u16::from_be_bytes([seg[2], seg[3]]))
        };
        assert_eq!(declared, len);
        payload.extend_from_slice(&seg[header..]);
    }
    assert_eq!(payload, frame.packet[header..]);
    // A partial checksum completes without panicking, in range or not.
    let mut copy = frame.packet.to_vec();
    let _ = gso::complete_checksum(&mut copy, usize::from(frame.flags), 16);
});
