//! The checks every forwarded packet passes before it is routed.

use rgost_relay::gso::{self, Payload, SuperPacket};
use rgost_relay::ip::IpHeader;

use crate::DropReason;

/// Checks that a frame's payload is a whole IPv4/IPv6 packet and returns its
/// header view: not empty, a known version with its whole header present,
/// and the length its header declares equal to the frame's length (a
/// mismatch is a malformed or forged frame; a TUN device never produces
/// one). A GSO frame (see [`rgost_relay::gso`]) must hold a TCP
/// super-packet that can be segmented; its header is the super-packet's.
pub fn check(payload: &[u8]) -> Result<IpHeader<&[u8]>, DropReason> {
    if payload.is_empty() {
        return Err(DropReason::ZeroLength);
    }
    let packet = match gso::classify(payload) {
        Payload::Ip(packet) => packet,
        Payload::Gso(frame) => {
            SuperPacket::new_checked(frame.packet, frame.gso_size).map_err(|_| DropReason::Malformed)?;
            frame.packet
        }
    };
    let header = IpHeader::new_checked(packet).map_err(|_| DropReason::NotIp)?;
    if header.declared_len() != packet.len() {
        return Err(DropReason::Malformed);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(total: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p
    }

    fn ipv6(payload: u16, len: usize) -> Vec<u8> {
        let mut p = vec![0u8; len];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        p
    }

    #[test]
    fn lengths_must_agree() {
        assert!(check(&ipv4(20, 20)).is_ok());
        assert!(check(&ipv4(28, 28)).is_ok());
        assert_eq!(check(&ipv4(28, 20)).err(), Some(DropReason::Malformed), "frame shorter than the header says");
        assert_eq!(check(&ipv4(20, 28)).err(), Some(DropReason::Malformed), "trailing bytes");
        assert!(check(&ipv6(0, 40)).is_ok());
        assert!(check(&ipv6(8, 48)).is_ok());
        assert_eq!(check(&ipv6(8, 40)).err(), Some(DropReason::Malformed));
        assert_eq!(check(&ipv6(0, 48)).err(), Some(DropReason::Malformed));
        assert_eq!(check(&[]).err(), Some(DropReason::ZeroLength));
        assert_eq!(check(&[0x45, 0, 0]).err(), Some(DropReason::NotIp));
        assert_eq!(check(&[0x20; 40]).err(), Some(DropReason::NotIp));
    }

    #[test]
    fn gso_frames_are_routed_on_their_super_packet() {
        let mut tcp = ipv4(60, 60);
        tcp[9] = 6;
        tcp[32] = 0x50;
        let mut frame = Vec::new();
        gso::encode_header(0, 10, &mut frame);
        frame.extend_from_slice(&tcp);
        assert!(check(&frame).is_ok());
        // Not TCP, or a segment size of 0: malformed.
        let mut udp = frame.clone();
        udp[4 + 9] = 17;
        assert_eq!(check(&udp).err(), Some(DropReason::Malformed));
        let mut zero = frame.clone();
        zero[2..4].copy_from_slice(&[0, 0]);
        assert_eq!(check(&zero).err(), Some(DropReason::Malformed));
    }

    #[test]
    fn the_specs_example_frame_passes() {
        // spec/relay-protocol.md section 4: 192.168.123.1 -> 192.168.123.2, "hi".
        let packet = [
            0x45, 0x00, 0x00, 0x16, 0x12, 0x34, 0x00, 0x00, 0x40, 0x11, 0xf1, 0x4e, 0xc0, 0xa8, 0x7b, 0x01, 0xc0, 0xa8,
            0x7b, 0x02, 0x68, 0x69,
        ];
        assert!(check(&packet).is_ok());
    }
}
