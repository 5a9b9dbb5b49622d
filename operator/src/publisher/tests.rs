//! Key rotation with grace (a pure function of an explicit `now`) and publishing.

use std::sync::Arc;
use std::time::Duration;

use route_proxy::Settings;
use route_proxy::keys::{DecryptKey, VerifyKey};
use route_proxy::metrics::Metrics;
use route_proxy::settings::KeyRing;

use super::{Publisher, merge_key_ring};
use crate::test_support::{SETS, ctx, key_secrets, pem};
use crate::translate::{ConfigError, translate};

const NOW: u64 = 1_700_000_000;
const GRACE: Duration = Duration::from_secs(600);

/// The current key pair of a vector set.
fn ring(set: &str) -> KeyRing {
    let signing = VerifyKey::from_pem(&pem(set, "abcdesktop_jwt_desktop_signing_public_key.pem")).unwrap();
    let payload = DecryptKey::from_pem(&pem(set, "abcdesktop_jwt_desktop_payload_private_key.pem")).unwrap();
    KeyRing::current(signing, payload)
}

/// (fingerprint, until) of each signing and payload key, in order.
type Shape = Vec<(String, Option<u64>)>;

fn shape(ring: &KeyRing) -> (Shape, Shape) {
    (
        ring.signing.iter().map(|k| (k.key.fingerprint().to_owned(), k.until)).collect(),
        ring.payload.iter().map(|k| (k.key.fingerprint().to_owned(), k.until)).collect(),
    )
}

fn fp(set: &str) -> (String, String) {
    let ring = ring(set);
    (ring.signing[0].key.fingerprint().to_owned(), ring.payload[0].key.fingerprint().to_owned())
}

#[test]
fn same_keys_stay_current_alone() {
    let merged = merge_key_ring(&ring(SETS[0]), ring(SETS[0]), GRACE, NOW);
    let (s, p) = fp(SETS[0]);
    assert_eq!(shape(&merged), (vec![(s, None)], vec![(p, None)]));
}

#[test]
fn nothing_before_means_nothing_kept() {
    let merged = merge_key_ring(&KeyRing::default(), ring(SETS[0]), GRACE, NOW);
    assert_eq!(merged.signing.len() + merged.payload.len(), 2);
}

#[test]
fn a_rotation_keeps_the_previous_keys_for_the_grace_period() {
    let merged = merge_key_ring(&ring(SETS[0]), ring(SETS[1]), GRACE, NOW);
    let ((s0, p0), (s1, p1)) = (fp(SETS[0]), fp(SETS[1]));
    let until = Some(NOW + 600);
    assert_eq!(shape(&merged), (vec![(s1, None), (s0, until)], vec![(p1, None), (p0, until)]));
    assert!(merged.signing[1].is_trusted_at(NOW + 599));
    assert!(!merged.signing[1].is_trusted_at(NOW + 600));
}

#[test]
fn only_the_rotated_half_is_graced() {
    let mut next = ring(SETS[0]);
    next.payload = ring(SETS[1]).payload;
    let merged = merge_key_ring(&ring(SETS[0]), next, GRACE, NOW);
    let ((s0, p0), (_, p1)) = (fp(SETS[0]), fp(SETS[1]));
    assert_eq!(shape(&merged), (vec![(s0, None)], vec![(p1, None), (p0, Some(NOW + 600))]));
}

#[test]
fn graced_keys_carry_over_until_their_own_end_then_drop() {
    let first = merge_key_ring(&ring(SETS[0]), ring(SETS[1]), GRACE, NOW);
    // A second rotation 100 s later: key 0 keeps its end, key 1 starts its grace.
    let second = merge_key_ring(&first, ring(SETS[2]), GRACE, NOW + 100);
    let ((s0, _), (s1, _), (s2, _)) = (fp(SETS[0]), fp(SETS[1]), fp(SETS[2]));
    assert_eq!(
        shape(&second).0,
        vec![(s2.clone(), None), (s1.clone(), Some(NOW + 700)), (s0, Some(NOW + 600))]
    );
    // Reloading the same keys after key 0's end drops it.
    let third = merge_key_ring(&second, ring(SETS[2]), GRACE, NOW + 600);
    assert_eq!(shape(&third).0, vec![(s2, None), (s1, Some(NOW + 700))]);
}

#[test]
fn a_shorter_grace_shortens_kept_keys() {
    let first = merge_key_ring(&ring(SETS[0]), ring(SETS[1]), GRACE, NOW);
    let second = merge_key_ring(&first, ring(SETS[1]), Duration::from_secs(10), NOW + 1);
    assert_eq!(second.signing[1].until, Some(NOW + 11));
}

#[test]
fn a_key_current_again_is_current_not_graced() {
    let rotated = merge_key_ring(&ring(SETS[0]), ring(SETS[1]), GRACE, NOW);
    let back = merge_key_ring(&rotated, ring(SETS[0]), GRACE, NOW + 5);
    let ((s0, p0), (s1, p1)) = (fp(SETS[0]), fp(SETS[1]));
    let until = Some(NOW + 605);
    assert_eq!(shape(&back), (vec![(s0, None), (s1, until)], vec![(p0, None), (p1, until)]));
}

#[test]
fn zero_grace_revokes_at_once() {
    let rotated = merge_key_ring(&ring(SETS[0]), ring(SETS[1]), GRACE, NOW);
    let revoked = merge_key_ring(&rotated, ring(SETS[2]), Duration::ZERO, NOW + 1);
    assert_eq!(shape(&revoked), shape(&ring(SETS[2])));
}

fn settings(set: &str) -> Settings {
    translate(&Default::default(), &key_secrets(set), &ctx()).unwrap()
}

#[test]
fn publish_numbers_generations_and_grace_keys_reject_keeps_the_last_good() {
    let (tx, mut rx) = Settings::channel();
    let metrics = Arc::new(Metrics::new());
    let publisher = Publisher::new(tx, Arc::clone(&metrics));
    assert_eq!(publisher.publish(settings(SETS[0])), 1);
    assert_eq!(rx.borrow_and_update().generation, 1);
    // The same settings again (a watch starting after load, a resync): nothing new.
    assert_eq!(publisher.publish(settings(SETS[0])), 1);
    assert!(!rx.has_changed().unwrap());
    assert_eq!(publisher.clone().publish(settings(SETS[1])), 2);
    assert!(rx.has_changed().unwrap());
    let current = publisher.current();
    assert_eq!(current.generation, 2);
    assert_eq!(current.auth.keys.signing.len(), 2);
    assert_eq!(current.auth.keys.signing[0].key.fingerprint(), fp(SETS[1]).0);
    let until = current.auth.keys.signing[1].until.unwrap();
    let now = route_proxy::clock::unix_now();
    assert!((now + 599..=now + 600).contains(&until), "{until}");

    publisher.reject("test", &[ConfigError::new("spec.x", "bad")]);
    assert_eq!(publisher.current().generation, 2);
    let text = metrics.encode();
    assert!(text.contains("route_settings_generation 2"), "{text}");
    assert!(text.contains("route_settings_last_reload_success 0"), "{text}");
    assert!(text.contains(r#"route_settings_reloads_total{result="rejected"} 1"#), "{text}");
    assert!(text.contains(r#"route_settings_reloads_total{result="success"} 3"#), "{text}");
}
