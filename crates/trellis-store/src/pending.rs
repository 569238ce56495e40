//! `Pending`: the answer to a write, once its batch is durable.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::StoreError;

/// A write in flight. It resolves once the batch holding the write has
/// been committed (durably, under the default durability), or with the
/// error that stopped it.
///
/// Await it from async code, or call [`wait`](Pending::wait) from a plain
/// thread (never from inside an async runtime, where it would block a
/// worker).
#[must_use = "a write is only known to be durable once its Pending resolves"]
pub struct Pending<T> {
    state: PendingState<T>,
}

enum PendingState<T> {
    Waiting(oneshot::Receiver<Result<T, StoreError>>),
    Ready(Option<Result<T, StoreError>>),
}

/// The sending half, held by whoever completes the write.
pub(crate) type Completion<T> = oneshot::Sender<Result<T, StoreError>>;

impl<T> Pending<T> {
    /// A pending write and the handle that completes it.
    pub(crate) fn channel() -> (Completion<T>, Pending<T>) {
        let (sender, receiver) = oneshot::channel();
        let pending = Pending {
            state: PendingState::Waiting(receiver),
        };
        (sender, pending)
    }

    /// A write that is already complete.
    pub fn ready(result: Result<T, StoreError>) -> Self {
        Pending {
            state: PendingState::Ready(Some(result)),
        }
    }

    /// Blocks the current thread until the write completes.
    pub fn wait(self) -> Result<T, StoreError> {
        match self.state {
            PendingState::Waiting(receiver) => {
                receiver.blocking_recv().unwrap_or(Err(StoreError::Closed))
            }
            PendingState::Ready(result) => result.unwrap_or(Err(StoreError::Closed)),
        }
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, StoreError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            PendingState::Waiting(receiver) => Pin::new(receiver)
                .poll(cx)
                .map(|received| received.unwrap_or(Err(StoreError::Closed))),
            PendingState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(StoreError::Closed)))
            }
        }
    }
}

impl<T> Unpin for Pending<T> {}
