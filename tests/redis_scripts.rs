//! Every Redis script touches only the keys it is given: each
//! `redis.call(...)` in the source names its key as `KEYS[n]` (every key
//! argument, for the commands that take several), never a name built in
//! Lua from a prefix or an argument. With the hash tags of
//! `shared::conventions` (a unit test there keeps one script's keys in one
//! slot), the scripts would run on a Redis Cluster.

use std::path::Path;

/// The commands scripts use, and which of their arguments are keys.
fn key_arguments(command: &str, arguments: usize) -> Option<Vec<usize>> {
    Some(match command {
        "TIME" => vec![],
        "DEL" | "EXISTS" => (0..arguments).collect(),
        "GET" | "SET" | "PEXPIRE" | "HGET" | "HMGET" | "HSET" | "HINCRBY" | "XADD" | "XRANGE"
        | "XREVRANGE" | "PUBLISH" | "INCR" | "INCRBY" | "EXPIRE" | "PTTL" => vec![0],
        _ => return None,
    })
}

fn sources(dir: &Path, found: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
}

/// The arguments of one `redis.call(`…`)`, split at top-level commas.
fn arguments(call: &str) -> Vec<String> {
    let mut depth = 0;
    let mut quoted: Option<char> = None;
    let mut current = String::new();
    let mut all = Vec::new();
    for c in call.chars() {
        match (quoted, c) {
            (Some(q), c) if c == q => quoted = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quoted = Some(c),
            (None, '(') => depth += 1,
            (None, ')') if depth == 0 => break,
            (None, ')') => depth -= 1,
            (None, ',') if depth == 0 => {
                all.push(current.trim().to_owned());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        all.push(current.trim().to_owned());
    }
    all
}

/// The `redis.call`s of `text` that touch a key not given in `KEYS`, and
/// how many calls there are.
fn violations(path: &str, text: &str) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut calls = 0;
    for (at, _) in text.match_indices("redis.call(") {
        let rest = &text[at + "redis.call(".len()..];
        let args = arguments(rest);
        let command = args[0]
            .trim_matches(|c| c == '\'' || c == '"')
            .to_uppercase();
        let keys = key_arguments(&command, args.len() - 1)
            .unwrap_or_else(|| panic!("{path}: add {command} to key_arguments"));
        for index in keys {
            let key = &args[index + 1];
            if !(key.starts_with("KEYS[") && key.ends_with(']') && !key.contains("..")) {
                found.push(format!(
                    "{path}: redis.call('{command}', …) touches `{key}`, not a key it was given"
                ));
            }
        }
        calls += 1;
    }
    (found, calls)
}

#[test]
fn every_script_touches_only_its_keys() {
    let mut files = Vec::new();
    sources(Path::new("src"), &mut files);
    let mut calls = 0;
    let mut found = Vec::new();
    for (path, text) in &files {
        let (bad, n) = violations(path, text);
        found.extend(bad);
        calls += n;
    }
    assert!(found.is_empty(), "{found:#?}");
    assert!(calls >= 30, "found the scripts ({calls} calls)");
}

#[test]
fn a_key_built_in_lua_is_caught() {
    // How the cache's read script found its entry before.
    let old = r"local generation = redis.call('HGET', ARGV[1] .. 'cache:gen', ARGV[2]) or '0'
local stored = redis.call('HMGET', key, 'body', 'etag')
return {redis.call('PUBLISH', ARGV[1] .. 'cache:invalidations', message), redis.call('TIME')}";
    let (found, calls) = violations("old", old);
    assert_eq!(calls, 4);
    assert_eq!(found.len(), 3, "{found:#?}");
}
