//! ALPN protocol names: how one UDP port serves several protocols.
//!
//! Every connection negotiates exactly one protocol during the TLS
//! handshake. A server offers the protocols it [serves](crate::EndpointBuilder::serve);
//! a client offers the one it dials. A client offering a protocol the
//! server does not serve is refused by TLS (`no_application_protocol`).
//! The version suffix changes when a protocol changes incompatibly, so old
//! and new nodes refuse each other cleanly instead of misreading frames.

use crate::error::NetError;

/// Replication between sites: delta push, anti-entropy, membership.
pub const ALPN_GOSSIP: &[u8] = b"trellis-gossip/1";

/// Strongly consistent counters: Raft messages and forwarded requests.
pub const ALPN_COUNTER: &[u8] = b"trellis-counter/1";

/// The longest ALPN protocol name TLS allows.
pub const MAX_PROTOCOL_LEN: usize = 255;

/// Checks that `protocol` can be used as an ALPN protocol name.
pub(crate) fn check_protocol(protocol: &[u8]) -> Result<(), NetError> {
    let reason = if protocol.is_empty() {
        "an ALPN protocol name cannot be empty"
    } else if protocol.len() > MAX_PROTOCOL_LEN {
        "an ALPN protocol name is at most 255 bytes"
    } else {
        return Ok(());
    };
    Err(NetError::Protocol {
        protocol: protocol_text(protocol),
        reason,
    })
}

/// A protocol name as text, for messages and logs.
pub(crate) fn protocol_text(protocol: &[u8]) -> String {
    String::from_utf8_lossy(protocol).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_protocols_are_valid_and_distinct() {
        check_protocol(ALPN_GOSSIP).expect("gossip");
        check_protocol(ALPN_COUNTER).expect("counter");
        assert_ne!(ALPN_GOSSIP, ALPN_COUNTER);
        assert!(check_protocol(b"").is_err());
        assert!(check_protocol(&[b'x'; 256]).is_err());
    }
}
