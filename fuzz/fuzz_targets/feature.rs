//! `Feature::decode` never panics; what it accepts re-encodes to at most the
//! bytes it used (exactly those when it ignored none: padding after a feature's
//! fields is read as GOST reads it), and the re-encoding is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::Feature;

fuzz_target!(|data: &[u8]| {
    if let Ok((feature, used)) = Feature::decode(data) {
        assert!(used <= data.len());
        let mut wire = Vec::new();
        feature.encode(&mut wire);
        assert_eq!(wire.len(), feature.encoded_len());
        assert!(wire.len() <= used);
        if wire.len() == used {
            assert_eq!(&wire[..], &data[..used]);
        }
        let (again, again_used) = Feature::decode(&wire).expect("a re-encoding decodes");
        assert_eq!((&again, again_used), (&feature, wire.len()));
        let mut rewire = Vec::new();
        again.encode(&mut rewire);
        assert_eq!(rewire, wire);
    }
});
