//! The audit's I/O: poll the nodes' proofs, send the packets, time their
//! return, keep only the samples whose epochs are certain ([`super::epochs`]),
//! and analyse.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use rand::Rng;

use super::analysis::{AnalysisParams, HopDelay, Sample, Verdict, analyse};
use super::epochs::{EPOCH_MARGIN, Skip, hop_epochs};
use super::network::NetworkView;
use super::probe::{Arrivals, Senders, message};
use super::proofs::{Poll, ProofBook};
use super::report::{AuditReport, SampleCounts};
use super::route::path_through;
use super::{AuditError, AuditParams};
use crate::role::NodeRole;
use crate::sphinx::{FinalCommand, MessageId, NodeId, PathHop, ReplayTag, create_packet};
use crate::topology::{NodeDescriptor, Topology};
use crate::vrf::Epoch;

/// How often the nodes' current epochs are polled during a run.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Extra wait for stragglers beyond the longest possible transit.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

/// One packet sent.
struct Sent {
    path: [NodeId; 3],
    tags: Vec<ReplayTag>,
    at: Instant,
    /// Index of the last poll before it was sent.
    poll: usize,
}

/// Audits `target`: sends `params.samples` packets through it, verifies
/// every hop's proofs and judges every node on the paths, with the network
/// parameters the nodes publish ([`NetworkView`]; refresh the topology's
/// descriptors first). `Err` only when the audit could not be run; a
/// failing node is reported in the [`AuditReport`].
pub fn run(
    topology: &Topology,
    target: NodeId,
    params: &AuditParams,
) -> Result<AuditReport, AuditError> {
    params.check()?;
    let target_role = topology
        .get(&target)
        .ok_or(AuditError::UnknownNode(target))?
        .role;
    let socket = UdpSocket::bind(params.listen).map_err(|source| AuditError::Listen {
        addr: params.listen,
        source,
    })?;
    let listen = socket.local_addr()?;
    if listen.ip().is_unspecified() {
        return Err(AuditError::UnroutableListen(listen));
    }
    let view = NetworkView::resolve(topology, target, &params.overrides);
    let mut run_id = [0u8; 16];
    rand::rng().fill_bytes(&mut run_id);
    let arrivals = Arrivals::start(socket, run_id)?;
    let mut session = Session {
        topology,
        target,
        params,
        // The audited node and every node of the other layers may be on a path.
        pool: topology
            .nodes()
            .iter()
            .filter(|d| d.id == target || d.role != target_role)
            .collect(),
        book: ProofBook::new(
            topology,
            view.network.neighbors_k as usize,
            params.http_timeout,
        ),
        view: &view,
        polls: Vec::new(),
        run_id,
    };
    session.poll();
    let sent = session.send_all(arrivals.addr())?;
    let arrived = session.collect(&sent, arrivals);

    let mut counts = SampleCounts {
        sent: sent.len(),
        received: arrived.iter().flatten().count(),
        ..SampleCounts::default()
    };
    let mut epochs = BTreeSet::new();
    let mut samples = Vec::new();
    for (s, at) in sent.iter().zip(&arrived) {
        let Some(at) = *at else { continue };
        match sample(s, at, &session.polls, &session.book, &view) {
            Ok((sample, epoch)) => {
                samples.push(sample);
                epochs.extend(epoch);
            }
            Err(Skip::Straddled) => counts.straddled_epoch += 1,
            Err(Skip::Unverifiable) => counts.unverifiable += 1,
        }
    }
    counts.analysed = samples.len();
    let mut analysis = analyse(
        &samples,
        &AnalysisParams {
            tolerance_ms: ms(params.tolerance),
            mean_delay_ms: view.network.mean_delay_ms(),
        },
    );
    // Running other settings than the network is a fault of its own: the
    // timing evidence is judged against the node's own settings, but it
    // does not mix as the network promises its users. Not mixing even by
    // its own settings stays the graver verdict.
    for finding in &mut analysis.nodes {
        if view.misconfigured.contains_key(&finding.node) && finding.verdict != Verdict::NotMixing {
            finding.verdict = Verdict::Misconfigured;
        }
    }
    let roles: BTreeMap<NodeId, NodeRole> = analysis
        .nodes
        .iter()
        .map(|f| f.node)
        .chain([target])
        .filter_map(|id| Some((id, topology.get(&id)?.role)))
        .collect();
    Ok(AuditReport {
        target,
        listen,
        roles,
        counts,
        epochs: epochs.into_iter().collect(),
        proof_failures: session.book.failures().to_vec(),
        analysis,
        network: view,
        tolerance_ms: ms(params.tolerance),
    })
}

/// One audit run's state.
struct Session<'a> {
    topology: &'a Topology,
    target: NodeId,
    params: &'a AuditParams,
    /// The nodes that may be on a path.
    pool: Vec<&'a NodeDescriptor>,
    book: ProofBook<'a>,
    view: &'a NetworkView,
    /// Every poll so far, oldest first.
    polls: Vec<Poll>,
    run_id: [u8; 16],
}

impl Session<'_> {
    fn poll(&mut self) {
        let poll = self.book.poll(&self.pool);
        self.polls.push(poll);
    }

    fn poll_if_due(&mut self) {
        if self
            .polls
            .last()
            .is_none_or(|p| p.finished.elapsed() >= POLL_INTERVAL)
        {
            self.poll();
        }
    }

    /// Sends the samples, paced `params.interval` apart, delivering to
    /// `destination`. Stops early (with the samples so far) if the audited
    /// node's proofs become unusable.
    fn send_all(&mut self, destination: SocketAddr) -> Result<Vec<Sent>, AuditError> {
        let mut rng = rand::rng();
        let mut senders = Senders::default();
        let mut links = crate::client::EntryLinks::default();
        let mut sent = Vec::with_capacity(self.params.samples);
        let started = Instant::now();
        for i in 0..self.params.samples {
            self.poll_if_due();
            let Some(path) = self.choose_path(&mut rng) else {
                // No proofs from the audited node: the report says so.
                if !self.usable(&self.target) {
                    break;
                }
                return Err(AuditError::NoPath(self.target));
            };
            let hops: Vec<PathHop> = path
                .iter()
                .filter_map(|id| {
                    let key = self.topology.get(id)?.sphinx_key_now()?;
                    Some(PathHop {
                        id: *id,
                        public_key: key.public_key,
                    })
                })
                .collect();
            let command = FinalCommand::Deliver {
                destination,
                message_id: MessageId(self.run_id),
            };
            // `params.check` keeps the sample count within u32.
            let body = message(&self.run_id, i as u32);
            let packet = create_packet(&hops, command, &body, &mut rng)?;
            let entry = self.topology.get(&path[0]);
            let entry = entry.ok_or(AuditError::NoPath(self.target))?;
            let at = Instant::now();
            if self.params.plaintext {
                senders.send(&packet.frame[..], entry.udp_addr)?;
            } else {
                links.send(entry, &packet.frame[..])?;
            }
            sent.push(Sent {
                path,
                tags: packet.replay_tags,
                at,
                poll: self.polls.len() - 1,
            });
            let due = started + self.params.interval * (i as u32 + 1);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        Ok(sent)
    }

    /// Whether `node` can be on a path now: it has a Sphinx key, and its
    /// proofs for the epoch it last reported verified.
    fn usable(&self, node: &NodeId) -> bool {
        let Some(poll) = self.polls.last() else {
            return false;
        };
        self.topology
            .get(node)
            .is_some_and(|d| d.sphinx_key_now().is_some())
            && poll
                .epochs
                .get(node)
                .is_some_and(|e| self.book.is_verified(node, *e))
    }

    fn choose_path<R: Rng + ?Sized>(&self, rng: &mut R) -> Option<[NodeId; 3]> {
        let poll = self.polls.last()?;
        let layers = NodeRole::ALL.map(|role| {
            let layer = self.topology.layer(role).iter().map(|d| d.id);
            layer.filter(|id| self.usable(id)).collect::<Vec<_>>()
        });
        let allowed = |a: &NodeId, b: &NodeId| {
            poll.epochs
                .get(a)
                .is_some_and(|e| self.book.relays_to(a, *e, b))
        };
        path_through(&layers, self.target, allowed, rng)
    }

    /// Waits for the packets (until all arrived or none can still come),
    /// polling epochs meanwhile, then polls once more: each packet's arrival
    /// time, if it arrived.
    fn collect(&mut self, sent: &[Sent], arrivals: Arrivals) -> Vec<Option<Instant>> {
        let mut arrived: Vec<Option<Instant>> = vec![None; sent.len()];
        // The first arrival counts; a duplicate would be a replay.
        let mut record = |(index, at): (u32, Instant)| match arrived.get_mut(index as usize) {
            Some(slot @ None) => {
                *slot = Some(at);
                true
            }
            _ => false,
        };
        let last_send = sent.last().map_or_else(Instant::now, |s| s.at);
        // Three hops, each held at most the longest cap any node publishes.
        let longest = self
            .pool
            .iter()
            .map(|d| self.view.delays_of(&d.id).1)
            .max()
            .unwrap_or_default();
        let deadline = last_send + longest * 3 + WAIT_MARGIN;
        let mut received = 0;
        while received < sent.len() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            self.poll_if_due();
            if let Some(arrival) = arrivals.next((deadline - now).min(POLL_INTERVAL))
                && record(arrival)
            {
                received += 1;
            }
        }
        for arrival in arrivals.stop() {
            record(arrival);
        }
        std::thread::sleep(EPOCH_MARGIN);
        self.poll();
        arrived
    }
}

/// The sample of packet `s`, delivered at `at`, and the epochs it was mixed in.
fn sample(
    s: &Sent,
    at: Instant,
    polls: &[Poll],
    book: &ProofBook<'_>,
    view: &NetworkView,
) -> Result<(Sample, Vec<Epoch>), Skip> {
    let epochs = hop_epochs(&s.path, polls, s.poll, at)?;
    let mut hops = Vec::with_capacity(3);
    for ((node, tag), epoch) in s.path.iter().zip(&s.tags).zip(&epochs) {
        let key = book.key(node, *epoch).ok_or(Skip::Unverifiable)?;
        let (mean, max) = view.delays_of(node);
        let delay = key.delay_for(tag, mean, max);
        hops.push(HopDelay {
            node: *node,
            expected_ms: ms(delay),
        });
    }
    let sample = Sample {
        hops,
        transit_ms: ms(at.saturating_duration_since(s.at)),
    };
    Ok((sample, epochs))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
