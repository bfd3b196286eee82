//! What the node's HTTP endpoint reports: liveness, readiness, the signed
//! descriptor, metrics and the cover-loop table, read from shared handles
//! on any thread.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::http::NodeStatus;
use crate::metrics::{MetricsSnapshot, render};
use crate::pipeline::PipelineMonitor;
use crate::role::NodeRole;
use crate::transport::{LinkStats, TcpEgress};

use super::Health;

/// The I/O threads whose death makes the node not alive.
pub(crate) type IoThreads = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// Shared, read-only view of a running node.
pub(crate) struct Status {
    /// Cover loop statistics, when cover traffic runs.
    #[cfg(feature = "cover-traffic")]
    pub(super) cover: Option<crate::cover::CoverMonitor>,
    /// Published VRF evaluations, when verifiable mixing is on.
    #[cfg(feature = "vrf")]
    pub(super) epochs: Option<Arc<super::epochs::EpochState>>,
    pub(super) role: NodeRole,
    /// The descriptor as published (re-signed at every key rotation).
    pub(super) descriptor: super::key_rotation::Published,
    pub(super) pipeline: PipelineMonitor,
    /// The held Sphinx keys and their replay caches, as the key manager
    /// last published them: never its lock, which rotation holds through
    /// file writes and fsyncs.
    pub(super) keys: super::key_status::SharedKeyStatus,
    /// Queues per next hop, when `node.metrics_next_hops` exports them.
    pub(super) tcp_egress: Option<Arc<TcpEgress>>,
    /// Link session counters, when links are on.
    pub(super) links: Option<Arc<LinkStats>>,
    pub(super) io_threads: IoThreads,
}

impl Status {
    /// Liveness and readiness.
    pub(crate) fn health(&self) -> Health {
        let threads_alive = self
            .io_threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .all(|t| !t.is_finished());
        let alive = threads_alive && self.pipeline.workers_alive();
        let keys = self.keys.load();
        let (fullest_epoch, fill) = keys.fullest_replay_filter();
        let reason = if !alive {
            Some("a pipeline worker or I/O thread has stopped".to_owned())
        } else if let Some(epoch) = keys.failing_journal() {
            Some(format!(
                "replay journal sync failing (Sphinx key epoch {epoch}): accepted tags are not \
                 durable, a crash now would reopen their replays; check the disk under \
                 node.data_dir (see the log)"
            ))
        } else if fill >= crate::replay::NEARLY_FULL {
            Some(format!(
                "replay filter of Sphinx key epoch {epoch} is {pct:.1}% full; at 100% every new \
                 packet under that key is dropped (replay_capacity) until it retires: raise \
                 replay.memory_budget_mb or shorten sphinx.key_epoch_seconds",
                epoch = fullest_epoch,
                pct = fill * 100.0
            ))
        } else if self.pipeline.is_saturated() {
            Some("shedding load: a queue is over 90% full".to_owned())
        } else {
            None
        };
        Health {
            alive,
            ready: reason.is_none(),
            reason,
        }
    }

    /// Everything `/metrics` exports.
    pub(crate) fn metrics_snapshot(&self) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot::from_pipeline(&self.pipeline);
        snapshot.role = Some(self.role);
        let keys = self.keys.load();
        snapshot.replay_cache_entries = keys.replay_entries() as u64;
        snapshot.replay_fill_ratio = keys.fullest_replay_filter().1;
        snapshot.replay_capacity_bytes = keys.replay_capacity_bytes();
        snapshot.replay_journal_errors = keys.replay_journal_errors();
        snapshot.sphinx_key_epoch = keys.current_epoch;
        snapshot.sphinx_keys_held = keys.held_epochs.len() as u64;
        snapshot.key_deletion_failures = keys.deletion_failures;
        snapshot.key_deletions_pending = keys.deletions_pending;
        // The tracker knows which returns were this node's own loops; the
        // pipeline's count includes any LOOP packet that reached the node.
        #[cfg(feature = "cover-traffic")]
        if let Some(cover) = &self.cover {
            let stats = cover.stats();
            snapshot.cover_loops_sent = stats.loops_sent;
            snapshot.cover_loops_returned = stats.loops_returned;
            snapshot.cover_loops_lost = stats.loops_lost;
            snapshot.loop_rtt = stats.rtt;
            snapshot.loop_loss = loop_loss(cover);
        }
        #[cfg(feature = "vrf")]
        if let Some(epochs) = &self.epochs {
            snapshot.epoch = epochs.current();
        }
        if let Some(links) = &self.links {
            snapshot.links = link_metrics(links);
        }
        if let Some(tcp) = &self.tcp_egress {
            snapshot.egress_depths = tcp
                .queue_depths()
                .into_iter()
                .map(|(addr, depth)| (addr.to_string(), depth))
                .collect();
        }
        snapshot
    }
}

fn link_metrics(stats: &LinkStats) -> crate::metrics::LinkMetrics {
    use std::sync::atomic::Ordering::Relaxed;
    crate::metrics::LinkMetrics {
        sessions_member_inbound: stats.sessions_member_inbound.load(Relaxed),
        sessions_member_outbound: stats.sessions_member_outbound.load(Relaxed),
        sessions_client: stats.sessions_client.load(Relaxed),
        handshakes_ok: stats.handshakes_ok.load(Relaxed),
        handshakes_failed: stats
            .handshakes_failed
            .iter()
            .map(|c| c.load(Relaxed))
            .collect(),
        rekeys: stats.rekeys.load(Relaxed),
        records_rejected: stats.records_rejected.load(Relaxed),
    }
}

/// The peers with the highest attributed loss, as many as
/// `cover_traffic.loss_metric_nodes` says (no fit at all for 0).
#[cfg(feature = "cover-traffic")]
fn loop_loss(cover: &crate::cover::CoverMonitor) -> Vec<crate::metrics::PeerLoss> {
    let k = cover.settings().loss_metric_nodes;
    if k == 0 {
        return Vec::new();
    }
    cover
        .report()
        .worst(k)
        .map(|n| crate::metrics::PeerLoss {
            peer: n.id.clone(),
            attributed_loss: n.attributed_loss.unwrap_or(0.0),
            sent: n.sent,
            lost: n.lost,
        })
        .collect()
}

impl NodeStatus for Status {
    fn health(&self) -> Health {
        Status::health(self)
    }

    fn descriptor_json(&self) -> Vec<u8> {
        self.descriptor.load().to_json().unwrap_or_default()
    }

    fn metrics(&self) -> String {
        render(&self.metrics_snapshot())
    }

    #[cfg(feature = "vrf")]
    fn vrf(&self, query: crate::http::VrfQuery) -> Option<Vec<u8>> {
        let epoch = match query {
            crate::http::VrfQuery::Current => None,
            crate::http::VrfQuery::Epoch(e) => Some(e),
        };
        let publication = crate::vrf::EpochPublication {
            proofs: self.epochs.as_ref()?.proofs(epoch)?,
            network: self.descriptor.load().network,
        };
        serde_json::to_vec(&publication).ok()
    }

    #[cfg(feature = "cover-traffic")]
    fn loops(&self) -> Option<Vec<u8>> {
        let report = self.cover.as_ref()?.report();
        serde_json::to_vec(&report).ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use arc_swap::ArcSwap;

    use super::*;
    use crate::clock::{SystemClock, WallClock};
    use crate::keys::{KeySchedule, KeygenParams, NodeKeys, keygen};
    use crate::pipeline::PacketPipeline;
    use crate::topology::{DESCRIPTOR_FILE, NetworkParams, NodeDescriptor};

    use super::super::key_rotation::{KeyManager, ReplaySettings};

    #[test]
    fn metrics_answer_while_key_rotation_holds_its_lock() {
        let dir = tempfile::tempdir().unwrap();
        let addr = "127.0.0.1:9002".parse().unwrap();
        keygen(
            dir.path(),
            KeygenParams {
                role: NodeRole::Middle,
                udp_addr: addr,
                tcp_addr: addr,
                http_addr: "127.0.0.1:9102".parse().unwrap(),
                key_epoch_seconds: 86_400,
                now_unix: SystemClock.unix_seconds(),
                network: NetworkParams::default(),
            },
        )
        .unwrap();
        let descriptor_path = dir.path().join(DESCRIPTOR_FILE);
        let manager = KeyManager::start(
            NodeKeys::load(dir.path()).unwrap(),
            NodeDescriptor::load(&descriptor_path).unwrap(),
            NetworkParams::default(),
            descriptor_path,
            KeySchedule::new(86_400, 3_600),
            ReplaySettings {
                data_dir: dir.path().join("data"),
                budget_bytes: 1 << 16,
                sync_interval: Duration::from_millis(100),
            },
            Arc::new(SystemClock),
        )
        .unwrap();
        let current = manager.current_epoch();
        let keys = manager.status();
        let published = manager.published();
        let manager = Arc::new(Mutex::new(manager));
        let pipeline = PacketPipeline::new(1);
        let status = Arc::new(Status {
            #[cfg(feature = "cover-traffic")]
            cover: None,
            #[cfg(feature = "vrf")]
            epochs: None,
            role: NodeRole::Middle,
            descriptor: Arc::new(ArcSwap::new(published.load_full())),
            pipeline: pipeline.monitor(),
            keys,
            tcp_egress: None,
            links: None,
            io_threads: Arc::default(),
        });

        // Rotation is "in the middle of an fsync" for as long as this lives.
        let rotating = manager.lock().unwrap();
        let (tx, rx) = mpsc::channel();
        let scraper = Arc::clone(&status);
        std::thread::spawn(move || {
            let _ = tx.send(scraper.metrics_snapshot());
        });
        let snapshot = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("/metrics waited for the key manager's lock");
        assert_eq!(snapshot.sphinx_key_epoch, current);
        assert_eq!(snapshot.sphinx_keys_held, 2);
        assert_eq!(snapshot.replay_cache_entries, 0);
        drop(rotating);

        // A failing journal turns readiness off and is counted; recovery
        // turns it back on.
        let health = status.health();
        assert!(health.ready, "{health:?}");
        let cache = Arc::clone(&status.keys.load().caches[0]);
        cache.fail_syncs_for_test(true);
        cache.check(&crate::sphinx::ReplayTag([9; 32]));
        assert!(cache.sync().is_err());
        let health = status.health();
        assert!(!health.ready && health.alive, "{health:?}");
        let reason = health.reason.unwrap();
        assert!(reason.contains("replay journal sync failing"), "{reason}");
        assert!(status.metrics_snapshot().replay_journal_errors >= 1);
        cache.fail_syncs_for_test(false);
        cache.sync().unwrap();
        assert!(status.health().ready);
        manager.lock().unwrap().stop();
    }
}
