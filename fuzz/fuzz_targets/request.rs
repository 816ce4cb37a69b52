//! `Request::decode` never panics; what it accepts re-encodes to at most the
//! bytes it used (exactly those, but for CMD's ignored high bits, when it
//! skipped nothing: unknown features, padding after a feature's fields), the
//! re-encoding is a fixed point, and `associate_info` reads it without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::{DecodeError, Feature, Request};

fuzz_target!(|data: &[u8]| {
    match Request::decode(data) {
        Ok((request, used)) => {
            assert!(used <= data.len());
            let mut wire = Vec::new();
            request.encode(&mut wire);
            assert_eq!(wire.len(), request.encoded_len());
            assert!(wire.len() <= used);
            assert_eq!(wire[0], data[0]);
            assert_eq!(wire[1], data[1] & 0x0f);
            if wire.len() == used {
                assert_eq!(&wire[2..], &data[2..used]);
            }
            let (again, again_used) = Request::decode(&wire).expect("a re-encoding decodes");
            assert_eq!((&again, again_used), (&request, wire.len()));
            let mut rewire = Vec::new();
            again.encode(&mut rewire);
            assert_eq!(rewire, wire);

            // The first Addr is the source, the last of the others the host.
            let info = request.associate_info();
            let addrs: Vec<_> = request
                .features
                .iter()
                .filter_map(|f| match f {
                    Feature::Addr(addr) => Some(addr),
                    _ => None,
                })
                .collect();
            assert_eq!(info.src, addrs.first().copied());
            assert_eq!(info.dst, if addrs.len() > 1 { addrs.last().copied() } else { None });
        }
        Err(DecodeError::Incomplete(n)) => assert!(n > 0),
        Err(_) => {}
    }
});
