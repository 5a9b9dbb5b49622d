//! Manifests hot reload: an edit takes effect within about a second, an invalid edit is
//! rejected while the last good settings keep serving (and `/metrics` says so), and key
//! rotation keeps the previous keys trusted for `keys.graceSeconds`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use http::StatusCode;
use serde_json::json;
use support::raw::RawConn;
use support::{Manifest, Proxy, Req, STEP, Upstream, eventually, keys, metric, metric_sum, other_keys};

const RELOAD: Duration = Duration::from_secs(5);

/// Which upstream answers `/spawner` with `token`, or the status when none does.
async fn spawner_reaches(proxy: &Proxy, token: &str) -> Result<String, StatusCode> {
    let resp = proxy.send(Req::get("/spawner").abc(token)).await;
    if resp.status == StatusCode::OK { Ok(resp.seen().upstream) } else { Err(resp.status) }
}

fn reloads(metrics: &str, result: &str) -> f64 {
    metric_sum(metrics, "route_settings_reloads_total", &[&format!("result=\"{result}\"")])
}

#[tokio::test]
async fn a_changed_port_takes_effect_within_a_second() {
    let (one, two) = (Upstream::start("one").await, Upstream::start("two").await);
    let base = Manifest::new(keys());
    let mut proxy = Proxy::start(&base.clone().port("spawner", one.port())).await;
    let token = proxy.mint("127.0.0.1");
    assert_eq!(spawner_reaches(&proxy, &token).await.as_deref(), Ok("one"));
    let generation = metric(&proxy.metrics().await, "route_settings_generation").expect("generation");

    // Edited in place (truncate and write).
    let started = Instant::now();
    base.clone().port("spawner", two.port()).write_in_place(proxy.manifest_path());
    eventually(RELOAD, "the new port serves", || async {
        (spawner_reaches(&proxy, &token).await.as_deref() == Ok("two")).then_some(())
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "the edit took {took:?} to take effect");

    // Replaced atomically (rename over it, as a ConfigMap update does).
    let started = Instant::now();
    proxy.update(&base.clone().port("spawner", one.port()));
    eventually(RELOAD, "the first port serves again", || async {
        (spawner_reaches(&proxy, &token).await.as_deref() == Ok("one")).then_some(())
    })
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "the rename took {took:?} to take effect");

    let metrics = proxy.metrics().await;
    let now = metric(&metrics, "route_settings_generation").expect("generation");
    assert!(now >= generation + 2.0, "route_settings_generation went from {generation} to {now}");
    assert!(reloads(&metrics, "success") >= 2.0, "successful reloads:\n{metrics}");
    proxy.finish();
}

#[tokio::test]
async fn an_invalid_edit_is_rejected_and_the_old_settings_keep_serving() {
    let (one, two) = (Upstream::start("one").await, Upstream::start("two").await);
    let base = Manifest::new(keys());
    let mut proxy = Proxy::start(&base.clone().port("spawner", one.port())).await;
    let token = proxy.mint("127.0.0.1");
    assert_eq!(spawner_reaches(&proxy, &token).await.as_deref(), Ok("one"));
    let generation = metric(&proxy.metrics().await, "route_settings_generation").expect("generation");

    // Not YAML at all, then YAML that fails validation (and would move the port if taken).
    let edits = [
        base.clone().raw("apiVersion: v1\nkind: [unclosed\n  : :\n"),
        base.clone()
            .port("spawner", two.port())
            .set("jwt", json!({"algorithms": ["HS256"], "decryption": "pkcs1v15"})),
    ];
    for (n, edit) in edits.iter().enumerate() {
        proxy.update(edit);
        let want = (n + 1) as f64;
        eventually(RELOAD, "the rejection shows in /metrics", || async {
            let metrics = proxy.metrics().await;
            (reloads(&metrics, "rejected") >= want).then_some(())
        })
        .await;
        let metrics = proxy.metrics().await;
        assert_eq!(metric(&metrics, "route_settings_last_reload_success"), Some(0.0), "last reload success");
        assert_eq!(
            metric(&metrics, "route_settings_generation"),
            Some(generation),
            "a rejected edit was published"
        );
        assert_eq!(
            spawner_reaches(&proxy, &token).await.as_deref(),
            Ok("one"),
            "edit {n}: the old settings stopped"
        );
        assert_eq!(
            proxy.admin_get("/readyz").await.status,
            StatusCode::OK,
            "not ready after a rejected edit"
        );
    }
    assert_eq!(two.hits(), 0, "the rejected port was used");
    // Each rejection is logged with where and what: the YAML error, then the refused algorithm.
    let rejections: Vec<String> = proxy
        .log_lines()
        .iter()
        .filter(|l| l["message"] == "configuration rejected")
        .map(|l| format!("{} {}", l["place"], l["error"]))
        .collect();
    assert!(rejections.iter().any(|r| r.contains("line")), "no YAML error with its place: {rejections:?}");
    assert!(rejections.iter().any(|r| r.contains("HS256")), "no error naming HS256: {rejections:?}");

    // A good edit after bad ones is taken.
    proxy.update(&base.clone().port("spawner", two.port()));
    eventually(RELOAD, "the fixed edit serves", || async {
        (spawner_reaches(&proxy, &token).await.as_deref() == Ok("two")).then_some(())
    })
    .await;
    assert_eq!(metric(&proxy.metrics().await, "route_settings_last_reload_success"), Some(1.0));
    proxy.finish();
}

#[tokio::test]
async fn rotated_keys_work_at_once_and_old_ones_during_grace_only() {
    let up = Upstream::start("spawner").await;
    let grace = 4;
    let old = Manifest::new(keys()).port("spawner", up.port()).grace_seconds(grace);
    let mut proxy = Proxy::start(&old).await;
    let used_before = proxy.mint("127.0.0.1");
    let unused_before = proxy.mint("127.0.0.1");
    assert_eq!(spawner_reaches(&proxy, &used_before).await.as_deref(), Ok("spawner"));

    proxy.update(&old.clone().keys(other_keys()));
    let new = proxy.secret(&support::mint_with(other_keys(), "127.0.0.1", 420));
    eventually(RELOAD, "a token of the new keys works", || async {
        spawner_reaches(&proxy, &new).await.is_ok().then_some(())
    })
    .await;
    let rotated = Instant::now();
    // During the grace period, tokens of the old keys keep working, cached or not.
    assert_eq!(
        spawner_reaches(&proxy, &used_before).await.as_deref(),
        Ok("spawner"),
        "old cached token in grace"
    );
    assert_eq!(
        spawner_reaches(&proxy, &unused_before).await.as_deref(),
        Ok("spawner"),
        "old fresh token in grace"
    );
    let late = proxy.secret(&support::mint_with(keys(), "127.0.0.1", 420));
    assert_eq!(
        spawner_reaches(&proxy, &late).await.as_deref(),
        Ok("spawner"),
        "old keys, minted after the rotation"
    );

    // After it, they are refused, and the new keys still work.
    eventually(Duration::from_secs(grace + 5), "old-key tokens refused after the grace period", || async {
        let a = spawner_reaches(&proxy, &used_before).await;
        let b = spawner_reaches(&proxy, &unused_before).await;
        (a == Err(StatusCode::UNAUTHORIZED) && b == Err(StatusCode::UNAUTHORIZED)).then_some(())
    })
    .await;
    assert!(
        rotated.elapsed() >= Duration::from_secs(grace) - Duration::from_millis(1500),
        "old keys refused {:?} after the rotation was seen; the grace is {grace} s",
        rotated.elapsed()
    );
    assert_eq!(spawner_reaches(&proxy, &late).await, Err(StatusCode::UNAUTHORIZED));
    assert_eq!(spawner_reaches(&proxy, &new).await.as_deref(), Ok("spawner"));
    proxy.finish();
}

#[tokio::test]
async fn a_grace_of_zero_revokes_at_once() {
    let up = Upstream::start("spawner").await;
    let old = Manifest::new(keys()).port("spawner", up.port()).grace_seconds(0);
    let mut proxy = Proxy::start(&old).await;
    let before = proxy.mint("127.0.0.1");
    assert_eq!(spawner_reaches(&proxy, &before).await.as_deref(), Ok("spawner"));

    proxy.update(&old.clone().keys(other_keys()));
    let new = proxy.secret(&support::mint_with(other_keys(), "127.0.0.1", 420));
    eventually(RELOAD, "a token of the new keys works", || async {
        spawner_reaches(&proxy, &new).await.is_ok().then_some(())
    })
    .await;
    assert_eq!(
        spawner_reaches(&proxy, &before).await,
        Err(StatusCode::UNAUTHORIZED),
        "a cached old token survived"
    );
    proxy.finish();
}

/// A keep-alive connection remembers the token it sent last and its answer; the remembered
/// answer still goes with the key: revoked, the next request on that same connection is refused.
#[tokio::test]
async fn a_kept_alive_connection_loses_its_token_with_the_key() {
    let up = Upstream::start("spawner").await;
    let old = Manifest::new(keys()).port("spawner", up.port()).grace_seconds(0);
    let mut proxy = Proxy::start(&old).await;
    let token = proxy.mint("127.0.0.1");
    let request = format!("GET /spawner HTTP/1.1\r\nHost: route\r\nABCAuthorization: Bearer {token}\r\n\r\n");
    let mut conn = RawConn::connect(proxy.addr()).await;
    for _ in 0..3 {
        conn.send(request.as_bytes()).await;
        assert_eq!(conn.response(STEP).await.expect("an answer").status, 200);
    }
    let hits = metric(&proxy.metrics().await, "route_token_cache_hits_total").unwrap_or(0.0);
    assert!(hits >= 2.0, "repeats on one connection are cache hits ({hits})");

    proxy.update(&old.clone().keys(other_keys()));
    let new = proxy.secret(&support::mint_with(other_keys(), "127.0.0.1", 420));
    eventually(RELOAD, "a token of the new keys works", || async {
        spawner_reaches(&proxy, &new).await.is_ok().then_some(())
    })
    .await;
    conn.send(request.as_bytes()).await;
    assert_eq!(
        conn.response(STEP).await.expect("an answer").status,
        401,
        "the connection's remembered token outlived its key"
    );
    proxy.finish();
}

#[tokio::test]
async fn a_new_tls_certificate_is_served_without_a_restart() {
    let (cert_a, key_a, der_a) = support::tls::self_signed();
    let (cert_b, key_b, der_b) = support::tls::self_signed();
    let base = Manifest::new(keys());
    let mut proxy = Proxy::builder().manifest(&base.clone().tls(&cert_a, &key_a)).tls().start().await;
    let addr = proxy.https_addr();
    let presented = |der_a: Vec<u8>, der_b: Vec<u8>| async move {
        let tls = support::tls::connect(addr, &[&der_a, &der_b], &[b"http/1.1"]).await;
        let certs = tls.get_ref().1.peer_certificates().expect("peer certificates");
        certs[0].as_ref().to_vec()
    };
    assert_eq!(presented(der_a.clone(), der_b.clone()).await, der_a, "the first certificate");

    proxy.update(&base.clone().tls(&cert_b, &key_b));
    eventually(RELOAD, "the new certificate is presented", || {
        let (a, b) = (der_a.clone(), der_b.clone());
        let want = der_b.clone();
        async move { (presented(a, b).await == want).then_some(()) }
    })
    .await;
    proxy.finish();
}

/// A token resolved (and cached) under permissive settings is refused as soon as a reload
/// tightens them: the cache never outlives the policy that allowed its entries.
#[tokio::test]
async fn tightened_policies_apply_to_cached_tokens() {
    let up = Upstream::start("spawner").await;
    let base = Manifest::new(keys()).port("spawner", up.port());
    let mut proxy = Proxy::start(
        &base.clone().set("jwt", json!({"algorithms": ["RS256", "RS512"], "decryption": "pkcs1v15"})),
    )
    .await;
    // An RS512 token, from `route token --alg RS512`.
    let dir = tempfile::tempdir().expect("tempdir");
    keys().write_dir(dir.path()).expect("write keys");
    let args = ["token", "--keys", dir.path().to_str().unwrap(), "--target", "127.0.0.1", "--alg", "RS512"];
    let out = support::proxy::run(&args, &[]).await;
    assert!(out.status.success(), "route token --alg RS512: {}", out.stderr);
    let rs512 = proxy.secret(out.stdout.trim());
    let rs256 = proxy.mint("127.0.0.1");
    for token in [&rs512, &rs256] {
        for _ in 0..2 {
            assert_eq!(spawner_reaches(&proxy, token).await.as_deref(), Ok("spawner"));
        }
    }

    // RS512 no longer allowed: the cached RS512 token is refused, the RS256 one still works.
    proxy.update(&base.clone().set("jwt", json!({"algorithms": ["RS256"], "decryption": "pkcs1v15"})));
    eventually(RELOAD, "the cached RS512 token is refused", || async {
        (spawner_reaches(&proxy, &rs512).await == Err(StatusCode::UNAUTHORIZED)).then_some(())
    })
    .await;
    assert_eq!(spawner_reaches(&proxy, &rs256).await.as_deref(), Ok("spawner"));

    // Targets restricted to a network that excludes 127.0.0.1: the cached token is refused.
    proxy.update(&base.clone().set_in("targets", "allowedCidrs", json!(["10.244.0.0/16"])));
    eventually(RELOAD, "the cached 127.0.0.1 token is refused", || async {
        spawner_reaches(&proxy, &rs256).await.is_err().then_some(())
    })
    .await;
    let hits = up.hits();
    assert!(spawner_reaches(&proxy, &rs256).await.is_err());
    assert_eq!(up.hits(), hits, "a refused token reached the upstream");
    proxy.finish();
}
