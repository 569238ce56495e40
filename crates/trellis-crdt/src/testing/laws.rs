//! Checks of the lattice laws and of the codec.

use std::fmt::Debug;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde::de::DeserializeOwned;

use crate::{codec, Lattice};

/// Checks, for three states, that merge is idempotent, commutative and
/// associative, that bottom is its identity, and that equal states have
/// equal digests and encodings.
pub fn assert_lattice_laws<L: Lattice + Debug>(a: &L, b: &L, c: &L) -> Result<(), TestCaseError> {
    let join = |x: &L, y: &L| x.clone().merged(y.clone());

    prop_assert_eq!(&join(a, a), a, "merge is not idempotent");
    prop_assert_eq!(&join(a, &L::default()), a, "bottom is not an identity");

    let ab = join(a, b);
    let ba = join(b, a);
    prop_assert_eq!(&ab, &ba, "merge is not commutative");
    prop_assert_eq!(
        ab.digest(),
        ba.digest(),
        "equal states have different digests"
    );
    prop_assert_eq!(
        codec::encode(&ab),
        codec::encode(&ba),
        "equal states encode differently"
    );

    let ab_c = join(&ab, c);
    let a_bc = join(a, &join(b, c));
    prop_assert_eq!(&ab_c, &a_bc, "merge is not associative");
    prop_assert_eq!(
        &join(&ab, a),
        &ab,
        "merging an included state changed the result"
    );
    Ok(())
}

/// Checks that `value` survives encoding and decoding unchanged.
pub fn assert_codec_round_trip<T>(value: &T) -> Result<(), TestCaseError>
where
    T: serde::Serialize + DeserializeOwned + PartialEq + Debug,
{
    let bytes = codec::encode(value);
    let back: T = codec::decode(&bytes).map_err(|err| TestCaseError::fail(err.to_string()))?;
    prop_assert_eq!(&back, value, "codec round trip changed the value");
    Ok(())
}
