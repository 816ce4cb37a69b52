//! `Feature::decode` never panics; what it accepts re-encodes to exactly the
//! bytes it used and decodes to the same feature.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::Feature;

fuzz_target!(|data: &[u8]| {
    if let Ok((feature, used)) = Feature::decode(data) {
        let mut wire = Vec::new();
        feature.encode(&mut wire);
        assert_eq!(wire.len(), feature.encoded_len());
        assert_eq!(&wire[..], &data[..used]);
        assert_eq!(Feature::decode(&wire), Ok((feature, used)));
    }
});
