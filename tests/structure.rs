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
