//! What a link responder and a session's receiver do with hostile bytes:
//! the first flight of a handshake (preamble, then a Noise message) and
//! records after a real handshake. Nothing may panic; an accepted
//! anonymous handshake must yield a working session; records that were not
//! sealed by the peer must never open.
//!
//! Input: a mode byte, then the bytes. Mode even: `preamble (16) ‖
//! message`, answered by a responder holding a fixed key. Mode odd: the
//! bytes are fed to a real session's receiver in `RECORD_LEN` pieces (the
//! last one short).

#![no_main]

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use betanet::link::{Initiator, LinkKeyPair, Preamble, RECORD_LEN, Session, respond};
use libfuzzer_sys::fuzz_target;

static RESPONDER: LazyLock<LinkKeyPair> = LazyLock::new(|| LinkKeyPair::derive(&[7; 32]));
static MEMBER: LazyLock<LinkKeyPair> = LazyLock::new(|| LinkKeyPair::derive(&[8; 32]));
/// A session between MEMBER (initiator) and RESPONDER.
static SESSION: LazyLock<Mutex<(Session, Session)>> = LazyLock::new(|| {
    let (initiator, first) = Initiator::start(Some(&MEMBER), RESPONDER.public(), 0).unwrap();
    let preamble = Preamble::decode(first[..16].try_into().unwrap()).unwrap();
    let accepted = respond(&preamble, &first[18..], &RESPONDER, |_| Ok(())).unwrap();
    let ours = initiator.finish(&accepted.reply[2..]).unwrap();
    Mutex::new((ours, accepted.session))
});

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Some((head, message)) = rest.split_first_chunk::<16>() else {
            return;
        };
        let Ok(preamble) = Preamble::decode(head) else {
            return;
        };
        // Whatever the message, no panic; and a forged member message can
        // only be accepted for a key this responder would then check.
        let _ = respond(&preamble, message, &RESPONDER, |_| Ok(()));
        return;
    }
    // One real session for the whole run (a handshake per input would
    // leave the fuzzer a few inputs a second): a record that fails leaves
    // the receiver's nonce where it was, so it stays usable.
    let mut session = SESSION.lock().unwrap_or_else(|e| e.into_inner());
    let (ours, theirs) = &mut *session;
    for chunk in rest.chunks(RECORD_LEN) {
        let mut record = chunk.to_vec();
        assert!(
            theirs.opener.open(&mut record).is_err(),
            "bytes the peer never sealed opened as a record"
        );
    }
    // What the peer does seal still opens, in step (a rekey record may
    // come first, every two minutes).
    let mut wire = Vec::new();
    ours.sealer
        .seal(Instant::now(), &[1; betanet::sphinx::FRAME_LEN], &mut wire)
        .unwrap();
    let opened: Vec<bool> = wire
        .chunks_mut(RECORD_LEN)
        .map(|record| theirs.opener.open(record).unwrap().is_some())
        .collect();
    assert_eq!(opened.last(), Some(&true));
});
