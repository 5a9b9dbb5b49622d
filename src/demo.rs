//! `route demo`: the whole token path on one machine, with nothing to prepare. Fresh keys, a
//! demo desktop on loopback that answers what it received, the embedded default RouteConfig
//! pointed at it, and a request to paste.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::process::ExitCode;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use route_mint::{self as mint, KeySet, Minter, PrivateFormat, unix_now};

use crate::cli::DemoArgs;
use crate::{EXIT_CONFIG, Listeners, Running, context, report};

/// The default RouteConfig of the demo; `DESKTOP` becomes the demo desktop's port.
const DEMO_SPEC: &str = r#"
keys:
  graceSeconds: 600
services:
  pyos: {host: 127.0.0.1, port: DESKTOP}
  website: {host: 127.0.0.1, port: DESKTOP}
  console: {host: 127.0.0.1, port: DESKTOP}
  speedtest: {host: 127.0.0.1, port: DESKTOP}
ports: {spawner: DESKTOP, filer: DESKTOP, printerfiler: DESKTOP, terminals: DESKTOP, websockify: DESKTOP,
        signalling: DESKTOP, broadcast: DESKTOP, sound: DESKTOP, microphone: DESKTOP, gamepad: DESKTOP,
        snapshot: DESKTOP}
targets:
  allowedCidrs: [127.0.0.0/8]
nodeName: demo
"#;

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let desktop = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the demo desktop")?;
    let desktop_addr = desktop.local_addr()?;
    tokio::spawn(demo_desktop(desktop));

    let keys = KeySet::generate(2048, PrivateFormat::Pkcs8)?;
    let spec: route_crds::RouteConfigSpec =
        serde_yaml::from_str(&DEMO_SPEC.replace("DESKTOP", &desktop_addr.port().to_string()))
            .context("the embedded demo spec")?;
    let secrets = BTreeMap::from([
        (
            "abcdesktopjwtdesktopsigning".to_owned(),
            BTreeMap::from([(mint::SIGNING_PUBLIC.to_owned(), keys.signing_public.clone().into_bytes())]),
        ),
        (
            "abcdesktopjwtdesktoppayload".to_owned(),
            BTreeMap::from([(mint::PAYLOAD_PRIVATE.to_owned(), keys.payload_private.clone().into_bytes())]),
        ),
    ]);
    let settings = match route_operator::translate(&spec, &secrets, &context("demo".into())) {
        Ok(settings) => settings,
        Err(errors) => {
            report(&errors);
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let listeners =
        Listeners { http: args.listen, https: None, admin: args.admin_listen, client: Default::default() };
    let running = Running::start(settings, listeners).await?;
    let now = unix_now();
    let token = Minter::from_key_set(&keys)?.mint("127.0.0.1", now, now + 3600)?;
    let proxy = args.listen;
    let admin = running.admin;
    let text = format!(
        "\nroute demo: the proxy listens on http://{proxy}, a demo desktop on {desktop_addr}.\n\
         A desktop token for 127.0.0.1, valid one hour:\n\n  TOKEN={token}\n\n\
         Through the whole token path (verify, decrypt, cache, forward) to the demo desktop:\n\n  \
         curl -i -H \"ABCAuthorization: Bearer $TOKEN\" http://{proxy}/spawner/hello\n\n\
         Without a token (401):   curl -i http://{proxy}/spawner/hello\n\
         Metrics:                 curl http://{admin}/metrics\n\nCtrl-C stops.\n"
    );
    crate::print_to_stdout(&text);
    running.serve().await;
    Ok(ExitCode::SUCCESS)
}

/// Answers every request with what it received, as a desktop service would see it.
async fn demo_desktop(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        tokio::spawn(async move {
            let service = service_fn(|request: hyper::Request<Incoming>| async move {
                let mut text =
                    format!("hello from the demo desktop\n{} {}\n", request.method(), request.uri());
                for (name, value) in request.headers() {
                    if name != "abcauthorization" && name != "authorization" {
                        text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("<binary>")));
                    }
                }
                Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(text))))
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
