//! Outgoing links: one task per peer that dials it through the
//! connection pool and writes the frames the driver queues, in order, on
//! one unidirectional stream.
//!
//! The queue is bounded in bytes. When a peer reads slowly (or not at
//! all) QUIC flow control stalls the writer, the queue fills, and the
//! driver drops further messages for that peer instead of growing memory
//! or stalling the node: pushes dropped this way are repaired by the next
//! reconciliation, and an abandoned session is retried.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use trellis_crdt::ReplicaId;
use trellis_net::{quinn, ConnectionPool, NetError};

use super::Input;

/// The driver's end of one peer's link.
#[derive(Debug)]
pub(super) struct Link {
    /// The address dialed.
    pub addr: SocketAddr,
    /// Tells this link's reports apart from an earlier link's to the
    /// same peer.
    pub generation: u64,
    /// Whether the connection is up and the stream open.
    pub up: bool,
    frames: mpsc::UnboundedSender<Vec<u8>>,
    queued: Arc<AtomicUsize>,
}

impl Link {
    /// Queues `frame` unless that would take the queue past `limit`
    /// bytes. Returns whether it was queued.
    pub fn send(&self, frame: Vec<u8>, limit: usize) -> bool {
        let len = frame.len();
        if self.queued.load(Ordering::Relaxed) + len > limit {
            return false;
        }
        self.queued.fetch_add(len, Ordering::Relaxed);
        self.frames.send(frame).is_ok()
    }
}

/// Starts the link to `peer` at `addr`; the returned future is the task
/// to spawn. It reports [`Input::LinkUp`] once the stream is open and
/// [`Input::LinkDown`] when it ends, which it does when the connection
/// fails or the driver drops the [`Link`].
pub(super) fn open(
    pool: Arc<ConnectionPool>,
    peer: ReplicaId,
    addr: SocketAddr,
    generation: u64,
    inputs: mpsc::Sender<Input>,
) -> (Link, impl std::future::Future<Output = ()> + Send + 'static) {
    let (frames, queue) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let link = Link {
        addr,
        generation,
        up: false,
        frames,
        queued: Arc::clone(&queued),
    };
    let task = async move {
        let error = run(&pool, peer, addr, generation, queue, &queued, &inputs).await;
        // The driver may be gone already; then nobody needs the report.
        let _ = inputs
            .send(Input::LinkDown {
                peer,
                generation,
                error,
            })
            .await;
    };
    (link, task)
}

/// Dials, then writes queued frames until the queue closes (`None`) or
/// something fails (the error, as text).
async fn run(
    pool: &ConnectionPool,
    peer: ReplicaId,
    addr: SocketAddr,
    generation: u64,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    queued: &AtomicUsize,
    inputs: &mpsc::Sender<Input>,
) -> Option<String> {
    // A failed dial is already counted by the pool's backoff.
    let connection = match pool.get(peer, addr).await {
        Ok(connection) => connection,
        Err(err) => return Some(err.to_string()),
    };
    let mut stream = match connection.open_uni().await {
        Ok(stream) => stream,
        Err(err) => return Some(fail(pool, peer, err)),
    };
    if inputs
        .send(Input::LinkUp { peer, generation })
        .await
        .is_err()
    {
        return None;
    }
    loop {
        let frame = tokio::select! {
            frame = queue.recv() => frame,
            reason = connection.closed() => {
                let peer_closed = matches!(
                    reason,
                    quinn::ConnectionError::ApplicationClosed(_) | quinn::ConnectionError::LocallyClosed
                );
                let err = NetError::ConnectionLost { peer, source: reason };
                if peer_closed {
                    // Closed on purpose (the peer is shutting down, say): not a
                    // failure, though the next dial may well be one.
                    return Some(err.to_string());
                }
                return Some(fail(pool, peer, err));
            }
        };
        let Some(frame) = frame else {
            // The driver dropped the link: finish the stream cleanly.
            let _ = stream.finish();
            return None;
        };
        let len = frame.len();
        let written = stream.write_all(&frame).await;
        queued.fetch_sub(len, Ordering::Relaxed);
        if let Err(err) = written {
            return Some(fail(pool, peer, err));
        }
    }
}

/// Tells the pool the connection is unusable (so the next dial backs
/// off) and returns the error as text.
fn fail(pool: &ConnectionPool, peer: ReplicaId, err: impl std::fmt::Display) -> String {
    pool.report_failure(peer, &err);
    err.to_string()
}
