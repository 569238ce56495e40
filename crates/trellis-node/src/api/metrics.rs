//! `GET /metrics`: the node's figures in the Prometheus text format,
//! encoded by `prometheus-client` from a snapshot taken at each scrape
//! (every figure is cumulative or current, so a fresh snapshot is exactly
//! what Prometheus expects).

use std::borrow::Cow;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use trellis_gossip::driver::GossipStatus;
use trellis_gossip::node::DELAY_BUCKETS_MS;
use trellis_store::{Store, StoreStats};

use super::{ApiError, AppState};
use crate::clock::now_ms;
use crate::window::{assess, Freshness};

/// The figures of one scrape.
#[derive(Debug)]
struct Snapshot {
    site: String,
    store: StoreStats,
    last_seq: u64,
    records: Vec<(String, u64)>,
    gossip: GossipStatus,
    /// Each peer's freshness, in the order of `gossip.peers`.
    freshness: Vec<Freshness>,
    /// The consistency window in force.
    window_seconds: f64,
    now_ms: u64,
}

type Labels = Vec<(Cow<'static, str>, Cow<'static, str>)>;

fn label(name: &'static str, value: impl Into<String>) -> (Cow<'static, str>, Cow<'static, str>) {
    (Cow::Borrowed(name), Cow::Owned(value.into()))
}

impl Snapshot {
    fn peer_labels(&self) -> Vec<(Labels, &trellis_gossip::driver::PeerInfo)> {
        self.gossip
            .peers
            .iter()
            .map(|peer| {
                let name = peer
                    .member
                    .as_ref()
                    .map_or_else(String::new, |m| m.name.clone());
                (
                    vec![label("peer", peer.id.to_string()), label("peer_name", name)],
                    peer,
                )
            })
            .collect()
    }
}

/// Writes one metric family with one sample per label set.
fn family(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    metric_type: MetricType,
    samples: &[(Labels, &dyn EncodeMetric)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let node: Labels = vec![label("site", self.site.clone())];
        let counter = |value: u64| ConstCounter::new(value);

        let writes = counter(self.store.writes);
        family(
            &mut encoder,
            "trellis_store_writes",
            "Writes committed (local and merged)",
            MetricType::Counter,
            &[(node.clone(), &writes)],
        )?;
        let batches = counter(self.store.batches);
        family(
            &mut encoder,
            "trellis_store_batches",
            "Commit batches (one fsync each under fsync durability)",
            MetricType::Counter,
            &[(node.clone(), &batches)],
        )?;
        let corrupt = counter(self.store.corrupt_records);
        family(
            &mut encoder,
            "trellis_store_corrupt_records",
            "Records found corrupt on disk",
            MetricType::Counter,
            &[(node.clone(), &corrupt)],
        )?;
        let quarantined = ConstGauge::new(self.store.quarantined as i64);
        family(
            &mut encoder,
            "trellis_store_quarantined_records",
            "Records quarantined, awaiting repair from a peer",
            MetricType::Gauge,
            &[(node.clone(), &quarantined)],
        )?;
        let seq = ConstGauge::new(self.last_seq as i64);
        family(
            &mut encoder,
            "trellis_change_seq",
            "Latest change-feed sequence number",
            MetricType::Gauge,
            &[(node.clone(), &seq)],
        )?;

        let counts: Vec<ConstGauge<i64>> = self
            .records
            .iter()
            .map(|(_, n)| ConstGauge::new(*n as i64))
            .collect();
        let samples: Vec<(Labels, &dyn EncodeMetric)> = self
            .records
            .iter()
            .zip(&counts)
            .map(|((name, _), gauge)| {
                (
                    vec![label("collection", name.clone())],
                    gauge as &dyn EncodeMetric,
                )
            })
            .collect();
        family(
            &mut encoder,
            "trellis_records",
            "Live records per collection",
            MetricType::Gauge,
            &samples,
        )?;

        let dropped = counter(self.gossip.dropped_messages);
        family(
            &mut encoder,
            "trellis_gossip_dropped_messages",
            "Messages dropped on full peer queues (repaired by reconciliation)",
            MetricType::Counter,
            &[(node.clone(), &dropped)],
        )?;
        let refused = counter(self.gossip.refused_merges);
        family(
            &mut encoder,
            "trellis_gossip_refused_merges",
            "Remote changes the store refused",
            MetricType::Counter,
            &[(node.clone(), &refused)],
        )?;

        let peers = self.peer_labels();
        let per_peer =
            |pick: &dyn Fn(&trellis_gossip::driver::PeerInfo) -> u64| -> Vec<ConstCounter<u64>> {
                peers.iter().map(|(_, peer)| counter(pick(peer))).collect()
            };
        let series = [
            (
                "trellis_peer_bytes_in",
                "Gossip bytes received from the peer",
                per_peer(&|p| p.stats.bytes_in),
            ),
            (
                "trellis_peer_bytes_out",
                "Gossip bytes sent to the peer",
                per_peer(&|p| p.stats.bytes_out),
            ),
            (
                "trellis_peer_records_repaired",
                "Records anti-entropy repaired here from the peer",
                per_peer(&|p| p.stats.records_repaired),
            ),
            (
                "trellis_peer_merges",
                "Changes from the peer that grew local state",
                per_peer(&|p| p.stats.changes_applied),
            ),
            (
                "trellis_peer_antientropy_rounds",
                "Reconciliation sessions completed with the peer",
                per_peer(&|p| p.stats.sessions_completed),
            ),
        ];
        for (name, help, values) in &series {
            let samples: Vec<(Labels, &dyn EncodeMetric)> = peers
                .iter()
                .zip(values)
                .map(|((labels, _), value)| (labels.clone(), value as &dyn EncodeMetric))
                .collect();
            family(&mut encoder, name, help, MetricType::Counter, &samples)?;
        }

        let up: Vec<ConstGauge<i64>> = peers
            .iter()
            .map(|(_, p)| ConstGauge::new(i64::from(p.linked)))
            .collect();
        let samples: Vec<(Labels, &dyn EncodeMetric)> = peers
            .iter()
            .zip(&up)
            .map(|((l, _), g)| (l.clone(), g as &dyn EncodeMetric))
            .collect();
        family(
            &mut encoder,
            "trellis_peer_up",
            "1 if the link to the peer is up",
            MetricType::Gauge,
            &samples,
        )?;

        let ages: Vec<(Labels, ConstGauge<f64>)> = peers
            .iter()
            .filter_map(|(labels, peer)| {
                let at = peer.stats.last_reconciled_ms?;
                Some((
                    labels.clone(),
                    ConstGauge::new(self.now_ms.saturating_sub(at) as f64 / 1000.0),
                ))
            })
            .collect();
        let samples: Vec<(Labels, &dyn EncodeMetric)> = ages
            .iter()
            .map(|(l, g)| (l.clone(), g as &dyn EncodeMetric))
            .collect();
        family(
            &mut encoder,
            "trellis_peer_last_sync_age_seconds",
            "Seconds since the last completed reconciliation with the peer",
            MetricType::Gauge,
            &samples,
        )?;

        let staleness: Vec<ConstGauge<f64>> = self
            .freshness
            .iter()
            .map(|fresh| ConstGauge::new(fresh.staleness_ms as f64 / 1000.0))
            .collect();
        let breached: Vec<ConstGauge<i64>> = self
            .freshness
            .iter()
            .map(|fresh| ConstGauge::new(i64::from(!fresh.within())))
            .collect();
        for (name, help, gauges) in [
            (
                "trellis_peer_staleness_seconds",
                "Data from the peer is at most this old here (since the last completed reconciliation, or since start)",
                staleness.iter().map(|g| g as &dyn EncodeMetric).collect::<Vec<_>>(),
            ),
            (
                "trellis_consistency_window_breached",
                "1 if data from the peer is older here than the consistency window",
                breached.iter().map(|g| g as &dyn EncodeMetric).collect(),
            ),
        ] {
            let samples: Vec<(Labels, &dyn EncodeMetric)> = peers
                .iter()
                .zip(gauges)
                .map(|((labels, _), gauge)| (labels.clone(), gauge))
                .collect();
            family(&mut encoder, name, help, MetricType::Gauge, &samples)?;
        }
        let window = ConstGauge::new(self.window_seconds);
        family(
            &mut encoder,
            "trellis_consistency_window_seconds",
            "The consistency window in force (the tightest configured)",
            MetricType::Gauge,
            &[(node.clone(), &window)],
        )?;

        let mut metric = encoder.encode_descriptor(
            "trellis_propagation_delay_seconds",
            "Delay from a change's origin time to its durable merge here, by the peer it came from",
            None,
            MetricType::Histogram,
        )?;
        for (labels, peer) in &peers {
            let histogram = &peer.stats.delay_histogram;
            // Per-bucket counts, as the gossip histogram keeps them: the
            // encoder makes them cumulative (`le`) itself.
            let buckets: Vec<(f64, u64)> = DELAY_BUCKETS_MS
                .iter()
                .chain(std::iter::once(&u64::MAX))
                .zip(histogram.counts)
                .map(|(bound, count)| {
                    let upper = if *bound == u64::MAX {
                        f64::INFINITY
                    } else {
                        *bound as f64 / 1000.0
                    };
                    (upper, count)
                })
                .collect();
            metric
                .encode_family(labels)?
                .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    histogram.sum_ms as f64 / 1000.0,
                    histogram.count(),
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}

/// The handler.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let store = state.store();
    let gossip = state.gossip.status().await.unwrap_or_default();
    let now = now_ms();
    let snapshot = Snapshot {
        site: state.site.clone(),
        store: store.stats(),
        last_seq: store.last_seq(),
        records: store
            .collections()?
            .into_iter()
            .map(|info| (info.name, info.live))
            .collect(),
        freshness: assess(&gossip, &state.consistency, now, state.started_ms),
        window_seconds: state.consistency.tightest().0.as_secs_f64(),
        gossip,
        now_ms: now,
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(snapshot));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "metrics_error",
            "the metrics could not be encoded",
        )
    })?;
    Ok((
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        text,
    )
        .into_response())
}
