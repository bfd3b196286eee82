//! The node's Sphinx key rotation: applies [`KeyRotation`]'s plans to the
//! key files, the replay caches, the workers' key ring and the published
//! descriptor.
//!
//! Order matters for forward secrecy and for senders: a new key is on disk
//! and in the ring before the descriptor advertises it; a retired key leaves
//! the ring before its cache and file are destroyed. A key file that cannot
//! be deleted is retried at every tick once its backoff is over, each
//! failure logged and counted (`betanet_key_deletion_failures_total`),
//! until it is gone.
//!
//! The driver thread sleeps until the next planned change (a rotation
//! point or a deletion retry) on the node's clock, or until the clock is
//! moved or the node stops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::error::NodeError;
use crate::clock::WallClock;
use crate::keys::{
    DeletionFailure, KeyPlan, KeyRotation, KeySchedule, NodeKeys, PendingDeletions, SphinxKeyStore,
};
use crate::link::{LinkKeyPair, LinkKeySet, LinkKeys};
use crate::pipeline::{KeyRing, LiveKeys, SharedReplay, UnwrapKey};
use crate::replay::{OpenMode, ReplayCache, SyncerHandle, discard_journal};
use crate::shutdown::{Shutdown, Wake};
use crate::sphinx::{SphinxProcessor, SphinxSecretKey};
use crate::topology::{LinkKeyEntry, NetworkParams, NodeDescriptor, SphinxKeyEntry};

/// Wait before retrying a rotation step that failed (the old ring keeps
/// working meanwhile).
const RETRY_FAILED_STEP: Duration = Duration::from_secs(1);

/// Where replay journals go and how they are kept.
#[derive(Clone, Debug)]
pub(crate) struct ReplaySettings {
    pub data_dir: PathBuf,
    /// Memory budget of each key's replay filter.
    pub budget_bytes: usize,
    pub sync_interval: Duration,
}

/// The descriptor as published, replaced at every rotation.
pub(crate) type Published = Arc<ArcSwap<NodeDescriptor>>;

/// A held key: its ring entry and its replay cache with the syncer.
struct HeldKey {
    unwrap: Arc<UnwrapKey>,
    /// The epoch's link key, derived from the same secret.
    link: Arc<LinkKeyPair>,
    cache: Arc<ReplayCache>,
    syncer: Option<SyncerHandle>,
}

/// The node's keys over time.
pub(crate) struct KeyManager {
    rotation: KeyRotation,
    store: SphinxKeyStore,
    replay: ReplaySettings,
    held: BTreeMap<u64, HeldKey>,
    /// The link keys of the held epochs, read by the transport.
    links: Arc<LinkKeys>,
    /// Retired keys whose files are still on disk.
    deletions: PendingDeletions,
    live: Arc<LiveKeys>,
    /// Signs the descriptor; the template carries the fields that never
    /// change (role, addresses, network parameters).
    signer: NodeKeys,
    template: NodeDescriptor,
    descriptor_path: PathBuf,
    published: Published,
    clock: Arc<dyn WallClock>,
    next_change: u64,
    /// The current key epoch as of the last step.
    current: u64,
    /// What metrics read without taking this manager's lock.
    status: super::key_status::SharedKeyStatus,
    /// Journal sync failures of retired keys' caches, so the exported
    /// total never goes down when a key leaves.
    retired_journal_errors: u64,
}

impl KeyManager {
    /// Loads the held keys, rotates as the clock demands, and publishes.
    pub(crate) fn start(
        signer: NodeKeys,
        on_disk: NodeDescriptor,
        network: NetworkParams,
        descriptor_path: PathBuf,
        schedule: KeySchedule,
        replay: ReplaySettings,
        clock: Arc<dyn WallClock>,
    ) -> Result<KeyManager, NodeError> {
        let store = SphinxKeyStore::open(&signer_key_dir(&descriptor_path))?;
        let mut held = BTreeMap::new();
        let mut deletions = PendingDeletions::new();
        let loaded = store.load_all()?;
        let in_use = store.in_use();
        // Keys the first step retires at once are not loaded: their journal
        // may already be gone (a crash between deleting a retired key's
        // journal and its file), and they never unwrap again.
        let now = clock.unix_seconds();
        let epochs: BTreeSet<u64> = loaded.keys().copied().collect();
        let retire_now = KeyRotation::new(schedule).plan(now, &epochs).retire;
        for (epoch, secret) in loaded {
            if retire_now.contains(&epoch) {
                let key_id = replay_key_id(&SphinxProcessor::new(secret));
                if let Err(error) = discard_journal(&replay.data_dir, &key_id) {
                    tracing::error!(key_epoch = epoch, %error, "cannot delete the retired replay journal");
                }
                match deletions.delete(epoch, now, |epoch| store.delete(epoch)) {
                    Ok(()) => tracing::info!(key_epoch = epoch, "stale Sphinx key deleted"),
                    Err(failure) => log_deletion_failure(&failure),
                }
                continue;
            }
            // Once a node has run with these keys, a loaded key may have
            // accepted packets, so its journal must be there (see
            // `OpenMode::MustExist`); keys fresh from `betanet keygen` have
            // none yet.
            let mode = if in_use {
                OpenMode::MustExist
            } else {
                OpenMode::Create
            };
            held.insert(epoch, open_key(epoch, secret, &replay, mode)?);
        }
        // Before any key unwraps a packet.
        store.mark_in_use()?;
        let mut manager = KeyManager {
            rotation: KeyRotation::new(schedule),
            store,
            replay,
            held,
            deletions,
            // Replaced by the first `apply` below; the ring is never empty.
            live: Arc::new(LiveKeys::new(KeyRing::single(
                SphinxProcessor::new(SphinxSecretKey::generate(&mut rand::rng())),
                Arc::new(crate::pipeline::MemoryReplay::default()),
            ))),
            links: Arc::default(),
            template: NodeDescriptor {
                network: Some(network),
                ..on_disk.clone()
            },
            // The first step re-signs it unless it already says it all.
            published: Arc::new(ArcSwap::from_pointee(on_disk)),
            signer,
            descriptor_path,
            clock,
            next_change: 0,
            current: 0,
            status: Arc::default(),
            retired_journal_errors: 0,
        };
        manager.step()?;
        manager.publish_status();
        Ok(manager)
    }

    /// This node's link keys, kept in step with the Sphinx keys.
    pub(crate) fn link_keys(&self) -> Arc<LinkKeys> {
        Arc::clone(&self.links)
    }

    /// The ring the pipeline unwraps with.
    pub(crate) fn live_keys(&self) -> Arc<LiveKeys> {
        Arc::clone(&self.live)
    }

    /// The published descriptor.
    pub(crate) fn published(&self) -> Published {
        Arc::clone(&self.published)
    }

    /// Tags held in the replay filters of all held keys.
    pub(crate) fn replay_entries(&self) -> usize {
        self.held.values().map(|k| k.cache.len()).sum()
    }

    /// The current key epoch.
    pub(crate) fn current_epoch(&self) -> u64 {
        self.current
    }

    /// The epochs whose keys are held (current, next, and a previous one
    /// in its grace window).
    pub(crate) fn held_epochs(&self) -> Vec<u64> {
        self.held.keys().copied().collect()
    }

    /// Failed attempts to delete retired key files since start.
    pub(crate) fn deletion_failures(&self) -> u64 {
        self.deletions.failures()
    }

    /// The held keys as metrics see them, updated after every step.
    pub(crate) fn status(&self) -> super::key_status::SharedKeyStatus {
        Arc::clone(&self.status)
    }

    /// When [`tick`](Self::tick) next has something to do, in unix
    /// seconds on the manager's clock: the next rotation point or deletion
    /// retry, whichever is first.
    pub(crate) fn next_wake(&self) -> u64 {
        self.deletions
            .next_attempt()
            .map_or(self.next_change, |at| at.min(self.next_change))
    }

    /// Retries due key-file deletions, then runs a rotation step if one is
    /// due.
    pub(crate) fn tick(&mut self) -> Result<(), NodeError> {
        let now = self.clock.unix_seconds();
        let store = &self.store;
        let pending = self.deletions.pending().count();
        let failures = self.deletions.retry_due(now, |epoch| store.delete(epoch));
        let retried = !failures.is_empty() || self.deletions.pending().count() != pending;
        for failure in failures {
            log_deletion_failure(&failure);
        }
        if now >= self.next_change {
            // Published even when the step failed half-way: keys may have
            // come or gone before the failure.
            let stepped = self.step();
            self.publish_status();
            stepped?;
        } else if retried {
            self.publish_status();
        }
        Ok(())
    }

    fn publish_status(&self) {
        self.status.store(Arc::new(super::key_status::KeyStatus {
            current_epoch: self.current_epoch(),
            held_epochs: self.held_epochs(),
            caches: self.held.values().map(|k| Arc::clone(&k.cache)).collect(),
            retired_journal_errors: self.retired_journal_errors,
            deletion_failures: self.deletion_failures(),
            deletions_pending: self.deletions.pending().count() as u64,
        }));
    }

    /// Plans for now and applies the plan.
    fn step(&mut self) -> Result<(), NodeError> {
        let now = self.clock.unix_seconds();
        let held: BTreeSet<u64> = self.held.keys().copied().collect();
        let plan = self.rotation.plan(now, &held);
        let mut rng = rand::rng();
        for &epoch in &plan.create {
            // The journal is created (durably) before the key file, so a
            // key file on disk always had a journal: a missing one later
            // means it was lost, not that creation was interrupted.
            let secret = SphinxSecretKey::generate(&mut rng);
            let key = open_key(epoch, secret.clone(), &self.replay, OpenMode::Create)?;
            if let Err(error) = self.store.insert(epoch, &secret) {
                if let Err(e) = key.cache.retire() {
                    tracing::error!(key_epoch = epoch, error = %e, "cannot delete the journal of a key that was not saved");
                }
                return Err(NodeError::Rotation(error));
            }
            self.held.insert(epoch, key);
            tracing::info!(key_epoch = epoch, "new Sphinx key generated");
        }
        self.install_ring(&plan);
        self.links.store(LinkKeySet::new(
            self.held
                .iter()
                .map(|(epoch, k)| (*epoch, Arc::clone(&k.link)))
                .collect(),
            plan.current,
        ));
        // Re-signed only when what it says changes: new keys, a new key
        // set, or another epoch length or network parameters than the file
        // on disk.
        let entries = self.key_entries(&plan);
        let link_entries = self.link_entries(&plan);
        let published = self.published.load();
        if published.sphinx_keys != entries
            || published.link_keys != link_entries
            || published.key_epoch_seconds != self.rotation.schedule().epoch_seconds()
            || published.network != self.template.network
        {
            self.publish(entries, link_entries, &plan)?;
        }
        for &epoch in &plan.retire {
            self.retire(epoch);
        }
        self.next_change = plan.next_change;
        self.current = plan.current;
        Ok(())
    }

    fn install_ring(&self, plan: &KeyPlan) {
        let mut accepted = plan
            .accept
            .iter()
            .filter_map(|e| self.held.get(e))
            .map(|k| Arc::clone(&k.unwrap));
        // `accept` starts with the current epoch, which `create` made sure
        // is held.
        if let Some(current) = accepted.next() {
            self.live.store(KeyRing::new(current, accepted));
        }
    }

    /// The public keys of `plan.publish`, as the descriptor lists them.
    fn key_entries(&self, plan: &KeyPlan) -> Vec<SphinxKeyEntry> {
        plan.publish
            .iter()
            .filter_map(|e| {
                self.held.get(e).map(|k| SphinxKeyEntry {
                    epoch: *e,
                    public_key: k.unwrap.processor.public_key(),
                })
            })
            .collect()
    }

    /// The link public keys of `plan.publish`, as the descriptor lists them.
    fn link_entries(&self, plan: &KeyPlan) -> Vec<LinkKeyEntry> {
        plan.publish
            .iter()
            .filter_map(|e| {
                self.held.get(e).map(|k| LinkKeyEntry {
                    epoch: *e,
                    public_key: k.link.public().clone(),
                })
            })
            .collect()
    }

    /// Re-signs the descriptor with `sphinx_keys` (and the template's
    /// network parameters), serves it,
    /// and writes it to `node.json` (best effort: `/descriptor` is what
    /// peers read; the file is for operators and the next `topology build`).
    fn publish(
        &self,
        sphinx_keys: Vec<SphinxKeyEntry>,
        link_keys: Vec<LinkKeyEntry>,
        plan: &KeyPlan,
    ) -> Result<(), NodeError> {
        let mut descriptor = NodeDescriptor {
            sphinx_keys,
            link_keys,
            key_epoch_seconds: self.rotation.schedule().epoch_seconds(),
            ..self.template.clone()
        };
        descriptor
            .sign(&self.signer)
            .map_err(|source| NodeError::Sign {
                path: self.descriptor_path.clone(),
                source,
            })?;
        if let Err(error) = descriptor.save(&self.descriptor_path) {
            tracing::warn!(
                path = %self.descriptor_path.display(),
                %error,
                "cannot update node.json; /descriptor serves the current keys"
            );
        }
        self.published.store(Arc::new(descriptor));
        tracing::info!(epochs = ?plan.publish, "descriptor re-signed with the current Sphinx keys");
        Ok(())
    }

    /// Destroys a key that left the ring: its replay cache (memory and
    /// journal) and its file.
    fn retire(&mut self, epoch: u64) {
        let Some(mut key) = self.held.remove(&epoch) else {
            return;
        };
        if let Some(syncer) = key.syncer.take() {
            // The tags are about to be deleted; a failed last sync is moot.
            let _ = syncer.stop();
        }
        self.retired_journal_errors += key.cache.journal_errors();
        if let Err(error) = key.cache.retire() {
            tracing::error!(key_epoch = epoch, %error, "cannot delete the retired replay journal");
        }
        drop(key);
        let now = self.clock.unix_seconds();
        let store = &self.store;
        match self
            .deletions
            .delete(epoch, now, |epoch| store.delete(epoch))
        {
            Ok(()) => tracing::info!(
                key_epoch = epoch,
                "Sphinx key retired and deleted with its replay cache"
            ),
            // The key is out of the ring and memory; its file is retried.
            Err(failure) => log_deletion_failure(&failure),
        }
    }

    /// Stops every syncer after a final sync (shutdown).
    pub(crate) fn stop(&mut self) {
        for (epoch, key) in &mut self.held {
            if let Some(Err(error)) = key.syncer.take().map(SyncerHandle::stop) {
                tracing::error!(key_epoch = epoch, %error, "final replay journal sync failed");
            }
        }
    }
}

/// A retired key file is still on disk: forward secrecy is not there yet.
fn log_deletion_failure(failure: &DeletionFailure) {
    tracing::error!(
        key_epoch = failure.epoch,
        error = %failure.error,
        retry_in_seconds = failure.retry_in,
        "cannot delete a retired Sphinx key file; retrying"
    );
}

/// The key directory a descriptor path lives in.
fn signer_key_dir(descriptor_path: &std::path::Path) -> PathBuf {
    descriptor_path
        .parent()
        .map_or_else(|| PathBuf::from("."), ToOwned::to_owned)
}

/// Opens the replay filter of a key and starts its syncer.
fn open_key(
    epoch: u64,
    secret: SphinxSecretKey,
    settings: &ReplaySettings,
    mode: OpenMode,
) -> Result<HeldKey, NodeError> {
    let link = Arc::new(LinkKeyPair::derive(&secret.to_bytes()));
    let processor = SphinxProcessor::new(secret);
    let cache = Arc::new(ReplayCache::open(
        &settings.data_dir,
        replay_key_id(&processor),
        settings.budget_bytes,
        mode,
    )?);
    let syncer = cache
        .spawn_syncer(settings.sync_interval)
        .map_err(|source| NodeError::Spawn {
            what: "a replay journal syncer",
            source,
        })?;
    Ok(HeldKey {
        link,
        unwrap: Arc::new(UnwrapKey {
            epoch,
            processor,
            replay: Arc::clone(&cache) as Arc<dyn SharedReplay>,
        }),
        cache,
        syncer: Some(syncer),
    })
}

/// The replay journal of a key is named by a hash of its public key, so a
/// new key never inherits (or deletes) another key's journal.
fn replay_key_id(processor: &SphinxProcessor) -> [u8; 16] {
    let digest = blake3::derive_key("betanet replay cache key id v1", &processor.public_key().0);
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// Runs the manager's ticks on a thread, each at its planned time, until
/// `shutdown`.
pub(crate) fn spawn_driver(
    manager: Arc<std::sync::Mutex<KeyManager>>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    // A panic mid-tick leaves keys that the next step re-plans from.
    let lock = super::lock::<KeyManager>;
    let clock = Arc::clone(&lock(&manager).clock);
    std::thread::Builder::new()
        .name("betanet-keys".into())
        .spawn(move || {
            let jumps = clock.jumps();
            let watched: Vec<_> = jumps.iter().collect();
            loop {
                let (result, next) = {
                    let mut manager = lock(&manager);
                    (manager.tick(), manager.next_wake())
                };
                let wait = match result {
                    Ok(()) => clock.until(next).min(crate::clock::RECHECK),
                    Err(error) => {
                        tracing::error!(%error, "Sphinx key rotation failed; retrying");
                        RETRY_FAILED_STEP
                    }
                };
                if shutdown.wait(Instant::now().checked_add(wait), &watched) == Wake::Stop {
                    return;
                }
            }
        })
}
