//! The link protocol in memory: handshakes (who may open one, who may not),
//! records (round trip, replay, forgery), rekeying and downgrades.

use std::time::{Duration, Instant};

use super::handshake::{MAX_HANDSHAKE_LEN, PREAMBLE_LEN};
use super::*;
use crate::sphinx::FRAME_LEN;

fn key(n: u8) -> LinkKeyPair {
    LinkKeyPair::derive(&[n; 32])
}

/// Splits an initiator's first flight into preamble and message.
fn split(first: &[u8]) -> (Preamble, &[u8]) {
    let preamble = Preamble::decode(first[..PREAMBLE_LEN].try_into().unwrap()).unwrap();
    let len = u16::from_be_bytes([first[PREAMBLE_LEN], first[PREAMBLE_LEN + 1]]) as usize;
    let message = &first[PREAMBLE_LEN + 2..];
    assert_eq!(message.len(), len);
    (preamble, message)
}

fn connect(
    own: Option<&LinkKeyPair>,
    responder: &LinkKeyPair,
) -> Result<(Session, Session, Option<LinkPublicKey>), HandshakeFailure> {
    let (initiator, first) = Initiator::start(own, responder.public(), 7)?;
    let (preamble, message) = split(&first);
    assert_eq!(preamble.key_epoch, 7);
    let accepted = respond(&preamble, message, responder, |_| Ok(()))?;
    let session = initiator.finish(&accepted.reply[2..])?;
    Ok((session, accepted.session, accepted.peer))
}

fn frame(n: u8) -> Vec<u8> {
    vec![n; FRAME_LEN]
}

#[test]
fn member_handshake_authenticates_both_sides_and_carries_frames() {
    let (a, b) = (key(1), key(2));
    let (mut ours, mut theirs, peer) = connect(Some(&a), &b).unwrap();
    assert_eq!(
        peer.as_ref(),
        Some(a.public()),
        "the responder learns the initiator's key"
    );
    let now = Instant::now();
    let mut wire = Vec::new();
    for n in 0..3 {
        ours.sealer.seal(now, &frame(n), &mut wire).unwrap();
    }
    assert_eq!(wire.len(), 3 * RECORD_LEN, "every record is one size");
    for (n, record) in wire.chunks_mut(RECORD_LEN).enumerate() {
        assert_eq!(
            theirs.opener.open(record).unwrap().unwrap(),
            &frame(n as u8)[..]
        );
    }
    // And back.
    let mut wire = Vec::new();
    theirs.sealer.seal(now, &frame(9), &mut wire).unwrap();
    assert_eq!(ours.opener.open(&mut wire).unwrap().unwrap(), &frame(9)[..]);
}

#[test]
fn anonymous_handshake_reveals_no_initiator_key() {
    let b = key(2);
    let (mut ours, mut theirs, peer) = connect(None, &b).unwrap();
    assert_eq!(peer, None);
    let mut wire = Vec::new();
    ours.sealer
        .seal(Instant::now(), &frame(5), &mut wire)
        .unwrap();
    assert_eq!(
        theirs.opener.open(&mut wire).unwrap().unwrap(),
        &frame(5)[..]
    );
}

#[test]
fn a_man_in_the_middle_with_another_key_fails() {
    let (a, b, mallory) = (key(1), key(2), key(3));
    // The initiator pins b's key; mallory answers with its own.
    let (initiator, first) = Initiator::start(Some(&a), b.public(), 0).unwrap();
    let (preamble, message) = split(&first);
    assert_eq!(
        respond(&preamble, message, &mallory, |_| Ok(())).unwrap_err(),
        HandshakeFailure::Crypto,
        "mallory cannot read a message for b"
    );
    // Mallory opens its own session to b and relays b's answer.
    let (_, first_m) = Initiator::start(Some(&mallory), b.public(), 0).unwrap();
    let (pm, mm) = split(&first_m);
    let accepted = respond(&pm, mm, &b, |_| Ok(())).unwrap();
    assert_eq!(
        initiator.finish(&accepted.reply[2..]).unwrap_err(),
        HandshakeFailure::Crypto
    );
}

#[test]
fn the_responder_refuses_before_answering() {
    let (a, b) = (key(1), key(2));
    let (_, first) = Initiator::start(Some(&a), b.public(), 0).unwrap();
    let (preamble, message) = split(&first);
    let refused = respond(&preamble, message, &b, |peer| {
        assert_eq!(peer, Some(a.public()));
        Err(HandshakeFailure::UnknownPeer)
    });
    assert_eq!(refused.unwrap_err(), HandshakeFailure::UnknownPeer);
}

#[test]
fn downgrades_and_tampering_are_refused() {
    let (a, b) = (key(1), key(2));
    let (_, first) = Initiator::start(Some(&a), b.public(), 0).unwrap();
    let (preamble, message) = split(&first);

    // Another pattern code (e.g. a classical-only handshake) is unknown.
    let mut bytes: [u8; PREAMBLE_LEN] = first[..PREAMBLE_LEN].try_into().unwrap();
    for code in [0u8, 3, 0x11, 0xff] {
        bytes[5] = code;
        assert_eq!(
            Preamble::decode(&bytes).unwrap_err(),
            HandshakeFailure::Unsupported
        );
    }
    bytes[5] = 1;
    bytes[4] = 2;
    assert_eq!(
        Preamble::decode(&bytes).unwrap_err(),
        HandshakeFailure::Unsupported
    );
    bytes[0] = 0x01;
    assert_eq!(
        Preamble::decode(&bytes).unwrap_err(),
        HandshakeFailure::Malformed
    );

    // Relabelling the message as anonymous (dropping the initiator's static
    // half) or naming another epoch changes the prologue: refused.
    let relabelled = Preamble {
        pattern: LinkPattern::Anonymous,
        ..preamble
    };
    assert!(respond(&relabelled, message, &b, |_| Ok(())).is_err());
    let other_epoch = Preamble {
        key_epoch: 1,
        ..preamble
    };
    assert!(respond(&other_epoch, message, &b, |_| Ok(())).is_err());

    // Stripping the ML-KEM ciphertext (the post-quantum half) from the
    // message, or any byte flipped, fails.
    assert!(respond(&preamble, &message[1088..], &b, |_| Ok(())).is_err());
    for at in [0, 1100, 2400, message.len() - 1] {
        let mut bad = message.to_vec();
        bad[at] ^= 1;
        assert_eq!(
            respond(&preamble, &bad, &b, |_| Ok(())).unwrap_err(),
            HandshakeFailure::Crypto,
            "flip at {at}"
        );
    }
    // A classical Noise_IK first message is far shorter: refused too.
    assert!(respond(&preamble, &message[..96], &b, |_| Ok(())).is_err());
    assert!(respond(&preamble, &vec![0; MAX_HANDSHAKE_LEN + 1], &b, |_| Ok(())).is_err());
}

#[test]
fn replayed_reordered_and_forged_records_are_rejected() {
    let (a, b) = (key(1), key(2));
    let now = Instant::now();
    let (mut ours, mut theirs, _) = connect(Some(&a), &b).unwrap();
    let mut wire = Vec::new();
    ours.sealer.seal(now, &frame(1), &mut wire).unwrap();
    ours.sealer.seal(now, &frame(2), &mut wire).unwrap();
    let copy = wire.clone();
    let (first, second) = wire.split_at_mut(RECORD_LEN);
    theirs.opener.open(first).unwrap();
    // The first record again: a replay.
    let mut replay = copy[..RECORD_LEN].to_vec();
    assert_eq!(theirs.opener.open(&mut replay).unwrap_err(), RecordRejected);

    let (mut ours, mut theirs, _) = connect(Some(&a), &b).unwrap();
    let mut wire = Vec::new();
    ours.sealer.seal(now, &frame(1), &mut wire).unwrap();
    ours.sealer.seal(now, &frame(2), &mut wire).unwrap();
    // The second before the first: reordered.
    let mut later = wire[RECORD_LEN..].to_vec();
    assert!(theirs.opener.open(&mut later).is_err());

    let (mut ours, mut theirs, _) = connect(Some(&a), &b).unwrap();
    let mut wire = Vec::new();
    ours.sealer.seal(now, &frame(1), &mut wire).unwrap();
    wire[100] ^= 0x80;
    assert!(theirs.opener.open(&mut wire).is_err());
    assert!(theirs.opener.open(second).is_err(), "wrong length or key");
    let mut short = vec![0u8; RECORD_LEN - 1];
    assert!(theirs.opener.open(&mut short).is_err());
    assert!(ours.sealer.seal(now, &[0; 10], &mut Vec::new()).is_err());
}

#[test]
fn sessions_rekey_by_count_and_time_in_step() {
    let (a, b) = (key(1), key(2));
    let (mut ours, mut theirs, _) = connect(Some(&a), &b).unwrap();
    ours.sealer.set_policy(RekeyPolicy {
        records: 3,
        interval: Duration::from_secs(60),
    });
    let start = Instant::now();
    let mut delivered = 0;
    for n in 0..20u8 {
        // A minute passes every fifth frame: time-based rekeys too.
        let now = start + Duration::from_secs(61 * u64::from(n / 5));
        let mut wire = Vec::new();
        ours.sealer.seal(now, &frame(n), &mut wire).unwrap();
        for record in wire.chunks_mut(RECORD_LEN) {
            if let Some(f) = theirs.opener.open(record).unwrap() {
                assert_eq!(f, &frame(n)[..]);
                delivered += 1;
            }
        }
    }
    assert_eq!(delivered, 20);
    assert!(ours.sealer.rekeys() >= 6, "{}", ours.sealer.rekeys());
    assert_eq!(ours.sealer.rekeys(), theirs.opener.rekeys());
}

#[test]
fn a_key_set_serves_its_epochs() {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    let mut held = BTreeMap::new();
    held.insert(4, Arc::new(key(4)));
    held.insert(5, Arc::new(key(5)));
    let keys = LinkKeys::new(LinkKeySet::new(held, 5));
    let set = keys.load();
    assert_eq!(set.current().unwrap().public(), key(5).public());
    assert!(set.for_epoch(4).is_some() && set.for_epoch(6).is_none());
    assert_eq!(set.epochs().collect::<Vec<_>>(), vec![4, 5]);
}
