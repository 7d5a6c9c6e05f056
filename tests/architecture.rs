//! The module graph of `src/`: no import cycles, and the layers point one
//! way. Read from the source text, so a new `use crate::…` that closes a
//! cycle fails here.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Each top-level module and the top-level modules its code (tests aside) names.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    collect(Path::new("src"), &mut files);
    for path in files {
        let relative = path.strip_prefix("src").unwrap();
        let module = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Unit tests may reach anywhere; they sit at the end of a file.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(crate_references(code).into_iter().filter(|d| *d != module));
    }
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    graph
}

fn collect(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// `crate::x` paths, and the first names of `use crate::{x, y::z}` groups.
fn crate_references(code: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find("};").unwrap_or(group.len())];
            let mut depth = 0;
            let mut start = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            names.insert(std::mem::take(&mut name));
                        }
                        start = true;
                    }
                    c if start && (c.is_ascii_lowercase() || c == '_') => name.push(c),
                    _ if start && !name.is_empty() => {
                        names.insert(std::mem::take(&mut name));
                        start = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                names.insert(name);
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    names
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    // Depth-first search; a module met again while still on the path is a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m.to_owned());
        for dep in &graph[m] {
            visit(dep, graph, path, done);
        }
        path.pop();
        done.insert(m.to_owned());
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        visit(module, &graph, &mut Vec::new(), &mut done);
    }
    assert!(graph.len() > 10, "the graph was read: {graph:?}");
}

#[test]
fn the_layers_point_one_way() {
    let graph = module_graph();
    for leaf in ["configuration", "context", "domain", "checked", "normalize"] {
        assert!(graph[leaf].is_empty(), "{leaf} imports {:?}", graph[leaf]);
    }
    assert!(
        !graph["configuration"].contains("sandbox"),
        "production configuration knows no sandbox"
    );
    // The route table is facts, read by auth, cache, openapi and telemetry:
    // configuration's enums and the upstream clients' operation enums, whose
    // file is itself a leaf.
    assert_eq!(
        graph["route_table"],
        BTreeSet::from(["configuration".to_owned(), "upstream".to_owned()]),
        "the route table names configuration's and the operations' enums only"
    );
    let table = std::fs::read_to_string("src/route_table.rs").unwrap();
    for (i, _) in table.match_indices("upstream::") {
        assert!(
            table[i..].starts_with("upstream::operation"),
            "the route table names only upstream::operation"
        );
    }
    let operations = std::fs::read_to_string("src/upstream/operation.rs").unwrap();
    let operations = operations.split("#[cfg(test)]\nmod tests").next().unwrap();
    assert_eq!(
        crate_references(operations),
        BTreeSet::from(["configuration".to_owned()]),
        "upstream::operation is a leaf"
    );
    for lower in ["upstream", "error", "sandbox", "model"] {
        assert!(!graph[lower].contains("routes"), "{lower} imports routes");
    }
    // The upstream clients know HTTP through reqwest only, never the server framework.
    let mut files = Vec::new();
    collect(Path::new("src/upstream"), &mut files);
    collect(Path::new("src/configuration"), &mut files);
    for leaf in ["context", "domain", "route_table"] {
        files.push(Path::new("src").join(format!("{leaf}.rs")));
    }
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("actix"), "{} uses actix", path.display());
    }
}

/// The code map of ARCHITECTURE.md: each module's row and the modules it
/// may import.
fn code_map() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string("ARCHITECTURE.md").unwrap();
    let section = text
        .split("## Code map")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("ARCHITECTURE.md has a code map");
    let mut map = BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let module = cells[1].trim_matches('`').to_owned();
        let allowed = cells[cells.len() - 2];
        let allowed: BTreeSet<String> = if allowed == "nothing" {
            BTreeSet::new()
        } else {
            allowed
                .split(',')
                .map(|m| m.trim().trim_matches('`').to_owned())
                .collect()
        };
        map.insert(module, allowed);
    }
    map
}

#[test]
fn every_module_imports_only_what_architecture_md_allows() {
    let graph = module_graph();
    let map = code_map();
    for (module, imports) in &graph {
        let allowed = map
            .get(module)
            .unwrap_or_else(|| panic!("`{module}` has no row in ARCHITECTURE.md's code map"));
        let extra: Vec<&String> = imports.difference(allowed).collect();
        assert!(
            extra.is_empty(),
            "`{module}` imports {extra:?}, which ARCHITECTURE.md's code map does not allow"
        );
    }
    for module in map.keys() {
        assert!(
            graph.contains_key(module),
            "ARCHITECTURE.md maps `{module}`, which is not a module of src/"
        );
    }
}

#[test]
fn references_are_read_from_paths_and_groups() {
    let refs = crate_references(
        "use crate::{a::B, b, c::{d, e::F}};\nfn f() { crate::g::h(); }\nuse crate::i::J;",
    );
    let expected: BTreeSet<String> = ["a", "b", "c", "g", "i"].map(String::from).into();
    assert_eq!(refs, expected);
}
