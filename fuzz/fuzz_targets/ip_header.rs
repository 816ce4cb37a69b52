//! `IpHeader::new_checked` and every accessor never panic, and agree with each other.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rgost_relay::ip::IpHeader;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = IpHeader::new_checked(data) {
        let version = header.version();
        assert!(version == 4 || version == 6);
        assert!(header.header_len() <= data.len());
        let flow = header.flow();
        assert_eq!(flow.src, header.src());
        assert_eq!(flow.dst, header.dst());
        assert_eq!(flow.protocol, header.protocol());
        assert_eq!(flow.src.is_ipv4(), version == 4);
        let hash = header.flow_hash();
        let copy = IpHeader::new_checked(data.to_vec()).expect("same bytes");
        assert_eq!(copy.flow_hash(), hash);
        assert_eq!(copy.flow(), flow);
    }
});
