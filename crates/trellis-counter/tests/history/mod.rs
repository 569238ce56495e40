//! Histories of counter calls and two checks on them: read bounds and a
//! Wing–Gong–Lowe linearizability search against the sequential counter.
#![allow(dead_code)]

use std::collections::HashSet;

/// What a call asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Increment(i64),
    Decrement(i64),
    Read,
}

/// What it answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The value after the call (or read).
    Value(i64),
    /// A decrement refused, with the amount available.
    Insufficient(i64),
    /// The call failed in a way that leaves its effect unknown: it may
    /// have been applied at any time after its invocation, or never.
    Unknown,
}

/// One call: when it started and ended (any monotonic clock, e.g.
/// nanoseconds since the test started) and what it answered.
#[derive(Debug, Clone, Copy)]
pub struct Op {
    pub call: Call,
    pub invoked: u64,
    pub returned: u64,
    pub answer: Answer,
}

impl Op {
    fn is_unknown(&self) -> bool {
        self.answer == Answer::Unknown
    }

    /// When the call's effect must have happened by: its return, or never
    /// for unknown outcomes.
    fn deadline(&self) -> u64 {
        if self.is_unknown() {
            u64::MAX
        } else {
            self.returned
        }
    }
}

/// Applies `call` to the sequential counter (minimum 0) at `value`:
/// the answer it gives and the value after it.
fn step(value: i64, call: Call) -> (Answer, i64) {
    match call {
        Call::Increment(by) => (Answer::Value(value + by), value + by),
        Call::Decrement(by) if value - by >= 0 => (Answer::Value(value - by), value - by),
        Call::Decrement(_) => (Answer::Insufficient(value), value),
        Call::Read => (Answer::Value(value), value),
    }
}

/// Whether the history is linearizable for a counter starting at
/// `initial` with minimum 0. Unknown calls may take effect (with any
/// answer) at any point after their invocation, or not at all.
///
/// Wing & Gong's search with Lowe's memoisation of (linearized set,
/// state): at each step try every call that no pending known call
/// finished before; backtrack on a wrong answer.
pub fn linearizable(initial: i64, history: &[Op]) -> bool {
    assert!(history.len() <= 128, "the checker handles up to 128 calls");
    let known: u128 = history
        .iter()
        .enumerate()
        .filter(|(_, op)| !op.is_unknown())
        .fold(0, |mask, (i, _)| mask | 1 << i);
    let mut seen = HashSet::new();
    search(history, known, 0, initial, &mut seen)
}

fn search(
    history: &[Op],
    known: u128,
    done: u128,
    value: i64,
    seen: &mut HashSet<(u128, i64)>,
) -> bool {
    if done & known == known {
        return true;
    }
    if !seen.insert((done, value)) {
        return false;
    }
    // A call can go next only if no pending known call returned before it
    // was invoked.
    let horizon = history
        .iter()
        .enumerate()
        .filter(|(i, _)| done & (1 << i) == 0)
        .map(|(_, op)| op.deadline())
        .min()
        .unwrap_or(u64::MAX);
    for (i, op) in history.iter().enumerate() {
        if done & (1 << i) != 0 || op.invoked > horizon {
            continue;
        }
        let (answer, next) = step(value, op.call);
        if (op.is_unknown() || answer == op.answer)
            && search(history, known, done | 1 << i, next, seen)
        {
            return true;
        }
    }
    false
}

/// Checks every read against what the calls around it allow: at least
/// the initial value plus increments acknowledged before it started,
/// minus every decrement (acknowledged or unknown) started before it
/// ended; at most the symmetric bound. Returns the reads out of bounds.
pub fn reads_out_of_bounds(initial: i64, history: &[Op]) -> Vec<Op> {
    let mut bad = Vec::new();
    for read in history.iter().filter(|op| op.call == Call::Read) {
        let Answer::Value(seen) = read.answer else {
            continue;
        };
        let (mut low, mut high) = (initial, initial);
        for op in history {
            let surely_before = !op.is_unknown() && op.returned < read.invoked;
            let maybe_before = op.invoked < read.returned;
            let applied = matches!(op.answer, Answer::Value(_)) || op.is_unknown();
            match op.call {
                Call::Increment(by) if applied => {
                    if surely_before {
                        low += by;
                    }
                    if maybe_before {
                        high += by;
                    }
                }
                Call::Decrement(by) if applied => {
                    if maybe_before {
                        low -= by;
                    }
                    if surely_before && !op.is_unknown() {
                        high -= by;
                    }
                }
                _ => {}
            }
        }
        if seen < low.max(0) || seen > high {
            bad.push(*read);
        }
    }
    bad
}
