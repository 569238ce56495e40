//! Incoming connections: every peer dials this node and writes its
//! messages on unidirectional streams; these tasks read the frames and
//! hand the messages to the driver.
//!
//! Tasks are nested in [`JoinSet`]s (accept loop → connections →
//! streams), so aborting the accept loop ends everything under it.
//! Reading waits for room in the driver's bounded input queue, which
//! stops reading the stream, which lets QUIC flow control slow the
//! sender: backpressure all the way to the peer.

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use trellis_net::PeerConnection;

use super::Input;
use crate::messages::Message;

/// Accepts gossip connections until the endpoint stops (or the driver is
/// gone), serving each in its own task.
pub(super) async fn accept(
    mut incoming: mpsc::Receiver<PeerConnection>,
    inputs: mpsc::Sender<Input>,
) {
    let mut connections = JoinSet::new();
    while let Some(connection) = incoming.recv().await {
        while connections.try_join_next().is_some() {}
        let hello = Input::Dialed {
            peer: connection.peer(),
            addr: connection.remote_address(),
        };
        if inputs.send(hello).await.is_err() {
            return;
        }
        connections.spawn(serve(connection, inputs.clone()));
    }
}

/// Reads every unidirectional stream the peer opens on `connection`.
async fn serve(connection: PeerConnection, inputs: mpsc::Sender<Input>) {
    let mut streams = JoinSet::new();
    // Ends when the connection closes, for whatever reason.
    while let Ok(stream) = connection.accept_uni().await {
        while streams.try_join_next().is_some() {}
        streams.spawn(read(connection.clone(), stream, inputs.clone()));
    }
}

/// Forwards the messages of one stream until it ends or a frame is bad
/// (the frame reader has then stopped the stream and logged why).
async fn read(
    connection: PeerConnection,
    mut stream: trellis_net::quinn::RecvStream,
    inputs: mpsc::Sender<Input>,
) {
    let from = connection.peer();
    while let Ok(Some((message, bytes))) = connection.read_sized_frame::<Message>(&mut stream).await
    {
        let input = Input::Received {
            from,
            message,
            bytes,
        };
        if inputs.send(input).await.is_err() {
            return;
        }
    }
}
