//! Walks a buffer frame by frame: `peek` and `split` agree, never panic, and
//! re-encoding each packet gives back its frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::frame::{self, FrameStatus};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match frame::peek(rest) {
            FrameStatus::Complete { total } => {
                let (packet, next) = frame::split(rest).expect("peek said complete");
                assert_eq!(packet.len() + frame::HEADER_LEN, total);
                let mut wire = Vec::new();
                assert!(frame::encode(packet, &mut wire));
                assert_eq!(&wire[..], &rest[..total]);
                rest = next;
            }
            FrameStatus::Incomplete(n) => {
                assert!(n > 0);
                assert_eq!(frame::split(rest), None);
                break;
            }
        }
    }
});
