//! One authority's protocol, as a sans-IO state machine (after
//! quinn-proto): fed `(now, input)` — uploads, probe results, peers'
//! votes, reveals and signatures — and asked what to do next
//! ([`AuthorityState::poll_action`]) and when to wake
//! ([`AuthorityState::poll_timeout`]). It reads no clock and opens no
//! socket; [`daemon`](super::daemon) drives it, tests drive it in virtual
//! time.
//!
//! # The epoch
//!
//! The consensus for epoch `E + 1` is made during epoch `E` (start `S`,
//! length `T`, in unix seconds):
//!
//! ```text
//! S            S+T/2         S+5T/8         S+3T/4          S+7T/8      S+T
//! | uploads,   | vote frozen  | reveal        | consensus     | consensus |
//! | probes     | votes fetched| reveals       | computed,     | published |
//! |            | from peers   | fetched       | signed; peers'| (with the |
//! |            |              |               | signatures    | threshold)|
//! ```
//!
//! An authority that misses a phase (silent, late) is simply not counted;
//! the rest go on as long as a majority voted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;

use ed25519_dalek::SigningKey;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use super::document::{Consensus, ConsensusSignature, SignedConsensus};
use super::params::ConsensusParams;
use super::rule::{RuleReport, compute_consensus};
use super::set::{AuthorityInfo, AuthoritySet};
use super::shared_random::commitment;
use super::signing;
use super::vote::{Reveal, SignedReveal, SignedVote, VOTE_VERSION, Vote, VotedNode};
use crate::sphinx::NodeId;
use crate::topology::NodeDescriptor;

/// Most node descriptors an authority holds (uploads beyond it are refused).
pub const MAX_UPLOADED: usize = 8_192;
/// Probe results remembered per node (the reliability window).
pub const PROBE_WINDOW: u32 = 32;
/// Shortest epoch the schedule supports (its phases are whole seconds).
pub const MIN_EPOCH_SECONDS: u64 = 8;

/// Timing and policy of one authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Consensus epoch length, seconds (at least [`MIN_EPOCH_SECONDS`]).
    pub epoch_seconds: u64,
    /// Seconds between probes of every uploaded node.
    pub probe_interval_seconds: u64,
    /// An upload not repeated for this long is forgotten, seconds.
    pub descriptor_ttl_seconds: u64,
    /// Seconds between fetch retries within a phase.
    pub retry_seconds: u64,
}

impl Timing {
    /// A schedule for `epoch_seconds`-long epochs: probes four times per
    /// epoch, uploads kept three epochs, retries every sixteenth.
    pub fn for_epoch(epoch_seconds: u64) -> Self {
        let t = epoch_seconds.max(MIN_EPOCH_SECONDS);
        Timing {
            epoch_seconds: t,
            probe_interval_seconds: (t / 4).max(1),
            descriptor_ttl_seconds: 3 * t,
            retry_seconds: (t / 16).max(1),
        }
    }

    fn epoch_of(&self, now: u64) -> u64 {
        now / self.epoch_seconds
    }

    fn start(&self, epoch: u64) -> u64 {
        epoch.saturating_mul(self.epoch_seconds)
    }

    /// When `phase` of the round making epoch `target`'s consensus begins.
    fn at(&self, target: u64, phase: Phase) -> u64 {
        let s = self.start(target.saturating_sub(1));
        let t = self.epoch_seconds;
        s + match phase {
            Phase::Collect => 0,
            Phase::Vote => t / 2,
            Phase::Reveal => t * 5 / 8,
            Phase::Sign => t * 3 / 4,
            Phase::Publish => t * 7 / 8,
            Phase::Done => t,
        }
    }
}

/// Where a round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Collecting uploads and probing.
    Collect,
    /// Own vote published; fetching peers' votes.
    Vote,
    /// Own reveal published; fetching peers' reveals.
    Reveal,
    /// Consensus computed and signed; fetching peers' signatures.
    Sign,
    /// Consensus published (if it had the threshold).
    Publish,
    /// The round's epoch has begun.
    Done,
}

/// What the driver should do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Probe these nodes (`/health` on their HTTP address) and report with
    /// [`AuthorityState::handle_probe`].
    Probe(Vec<(NodeId, SocketAddr)>),
    /// Fetch epoch `epoch`'s vote from each of these authorities
    /// ([`AuthorityState::handle_vote`]).
    FetchVotes(u64, Vec<AuthorityInfo>),
    /// Fetch their reveals ([`AuthorityState::handle_reveal`]).
    FetchReveals(u64, Vec<AuthorityInfo>),
    /// Fetch their signatures ([`AuthorityState::handle_signature`]).
    FetchSignatures(u64, Vec<AuthorityInfo>),
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UploadError {
    /// The descriptor does not verify.
    #[error("descriptor does not verify: {0}")]
    Invalid(String),
    /// The authority holds [`MAX_UPLOADED`] descriptors already.
    #[error("this authority holds {MAX_UPLOADED} descriptors already; try again later")]
    Full,
    /// An older descriptor than the one held (a rollback of Sphinx keys).
    #[error("descriptor publishes older Sphinx keys than the one already uploaded")]
    Rollback,
}

/// Counts of what was refused, by reason.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Uploads accepted.
    pub uploads_accepted: u64,
    /// Uploads refused.
    pub uploads_refused: u64,
    /// Peer messages (votes, reveals, signatures) refused.
    pub peer_messages_refused: u64,
    /// Rounds that ended without a consensus with the threshold.
    pub rounds_failed: u64,
    /// The last rule run's report.
    pub last_rule: RuleReport,
}

struct Upload {
    descriptor: NodeDescriptor,
    at: u64,
}

#[derive(Default)]
struct Probes {
    /// Bit i: the i-th most recent probe succeeded.
    history: u32,
    count: u32,
}

impl Probes {
    fn record(&mut self, ok: bool) {
        self.history = (self.history << 1) | u32::from(ok);
        self.count = (self.count + 1).min(PROBE_WINDOW);
    }

    fn last_ok(&self) -> bool {
        self.count > 0 && self.history & 1 == 1
    }

    fn permille(&self) -> u16 {
        if self.count == 0 {
            return 0;
        }
        let mask = if self.count >= 32 {
            u32::MAX
        } else {
            (1 << self.count) - 1
        };
        let ok = (self.history & mask).count_ones();
        u16::try_from(ok * 1000 / self.count).unwrap_or(1000)
    }
}

struct Round {
    secret: [u8; 32],
    own_vote: Option<SignedVote>,
    own_reveal: Option<SignedReveal>,
    /// Peers' votes; two entries for one author mark equivocation.
    votes: BTreeMap<[u8; 32], Vec<SignedVote>>,
    reveals: BTreeMap<[u8; 32], SignedReveal>,
    consensus: Option<Consensus>,
    /// A reveal arrived after `consensus` was computed.
    dirty: bool,
    signatures: BTreeMap<[u8; 32], ConsensusSignature>,
    published: bool,
}

/// One authority's state (module docs).
pub struct AuthorityState {
    key: SigningKey,
    me: [u8; 32],
    set: AuthoritySet,
    timing: Timing,
    proposal: ConsensusParams,
    rng: ChaCha20Rng,
    uploads: HashMap<NodeId, Upload>,
    probes: HashMap<NodeId, Probes>,
    rounds: BTreeMap<u64, Round>,
    current: Option<SignedConsensus>,
    /// Published, waiting for its `valid_after`.
    pending: Option<SignedConsensus>,
    last_now: u64,
    next_probe: u64,
    next_retry: u64,
    actions: VecDeque<Action>,
    counters: Counters,
}

impl AuthorityState {
    /// An authority holding `key` (which must be in `set`), proposing
    /// `proposal`, drawing its commit–reveal secrets from a generator
    /// seeded with `seed` (fresh OS randomness in the daemon).
    pub fn new(
        key: SigningKey,
        set: AuthoritySet,
        timing: Timing,
        proposal: ConsensusParams,
        seed: [u8; 32],
    ) -> Self {
        let me = key.verifying_key().to_bytes();
        AuthorityState {
            key,
            me,
            set,
            timing,
            proposal,
            rng: ChaCha20Rng::from_seed(seed),
            uploads: HashMap::new(),
            probes: HashMap::new(),
            rounds: BTreeMap::new(),
            current: None,
            pending: None,
            last_now: 0,
            next_probe: 0,
            next_retry: 0,
            actions: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// This authority's identity key.
    pub fn identity_key(&self) -> [u8; 32] {
        self.me
    }

    /// The authority set.
    pub fn authorities(&self) -> &AuthoritySet {
        &self.set
    }

    /// The timing.
    pub fn timing(&self) -> Timing {
        self.timing
    }

    /// What was refused and why.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// A node's descriptor upload. Accepted if it verifies and does not
    /// roll back the node's Sphinx keys; the node is probed at once.
    pub fn handle_upload(
        &mut self,
        now: u64,
        descriptor: NodeDescriptor,
    ) -> Result<(), UploadError> {
        let result = self.accept_upload(now, descriptor);
        match result {
            Ok(()) => self.counters.uploads_accepted += 1,
            Err(_) => self.counters.uploads_refused += 1,
        }
        result
    }

    fn accept_upload(&mut self, now: u64, descriptor: NodeDescriptor) -> Result<(), UploadError> {
        descriptor
            .verify()
            .map_err(|e| UploadError::Invalid(e.to_string()))?;
        let id = descriptor.id;
        match self.uploads.get(&id) {
            Some(known) if known.descriptor.newest_key_epoch() > descriptor.newest_key_epoch() => {
                return Err(UploadError::Rollback);
            }
            Some(_) => {}
            None if self.uploads.len() >= MAX_UPLOADED => {
                self.expire(now);
                if self.uploads.len() >= MAX_UPLOADED {
                    return Err(UploadError::Full);
                }
            }
            None => {}
        }
        let probe_new = !self.uploads.contains_key(&id);
        let addr = descriptor.http_addr;
        self.uploads.insert(
            id,
            Upload {
                descriptor,
                at: now,
            },
        );
        if probe_new {
            self.actions.push_back(Action::Probe(vec![(id, addr)]));
        }
        Ok(())
    }

    /// The result of probing node `id`.
    pub fn handle_probe(&mut self, id: NodeId, ok: bool) {
        if self.uploads.contains_key(&id) {
            self.probes.entry(id).or_default().record(ok);
        }
    }

    /// A peer's vote for epoch `epoch` (as fetched from it).
    pub fn handle_vote(&mut self, epoch: u64, vote: SignedVote) {
        if vote.verify(&self.set, epoch).is_err() || vote.vote.authority == self.me {
            self.counters.peer_messages_refused += 1;
            return;
        }
        let Some(round) = self.rounds.get_mut(&epoch) else {
            self.counters.peer_messages_refused += 1;
            return;
        };
        if round.own_reveal.is_some() {
            // Too late: a vote first seen after the reveals began could
            // have been chosen knowing them (steering the shared random
            // value), so it is not counted.
            self.counters.peer_messages_refused += 1;
            return;
        }
        let held = round.votes.entry(vote.vote.authority).or_default();
        // Keep at most two: one, or the evidence of equivocation.
        if held.len() < 2 && !held.contains(&vote) {
            held.push(vote);
        }
    }

    /// A peer's reveal for epoch `epoch` (fetched from its author or relayed
    /// by another authority: the author's signature is what counts).
    /// Reveals are taken until the consensus is published; one arriving
    /// after ours was computed makes us compute and sign again, so
    /// authorities that saw reveals at different moments converge.
    pub fn handle_reveal(&mut self, epoch: u64, reveal: SignedReveal) {
        if reveal.verify(&self.set, epoch).is_err() {
            self.counters.peer_messages_refused += 1;
            return;
        }
        if reveal.reveal.authority == self.me {
            return; // our own, relayed back
        }
        if let Some(round) = self.rounds.get_mut(&epoch)
            && !round.published
            && !round.reveals.contains_key(&reveal.reveal.authority)
        {
            round.reveals.insert(reveal.reveal.authority, reveal);
            if round.consensus.is_some() {
                round.dirty = true;
            }
        }
    }

    /// A peer's signature on its consensus of epoch `epoch`; counted only if
    /// it signs the same document as ours.
    pub fn handle_signature(&mut self, epoch: u64, signature: ConsensusSignature) {
        let Some(round) = self.rounds.get_mut(&epoch) else {
            return;
        };
        let Some(consensus) = &round.consensus else {
            return;
        };
        let ok = self.set.contains(&signature.authority)
            && consensus.signed_message().is_ok_and(|m| {
                signing::verify(&signature.authority, &m, &signature.signature, "consensus").is_ok()
            });
        if !ok {
            self.counters.peer_messages_refused += 1;
            return;
        }
        round.signatures.insert(signature.authority, signature);
        let all: Vec<ConsensusSignature> = round.signatures.values().copied().collect();
        for held in [&mut self.pending, &mut self.current].into_iter().flatten() {
            if held.consensus.epoch == epoch {
                held.signatures.clone_from(&all);
            }
        }
    }

    /// Our vote for `epoch`, once frozen (what peers fetch).
    pub fn own_vote(&self, epoch: u64) -> Option<&SignedVote> {
        self.rounds.get(&epoch)?.own_vote.as_ref()
    }

    /// Our reveal for `epoch`, once the reveal phase began.
    pub fn own_reveal(&self, epoch: u64) -> Option<&SignedReveal> {
        self.rounds.get(&epoch)?.own_reveal.as_ref()
    }

    /// Every reveal we hold for `epoch` (ours first, then peers'), once
    /// ours is out: what `/authority/reveal/{epoch}` serves, so a reveal
    /// one authority got reaches the others too.
    pub fn reveals(&self, epoch: u64) -> Vec<SignedReveal> {
        let Some(round) = self.rounds.get(&epoch) else {
            return Vec::new();
        };
        match round.own_reveal {
            Some(own) => std::iter::once(own)
                .chain(round.reveals.values().copied())
                .collect(),
            None => Vec::new(),
        }
    }

    /// Our signature on our consensus for `epoch`, once computed.
    pub fn own_signature(&self, epoch: u64) -> Option<&ConsensusSignature> {
        self.rounds.get(&epoch)?.signatures.get(&self.me)
    }

    /// The newest published consensus (with at least the threshold of
    /// signatures), what `/consensus` serves.
    pub fn current(&self) -> Option<&SignedConsensus> {
        self.current.as_ref()
    }

    /// The next thing to do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called
    /// (unix seconds): the next probe, retry, phase or consensus start.
    pub fn poll_timeout(&self) -> u64 {
        let mut next = self.next_probe.min(self.next_retry);
        let target = self.timing.epoch_of(self.last_now) + 1;
        for phase in [
            Phase::Vote,
            Phase::Reveal,
            Phase::Sign,
            Phase::Publish,
            Phase::Done,
        ] {
            let at = self.timing.at(target, phase);
            if at > self.last_now {
                next = next.min(at);
                break;
            }
        }
        if let Some(pending) = &self.pending {
            next = next.min(pending.consensus.valid_after);
        }
        next.max(self.last_now)
    }

    /// Advances to `now` (unix seconds): probes when due, moves the current
    /// round through its phases, retries fetches of what is missing.
    pub fn handle_timeout(&mut self, now: u64) {
        self.last_now = self.last_now.max(now);
        self.expire(now);
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.consensus.valid_after <= now)
        {
            self.current = self.pending.take();
        }
        if now >= self.next_probe {
            let targets: Vec<(NodeId, SocketAddr)> = self
                .uploads
                .iter()
                .map(|(id, u)| (*id, u.descriptor.http_addr))
                .collect();
            if !targets.is_empty() {
                self.actions.push_back(Action::Probe(targets));
            }
            self.next_probe = now + self.timing.probe_interval_seconds;
        }
        let target = self.timing.epoch_of(now) + 1;
        if !self.rounds.contains_key(&target) {
            let mut secret = [0u8; 32];
            rand::Rng::fill_bytes(&mut self.rng, &mut secret);
            self.rounds.insert(
                target,
                Round {
                    secret,
                    own_vote: None,
                    own_reveal: None,
                    votes: BTreeMap::new(),
                    reveals: BTreeMap::new(),
                    consensus: None,
                    dirty: false,
                    signatures: BTreeMap::new(),
                    published: false,
                },
            );
            // Keep this round and the previous one (peers may still fetch it).
            while self.rounds.len() > 2 {
                self.rounds.pop_first();
            }
        }
        self.advance(now, target);
        if now >= self.next_retry {
            self.retry_fetches(target);
            self.next_retry = now + self.timing.retry_seconds;
        }
    }

    fn advance(&mut self, now: u64, target: u64) {
        let at = |p| self.timing.at(target, p);
        let (vote_at, reveal_at, sign_at, publish_at) = (
            at(Phase::Vote),
            at(Phase::Reveal),
            at(Phase::Sign),
            at(Phase::Publish),
        );
        let vote_missing = self.rounds[&target].own_vote.is_none();
        if now >= vote_at && vote_missing && now < reveal_at {
            let vote = self.make_vote(now, target);
            if let Some(round) = self.rounds.get_mut(&target) {
                round.own_vote = vote;
            }
            self.retry_fetches(target);
        }
        let round = self.rounds.get_mut(&target).expect("round exists");
        if now >= reveal_at
            && round.own_vote.is_some()
            && round.own_reveal.is_none()
            && now < sign_at
        {
            round.own_reveal = Reveal {
                epoch: target,
                authority: self.me,
                value: round.secret,
            }
            .sign(&self.key)
            .ok();
            self.retry_fetches(target);
        }
        let round = self.rounds.get_mut(&target).expect("round exists");
        let stale = round.consensus.is_none() || round.dirty;
        if now >= sign_at && stale && round.own_vote.is_some() && now < publish_at {
            self.compute(target);
            self.retry_fetches(target);
        }
        let round = self.rounds.get_mut(&target).expect("round exists");
        if now >= publish_at && !round.published {
            round.published = true;
            let signed = round.consensus.clone().map(|consensus| SignedConsensus {
                consensus,
                signatures: round.signatures.values().copied().collect(),
            });
            match signed {
                Some(s) if s.signatures.len() >= self.set.threshold() => self.pending = Some(s),
                _ => self.counters.rounds_failed += 1,
            }
        }
    }

    fn make_vote(&mut self, now: u64, target: u64) -> Option<SignedVote> {
        let mut nodes: Vec<VotedNode> = self
            .uploads
            .iter()
            .filter(|(id, u)| {
                now.saturating_sub(u.at) < self.timing.descriptor_ttl_seconds
                    && self.probes.get(id).is_some_and(Probes::last_ok)
            })
            .map(|(id, u)| VotedNode {
                descriptor: u.descriptor.clone(),
                reliability_permille: self.probes.get(id).map_or(0, Probes::permille),
            })
            .collect();
        nodes.sort_by_key(|n| n.descriptor.id);
        let secret = self.rounds.get(&target)?.secret;
        Vote {
            version: VOTE_VERSION,
            epoch: target,
            authority: self.me,
            params: self.proposal,
            commit: commitment(target, &self.me, &secret),
            nodes,
        }
        .sign(&self.key)
        .ok()
    }

    fn compute(&mut self, target: u64) {
        let round = self.rounds.get_mut(&target).expect("round exists");
        // Signatures on an earlier computation are for another document.
        round.dirty = false;
        round.signatures.clear();
        round.consensus = None;
        let mut votes: Vec<SignedVote> = round.votes.values().flatten().cloned().collect();
        votes.extend(round.own_vote.clone());
        let mut reveals: Vec<SignedReveal> = round.reveals.values().copied().collect();
        reveals.extend(round.own_reveal);
        match compute_consensus(
            &self.set,
            target,
            self.timing.epoch_seconds,
            &votes,
            &reveals,
        ) {
            Ok((consensus, report)) => {
                self.counters.last_rule = report;
                if let Ok(sig) = consensus.sign(&self.key) {
                    round.signatures.insert(self.me, sig);
                    // Signatures fetched early (a peer ahead of us) are
                    // dropped: peers are asked again.
                    round.consensus = Some(consensus);
                }
            }
            Err(error) => {
                tracing::warn!(%error, "no consensus this epoch");
            }
        }
    }

    fn retry_fetches(&mut self, target: u64) {
        let Some(round) = self.rounds.get(&target) else {
            return;
        };
        let peers = |held: &dyn Fn(&[u8; 32]) -> bool| -> Vec<AuthorityInfo> {
            self.set
                .iter()
                .filter(|a| a.identity_key != self.me && !held(&a.identity_key))
                .copied()
                .collect()
        };
        if round.published {
            return;
        }
        let mut actions = Vec::new();
        if round.own_reveal.is_none() && round.own_vote.is_some() {
            actions.push(Action::FetchVotes(
                target,
                peers(&|k| round.votes.contains_key(k)),
            ));
        }
        if round.own_reveal.is_some() {
            actions.push(Action::FetchReveals(
                target,
                peers(&|k| round.reveals.contains_key(k)),
            ));
        }
        if round.consensus.is_some() {
            actions.push(Action::FetchSignatures(
                target,
                peers(&|k| round.signatures.contains_key(k)),
            ));
        }
        self.actions.extend(actions.into_iter().filter(|a| {
            !matches!(a, Action::FetchVotes(_, p) | Action::FetchReveals(_, p) | Action::FetchSignatures(_, p) if p.is_empty())
        }));
    }

    fn expire(&mut self, now: u64) {
        let ttl = self.timing.descriptor_ttl_seconds;
        self.uploads.retain(|_, u| now.saturating_sub(u.at) < ttl);
        let uploads = &self.uploads;
        self.probes.retain(|id, _| uploads.contains_key(id));
    }
}
