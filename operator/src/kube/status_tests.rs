use super::*;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).unwrap()
}

fn loaded(generation: i64, signing: &str) -> Report {
    Report {
        uid: Some("u1".into()),
        generation: Some(generation),
        seen: None,
        rejected: None,
        signing: vec![(signing.into(), None)],
        payload: vec![("sha256:p".into(), None)],
        last_reload: Some(at(1_000)),
    }
}

fn ready(status: &RouteConfigStatus) -> &Condition {
    status.conditions.iter().find(|c| c.type_ == READY).unwrap()
}

#[test]
fn loaded_settings_are_ready_with_their_fingerprints() {
    let status = desired(&loaded(3, "sha256:s"), at(1_001));
    assert_eq!(status.observed_generation, Some(3));
    assert_eq!(status.signing_key_fingerprints, ["sha256:s"]);
    assert_eq!(status.payload_key_fingerprints, ["sha256:p"]);
    let ready = ready(&status);
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Loaded"));
    assert_eq!(ready.observed_generation, Some(3));
    assert_eq!(ready.last_transition_time, Time(at(1_001)));
    let rejected = status.conditions.iter().find(|c| c.type_ == REJECTED).unwrap();
    assert_eq!(rejected.status, "False");
    assert_eq!(status.last_reload.as_deref(), Some("1970-01-01T00:16:40Z"));
}

#[test]
fn a_rejection_names_every_error_and_what_keeps_serving() {
    let mut report = loaded(4, "sha256:s");
    report.rejected = Some(vec![
        ConfigError::new("Secret abcdesktopjwtdesktoppayload: key k.pem", "not a PEM private key"),
        ConfigError::new("spec.ports.filer", "0 is not a port (1 to 65535)"),
    ]);
    let status = desired(&report, at(2_000));
    let ready = ready(&status);
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "SettingsRejected"));
    assert!(ready.message.contains("keep serving (signing key sha256:s"), "{}", ready.message);
    let rejected = status.conditions.iter().find(|c| c.type_ == REJECTED).unwrap();
    assert_eq!((rejected.status.as_str(), rejected.reason.as_str()), ("True", "InvalidSecret"));
    assert_eq!(
        rejected.message,
        "Secret abcdesktopjwtdesktoppayload: key k.pem: not a PEM private key; spec.ports.filer: 0 is not a port (1 to 65535)"
    );
    assert_eq!(reason(&[ConfigError::new("Secret x", "not found (named by ...)")]), "SecretNotFound");
    assert_eq!(reason(&[ConfigError::new("spec.jwt", "x")]), "InvalidSpec");
}

#[test]
fn timestamps_move_only_with_the_content() {
    let first = desired(&loaded(1, "sha256:s"), at(1_001));
    // The same outcome later, on another replica that reloaded at another time: nothing moves.
    let mut again = loaded(1, "sha256:s");
    again.seen = Some(first.clone());
    again.last_reload = Some(at(5_000));
    let second = desired(&again, at(6_000));
    assert_eq!(second, first);
    assert!(!should_write(&second, Some(&first), None));

    // A rotation: the fingerprints change, so does lastReload; Ready stays True since 1001.
    let mut rotated = loaded(1, "sha256:t");
    rotated.seen = Some(first.clone());
    rotated.last_reload = Some(at(7_000));
    let third = desired(&rotated, at(7_001));
    assert_eq!(third.last_reload.as_deref(), Some("1970-01-01T01:56:40Z"));
    assert_eq!(ready(&third).last_transition_time, Time(at(1_001)));
    assert!(should_write(&third, Some(&first), Some(&first)));

    // A rejection flips Ready: its transition time moves.
    let mut bad = rotated.clone();
    bad.seen = Some(third.clone());
    bad.rejected = Some(vec![ConfigError::new("spec.jwt.algorithms[0]", "HS256 is not allowed")]);
    let fourth = desired(&bad, at(8_000));
    assert_eq!(ready(&fourth).last_transition_time, Time(at(8_000)));
}

#[test]
fn keys_past_their_grace_leave_the_status() {
    let mut report = loaded(1, "sha256:new");
    report.signing.push(("sha256:old".into(), Some(1_010)));
    assert_eq!(report.next_expiry(1_001), Some(1_010));
    assert_eq!(desired(&report, at(1_001)).signing_key_fingerprints, ["sha256:new", "sha256:old"]);
    assert_eq!(desired(&report, at(1_010)).signing_key_fingerprints, ["sha256:new"]);
    assert_eq!(report.next_expiry(1_010), None);
}

#[test]
fn two_replicas_with_different_grace_keys_write_once_each_then_stop() {
    // Replica A still trusts the old key; replica B started after the rotation.
    let mut a = loaded(1, "sha256:new");
    a.signing.push(("sha256:old".into(), Some(9_999)));
    let b = loaded(1, "sha256:new");
    let (mut object, mut written_a, mut written_b) = (None::<RouteConfigStatus>, None, None);
    let mut writes = 0;
    for round in 0..10 {
        for (report, written) in [(&a, &mut written_a), (&b, &mut written_b)] {
            let mut report = report.clone();
            report.seen = object.clone();
            let status = desired(&report, at(2_000 + round));
            if should_write(&status, object.as_ref(), written.as_ref()) {
                writes += 1;
                object = Some(status.clone());
                *written = Some(status);
            }
        }
    }
    assert_eq!(writes, 2, "the status flapped");
}

#[test]
fn a_status_missing_from_the_object_is_written_again() {
    let status = desired(&loaded(1, "sha256:s"), at(1_001));
    assert!(should_write(&status, None, Some(&status)));
    assert!(should_write(&status, Some(&RouteConfigStatus::default()), Some(&status)));
}
