//! Reconciling two in-process indexes directly, counting what crosses the
//! wire: the loop that tests, benchmarks and simulations share.

use trellis_crdt::codec;
use trellis_store::index::KeyRange;

use crate::reconcile::{respond, start, ProtocolError, Tuning};
use crate::IndexView;

/// Which side acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The side that opened the session.
    Initiator,
    /// The other side.
    Responder,
}

/// What one reconciliation session of one collection cost and decided.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Exchange {
    /// Messages sent, both directions.
    pub messages: usize,
    /// Encoded bytes of those messages (records shipped not included).
    pub bytes: usize,
    /// Keys each side ships to the other: `(from, key)`.
    pub shipped: Vec<(Side, String)>,
    /// Ranges each side streams whole to the other.
    pub streamed: Vec<(Side, KeyRange)>,
}

impl Exchange {
    /// Round trips: two messages make one.
    pub fn round_trips(&self) -> usize {
        self.messages.div_ceil(2)
    }
}

/// Runs a session for `collection` between two indexes until one side
/// declares it done. Records are not moved: the result says which keys
/// and ranges each side ships.
pub fn exchange(
    initiator: &impl IndexView,
    responder: &impl IndexView,
    collection: &str,
    tuning: Tuning,
) -> Result<Exchange, ProtocolError> {
    let mut result = Exchange::default();
    let mut message = start(initiator, collection);
    let mut turn = Side::Responder;
    loop {
        result.messages += 1;
        result.bytes += codec::encode(&message).len();
        let step = match turn {
            Side::Responder => respond(responder, &message, tuning)?,
            Side::Initiator => respond(initiator, &message, tuning)?,
        };
        result
            .shipped
            .extend(step.ship.into_iter().map(|key| (turn, key)));
        result
            .streamed
            .extend(step.ship_ranges.into_iter().map(|range| (turn, range)));
        match step.reply {
            Some(reply) if !message.is_done() => message = reply,
            _ => return Ok(result),
        }
        turn = match turn {
            Side::Responder => Side::Initiator,
            Side::Initiator => Side::Responder,
        };
    }
}
