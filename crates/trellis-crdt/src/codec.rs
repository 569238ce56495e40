//! The one place that turns values into bytes and back.
//!
//! An encoding is a format version byte ([`FORMAT_VERSION`]), a packing
//! byte, then the *body*: bincode 2 in its standard configuration
//! (little-endian, variable-length integers). Keeping bincode behind this
//! module means the format can be swapped later by bumping the version
//! byte.
//!
//! - Packing [`PLAIN`]: the body as it is.
//! - Packing [`DEFLATE`]: the body's length (8 bytes, little-endian), then
//!   the body compressed as a zlib stream (deflate with an adler32
//!   checksum, `miniz_oxide`, level [`DEFLATE_LEVEL`]). The encoder uses it
//!   only for bodies of at least [`COMPRESS_FROM`] bytes (whole states sent
//!   in bulk, large snapshots), and only when it is smaller; a record or a
//!   delta of a few hundred bytes stays plain, so writes pay nothing.
//!
//! Encodings are deterministic: the crate's types keep their contents in
//! canonical order, so equal states give equal bytes (and equal
//! [`Digest`](crate::Digest)s) on every platform. The compressor is
//! deterministic too (pure Rust, integer code), and its version is pinned
//! exactly; a golden test fails if an upgrade changes its output, in which
//! case the upgrade needs a new format version.
//!
//! History: version 1 (until 2026-12-07) had no packing byte and wrote a
//! set's dots with their full replica ids; version 2 (one commit on
//! 2026-12-07) added the packing byte and compression. Version 3 writes an
//! [`AwSet`](crate::AwSet) with each replica id once (see its
//! "Encoding"). Decoding versions 1 and 2 fails with
//! [`DecodeError::OutdatedVersion`], which says so: their set layout can
//! not be told apart from version 3's inside a body.
//!
//! Decoding treats its input as hostile: the input length is checked
//! against a limit before anything is read; a compressed body may claim at
//! most that limit once decompressed, and must decompress to exactly the
//! length it claims; the length prefixes and integers inside the body may
//! claim at most about sixteen times the body's size in total (bincode
//! counts a one-byte varint as the 8 bytes it decodes to, so a legitimate
//! body claims up to eight times its length; a short input still cannot
//! make the decoder allocate a large buffer); and malformed input returns a
//! [`DecodeError`], never a panic.
//!
//! ```
//! use trellis_crdt::codec;
//!
//! let bytes = codec::encode(&vec![1u32, 2, 3]);
//! assert_eq!(bytes[..2], [codec::FORMAT_VERSION, codec::PLAIN]);
//! let back: Vec<u32> = codec::decode(&bytes).unwrap();
//! assert_eq!(back, vec![1, 2, 3]);
//! assert!(codec::decode::<Vec<u32>>(&[codec::FORMAT_VERSION, codec::PLAIN, 0xff]).is_err());
//!
//! // A large, repetitive body is compressed.
//! let big = vec![7u64; 100_000];
//! let bytes = codec::encode(&big);
//! assert_eq!(bytes[1], codec::DEFLATE);
//! assert!(bytes.len() < 1_000);
//! assert_eq!(codec::decode::<Vec<u64>>(&bytes).unwrap(), big);
//! ```

use bincode::config::{self, Configuration, Limit, LittleEndian, Varint};
use serde::{de::DeserializeOwned, Serialize};

/// The first byte of every encoding.
pub const FORMAT_VERSION: u8 = 3;

/// Packing byte: the body follows as it is.
pub const PLAIN: u8 = 0;

/// Packing byte: the body's length (u64, little-endian), then the body as
/// a zlib stream.
pub const DEFLATE: u8 = 1;

/// Bodies at least this long are compressed (when that makes them
/// smaller): 16 KiB. Below it, compressing would cost more time (the
/// compressor's tables) than it saves bytes.
pub const COMPRESS_FROM: usize = 16 << 10;

/// The buffer an encoding starts with, in bytes.
const ENCODE_CAPACITY: usize = 512;

/// The deflate level used: 1, the fastest. Large encodings are bulk
/// transfers and snapshots, where compressing must keep up with the
/// network. Level 6 gives 0.6–1.0× level 1's bytes on the benchmark data,
/// at about a third of the speed (zlib's speeds on similar data).
pub const DEFLATE_LEVEL: u8 = 1;

/// Bytes of the length in front of a compressed body.
const RAW_LEN_BYTES: usize = 8;

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

/// Picks the smallest claim cap of at least sixteen times the body (and
/// 16 KiB). bincode counts a decoded integer as its in-memory size, so a
/// one-byte varint claims 8 bytes: a legitimate body claims at most about
/// eight times its length.
fn decode_body<T: DeserializeOwned>(
    body: &[u8],
) -> Result<(T, usize), bincode::error::DecodeError> {
    let len = body.len();
    if len <= 1 << 10 {
        decode_claiming::<T, { 16 << 10 }>(body)
    } else if len <= 16 << 10 {
        decode_claiming::<T, { 256 << 10 }>(body)
    } else if len <= 256 << 10 {
        decode_claiming::<T, { 4 << 20 }>(body)
    } else if len <= 4 << 20 {
        decode_claiming::<T, { 64 << 20 }>(body)
    } else if len <= 64 << 20 {
        decode_claiming::<T, { 1 << 30 }>(body)
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
    /// The version byte names an older format this build no longer reads.
    #[error(
        "format version {found} was written by an older Trellis build; this build reads only \
         version {FORMAT_VERSION} (sets are laid out differently since): read the data with the \
         older build and write it again through this one"
    )]
    OutdatedVersion {
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

/// Encodes `value`: the version byte, the packing byte, then its
/// canonical bytes, compressed if they are large.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Most records and deltas fit: a buffer grown from empty would be
    // reallocated several times on the way.
    let mut out = Vec::with_capacity(ENCODE_CAPACITY);
    encode_to(value, &mut out);
    out
}

/// Appends the encoding of `value` to `out`: the same bytes as
/// [`encode`], without a buffer of their own (for callers that frame many
/// encodings in one buffer).
pub fn encode_to<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[FORMAT_VERSION, PLAIN]);
    bincode::serde::encode_into_std_write(value, out, config::standard())
        .expect("serializing a trellis value into memory cannot fail");
    let body_len = out.len() - start - 2;
    if body_len >= COMPRESS_FROM {
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&out[start + 2..], DEFLATE_LEVEL);
        if packed.len() + RAW_LEN_BYTES < body_len {
            out.truncate(start);
            out.extend_from_slice(&[FORMAT_VERSION, DEFLATE]);
            out.extend_from_slice(&(body_len as u64).to_le_bytes());
            out.extend_from_slice(&packed);
        }
    }
}

/// Writes the encoding of `value` into `writer` (a hasher, a buffer): the
/// same bytes as [`encode`].
///
/// # Panics
///
/// Only if `value`'s `Serialize` implementation itself fails or `writer`
/// fails. Neither happens for this crate's types written to memory or a
/// hasher; the codec is not meant for fallible writers such as files.
pub fn encode_into_writer<T: Serialize + ?Sized, W: std::io::Write>(value: &T, writer: &mut W) {
    writer
        .write_all(&encode(value))
        .expect("codec writers are in-memory and infallible");
}

/// Decodes a value, accepting inputs up to [`DEFAULT_DECODE_LIMIT`] bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode_with_limit(bytes, DEFAULT_DECODE_LIMIT)
}

/// Decodes a value, refusing inputs longer than `limit` bytes, and
/// compressed bodies that would decompress to more than `limit` bytes.
pub fn decode_with_limit<T: DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, DecodeError> {
    let (&version, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    match version {
        FORMAT_VERSION => {}
        found @ 1..FORMAT_VERSION => return Err(DecodeError::OutdatedVersion { found }),
        found => return Err(DecodeError::UnsupportedVersion { found }),
    }
    match rest.split_first() {
        Some((&PLAIN, body)) => decode_plain(body),
        Some((&DEFLATE, packed)) => decode_plain(&inflate(packed, limit)?),
        Some((&other, _)) => Err(DecodeError::Malformed(format!(
            "unknown packing byte {other} (this build reads {PLAIN} for plain and {DEFLATE} \
             for deflate); upgrade this node to read data written by a newer one"
        ))),
        None => Err(DecodeError::Malformed(
            "the packing byte after the format version is missing".into(),
        )),
    }
}

/// Decodes an uncompressed body, which must be consumed exactly.
fn decode_plain<T: DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
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

/// Decompresses a [`DEFLATE`] body: its claimed length must be within
/// `limit`, and the zlib stream must produce exactly that many bytes, pass
/// its checksum and end where the input ends. The output buffer grows with
/// what the stream actually produces, never past the claim.
fn inflate(packed: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;

    let malformed = |what: String| Err(DecodeError::Malformed(what));
    if packed.len() < RAW_LEN_BYTES {
        return malformed("a compressed body is cut off before its length".into());
    }
    let (claim, mut input) = packed.split_at(RAW_LEN_BYTES);
    let claim = u64::from_le_bytes(claim.try_into().expect("split at 8 bytes"));
    let raw_len = match usize::try_from(claim) {
        Ok(len) if len <= limit => len,
        _ => {
            return malformed(format!(
                "a compressed body claims {claim} bytes once decompressed, over the decode \
                 limit of {limit} bytes"
            ))
        }
    };
    let flags = inflate_flags::TINFL_FLAG_PARSE_ZLIB_HEADER
        | inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let mut out = vec![0u8; raw_len.min(input.len().saturating_mul(4)).max(1)];
    let mut state = Box::<DecompressorOxide>::default();
    let mut written = 0;
    loop {
        let (status, read, wrote) = decompress(&mut state, input, &mut out, written, flags);
        written += wrote;
        input = input.get(read..).unwrap_or_default();
        match status {
            TINFLStatus::Done => break,
            TINFLStatus::HasMoreOutput if out.len() < raw_len => {
                let grown = out.len().saturating_mul(2).min(raw_len);
                out.resize(grown, 0);
            }
            TINFLStatus::HasMoreOutput => {
                return malformed(format!(
                    "a compressed body decompresses to more than the {raw_len} bytes it claims"
                ))
            }
            TINFLStatus::FailedCannotMakeProgress | TINFLStatus::NeedsMoreInput => {
                return malformed("a compressed body is cut off".into())
            }
            TINFLStatus::Adler32Mismatch => {
                return malformed("a compressed body fails its checksum".into())
            }
            other => return malformed(format!("a compressed body is corrupt ({other:?})")),
        }
    }
    if !input.is_empty() {
        return malformed(format!(
            "{} unexpected bytes after a compressed body",
            input.len()
        ));
    }
    if written != raw_len {
        return malformed(format!(
            "a compressed body decompresses to {written} bytes but claims {raw_len}"
        ));
    }
    out.truncate(written);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_version_byte() {
        let value = (7u64, String::from("lead"), vec![true, false]);
        let bytes = encode(&value);
        assert_eq!(bytes[..2], [FORMAT_VERSION, PLAIN]);
        assert_eq!(decode::<(u64, String, Vec<bool>)>(&bytes).unwrap(), value);
    }

    #[test]
    fn refuses_bad_framing() {
        assert_eq!(decode::<u8>(&[]), Err(DecodeError::Empty));
        assert_eq!(
            decode::<u8>(&[9, PLAIN, 1]),
            Err(DecodeError::UnsupportedVersion { found: 9 })
        );
        let err = decode::<u8>(&[FORMAT_VERSION]).unwrap_err();
        assert!(err.to_string().contains("packing byte"), "{err}");
        let err = decode::<u8>(&[FORMAT_VERSION, 7, 1]).unwrap_err();
        assert!(err.to_string().contains("unknown packing byte 7"), "{err}");
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
    fn older_versions_are_refused_clearly() {
        for found in 1..FORMAT_VERSION {
            let err = decode::<u8>(&[found, PLAIN, 1]).unwrap_err();
            assert_eq!(err, DecodeError::OutdatedVersion { found });
            assert!(err.to_string().contains("older Trellis build"), "{err}");
        }
        let err = decode::<u8>(&[0, 1]).unwrap_err();
        assert_eq!(err, DecodeError::UnsupportedVersion { found: 0 });
    }

    #[test]
    fn huge_length_prefixes_fail_without_allocating() {
        // A vector claiming u64::MAX elements, with nothing behind it.
        let mut bytes = vec![FORMAT_VERSION, PLAIN, 0xff];
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
        let mut bytes = vec![FORMAT_VERSION, PLAIN, 0xfc];
        bytes.extend_from_slice(&100_000_000u32.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        let err = decode::<String>(&bytes).unwrap_err();
        assert!(err.to_string().contains("claims far more bytes"), "{err}");
    }

    /// A large value that compresses: squares modulo 1000.
    fn compressible() -> Vec<u64> {
        (0..20_000u64).map(|i| i * i % 1000).collect()
    }

    #[test]
    fn large_bodies_are_compressed_and_round_trip() {
        let value = compressible();
        let bytes = encode(&value);
        assert_eq!(bytes[..2], [FORMAT_VERSION, DEFLATE]);
        let plain_len = bincode::serde::encode_to_vec(&value, config::standard())
            .unwrap()
            .len();
        assert!(
            bytes.len() * 2 < plain_len,
            "{} vs {plain_len}",
            bytes.len()
        );
        assert_eq!(decode::<Vec<u64>>(&bytes).unwrap(), value);
        // Digests hash exactly these bytes.
        assert_eq!(
            crate::Digest::of(&value),
            crate::Digest::of_encoding(&bytes)
        );
    }

    #[test]
    fn appending_gives_the_same_bytes_after_what_was_there() {
        let small = vec![1u64, 2, 3];
        for bytes in [encode(&small), encode(&compressible())] {
            let value: Vec<u64> = decode(&bytes).unwrap();
            let mut out = b"framing".to_vec();
            encode_to(&value, &mut out);
            assert_eq!(&out[..7], b"framing");
            assert_eq!(&out[7..], &bytes[..]);
        }
    }

    #[test]
    fn incompressible_large_bodies_stay_plain() {
        // Bytes of a xorshift sequence do not compress.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let value: Vec<u8> = (0..COMPRESS_FROM * 2)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()[0]
            })
            .collect();
        let bytes = encode(&value);
        assert_eq!(bytes[..2], [FORMAT_VERSION, PLAIN]);
        assert_eq!(decode::<Vec<u8>>(&bytes).unwrap(), value);
    }

    /// The compressed bytes are part of the digest: if upgrading the
    /// compressor changes them, this fails, and the upgrade needs a new
    /// [`FORMAT_VERSION`].
    #[test]
    fn compressed_bytes_are_pinned() {
        let digest = crate::Digest::of(&compressible());
        assert_eq!(
            digest.to_hex(),
            "941a7e039238e817f87a5b27ca35498e6c2a92285a1fbd2a4513ab242fe62217"
        );
    }

    fn packed(value: &[u64]) -> Vec<u8> {
        let bytes = encode(value);
        assert_eq!(bytes[1], DEFLATE);
        bytes
    }

    #[test]
    fn hostile_compressed_bodies_are_refused() {
        let good = packed(&compressible());
        let expect = |bytes: &[u8], needle: &str| {
            let err = decode::<Vec<u64>>(bytes).unwrap_err();
            assert!(err.to_string().contains(needle), "{needle}: {err}");
        };
        // Cut off before the length, and inside the stream.
        expect(&good[..5], "before its length");
        expect(&good[..good.len() - 10], "cut off");
        // A claim over the limit is refused before anything is allocated.
        let mut huge = good.clone();
        huge[2..10].copy_from_slice(&u64::MAX.to_le_bytes());
        expect(&huge, "over the decode limit");
        let mut over = good.clone();
        over[2..10].copy_from_slice(&((DEFAULT_DECODE_LIMIT as u64) + 1).to_le_bytes());
        expect(&over, "over the decode limit");
        // Claims shorter or longer than the stream.
        let raw = u64::from_le_bytes(good[2..10].try_into().unwrap());
        let mut short = good.clone();
        short[2..10].copy_from_slice(&(raw - 1).to_le_bytes());
        expect(&short, "more than the");
        let mut long = good.clone();
        long[2..10].copy_from_slice(&(raw + 1).to_le_bytes());
        expect(&long, "decompresses to");
        // A flipped bit in the stream, bytes after it, garbage.
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        assert!(decode::<Vec<u64>>(&flipped).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        expect(&trailing, "after a compressed body");
        let mut garbage = good[..10].to_vec();
        garbage.extend_from_slice(&[0xff; 64]);
        assert!(decode::<Vec<u64>>(&garbage).is_err());
        // A tiny stream claiming a body within the limit but not holding it.
        let mut bomb = vec![FORMAT_VERSION, DEFLATE];
        bomb.extend_from_slice(&(DEFAULT_DECODE_LIMIT as u64).to_le_bytes());
        bomb.extend_from_slice(&miniz_oxide::deflate::compress_to_vec_zlib(&[0; 100], 6));
        expect(&bomb, "decompresses to 100 bytes");
    }

    #[test]
    fn a_compression_bomb_stops_at_the_limit() {
        // 8 MiB of zeros compress to about 8 KiB; with a 1 MiB limit the
        // claim is refused, and with a lying claim of 1 MiB decompression
        // stops there.
        let zeros = vec![0u8; 8 << 20];
        let stream = miniz_oxide::deflate::compress_to_vec_zlib(&zeros, 6);
        let mut bytes = vec![FORMAT_VERSION, DEFLATE];
        bytes.extend_from_slice(&(1u64 << 20).to_le_bytes());
        bytes.extend_from_slice(&stream);
        let err = decode_with_limit::<Vec<u8>>(&bytes, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("more than the"), "{err}");
        bytes[2..10].copy_from_slice(&(8u64 << 20).to_le_bytes());
        let err = decode_with_limit::<Vec<u8>>(&bytes, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("over the decode limit"), "{err}");
    }
}
