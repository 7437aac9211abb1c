//! HTTP route patterns and matching: routes written as `METHOD PATH` lines are validated and
//! compiled into the route table, then every request line is matched. Never panics; a match
//! is of the request's method or `ANY`, with one parameter per `{name}` of its pattern; every
//! accepted route without parameters is found at its own path.
//!
//! Input: route lines, a NUL, request lines.
#![no_main]

use lambent_core::route::RouteSpec;
use lambent_fuzz::fields;
use lambent_gateway::CompiledRoutes;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let f = fields(data, 2);
    let routes: Vec<_> = f[0]
        .lines()
        .take(64)
        .enumerate()
        .filter_map(|(i, line)| {
            let (method, path) = line.split_once(' ')?;
            let spec = RouteSpec {
                method: method.into(),
                path: path.into(),
                function: "f".into(),
                ..RouteSpec::default()
            };
            spec.resolve(format!("r{i}"), "default", 0)
                .ok()
                .map(Arc::new)
        })
        .collect();
    let Ok(table) = CompiledRoutes::build(routes.clone(), Vec::new()) else {
        return;
    };
    for line in f[1].lines().take(64) {
        let (method, path) = line.split_once(' ').unwrap_or((line, "/"));
        let Some(found) = table.lookup(None, method, path) else {
            continue;
        };
        assert!(found.route.method == method || found.route.method == "ANY");
        let placeholders = found.route.path.matches('{').count();
        assert_eq!(
            found.params.len(),
            placeholders,
            "{} for {path}",
            found.route.path
        );
    }
    for route in routes.iter().filter(|r| !r.path.contains('{')) {
        let found = table
            .lookup(None, &route.method, &route.path)
            .unwrap_or_else(|| panic!("{} is not found at its own path", route.key()));
        assert_eq!(found.route.path, route.path);
    }
});
