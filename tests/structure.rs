//! The import structure, read from the sources' `crate::…` paths: the leaf modules import
//! nothing of the system, the value types below every component import only leaves, the
//! data-plane messages name no actor, and no component borrows from a command (`analyze`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its files name with `crate::`.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let named = out.entry(module.clone()).or_default();
            for target in crate_paths(&text) {
                if target != module {
                    named.insert(target);
                }
            }
        }
    }
    out
}

/// The first segment of every `crate::` path in `text`, groups (`crate::{a, b::c}`) included.
fn crate_paths(text: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Items at depth 0 of the group.
            let mut depth = 0;
            let mut start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if c.is_whitespace() => {}
                    _ if start && depth == 0 => {
                        let name = ident(&group[i..]);
                        if !name.is_empty() && name != "self" {
                            out.push(name);
                        }
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.push(name);
            }
        }
    }
    out
}

#[test]
fn the_group_parser_reads_nested_groups() {
    let got = crate_paths("use crate::{a::{B, C}, d, e::f};\nlet x = crate::g::h();");
    assert_eq!(got, ["a", "d", "e", "g"]);
}

#[test]
fn leaf_modules_import_nothing_of_the_system() {
    let edges = edges();
    const LEAVES: [&str; 3] = ["hash", "process", "credit"];
    for leaf in LEAVES {
        let named = &edges[leaf];
        assert!(named.is_empty(), "{leaf} imports {named:?}");
    }
    // The value types every component shares sit on the leaves only.
    let below = |module: &str, allowed: &[&str]| {
        let named = &edges[module];
        let extra: Vec<_> = named
            .iter()
            .filter(|m| !allowed.contains(&m.as_str()) && !LEAVES.contains(&m.as_str()))
            .collect();
        assert!(extra.is_empty(), "{module} imports {extra:?}");
    };
    below("packet", &[]);
    below("wire", &["packet"]);
    // The data-plane messages name no actor (control messages live beside their actors).
    let messages =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/messages.rs"))
            .unwrap();
    assert!(
        !messages.contains("::actor::") && !messages.contains("Actor>"),
        "messages.rs names an actor"
    );
    // A component's settings sit beside it; the aggregate config imports them, not the
    // other way round.
    assert!(
        !edges["capture"].contains("config"),
        "capture imports config"
    );
    // Commands are the top: no component borrows from `analyze`.
    for (module, named) in &edges {
        assert!(
            module == "main" || !named.contains("analyze"),
            "{module} imports analyze"
        );
    }
}

/// The strongly connected groups of more than one module in `edges` (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let at = w.index.len();
        w.index.insert(v, at);
        w.low.insert(v, at);
        w.stack.push(v);
        let edges = w.edges;
        for next in edges.get(v).into_iter().flatten() {
            let next = next.as_str();
            if !edges.contains_key(next) {
                continue;
            }
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v, low);
            } else if w.stack.contains(&next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut group = BTreeSet::new();
            while let Some(top) = w.stack.pop() {
                group.insert(top.to_string());
                if top == v {
                    break;
                }
            }
            if group.len() > 1 {
                w.out.push(group);
            }
        }
    }
    let mut w = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.out
}

#[test]
fn the_cycle_finder_finds_a_cycle_through_three_modules() {
    let graph = |pairs: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in pairs {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    };
    let found = cycles(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0], ["a", "b", "c"].map(String::from).into());
    assert!(cycles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
}

#[test]
fn no_import_cycle_crosses_a_top_level_module() {
    let edges = edges();
    let found = cycles(&edges);
    assert!(
        found.is_empty(),
        "modules that import each other: {found:?}"
    );
}

#[test]
fn messages_and_values_sit_below_every_component() {
    let edges = edges();
    let only = |module: &str, allowed: &[&str]| {
        let extra: Vec<_> = edges[module]
            .iter()
            .filter(|m| !allowed.contains(&m.as_str()))
            .collect();
        assert!(extra.is_empty(), "{module} imports {extra:?}");
    };
    only("model", &["packet"]);
    // `credit` is a leaf too: the room in the pipeline that batches and records hold.
    only("messages", &["model", "packet", "credit"]);
    // The aggregate config is read by the commands, which hand each part its own section.
    for (module, named) in &edges {
        assert!(
            ["main", "analyze", "serve"].contains(&module.as_str()) || !named.contains("config"),
            "{module} imports config"
        );
    }
}
