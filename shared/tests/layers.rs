//! The common crate's layers (see `src/lib.rs`): each module imports only its own layer and the
//! layers below it, and no two modules import each other, directly or around a loop.
//!
//! Reads the sources as text, the way the project pins the template and the docs to the code:
//! every `crate::<layer>::<module>` path outside a `#[cfg(test)]` module is an import.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may import its own layer and those before it. `fakes` sits beside
/// `adapters`: both implement the ports, and neither may use the other.
const LAYERS: [&str; 6] = ["domain", "ports", "app", "adapters", "fakes", "runtime"];

fn rank(layer: &str) -> usize {
    match layer {
        "domain" => 0,
        "ports" => 1,
        "app" => 2,
        "adapters" | "fakes" => 3,
        "runtime" => 4,
        other => panic!("no layer named {other}"),
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file belongs to: `app/fetcher.rs` is `app::fetcher`, `adapters/dynamo/pulls.rs`
/// is `adapters::dynamo`, `ports/mod.rs` is `ports`.
fn module_of(relative: &Path) -> String {
    let parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    match parts.as_slice() {
        [layer, module] if module == "mod" => layer.clone(),
        [layer, module, ..] => format!("{layer}::{module}"),
        [single] => single.clone(),
        [] => unreachable!("a file has a name"),
    }
}

/// The code a module compiles into the crate: comments and every `#[cfg(test)]` item (found
/// by matching its braces) removed.
fn production_code(source: &str) -> String {
    let mut code = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(at) = rest.find("#[cfg(test)]") {
        code.push_str(&rest[..at]);
        let item = &rest[at..];
        let Some(open) = item.find('{') else {
            rest = "";
            break;
        };
        let mut depth = 0;
        let end = item[open..]
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(item.len(), |(i, _)| open + i + 1);
        rest = &item[end..];
    }
    code.push_str(rest);
    code.lines()
        .filter(|l| {
            let t = l.trim_start();
            !(t.starts_with("//") || t.starts_with("#[doc"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Each module path a piece of code names: `crate::app::fetcher::X` and the items of a
/// `use crate::{app::fetcher::X, domain::plan}` group.
fn imports(code: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    let mut paths: Vec<String> = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let end = group
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(group.len(), |(i, _)| i);
            let mut item = String::new();
            let mut nesting = 0;
            for c in group[..end].chars() {
                match c {
                    '{' => nesting += 1,
                    '}' => nesting -= 1,
                    ',' if nesting == 0 => paths.push(std::mem::take(&mut item)),
                    _ => {}
                }
                item.push(c);
            }
            paths.push(item);
        } else {
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            paths.push(rest[..end].to_owned());
        }
    }
    for path in paths {
        let segments: Vec<&str> = path
            .trim_matches(|c: char| c == ',' || c.is_whitespace())
            .split("::")
            .map(str::trim)
            .collect();
        // The longest known module the path starts with.
        for len in (1..=segments.len().min(2)).rev() {
            let candidate = segments[..len].join("::");
            if modules.contains(&candidate) {
                named.insert(candidate);
                break;
            }
        }
    }
    named
}

fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let relative = |p: &PathBuf| p.strip_prefix(&src).expect("under src").to_path_buf();
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| module_of(&relative(p)))
        .filter(|m| m != "lib")
        .collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&relative(file));
        if module == "lib" {
            continue;
        }
        let source = std::fs::read_to_string(file).expect("readable source");
        let uses = imports(&production_code(&source), &modules);
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(uses.into_iter().filter(|m| *m != module));
    }
    graph
}

fn layer_of(module: &str) -> &str {
    module.split("::").next().expect("a module has a layer")
}

#[test]
fn no_path_goes_around_the_layers() {
    // `super::super` climbs out of a layer, and the crate root's re-exports (`crate::Intake`)
    // name an item without its layer: both would hide an import from this test.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    for file in files {
        let code = production_code(&std::fs::read_to_string(&file).expect("readable"));
        assert!(
            !code.contains("super::super"),
            "{}: super::super; name the layer (crate::<layer>::...)",
            file.display()
        );
        let root_item = code.match_indices("crate::").any(|(i, _)| {
            code[i + "crate::".len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase())
        });
        assert!(
            !root_item,
            "{}: an item through the crate root's re-exports; name its layer",
            file.display()
        );
    }
}

#[test]
fn every_module_sits_in_a_layer() {
    for module in import_graph().keys() {
        assert!(
            LAYERS.contains(&layer_of(module)),
            "shared/src/{module} is in no layer: move it under one of {LAYERS:?}"
        );
    }
}

#[test]
fn no_module_imports_a_higher_layer() {
    let graph = import_graph();
    let mut violations = Vec::new();
    for (module, uses) in &graph {
        for used in uses {
            let (from, to) = (layer_of(module), layer_of(used));
            let sideways = rank(from) == rank(to) && from != to;
            if rank(to) > rank(from) || sideways {
                violations.push(format!("{module} imports {used}"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layers ({LAYERS:?}, lowest first):\n{}",
        violations.join("\n")
    );
    // The graph is real: the use cases do use the ports and the domain.
    assert!(graph["app::fetcher"].contains("ports::store"));
    assert!(graph["app::fetcher"].contains("domain::fetch_claim"));
}

#[test]
fn no_two_modules_import_each_other_even_around_a_loop() {
    let graph = import_graph();
    // Depth-first search with colours; a grey module met again closes a cycle.
    fn visit<'a>(
        module: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match state.get(module) {
            Some(true) => return None,
            Some(false) => {
                let start = stack.iter().position(|m| *m == module).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|m| m.to_string()).collect();
                cycle.push(module.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(module, false);
        stack.push(module);
        for used in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(used, graph, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(module, true);
        None
    }
    let mut state = BTreeMap::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut state, &mut Vec::new()) {
            panic!("an import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_domain_uses_no_runtime_no_aws_and_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/domain");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 10, "the domain's files are found");
    for file in files {
        let code = production_code(&std::fs::read_to_string(&file).expect("readable"));
        for forbidden in [
            "tokio::",
            "aws_sdk_",
            "aws_config",
            "reqwest",
            "std::fs",
            "std::net",
        ] {
            assert!(
                !code.contains(forbidden),
                "{} uses {forbidden}: the domain is pure",
                file.display()
            );
        }
    }
}
