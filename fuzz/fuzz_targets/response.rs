//! `Response::decode` never panics; what it accepts re-encodes to at most the
//! bytes it used (exactly those when it skipped nothing: unknown features,
//! padding after a feature's fields), and the re-encoding is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::{DecodeError, Response};

fuzz_target!(|data: &[u8]| {
    match Response::decode(data) {
        Ok((response, used)) => {
            assert!(used <= data.len());
            let mut wire = Vec::new();
            response.encode(&mut wire);
            assert_eq!(wire.len(), response.encoded_len());
            assert!(wire.len() <= used);
            if wire.len() == used {
                assert_eq!(&wire[..], &data[..used]);
            }
            let (again, again_used) = Response::decode(&wire).expect("a re-encoding decodes");
            assert_eq!((&again, again_used), (&response, wire.len()));
            let mut rewire = Vec::new();
            again.encode(&mut rewire);
            assert_eq!(rewire, wire);
        }
        Err(DecodeError::Incomplete(n)) => assert!(n > 0),
        Err(_) => {}
    }
});
