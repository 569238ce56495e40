//! `Field`: one named slot of a record, holding a CRDT of each kind.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Atom, AwSet, CausalContext, Dot, DotStore, EwFlag, MvReg, ResetCounter};

/// The kinds of CRDT a record field can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FieldKind {
    /// A multi-value register of [`Atom`]s (last-writer-wins view).
    Register,
    /// A counter that goes up and down.
    Counter,
    /// An add-wins set of [`Atom`]s.
    Set,
    /// An enable-wins flag.
    Flag,
}

impl FieldKind {
    /// Every kind, in rendering precedence order.
    pub const ALL: [FieldKind; 4] = [
        FieldKind::Register,
        FieldKind::Counter,
        FieldKind::Set,
        FieldKind::Flag,
    ];
}

impl fmt::Display for FieldKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldKind::Register => "register",
            FieldKind::Counter => "counter",
            FieldKind::Set => "set",
            FieldKind::Flag => "flag",
        })
    }
}

/// The state under one field path: one CRDT of each kind.
///
/// A field's kind is part of its identity: a register and a counter under
/// the same name are different CRDTs that merge independently, so
/// concurrent writes of different kinds can never make replicas diverge.
/// Normally only one kind is non-empty; writing a kind clears the others
/// (as far as the writer has seen them). When concurrent writes leave more
/// than one, [`visible_kind`](Field::visible_kind) decides what renders.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Field {
    /// The register slot.
    pub register: MvReg<Atom>,
    /// The counter slot.
    pub counter: ResetCounter,
    /// The set slot.
    pub set: AwSet<Atom>,
    /// The flag slot.
    pub flag: EwFlag,
}

impl Field {
    /// Whether the slot of `kind` holds anything.
    pub fn has(&self, kind: FieldKind) -> bool {
        match kind {
            FieldKind::Register => !self.register.is_empty(),
            FieldKind::Counter => !self.counter.is_empty(),
            FieldKind::Set => !DotStore::is_empty(&self.set),
            FieldKind::Flag => !self.flag.is_empty(),
        }
    }

    /// The kind that renders: the first non-empty one in the order
    /// register, counter, set, flag.
    pub fn visible_kind(&self) -> Option<FieldKind> {
        FieldKind::ALL.into_iter().find(|&kind| self.has(kind))
    }

    /// The dots of every slot except `kind`'s.
    pub(crate) fn dots_except(&self, kind: FieldKind) -> CausalContext {
        let mut dots = Vec::new();
        for other in FieldKind::ALL.into_iter().filter(|&other| other != kind) {
            self.slot(other).for_each_dot(&mut |dot| dots.push(dot));
        }
        CausalContext::from_dots(dots)
    }

    fn slot(&self, kind: FieldKind) -> &dyn SlotDots {
        match kind {
            FieldKind::Register => &self.register,
            FieldKind::Counter => &self.counter,
            FieldKind::Set => &self.set,
            FieldKind::Flag => &self.flag,
        }
    }
}

/// Object-safe access to a slot's dots.
trait SlotDots {
    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot));
}

impl<S: DotStore> SlotDots for S {
    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        DotStore::for_each_dot(self, visit);
    }
}

impl DotStore for Field {
    fn is_empty(&self) -> bool {
        self.visible_kind().is_none()
    }

    fn for_each_dot(&self, visit: &mut dyn FnMut(Dot)) {
        for kind in FieldKind::ALL {
            self.slot(kind).for_each_dot(visit);
        }
    }

    fn join(&mut self, own: &CausalContext, other: Self, theirs: &CausalContext) {
        // Most fields hold one kind: the slots empty on both sides are
        // skipped without a call.
        let Field {
            register,
            counter,
            set,
            flag,
        } = other;
        if !(self.register.is_empty() && register.is_empty()) {
            self.register.join(own, register, theirs);
        }
        if !(self.counter.is_empty() && counter.is_empty()) {
            self.counter.join(own, counter, theirs);
        }
        if !(DotStore::is_empty(&self.set) && DotStore::is_empty(&set)) {
            self.set.join(own, set, theirs);
        }
        if !(self.flag.is_empty() && flag.is_empty()) {
            self.flag.join(own, flag, theirs);
        }
    }
}
