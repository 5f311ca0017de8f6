//! The module graph of `src/` is layered: each module uses only modules of
//! lower layers, so there is no import cycle, and the foundations (model,
//! image_io, classes, …) know nothing of the ascent, the commands or the
//! report. The table below is docs/architecture.md's; a new module must be
//! placed in it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first. A module may use modules of lower layers only.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations",
        &[
            "allocator",
            "exit",
            "files",
            "home",
            "input",
            "knobs",
            "memory",
            "precision",
            "rng",
            "shard",
        ],
    ),
    ("algorithms", &["maxflow", "sanity"]),
    ("images", &["segment"]),
    ("names and files", &["classes", "image_io", "metadata"]),
    ("records", &["formats"]),
    ("the network's seam", &["network::seam"]),
    ("the TorchScript engine", &["network::torchscript"]),
    ("the compiled engine", &["network::compiled"]),
    ("the network", &["network"]),
    ("probing", &["probe"]),
    ("the model", &["model"]),
    ("building blocks", &["cam", "objective", "optim", "priors", "spectrum", "views"]),
    ("parameterisations", &["param"]),
    ("presets", &["presets"]),
    ("optimisation and attribution", &["ascent", "saliency"]),
    ("presentation", &["gallery", "grid", "report"]),
    ("a run's request", &["commands::visualise::request"]),
    ("a run's plan", &["commands::visualise::plan"]),
    ("a run's writer", &["commands::visualise::writer"]),
    ("a run's batches", &["commands::visualise::runner"]),
    (
        "subcommands",
        &[
            "commands::completions",
            "commands::gallery",
            "commands::info",
            "commands::saliency",
            "commands::score",
            "commands::status",
            "commands::visualise",
        ],
    ),
    ("dispatch", &["commands"]),
    ("command line", &["cli"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `src/a.rs` → `a`, `src/a/mod.rs` → `a`, `src/a/b.rs` → `a::b`; the crate
/// root and the binary are not modules of the graph.
fn module_name(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).ok()?.with_extension("");
    let parts: Vec<String> =
        relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    match parts.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["lib"] | ["main"] => None,
        [.., "mod"] => Some(parts[..parts.len() - 1].join("::")),
        _ => Some(parts.join("::")),
    }
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The code of a file without its unit tests and comments.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| line.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a piece of code names through `crate::…` (also inside
/// `use crate::{a, b::c}` groups), through `super::` in a submodule, and the
/// child modules it declares (`mod child;`).
fn references(code: &str, own: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut paths = Vec::new();
    for line in code.lines() {
        let line = line.trim().trim_start_matches("pub ");
        if let Some(child) = line.strip_prefix("mod ").and_then(|rest| rest.strip_suffix(';')) {
            paths.push(format!("{own}::{}", child.trim()));
        }
    }
    for (start, _) in code.match_indices("crate::") {
        let rest = &code[start + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => paths.push(std::mem::take(&mut item)),
                    _ => item.push(c),
                }
            }
            paths.push(item);
        } else {
            paths.push(rest.to_string());
        }
    }
    if let Some((parent, _)) = own.rsplit_once("::") {
        for (start, _) in code.match_indices("super::") {
            paths.push(format!("{parent}::{}", &code[start + "super::".len()..]));
        }
    }
    paths
        .iter()
        .map(|path| {
            let segments: Vec<&str> = path
                .trim()
                .split("::")
                .map(|s| s.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or(""))
                .collect();
            // The longest module path the reference names: `a::b::c`, `a::b` or `a`.
            (1..=segments.len().min(3))
                .rev()
                .map(|n| segments[..n].join("::"))
                .find(|prefix| modules.contains(prefix))
                .unwrap_or_else(|| segments[0].to_string())
        })
        .filter(|name| name != own)
        .collect()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let named: Vec<(String, PathBuf)> =
        files.into_iter().filter_map(|path| Some((module_name(&path)?, path))).collect();
    let modules: BTreeSet<String> = named.iter().map(|(name, _)| name.clone()).collect();
    named
        .iter()
        .map(|(name, path)| {
            let text = std::fs::read_to_string(path).unwrap();
            (name.clone(), references(&code(&text), name, &modules))
        })
        .collect()
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, members)| members.contains(&module))
}

#[test]
fn every_module_is_placed_in_a_layer() {
    for module in graph().keys() {
        assert!(layer_of(module).is_some(), "src module {module} is not in LAYERS: place it");
    }
    let placed: Vec<&str> = LAYERS.iter().flat_map(|(_, m)| m.iter().copied()).collect();
    let graph = graph();
    for module in placed {
        assert!(graph.contains_key(module), "LAYERS names {module}, which is not in src/");
    }
}

#[test]
fn modules_use_only_lower_layers() {
    let mut violations = Vec::new();
    for (module, uses) in graph() {
        let own = layer_of(&module).unwrap_or(usize::MAX);
        for used in uses {
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                Some(layer) => violations.push(format!(
                    "{module} ({}) uses {used} ({})",
                    LAYERS[own].0, LAYERS[layer].0
                )),
                None => violations.push(format!(
                    "{module} uses crate::{used}, which is not a module: name the module, not the crate root"
                )),
            }
        }
    }
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn the_import_graph_has_no_cycle() {
    let graph = graph();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(node) {
            Some(1) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            Some(_) => return None,
            None => {}
        }
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, state, path) {
                return Some(cycle);
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if let Some(cycle) = visit(node, &graph, &mut state, &mut Vec::new()) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_parser_sees_grouped_and_nested_imports() {
    let modules: BTreeSet<String> = ["a", "b", "c", "commands", "commands::x", "commands::y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let code = code(
        "use crate::{a, b::{X, Y}};\nfn f() { crate::c::g(); super::helper(); }\n// crate::zzz",
    );
    let expected: BTreeSet<String> =
        ["a", "b", "c", "commands"].iter().map(|s| s.to_string()).collect();
    assert_eq!(references(&code, "commands::x", &modules), expected);
    let parent = references("pub mod x;\nmod y;\n", "commands", &modules);
    let children: BTreeSet<String> =
        ["commands::x", "commands::y"].iter().map(|s| s.to_string()).collect();
    assert_eq!(parent, children);
    let deep: BTreeSet<String> =
        ["commands", "commands::v", "commands::v::plan"].iter().map(|s| s.to_string()).collect();
    let uses =
        references("use crate::commands::v::plan::{Job, Plan};", "commands::v::writer", &deep);
    assert_eq!(uses, ["commands::v::plan".to_string()].into_iter().collect(), "a three-level path");
}
