//! Measures how long rendering takes for every manifest in examples/, and how long PKI
//! issuing takes. Run through `scripts/bench-render.sh` (release build); prints a table.

use std::time::{Duration, Instant};

use time::OffsetDateTime;
use vaultkeeper_api::parse_manifests;
use vaultkeeper_render::{RenderContext, pki, render, to_yaml_stream};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();

    println!(
        "{:<28} {:>8} {:>9} {:>10} {:>10} {:>10}",
        "example", "objects", "yaml KiB", "mean µs", "p50 µs", "p99 µs"
    );
    for path in paths {
        let text = std::fs::read_to_string(&path).expect("example");
        let cluster = parse_manifests(&text).expect("parses").remove(0);
        let namespace = cluster
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let request = pki::server_certificate_request(&cluster, &namespace);
        let now = OffsetDateTime::now_utc();
        let material = pki::issue(
            &pki::plan(None, &request, now),
            None,
            "vault",
            &request,
            now,
        )
        .expect("pki");
        let ctx = RenderContext::new(&namespace, Some(&material));
        let mut times = Vec::with_capacity(iterations);
        let mut objects = 0;
        let mut bytes = 0;
        for _ in 0..iterations {
            let start = Instant::now();
            let manifests = render(&cluster, &ctx).expect("renders");
            let yaml = to_yaml_stream(&manifests).expect("yaml");
            times.push(start.elapsed());
            objects = manifests.len();
            bytes = yaml.len();
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / iterations as u32;
        println!(
            "{:<28} {:>8} {:>9.1} {:>10.0} {:>10.0} {:>10.0}",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default(),
            objects,
            bytes as f64 / 1024.0,
            mean.as_secs_f64() * 1e6,
            percentile(&times, 0.5).as_secs_f64() * 1e6,
            percentile(&times, 0.99).as_secs_f64() * 1e6,
        );
    }

    let cluster =
        parse_manifests(&std::fs::read_to_string(dir.join("ha-raft.yaml")).expect("ha-raft"))
            .expect("parses")
            .remove(0);
    let request = pki::server_certificate_request(&cluster, "vault");
    let mut times = Vec::new();
    for _ in 0..200 {
        let now = OffsetDateTime::now_utc();
        let start = Instant::now();
        let plan = pki::plan(None, &request, now);
        pki::issue(&plan, None, "vault", &request, now).expect("pki");
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "PKI issue (CA + server certificate, {} names): p50 {:.0} µs, p99 {:.0} µs",
        request.dns_names.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e6,
        percentile(&times, 0.99).as_secs_f64() * 1e6
    );
}
