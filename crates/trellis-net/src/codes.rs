//! Application error codes Trellis sends in QUIC `STOP_SENDING`,
//! `RESET_STREAM` and `CONNECTION_CLOSE` frames.
//!
//! Stream codes (`0x1xx`) say why one stream was dropped; the connection
//! carries on. Connection codes (`0x2xx`) say why a whole connection was
//! closed. Code `0` is a normal close.

use quinn::VarInt;

/// A normal close: the connection or stream is no longer needed.
pub const NORMAL: VarInt = VarInt::from_u32(0);

/// Stream: a frame did not decode (truncated, or the payload is not a
/// valid encoding of the expected message).
pub const MALFORMED_FRAME: VarInt = VarInt::from_u32(0x101);
/// Stream: a frame's length prefix exceeds the receiver's `max_frame_size`.
pub const FRAME_TOO_LARGE: VarInt = VarInt::from_u32(0x102);
/// Stream: a frame's version byte is not one this build reads.
pub const UNSUPPORTED_FRAME_VERSION: VarInt = VarInt::from_u32(0x103);

/// Connection: the endpoint is shutting down.
pub const SHUTDOWN: VarInt = VarInt::from_u32(0x201);
/// Connection: the negotiated protocol has no receiver on this node.
pub const UNKNOWN_PROTOCOL: VarInt = VarInt::from_u32(0x202);
/// Connection: this node has too many connections, or the protocol's
/// queue of new connections is full; try again later.
pub const BUSY: VarInt = VarInt::from_u32(0x203);
/// Connection: the peer's certificate carries no usable node id.
pub const BAD_IDENTITY: VarInt = VarInt::from_u32(0x204);
