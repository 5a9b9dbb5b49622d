//! translate() on any RouteConfig spec (JSON, as the API server would hand it), with the
//! vector key Secrets: never a panic; what it accepts has a route for every path.

#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use route_crds::RouteConfigSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<RouteConfigSpec>(data) else { return };
    if let Ok(settings) = route_operator::translate(&spec, common::secrets(), &common::ctx()) {
        let _ = route_operator::summary(&settings);
        for (prefix, _) in settings.routes.iter() {
            assert!(settings.routes.lookup(prefix).is_some(), "{prefix} has no route");
        }
    }
});
