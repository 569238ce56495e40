//! The one place that turns values into bytes and back.
//!
//! Every encoding starts with a format version byte ([`FORMAT_VERSION`]),
//! followed by bincode 2 in its standard configuration (little-endian,
//! variable-length integers). Keeping bincode behind this module means the
//! format can be swapped later by bumping the version byte.
//!
//! Encodings are deterministic: the crate's types keep their contents in
//! canonical order, so equal states give equal bytes (and equal
//! [`Digest`](crate::Digest)s) on every platform.
//!
//! Decoding treats its input as hostile: the input length is checked
//! against a limit before anything is read, the length prefixes inside
//! may claim at most about four times the input's size in total (so a
//! short input cannot make the decoder allocate a large buffer), and
//! malformed input returns a [`DecodeError`], never a panic.
//!
//! ```
//! use trellis_crdt::codec;
//!
//! let bytes = codec::encode(&vec![1u32, 2, 3]);
//! assert_eq!(bytes[0], codec::FORMAT_VERSION);
//! let back: Vec<u32> = codec::decode(&bytes).unwrap();
//! assert_eq!(back, vec![1, 2, 3]);
//! assert!(codec::decode::<Vec<u32>>(&[codec::FORMAT_VERSION, 0xff]).is_err());
//! ```

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};
use serde::{de::DeserializeOwned, Serialize};

/// The first byte of every encoding.
pub const FORMAT_VERSION: u8 = 1;

/// The largest input [`decode`] accepts: 64 MiB.
pub const DEFAULT_DECODE_LIMIT: usize = 64 << 20;

/// The bincode configuration: little-endian, variable-length integers, and
/// a cap of `LIMIT` bytes on what length prefixes may claim while decoding.
type Encoding<const LIMIT: usize> = Configuration<LittleEndian, Varint, Limit<LIMIT>>;

fn encoding<const LIMIT: usize>() -> Encoding<LIMIT> {
    config::standard().with_limit::<LIMIT>()
}

/// Decodes `body` with bincode refusing length prefixes that claim more
/// than `LIMIT` bytes in total, so a short hostile input cannot make it
/// allocate a large buffer before finding out the bytes are not there.
fn decode_claiming<T: DeserializeOwned, const LIMIT: usize>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(body, encoding::<LIMIT>())
}

/// Picks the smallest claim cap of at least four times the input (and
/// 4 KiB): a legitimate encoding never claims more than its own length.
fn decode_body<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let len = body.len();
    if len <= 1 << 10 {
        decode_claiming::<T, { 4 << 10 }>(body)
    } else if len <= 16 << 10 {
        decode_claiming::<T, { 64 << 10 }>(body)
    } else if len <= 256 << 10 {
        decode_claiming::<T, { 1 << 20 }>(body)
    } else if len <= 4 << 20 {
        decode_claiming::<T, { 16 << 20 }>(body)
    } else if len <= 64 << 20 {
        decode_claiming::<T, { 256 << 20 }>(body)
    } else {
        decode_claiming::<T, { usize::MAX }>(body)
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// There were no bytes at all.
    #[error("empty input: expected at least the format version byte")]
    Empty,
    /// The version byte names a format this build does not read.
    #[error(
        "unsupported format version {found} (this build reads version {FORMAT_VERSION}); \
         upgrade this node to read data written by a newer one"
    )]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The input is larger than the decode limit.
    #[error("input of {len} bytes exceeds the decode limit of {limit} bytes")]
    TooLarge {
        /// Input length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The bytes after the value were not consumed.
    #[error("{extra} unexpected bytes after the encoded value")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// The bytes do not describe a valid value of the expected type.
    #[error("malformed encoding: {0}")]
    Malformed(String),
}

/// Encodes `value`: the version byte, then its canonical bytes.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into_writer(value, &mut out);
    out
}

/// Writes the encoding of `value` into `writer` (a hasher, a buffer).
///
/// # Panics
///
/// Only if `value`'s `Serialize` implementation itself fails or `writer`
/// fails. Neither happens for this crate's types written to memory or a
/// hasher; the codec is not meant for fallible writers such as files.
pub fn encode_into_writer<T: Serialize + ?Sized, W: std::io::Write>(value: &T, writer: &mut W) {
    writer
        .write_all(&[FORMAT_VERSION])
        .expect("codec writers are in-memory and infallible");
    bincode::serde::encode_into_std_write(value, writer, config::standard())
        .expect("serializing a trellis value into memory cannot fail");
}

/// Decodes a value, accepting inputs up to [`DEFAULT_DECODE_LIMIT`] bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_with_limit(bytes, DEFAULT_DECODE_LIMIT)
}

/// Decodes a value, refusing inputs longer than `limit` bytes.
pub fn decode_with_limit<T: DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    let (&version, body) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion { found: version });
    }
    let (value, read) = decode_body(body).map_err(|err| match err {
        bincode::error::DecodeError::LimitExceeded => DecodeError::Malformed(
            "a length prefix claims far more bytes than the input holds".into(),
        ),
        other => DecodeError::Malformed(other.to_string()),
    })?;
    match body.len() - read {
        0 => Ok(value),
        extra => Err(DecodeError::TrailingBytes { extra }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_version_byte() {
        let value = (7u64, String::from("lead"), vec![true, false]);
        let bytes = encode(&value);
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(decode::<(u64, String, Vec<bool>)>(&bytes).unwrap(), value);
    }

    #[test]
    fn refuses_bad_framing() {
        assert_eq!(decode::<u8>(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode::<u8>(&[9, 1]),
            Err(DecodeError::UnsupportedVersion { found: 9 })
        );
        let bytes = encode(&vec![0u8; 100]);
        assert!(matches!(
            decode_with_limit::<Vec<u8>>(&bytes, 50),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut long = encode(&1u8);
        long.push(0);
        assert_eq!(
            decode::<u8>(&long),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn huge_length_prefixes_fail_without_allocating() {
        // A vector claiming u64::MAX elements, with nothing behind it.
        let mut bytes = vec![FORMAT_VERSION, 0xff];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode::<Vec<u64>>(&bytes),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode::<String>(&bytes),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn short_input_cannot_claim_a_large_buffer() {
        // A string claiming 100 MB, followed by 3 bytes.
        let mut bytes = vec![FORMAT_VERSION, 0xfc];
        bytes.extend_from_slice(&100_000_000u32.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let err = decode::<String>(&bytes).unwrap_err();
        assert!(err.to_string().contains("claims far more bytes"), "{err}");
    }
}
