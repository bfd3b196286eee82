//! The Sphinx keys a pipeline unwraps with: one per accepted key epoch, each
//! with its own replay cache, swappable at run time (key rotation) without
//! stopping the workers.
//!
//! A frame carries no key id, so a frame is tried under each accepted key in
//! turn. That is safe: the MAC is checked before anything in the frame is
//! changed, so a frame that fails under one key is intact for the next. Only
//! a MAC failure moves on to the next key; every other drop reason does not
//! depend on the key.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::worker::SharedReplay;
use crate::sphinx::{SphinxProcessor, SphinxPublicKey};

/// One Sphinx key and the replay cache of the packets it accepted.
pub struct UnwrapKey {
    /// The key epoch this key belongs to.
    pub epoch: u64,
    /// The key.
    pub processor: SphinxProcessor,
    /// Tags of packets accepted under this key (and only this key: a
    /// retired key's cache goes with it).
    pub replay: Arc<dyn SharedReplay>,
}

/// The keys accepted now, in the order to try them: the current key first.
/// Never empty.
#[derive(Clone)]
pub struct KeyRing {
    keys: Vec<Arc<UnwrapKey>>,
}

impl KeyRing {
    /// A ring whose first key is `current`, followed by `others` in order.
    pub fn new(current: Arc<UnwrapKey>, others: impl IntoIterator<Item = Arc<UnwrapKey>>) -> Self {
        let mut keys = vec![current];
        keys.extend(others);
        KeyRing { keys }
    }

    /// A ring of one key with the given replay cache (epoch 0).
    pub fn single(processor: SphinxProcessor, replay: Arc<dyn SharedReplay>) -> Self {
        Self::new(
            Arc::new(UnwrapKey {
                epoch: 0,
                processor,
                replay,
            }),
            [],
        )
    }

    /// The current key (tried first).
    pub fn current(&self) -> &Arc<UnwrapKey> {
        &self.keys[0]
    }

    /// Every accepted key, current first.
    pub fn keys(&self) -> &[Arc<UnwrapKey>] {
        &self.keys
    }

    /// The keys tried after the current one.
    pub fn fallbacks(&self) -> &[Arc<UnwrapKey>] {
        &self.keys[1..]
    }
}

/// The ring the workers read, replaced whole on rotation. A worker loads it
/// once per batch, so a batch is unwrapped under one consistent ring.
pub struct LiveKeys(ArcSwap<KeyRing>);

impl LiveKeys {
    /// Starts with `ring`.
    pub fn new(ring: KeyRing) -> Self {
        LiveKeys(ArcSwap::from_pointee(ring))
    }

    /// The ring now.
    pub fn load(&self) -> Arc<KeyRing> {
        self.0.load_full()
    }

    /// Installs a new ring; batches in progress finish with the old one.
    pub fn store(&self, ring: KeyRing) {
        self.0.store(Arc::new(ring));
    }

    /// The current key's public half (what senders use for this node now).
    pub fn current_public_key(&self) -> SphinxPublicKey {
        self.0.load().current().processor.public_key()
    }
}
