//! The layering, read from the imports of `src/`: no layer imports from a layer above it, and no
//! two files import each other. A layer is a top-level module; `error.rs` is the crate's shared
//! vocabulary (typed errors name the ids of every layer), and `testing` (test support) and
//! `lib.rs` see everything.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Bottom to top; layers on one line are peers and must not import each other.
const LAYERS: &[&[&str]] = &[
    &["labels", "time", "wire"],
    &["primitives"],
    &["persist", "x3dh"],
    &["ratchet"],
    &["group"],
    &["devices"],
    &["history", "calls"],
    &["fanout", "server"],
    &["driver"],
    &["relay"],
];
const EXEMPT: &[&str] = &["error", "testing", "docs", ""];

/// A source file, by its module path (`fanout::device`; `fanout` for `fanout/mod.rs`).
type Module = Vec<String>;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn module_of(src: &Path, file: &Path) -> Module {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// Every `use` statement's text (from `use` to `;`), wherever it appears in the file.
fn use_statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        let t = t
            .strip_prefix("pub(crate) ")
            .or_else(|| t.strip_prefix("pub "))
            .unwrap_or(t);
        if current.is_none() && t.starts_with("use ") {
            current = Some(String::new());
        }
        if let Some(c) = current.as_mut() {
            c.push_str(t);
            c.push(' ');
            if t.trim_end().ends_with(';') {
                out.push(current.take().unwrap());
            }
        }
    }
    out
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim().trim_end_matches(';').trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap();
        return vec![
            path.split("::")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
        ];
    };
    let prefix: Vec<String> = tree[..open]
        .split("::")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|tail| prefix.iter().cloned().chain(tail).collect())
        .collect()
}

struct Crate {
    /// Module path → (file text, names re-exported: name → the module path it comes from).
    modules: BTreeMap<Module, (String, BTreeMap<String, Vec<String>>)>,
}

impl Crate {
    fn load() -> Self {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut paths = Vec::new();
        files(&src, &mut paths);
        let mut modules = BTreeMap::new();
        for path in paths {
            let text = fs::read_to_string(&path).unwrap();
            let mut reexports = BTreeMap::new();
            for statement in use_statements(&text) {
                let body = statement.trim_start_matches("use ");
                for p in expand(body) {
                    if let Some(name) = p.last() {
                        reexports.insert(name.clone(), p.clone());
                    }
                }
            }
            modules.insert(module_of(&src, &path), (text, reexports));
        }
        Self { modules }
    }

    /// The file that defines what `path` (already absolute from the crate root) names: descend
    /// through module files, then follow re-exports of the module the path stops in.
    fn resolve(&self, path: &[String], depth: usize) -> Option<Module> {
        let mut module: Module = Vec::new();
        for (i, segment) in path.iter().enumerate() {
            let mut next = module.clone();
            next.push(segment.clone());
            if self.modules.contains_key(&next) {
                module = next;
                continue;
            }
            // `segment` is an item of `module`: defined there, or re-exported from elsewhere.
            let (_, reexports) = self.modules.get(&module)?;
            if depth < 8
                && let Some(from) = reexports.get(segment)
                && from.last() == Some(segment)
                && from.len() > 1
            {
                let absolute = self.absolute(&module, from)?;
                if absolute != path[..=i] {
                    return self.resolve(&absolute, depth + 1).or(Some(module));
                }
            }
            return Some(module);
        }
        Some(module)
    }

    /// The crate files each file imports from.
    fn edges(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        let mut out = BTreeMap::new();
        for (module, (text, _)) in &self.modules {
            let mut to = BTreeSet::new();
            for statement in use_statements(text) {
                for p in expand(statement.trim_start_matches("use ")) {
                    let base = module.clone();
                    let Some(absolute) = self.absolute(&base, &p) else {
                        continue;
                    };
                    if let Some(target) = self.resolve(&absolute, 0) {
                        // A module file declares and re-exports its children: not a use.
                        if !target.starts_with(module) && !target.is_empty() {
                            to.insert(target);
                        }
                    }
                }
            }
            out.insert(module.clone(), to);
        }
        out
    }
}

impl Crate {
    /// `path` as written in module `base`, from the crate root; `None` for paths outside the
    /// crate (`alloc`, `core`, dependencies).
    fn absolute(&self, base: &[String], path: &[String]) -> Option<Vec<String>> {
        let first = path.first()?;
        if !["crate", "super", "self"].contains(&first.as_str()) {
            // A path relative to `base`, through one of its child modules.
            let mut child = base.to_vec();
            child.push(first.clone());
            if !self.modules.contains_key(&child) {
                return None;
            }
            return Some(base.iter().chain(path).cloned().collect());
        }
        keyword_path(base, path)
    }
}

/// A path starting with `crate`, `super` or `self`, as written in module `base`, from the
/// crate root.
fn keyword_path(base: &[String], path: &[String]) -> Option<Vec<String>> {
    let mut out: Vec<String> = base.to_vec();
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            out.clear();
            rest = &rest[1..];
        }
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                out.pop()?;
                rest = &rest[1..];
            }
        }
        Some("self") => rest = &rest[1..],
        _ => unreachable!(),
    }
    out.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(out)
}

fn rank(layer: &str) -> Option<(usize, usize)> {
    LAYERS.iter().enumerate().find_map(|(rank, peers)| {
        peers
            .iter()
            .position(|p| *p == layer)
            .map(|peer| (rank, peer))
    })
}

#[test]
fn no_layer_imports_from_above_and_no_two_files_import_each_other() {
    let krate = Crate::load();
    let edges = krate.edges();
    let layer = |m: &Module| m.first().cloned().unwrap_or_default();
    let name = |m: &Module| m.join("::");
    let mut problems = Vec::new();
    for (from, targets) in &edges {
        let from_layer = layer(from);
        if EXEMPT.contains(&from_layer.as_str()) {
            continue;
        }
        let Some(own) = rank(&from_layer) else {
            problems.push(format!(
                "{}: layer `{from_layer}` is not in LAYERS",
                name(from)
            ));
            continue;
        };
        for to in targets {
            let to_layer = layer(to);
            if to_layer == from_layer || EXEMPT.contains(&to_layer.as_str()) {
                continue;
            }
            match rank(&to_layer) {
                Some(r) if r.0 < own.0 => {}
                _ => problems.push(format!("{} reaches up into {}", name(from), name(to))),
            }
        }
    }
    for (a, targets) in &edges {
        for b in targets {
            let vocabulary = [a, b].iter().any(|m| layer(m) == "error");
            if a < b && !vocabulary && edges.get(b).is_some_and(|t| t.contains(a)) {
                problems.push(format!("{} and {} import each other", name(a), name(b)));
            }
        }
    }
    // The checker itself must see the imports it is about.
    let fanout_device = vec!["fanout".to_string(), "device".to_string()];
    assert!(
        edges[&vec!["fanout".to_string(), "receive".to_string()]].contains(&fanout_device),
        "the import reader lost `use super::Device` in fanout/receive.rs"
    );
    assert!(problems.is_empty(), "layering:\n{}", problems.join("\n"));
}
