//! `Response::decode` never panics; what it accepts re-encodes to exactly the
//! bytes it used and decodes to the same response.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::{DecodeError, Response};

fuzz_target!(|data: &[u8]| {
    match Response::decode(data) {
        Ok((response, used)) => {
            let mut wire = Vec::new();
            response.encode(&mut wire);
            assert_eq!(wire.len(), response.encoded_len());
            assert_eq!(&wire[..], &data[..used]);
            assert_eq!(Response::decode(&wire), Ok((response, used)));
        }
        Err(DecodeError::Incomplete(n)) => assert!(n > 0),
        Err(_) => {}
    }
});
