//! The README's first command, `route demo`: it starts, prints a token and a request, and that
//! request goes through the whole token path to the demo desktop; without the token, 401.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use support::raw::RawConn;
use support::{STEP, proxy::BIN};

/// `route demo` on a free port, its stdout piped, its logs (info) in a file.
fn start_demo() -> (Child, u16, tempfile::NamedTempFile) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let logs = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(BIN)
        .args(["demo", "--listen", &format!("127.0.0.1:{port}"), "--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(logs.reopen().unwrap())
        .spawn()
        .expect("route demo starts");
    (child, port, logs)
}

#[tokio::test]
async fn the_demo_serves_its_printed_request() {
    let (mut child, port, logs) = start_demo();
    let stdout = child.stdout.take().unwrap();
    // The token line, read off a blocking thread (the demo keeps running).
    let token = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.trim().strip_prefix("TOKEN=").map(str::to_owned))
    });
    let token = support::within(STEP, "the demo prints its token", token).await.unwrap();
    let Some(token) = token else {
        let _ = child.kill();
        panic!("the demo printed no token");
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    let mut conn = RawConn::connect(addr).await;
    let request =
        format!("GET /spawner/hello HTTP/1.1\r\nHost: demo\r\nABCAuthorization: Bearer {token}\r\n\r\n");
    conn.send(request.as_bytes()).await;
    let answer = conn.response(STEP).await.expect("an answer");
    let body = String::from_utf8_lossy(&answer.body).into_owned();

    let mut bare = RawConn::connect(addr).await;
    bare.send(b"GET /spawner/hello HTTP/1.1\r\nHost: demo\r\n\r\n").await;
    let refused = bare.response(STEP).await.expect("an answer");
    // Log lines are written by a thread of their own: wait for the access line, then stop.
    let read_logs = || std::fs::read_to_string(logs.path()).unwrap();
    let logged = |logs: &str| logs.lines().any(|l| l.contains("/spawner/hello") && l.contains("200"));
    let _ = support::eventually(STEP, "the access line is written", || {
        let done = logged(&read_logs());
        async move { done.then_some(()) }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(answer.status, 200, "{body}");
    assert!(body.contains("hello from the demo desktop"), "{body}");
    assert!(body.contains("GET /spawner/hello"), "{body}");
    assert!(!body.contains(&token), "the desktop saw the token");
    assert_eq!(refused.status, 401);
    // The demo logs like `serve`: an access line for the request, and never the token.
    let logs = read_logs();
    assert!(logged(&logs), "no access line:\n{logs}");
    let signature = token.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "the token reached the demo's logs");
}

/// A reader that goes away (`route demo | head -3`) does not stop the demo: it printed its
/// text with `println!`, which panics on a broken pipe (seen as a flaky demo test under load,
/// when the test stopped reading after the token line).
#[tokio::test]
async fn the_demo_outlives_a_closed_stdout() {
    let (mut child, port, _logs) = start_demo();
    // Nobody reads: the pipe is closed before the demo prints anything.
    drop(child.stdout.take());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let refused = support::eventually(STEP, "the demo answers", || async move {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        drop(stream);
        let mut bare = RawConn::connect(addr).await;
        bare.send(b"GET /spawner/hello HTTP/1.1\r\nHost: demo\r\n\r\n").await;
        bare.response(STEP).await
    })
    .await;
    // Still serving after it has printed (the text goes out right after the listener binds).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut again = RawConn::connect(addr).await;
    again.send(b"GET /spawner/hello HTTP/1.1\r\nHost: demo\r\n\r\n").await;
    let later = again.response(STEP).await;
    let exited = child.try_wait().ok().flatten();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(refused.status, 401);
    assert_eq!(later.map(|r| r.status), Some(401), "the demo stopped answering (exit: {exited:?})");
}
