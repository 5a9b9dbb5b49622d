//! The manifest parser and translate(), from bytes on disk (`route serve --manifests FILE`):
//! never a panic, and no error message quotes the private key of a Secret.

#![no_main]

#[path = "common.rs"]
mod common;

use std::io::Write as _;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn file() -> &'static std::path::Path {
    static FILE: OnceLock<std::path::PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("route-fuzz-manifests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join("route.yaml")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = file();
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(data).expect("write");
    drop(f);
    match route_operator::manifests::load(path, &common::ctx()) {
        Ok(settings) => {
            let _ = route_operator::summary(&settings);
        }
        Err(errors) => {
            for error in errors {
                let text = error.to_string();
                assert!(!text.contains("PRIVATE KEY-----\nMII"), "an error quotes a private key: {text}");
            }
        }
    }
});
