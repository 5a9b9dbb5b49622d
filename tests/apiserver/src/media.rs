//! Content negotiation: which of the representations a client accepts the server can give.

use crate::table::Include;
use crate::watch::Format;

/// One media range of an `Accept` header.
#[derive(Debug, Clone, PartialEq)]
struct Range {
    media: String,
    params: Vec<(String, String)>,
}

impl Range {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn parse(accept: Option<&str>) -> Vec<Range> {
    let accept = accept.unwrap_or("").trim();
    if accept.is_empty() {
        return vec![Range { media: "application/json".to_owned(), params: Vec::new() }];
    }
    accept
        .split(',')
        .map(|part| {
            let mut pieces = part.split(';');
            let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
            let params = pieces
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
                .collect();
            Range { media, params }
        })
        .collect()
}

fn is_json(media: &str) -> bool {
    matches!(media, "application/json" | "application/*" | "*/*")
}

/// A representation of objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Output {
    pub format: Format,
    pub yaml: bool,
}

/// The first acceptable representation for resource reads; None means 406.
pub(crate) fn output(accept: Option<&str>, include: Include) -> Option<Output> {
    for r in parse(accept) {
        match r.param("as") {
            Some("Table") if is_json(&r.media) && r.param("g") == Some("meta.k8s.io") => {
                if matches!(r.param("v"), Some("v1" | "v1beta1")) {
                    return Some(Output { format: Format::Table(include), yaml: false });
                }
            }
            Some("PartialObjectMetadata" | "PartialObjectMetadataList")
                if is_json(&r.media)
                    && r.param("g") == Some("meta.k8s.io")
                    && matches!(r.param("v"), Some("v1" | "v1beta1")) =>
            {
                return Some(Output { format: Format::Metadata, yaml: false });
            }
            Some(_) => {}
            None if is_json(&r.media) => return Some(Output { format: Format::Object, yaml: false }),
            None if r.media == "application/yaml" => {
                return Some(Output { format: Format::Object, yaml: true });
            }
            None => {}
        }
    }
    None
}

/// The aggregated discovery version asked for (`v2` or `v2beta1`), if it comes before plain JSON.
pub(crate) fn aggregated_discovery(accept: Option<&str>) -> Option<&'static str> {
    for r in parse(accept) {
        if r.param("as") == Some("APIGroupDiscoveryList") && r.param("g") == Some("apidiscovery.k8s.io") {
            match r.param("v") {
                Some("v2") => return Some("v2"),
                Some("v2beta1") => return Some("v2beta1"),
                _ => continue,
            }
        }
        if is_json(&r.media) && r.param("as").is_none() {
            return None;
        }
    }
    None
}

/// Whether a non-resource answer (discovery, version) can be given as JSON.
pub(crate) fn accepts_json(accept: Option<&str>) -> bool {
    parse(accept)
        .iter()
        .any(|r| is_json(&r.media) || r.param("as").is_some() && r.media == "application/json")
}
