//! The documentation is part of the repository and points only inside it:
//! every relative link in README.md, ARCHITECTURE.md and docs/ names a file
//! that exists (and a heading that exists, for `#anchors`), and none leaves
//! the repository, and no file names the workplace files a clone lacks.

use std::path::{Path, PathBuf};

fn documents() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md"), PathBuf::from("ARCHITECTURE.md")];
    for entry in std::fs::read_dir("docs").expect("docs/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            files.push(path);
        }
    }
    files
}

/// `](target)` of every Markdown link.
fn links(text: &str) -> Vec<String> {
    text.match_indices("](")
        .filter_map(|(at, _)| {
            let rest = &text[at + 2..];
            rest.find(')').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// GitHub's anchor of a heading: lowercase, spaces to dashes, only
/// alphanumerics, dashes and underscores kept.
fn anchors(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

#[test]
fn every_link_in_the_docs_points_inside_the_repository_and_exists() {
    let root = std::fs::canonicalize(".").unwrap();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        let dir = document.parent().unwrap_or(Path::new("."));
        for link in links(&text) {
            assert!(
                !link.starts_with("http://") && !link.starts_with("https://"),
                "{}: links outside the repository: {link}",
                document.display()
            );
            let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
            let target = if file.is_empty() {
                document.clone()
            } else {
                dir.join(file)
            };
            let resolved = std::fs::canonicalize(&target)
                .unwrap_or_else(|_| panic!("{}: {link} names no file", document.display()));
            assert!(
                resolved.starts_with(&root),
                "{}: {link} points outside the repository",
                document.display()
            );
            if !anchor.is_empty() {
                let target_text = std::fs::read_to_string(&resolved).unwrap();
                assert!(
                    anchors(&target_text).iter().any(|a| a == anchor),
                    "{}: {link}: no such heading",
                    document.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "the links were found ({checked})");
}

#[test]
fn nothing_in_the_repository_names_a_path_outside_it() {
    let mut files = Vec::new();
    for dir in [
        "src", "crates", "tests", "docs", "deploy", "bench", "examples",
    ] {
        collect(Path::new(dir), &mut files);
    }
    files.extend(documents());
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        // Built from parts, so this file does not name them itself.
        let shared = ["..", "shared"].join("/");
        let design = ["DESIGN", "md"].join(".");
        for outside in [shared.as_str(), design.as_str()] {
            assert!(
                !text.contains(outside),
                "{} names {outside}, which is not in the repository",
                path.display()
            );
        }
    }
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if name == "node_modules" || name == "target" || name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}
