//! Tunables of the endpoint, its connections and the connection pool.

use std::time::Duration;

use crate::error::NetError;

/// The default [`NetConfig::max_frame_size`]: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;

/// Settings for one node's [`Endpoint`](crate::Endpoint).
///
/// The defaults suit a handful of sites on a WAN. [`NetConfig::validate`]
/// checks the values; [`EndpointBuilder::bind`](crate::EndpointBuilder::bind)
/// calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// The largest frame payload this node accepts, in bytes. A peer
    /// sending more has that stream stopped with
    /// [`codes::FRAME_TOO_LARGE`](crate::codes::FRAME_TOO_LARGE).
    /// Default 16 MiB; at most `u32::MAX`.
    pub max_frame_size: usize,
    /// A connection with no traffic for this long is closed. Default 30 s.
    pub idle_timeout: Duration,
    /// How often an otherwise idle connection sends a keep-alive; must be
    /// below `idle_timeout`. Default 10 s.
    pub keep_alive_interval: Duration,
    /// How long an outgoing connection attempt, or an incoming handshake,
    /// may take. Default 5 s.
    pub connect_timeout: Duration,
    /// The most incoming connections open at once; further ones are
    /// refused until some close. Default 256.
    pub max_incoming_connections: usize,
    /// The most bidirectional streams a peer may have open at once on one
    /// connection. Default 64.
    pub max_bidi_streams: u32,
    /// The most unidirectional streams a peer may have open at once on one
    /// connection. Default 16.
    pub max_uni_streams: u32,
    /// How many accepted connections may wait in each protocol's queue
    /// for the application to take them; further ones are closed with
    /// [`codes::BUSY`](crate::codes::BUSY). Default 64.
    pub accept_queue: usize,
    /// Reconnect backoff of the [`ConnectionPool`](crate::ConnectionPool).
    pub backoff: BackoffConfig,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            idle_timeout: Duration::from_secs(30),
            keep_alive_interval: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_incoming_connections: 256,
            max_bidi_streams: 64,
            max_uni_streams: 16,
            accept_queue: 64,
            backoff: BackoffConfig::default(),
        }
    }
}

impl NetConfig {
    /// Checks that every value is in range, naming the first that is not.
    pub fn validate(&self) -> Result<(), NetError> {
        let fail = |msg: String| Err(NetError::Config(msg));
        if self.max_frame_size == 0 || self.max_frame_size as u64 > u64::from(u32::MAX) {
            return fail(format!(
                "max_frame_size is {}; it must be between 1 and {} bytes",
                self.max_frame_size,
                u32::MAX
            ));
        }
        if self.idle_timeout.is_zero() || quinn::IdleTimeout::try_from(self.idle_timeout).is_err() {
            return fail(format!(
                "idle_timeout {:?} is out of range; use a few seconds to a few minutes",
                self.idle_timeout
            ));
        }
        if self.keep_alive_interval.is_zero() || self.keep_alive_interval >= self.idle_timeout {
            return fail(format!(
                "keep_alive_interval {:?} must be non-zero and below idle_timeout {:?} \
                 (a third of it is a good choice)",
                self.keep_alive_interval, self.idle_timeout
            ));
        }
        if self.connect_timeout.is_zero() {
            return fail("connect_timeout must be non-zero".into());
        }
        if self.max_incoming_connections == 0 {
            return fail("max_incoming_connections must be at least 1".into());
        }
        if self.max_bidi_streams == 0 {
            return fail("max_bidi_streams must be at least 1".into());
        }
        if self.accept_queue == 0 {
            return fail("accept_queue must be at least 1".into());
        }
        self.backoff.validate()
    }

    /// The QUIC transport settings for every connection of the endpoint.
    pub(crate) fn transport(&self) -> Result<quinn::TransportConfig, NetError> {
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout).map_err(|_| {
            NetError::Config(format!(
                "idle_timeout {:?} is out of range",
                self.idle_timeout
            ))
        })?;
        let mut transport = quinn::TransportConfig::default();
        transport
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(self.keep_alive_interval))
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(self.max_bidi_streams))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(self.max_uni_streams))
            // Trellis sends no datagrams; refuse to buffer any.
            .datagram_receive_buffer_size(None);
        Ok(transport)
    }
}

/// Exponential backoff with jitter for reconnecting to a failed peer.
///
/// After the `n`-th consecutive failure the next attempt waits a random
/// time between half and all of `min(initial * 2^(n-1), max)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The base delay after the first failure. Default 200 ms.
    pub initial: Duration,
    /// The cap on the delay. Default 30 s.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl BackoffConfig {
    /// Checks that `initial` is non-zero and not above `max`.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.initial.is_zero() || self.initial > self.max {
            return Err(NetError::Config(format!(
                "backoff.initial {:?} must be non-zero and at most backoff.max {:?}",
                self.initial, self.max
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        NetConfig::default().validate().expect("defaults validate");
    }

    #[test]
    fn refuses_keep_alive_not_below_idle() {
        let config = NetConfig {
            keep_alive_interval: Duration::from_secs(30),
            ..NetConfig::default()
        };
        let err = config.validate().expect_err("keep-alive equal to idle");
        assert!(err.to_string().contains("keep_alive_interval"), "{err}");
    }

    #[test]
    fn refuses_out_of_range_values() {
        let bad = [
            NetConfig {
                max_frame_size: 0,
                ..NetConfig::default()
            },
            NetConfig {
                idle_timeout: Duration::ZERO,
                ..NetConfig::default()
            },
            NetConfig {
                max_incoming_connections: 0,
                ..NetConfig::default()
            },
            NetConfig {
                accept_queue: 0,
                ..NetConfig::default()
            },
            NetConfig {
                backoff: BackoffConfig {
                    initial: Duration::from_secs(60),
                    max: Duration::from_secs(1),
                },
                ..NetConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
    }
}
