//! `Request::decode` never panics; what it accepts re-encodes to the same
//! bytes (except CMD's ignored high bits) and decodes to the same request.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::{DecodeError, Request};

fuzz_target!(|data: &[u8]| {
    match Request::decode(data) {
        Ok((request, used)) => {
            assert!(used <= data.len());
            let mut wire = Vec::new();
            request.encode(&mut wire);
            assert_eq!(wire.len(), used);
            assert_eq!(wire.len(), request.encoded_len());
            assert_eq!(wire[0], data[0]);
            assert_eq!(wire[1], data[1] & 0x0f);
            assert_eq!(&wire[2..], &data[2..used]);
            assert_eq!(Request::decode(&wire), Ok((request, used)));
        }
        Err(DecodeError::Incomplete(n)) => assert!(n > 0),
        Err(_) => {}
    }
});
