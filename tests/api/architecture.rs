//! The layers as the design draws them: arrows point down only. Read from the source, so a new
//! import across a layer fails here rather than in review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What each top-level module may use. Glue (`lib`, `main`, `cli`, `startup`, `dev`) may use
/// anything and nothing may use it back.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("crypto", &[]),
    ("metrics", &[]),
    ("ratelimit", &[]),
    ("config", &["domain", "crypto", "ratelimit"]),
    ("telemetry", &["config"]),
    ("fhir", &["domain"]),
    ("letter", &["domain"]),
    ("db", &["domain"]),
    ("identity", &["config", "domain"]),
    // Archives of the trail are NDJSON of the FHIR AuditEvents the search returns, so the
    // trail renders them itself (fhir depends on domain alone).
    ("audit", &["db", "domain", "fhir"]),
    ("suppliers", &["domain", "config"]),
    (
        "services",
        &["domain", "db", "audit", "identity", "suppliers", "config", "crypto"],
    ),
    ("state", &["services", "identity", "metrics", "ratelimit", "crypto"]),
    (
        "http",
        &[
            "services", "fhir", "domain", "identity", "audit", "state", "letter", "config",
        ],
    ),
    // The practice console is a client of the API (over loopback), above the HTTP layer; of
    // the services it uses only the trail's record of a refusal made before any decision.
    (
        "console",
        &[
            "http", "state", "services", "audit", "config", "domain", "identity", "fhir", "crypto",
        ],
    ),
];

const GLUE: &[&str] = &["lib", "main", "cli", "startup", "dev"];

fn uses(root: &Path) -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
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
            let relative = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let module = relative.split('/').next().unwrap().trim_end_matches(".rs").to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            for (i, _) in text.match_indices("crate::") {
                let used: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if !used.is_empty() && used != module {
                    out.entry(module.clone())
                        .or_default()
                        .entry(used)
                        .or_default()
                        .insert(relative.clone());
                }
            }
        }
    }
    out
}

#[test]
fn modules_depend_only_downwards() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = uses(&root);
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = vec![];
    for (module, used) in &graph {
        if GLUE.contains(&module.as_str()) {
            continue;
        }
        let Some(may) = allowed.get(module.as_str()) else {
            problems.push(format!("{module} is not in the layer table"));
            continue;
        };
        for (target, files) in used {
            if !may.contains(&target.as_str()) {
                problems.push(format!("{module} uses {target} (in {files:?})"));
            }
        }
    }
    assert!(problems.is_empty(), "layering broken:\n{}", problems.join("\n"));
}

#[test]
fn the_layer_table_has_no_cycles() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    fn visit<'a>(m: &'a str, allowed: &BTreeMap<&'a str, &'a [&'a str]>, path: &mut Vec<&'a str>) {
        assert!(!path.contains(&m), "cycle: {path:?} -> {m}");
        path.push(m);
        for next in allowed.get(m).copied().unwrap_or(&[]) {
            visit(next, allowed, path);
        }
        path.pop();
    }
    for m in allowed.keys() {
        visit(m, &allowed, &mut vec![]);
    }
}

/// The files each file imports, by path from `src/`: `super::x` and `crate::m::x` read as the
/// file (or folder's `mod.rs`) they name. What a file's own tests import is not counted.
fn file_imports(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = vec![];
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let exists = |dir: &str, name: &str| -> Option<String> {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        [format!("{prefix}{name}.rs"), format!("{prefix}{name}/mod.rs")]
            .into_iter()
            .find(|f| files.contains(f))
    };
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
            .collect()
    };
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
        // The folder `super::` names: a file's own folder, or for a `mod.rs` the one above.
        let parent = if file.ends_with("mod.rs") {
            dir.rsplit_once('/').map_or("", |(d, _)| d)
        } else {
            dir
        };
        let mut targets = BTreeSet::new();
        for (i, _) in text.match_indices("super::") {
            if text[..i].ends_with("super::") {
                continue;
            }
            let name = ident(&text[i + 7..]);
            if let Some(t) = exists(parent, &name) {
                targets.insert(t);
            }
        }
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + 7..];
            let top = ident(rest);
            let second = rest.get(top.len() + 2..).map(ident).unwrap_or_default();
            if let Some(t) = (!second.is_empty()).then(|| exists(&top, &second)).flatten() {
                targets.insert(t);
            } else if let Some(t) = exists("", &top) {
                targets.insert(t);
            }
        }
        targets.remove(file);
        out.insert(file.clone(), targets);
    }
    out
}

#[test]
fn no_file_imports_one_that_imports_it_back() {
    let graph = file_imports(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    // A folder's `mod.rs` declares and hands on its files: the arrows from it are not imports.
    let arrows = |f: &str| -> Vec<String> {
        if f.ends_with("mod.rs") || f == "lib.rs" || f == "main.rs" {
            return vec![];
        }
        graph.get(f).map(|t| t.iter().cloned().collect()).unwrap_or_default()
    };
    fn visit(
        f: &str,
        arrows: &dyn Fn(&str) -> Vec<String>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<String>,
    ) {
        if let Some(at) = path.iter().position(|p| p == f) {
            found.push(format!("{} -> {f}", path[at..].join(" -> ")));
            return;
        }
        if !done.insert(f.to_owned()) {
            return;
        }
        path.push(f.to_owned());
        for next in arrows(f) {
            visit(&next, arrows, path, done, found);
        }
        path.pop();
    }
    let mut found = vec![];
    let mut done = BTreeSet::new();
    for f in graph.keys() {
        visit(f, &arrows, &mut vec![], &mut done, &mut found);
    }
    assert!(found.is_empty(), "files that import each other:\n{}", found.join("\n"));
}
