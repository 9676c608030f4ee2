//! ARCHITECTURE.md's invariants, checked by parsing hoist's code with `syn` (as
//! rust-analyzer's tidy test checks its own rules): what each module names (paths in
//! `use`, types and expressions), calls (methods, fields, macros), compares with HTTP
//! status numbers, and writes to the store without looking. Break one and this fails,
//! naming the file and the invariant; `each_invariant_fails_when_broken` proves every
//! check by breaking it once in a copy of the code.

use hoist_tests::repo_root;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use syn::visit::Visit;

/// What one source file names and does, outside `#[cfg(test)]` code.
#[derive(Debug, Default)]
struct Facts {
    /// Every path as written (`kube::Api`, `StatusCode`, `std::env::var`), joined by `::`.
    paths: BTreeSet<String>,
    /// Names of methods called (`.store()`, `.serve_connection(…)`).
    methods: BTreeSet<String>,
    /// Names of fields read (`state.store`).
    fields: BTreeSet<String>,
    /// Names of macros invoked (`json`, `warn`).
    macros: BTreeSet<String>,
    /// String literals passed to `Command::new`.
    commands: BTreeSet<String>,
    /// It starts programs (`Command::new`, whatever the program).
    spawns: bool,
    /// Lines comparing something with an HTTP status number (`== 404`, `< 500`).
    status_numbers: Vec<usize>,
    /// Lines where a store write's result is dropped: `let _ = …store…`, or a `let … else`
    /// over a store call whose `else` logs nothing.
    silent_store_writes: Vec<usize>,
    /// Lines that re-parse an app name with a silent `if let Ok(…) = AppName::parse(…)`.
    silent_name_parses: Vec<usize>,
    /// Functions returning `Result<_, String>` or `Result<_, &'static str>`.
    string_errors: Vec<String>,
    /// `#![forbid(unsafe_code)]` is there.
    forbids_unsafe: bool,
    /// Top-level functions that take axum's `State(…)` (handlers): name, and whether one
    /// of their parameters is a `Caller`.
    handlers: Vec<(String, bool)>,
    /// Public methods of `impl Apps`: what they take and whether they authorize.
    service_methods: Vec<ServiceMethod>,
}

/// A public method of the apps service, as the authorization rule sees it.
#[derive(Debug)]
struct ServiceMethod {
    name: String,
    /// It takes an app's name (a parameter called `name`).
    takes_app: bool,
    /// It takes a `Caller`.
    takes_caller: bool,
    /// Its body calls `authorize`, `admin_only` or `open_git`.
    authorizes: bool,
}

/// The names of `inputs` that are plain identifiers, with their types as written.
fn inputs(signature: &syn::Signature) -> Vec<(String, String)> {
    signature
        .inputs
        .iter()
        .filter_map(|input| match input {
            syn::FnArg::Typed(typed) => {
                let name = match &*typed.pat {
                    syn::Pat::Ident(ident) => ident.ident.to_string(),
                    syn::Pat::TupleStruct(tuple) => path_text(&tuple.path),
                    _ => String::new(),
                };
                let ty = match &*typed.ty {
                    syn::Type::Path(path) => path_text(&path.path),
                    syn::Type::Reference(reference) => match &*reference.elem {
                        syn::Type::Path(path) => path_text(&path.path),
                        _ => String::new(),
                    },
                    _ => String::new(),
                };
                Some((name, ty))
            }
            syn::FnArg::Receiver(_) => None,
        })
        .collect()
}

/// Whether `block` calls one of `methods`.
fn calls_any(block: &syn::Block, methods: &[&str]) -> bool {
    struct Finder<'a>(&'a [&'a str], bool);
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            if self.0.iter().any(|m| call.method == m) {
                self.1 = true;
            }
            syn::visit::visit_expr_method_call(self, call);
        }
    }
    let mut finder = Finder(methods, false);
    finder.visit_block(block);
    finder.1
}

impl Facts {
    /// Whether the file names `name` as a path: its whole text, a leading part
    /// (`kube` in `kube::Api`) or one segment (`StatusCode` in `http::StatusCode`).
    fn names(&self, name: &str) -> bool {
        self.paths.iter().any(|path| {
            path == name || path.starts_with(&format!("{name}::")) || path.split("::").any(|segment| segment == name)
        })
    }
}

fn path_text(path: &syn::Path) -> String {
    path.segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>().join("::")
}

/// Whether `expr` mentions the store: a field or method named `store`, or `Store`.
fn mentions_store(expr: &syn::Expr) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_expr_field(&mut self, field: &'ast syn::ExprField) {
            if matches!(&field.member, syn::Member::Named(name) if name == "store") {
                self.0 = true;
            }
            syn::visit::visit_expr_field(self, field);
        }
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            if call.method == "store" {
                self.0 = true;
            }
            syn::visit::visit_expr_method_call(self, call);
        }
        fn visit_path(&mut self, path: &'ast syn::Path) {
            if path.segments.iter().any(|s| s.ident == "store" || s.ident == "Store") {
                self.0 = true;
            }
            syn::visit::visit_path(self, path);
        }
    }
    let mut finder = Finder(false);
    finder.visit_expr(expr);
    finder.0
}

/// Whether `expr` is about an HTTP status: it names something called `status…` or
/// `…code` (`response.status()`, `status.code`, `status_code`).
fn mentions_status(expr: &syn::Expr) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_ident(&mut self, ident: &'ast syn::Ident) {
            let name = ident.to_string();
            if name.starts_with("status") || name.ends_with("code") || name == "as_u16" {
                self.0 = true;
            }
        }
    }
    let mut finder = Finder(false);
    finder.visit_expr(expr);
    finder.0
}

/// Whether `block` invokes a logging macro (or writes a log line).
fn logs_something(block: &syn::Block) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_macro(&mut self, mac: &'ast syn::Macro) {
            let name = mac.path.segments.last().map(|s| s.ident.to_string()).unwrap_or_default();
            if matches!(name.as_str(), "warn" | "error" | "info" | "debug") {
                self.0 = true;
            }
        }
        fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
            if call.method == "line" {
                self.0 = true;
            }
            syn::visit::visit_expr_method_call(self, call);
        }
    }
    let mut finder = Finder(false);
    finder.visit_block(block);
    finder.0
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|attr| attr.path().is_ident("cfg") && attr.parse_args::<syn::Ident>().is_ok_and(|ident| ident == "test"))
}

fn line_of(span: proc_macro2::Span) -> usize {
    span.start().line
}

impl<'ast> Visit<'ast> for Facts {
    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        if !is_cfg_test(&module.attrs) {
            syn::visit::visit_item_mod(self, module);
        }
    }
    fn visit_item_fn(&mut self, function: &'ast syn::ItemFn) {
        if !is_cfg_test(&function.attrs) {
            let inputs = inputs(&function.sig);
            if inputs.iter().any(|(name, _)| name == "State") {
                let takes_caller = inputs.iter().any(|(_, ty)| ty == "Caller");
                self.handlers.push((function.sig.ident.to_string(), takes_caller));
            }
            syn::visit::visit_item_fn(self, function);
        }
    }
    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        if !is_cfg_test(&item.attrs) {
            let is_apps = matches!(&*item.self_ty, syn::Type::Path(path) if path_text(&path.path) == "Apps");
            if is_apps {
                for member in &item.items {
                    let syn::ImplItem::Fn(method) = member else { continue };
                    if !matches!(method.vis, syn::Visibility::Public(_)) {
                        continue;
                    }
                    let inputs = inputs(&method.sig);
                    self.service_methods.push(ServiceMethod {
                        name: method.sig.ident.to_string(),
                        takes_app: inputs.iter().any(|(name, _)| name == "name"),
                        takes_caller: inputs.iter().any(|(_, ty)| ty == "Caller"),
                        authorizes: calls_any(&method.block, &["authorize", "admin_only", "open_git"]),
                    });
                }
            }
            syn::visit::visit_item_impl(self, item);
        }
    }
    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.paths.insert(path_text(path));
        syn::visit::visit_path(self, path);
    }
    fn visit_use_tree(&mut self, tree: &'ast syn::UseTree) {
        fn flatten(prefix: &str, tree: &syn::UseTree, out: &mut BTreeSet<String>) {
            let join = |name: &str| if prefix.is_empty() { name.to_string() } else { format!("{prefix}::{name}") };
            match tree {
                syn::UseTree::Path(path) => flatten(&join(&path.ident.to_string()), &path.tree, out),
                syn::UseTree::Name(name) => {
                    out.insert(join(&name.ident.to_string()));
                }
                syn::UseTree::Rename(rename) => {
                    out.insert(join(&rename.ident.to_string()));
                }
                syn::UseTree::Glob(_) => {
                    out.insert(join("*"));
                }
                syn::UseTree::Group(group) => group.items.iter().for_each(|item| flatten(prefix, item, out)),
            }
        }
        flatten("", tree, &mut self.paths);
    }
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        self.methods.insert(call.method.to_string());
        syn::visit::visit_expr_method_call(self, call);
    }
    fn visit_expr_field(&mut self, field: &'ast syn::ExprField) {
        if let syn::Member::Named(name) = &field.member {
            self.fields.insert(name.to_string());
        }
        syn::visit::visit_expr_field(self, field);
    }
    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        if let Some(last) = mac.path.segments.last() {
            self.macros.insert(last.ident.to_string());
        }
        self.paths.insert(path_text(&mac.path));
        // Macro bodies are tokens; parse the common expression-list form to see inside.
        if let Ok(exprs) =
            mac.parse_body_with(syn::punctuated::Punctuated::<syn::Expr, syn::Token![,]>::parse_terminated)
        {
            exprs.iter().for_each(|expr| self.visit_expr(expr));
        }
    }
    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(function) = &*call.func {
            if path_text(&function.path).ends_with("Command::new") {
                self.spawns = true;
                if let Some(syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(program), .. })) = call.args.first() {
                    self.commands.insert(program.value());
                }
            }
        }
        syn::visit::visit_expr_call(self, call);
    }
    fn visit_expr_binary(&mut self, binary: &'ast syn::ExprBinary) {
        use syn::BinOp::*;
        if matches!(binary.op, Eq(_) | Ne(_) | Lt(_) | Le(_) | Gt(_) | Ge(_)) {
            for (side, other) in [(&*binary.left, &*binary.right), (&*binary.right, &*binary.left)] {
                if let syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Int(number), .. }) = side {
                    let status_like = number.base10_parse::<u16>().is_ok_and(|n| (100..=599).contains(&n));
                    if status_like && mentions_status(other) {
                        self.status_numbers.push(line_of(number.span()));
                    }
                }
            }
        }
        syn::visit::visit_expr_binary(self, binary);
    }
    fn visit_pat_struct(&mut self, pattern: &'ast syn::PatStruct) {
        // `Err(DockerResponseServerError { status_code: 404, .. })`.
        for field in &pattern.fields {
            if let syn::Pat::Lit(syn::ExprLit { lit: syn::Lit::Int(number), .. }) = &*field.pat {
                if number.base10_parse::<u16>().is_ok_and(|n| (100..=599).contains(&n)) {
                    self.status_numbers.push(line_of(number.span()));
                }
            }
        }
        syn::visit::visit_pat_struct(self, pattern);
    }
    fn visit_local(&mut self, local: &'ast syn::Local) {
        if let Some(init) = &local.init {
            // `let … = store.call()? else …` passes the error on; the `else` only handles
            // an empty answer.
            let passes_error_on = matches!(&*init.expr, syn::Expr::Try(_));
            if mentions_store(&init.expr) && !passes_error_on {
                let dropped = matches!(local.pat, syn::Pat::Wild(_));
                let silent_else = init.diverge.as_ref().is_some_and(|(_, block)| match &**block {
                    syn::Expr::Block(block) => !logs_something(&block.block),
                    _ => true,
                });
                if dropped || silent_else {
                    self.silent_store_writes.push(line_of(local.let_token.span));
                }
            }
        }
        syn::visit::visit_local(self, local);
    }
    fn visit_expr_let(&mut self, expr_let: &'ast syn::ExprLet) {
        if let syn::Pat::TupleStruct(pattern) = &*expr_let.pat {
            let calls_parse = matches!(&*expr_let.expr, syn::Expr::Call(call)
                if matches!(&*call.func, syn::Expr::Path(p) if path_text(&p.path).ends_with("AppName::parse")));
            if path_text(&pattern.path) == "Ok" && calls_parse {
                self.silent_name_parses.push(line_of(expr_let.let_token.span));
            }
        }
        syn::visit::visit_expr_let(self, expr_let);
    }
    fn visit_signature(&mut self, signature: &'ast syn::Signature) {
        if let syn::ReturnType::Type(_, output) = &signature.output {
            if let syn::Type::Path(output) = &**output {
                if let Some(last) = output.path.segments.last().filter(|s| s.ident == "Result") {
                    if let syn::PathArguments::AngleBracketed(args) = &last.arguments {
                        let error = args.args.iter().nth(1).map(|a| quote_type(a)).unwrap_or_default();
                        if error == "String" || error == "& 'static str" || error == "&'static str" {
                            self.string_errors.push(signature.ident.to_string());
                        }
                    }
                }
            }
        }
        syn::visit::visit_signature(self, signature);
    }
}

/// A generic argument as written, for comparing (`String`, `&'static str`).
fn quote_type(argument: &syn::GenericArgument) -> String {
    match argument {
        syn::GenericArgument::Type(syn::Type::Path(path)) => path_text(&path.path),
        syn::GenericArgument::Type(syn::Type::Reference(reference)) => match &*reference.elem {
            syn::Type::Path(path) if reference.lifetime.as_ref().is_some_and(|l| l.ident == "static") => {
                format!("&'static {}", path_text(&path.path))
            }
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// One parsed source file of `daemon/src` (path relative to it).
struct Source {
    path: String,
    text: String,
    facts: Facts,
}

/// Every `.rs` file under `<root>/daemon/src`, parsed.
fn sources(root: &Path) -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = root.join("daemon/src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let relative = path.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
            (relative, text)
        })
        // proptests.rs is test code as a whole (`#[cfg(test)] mod proptests` in lib.rs).
        .filter(|(path, _)| path != "proptests.rs")
        .map(|(path, text)| {
            let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("daemon/src/{path} does not parse: {e}"));
            let mut facts = Facts {
                forbids_unsafe: file.attrs.iter().any(|a| {
                    a.path().is_ident("forbid") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "unsafe_code")
                }),
                ..Facts::default()
            };
            facts.visit_file(&file);
            Source { path, text, facts }
        })
        .collect()
}

/// The invariants, each a rule over every file: a file breaks it when `breaks` says so
/// and it is not in `allowed` (a file, or a folder ending in `/`). An allowed file that
/// no longer does what it is allowed to is reported too: allow-lists must not outlive
/// their reason.
struct Rule {
    invariant: &'static str,
    allowed: &'static [&'static str],
    breaks: fn(&Source) -> Vec<String>,
}

fn names_any(source: &Source, names: &[&str]) -> Vec<String> {
    names.iter().filter(|name| source.facts.names(name)).map(|name| format!("names {name}")).collect()
}

fn only_in(source: &Source, file: &str, found: Vec<String>) -> Vec<String> {
    if source.path == file {
        found
    } else {
        Vec::new()
    }
}

fn rules() -> Vec<Rule> {
    vec![
        Rule {
            invariant: "config.rs is the only place that reads the environment for settings (receive.rs reads git's and the hook's)",
            allowed: &["config.rs", "receive.rs"],
            breaks: |s| {
                s.facts.paths.iter().filter(|p| p.ends_with("env::var") || p.ends_with("env::var_os")).cloned().collect()
            },
        },
        Rule {
            invariant: "receive.rs is the only module that runs git or uses git2",
            allowed: &["receive.rs"],
            breaks: |s| {
                let mut found = names_any(s, &["git2"]);
                if s.facts.commands.contains("git") {
                    found.push("runs git".to_string());
                }
                found
            },
        },
        Rule {
            invariant: "only target/kubernetes.rs (apps) and build/kubernetes.rs (build pods) talk to Kubernetes (kube, k8s_openapi)",
            allowed: &["target/kubernetes.rs", "build/kubernetes.rs"],
            breaks: |s| names_any(s, &["kube", "k8s_openapi"]),
        },
        Rule {
            invariant: "only receive.rs (git), registry.rs (the registry) and target/kubernetes.rs (helm) start programs",
            allowed: &["receive.rs", "registry.rs", "target/kubernetes.rs"],
            breaks: |s| if s.facts.spawns { vec!["starts a program".to_string()] } else { Vec::new() },
        },
        Rule {
            invariant: "HTTP status codes only in the HTTP front ends (api, router, receive's git CGI bridge, the listeners) and in the clients that read answers (registry, the targets' dockerd and cluster calls, the build engines' dockerd and cluster calls)",
            allowed: &[
                "api.rs",
                "router.rs",
                "receive.rs",
                "registry.rs",
                "target/docker.rs",
                "target/kubernetes.rs",
                "build/docker.rs",
                "build/kubernetes.rs",
            ],
            breaks: |s| {
                let mut found = names_any(s, &["StatusCode"]);
                found.extend(s.facts.status_numbers.iter().map(|line| format!("compares with a status number at line {line}")));
                found
            },
        },
        Rule {
            invariant: "the store knows rows, not Docker, git or HTTP",
            allowed: &[],
            breaks: |s| only_in(s, "store.rs", names_any(s, &["bollard", "git2", "axum", "reqwest", "hyper", "kube"])),
        },
        Rule {
            invariant: "runtime_version is pure: no disk, network or Docker",
            allowed: &[],
            breaks: |s| only_in(s, "runtime_version.rs", names_any(s, &["fs", "tokio", "bollard", "reqwest"])),
        },
        Rule {
            invariant: "dev.rs (hoist dev's working trees) knows files, hashes and tar: no HTTP, store or Docker",
            allowed: &[],
            breaks: |s| {
                only_in(s, "dev.rs", names_any(s, &["axum", "hyper", "reqwest", "bollard", "kube", "store", "Store"]))
            },
        },
        Rule {
            invariant: "detection (buildpack.rs) never touches Docker",
            allowed: &[],
            breaks: |s| only_in(s, "buildpack.rs", names_any(s, &["bollard"])),
        },
        Rule {
            invariant: "a target never writes a release's status and never holds the store (only rollout does)",
            allowed: &[],
            breaks: |s| {
                if !s.path.starts_with("target") {
                    return Vec::new();
                }
                let mut found: Vec<String> = ["make_release_live", "fail_release", "set_build_status"]
                    .iter()
                    .filter(|m| s.facts.methods.contains(**m))
                    .map(|m| format!("calls {m}"))
                    .collect();
                found.extend(names_any(s, &["Store"]));
                found
            },
        },
        Rule {
            invariant: "the target seam names no implementation's types: target.rs has no Docker, Kubernetes or Helm error",
            allowed: &[],
            breaks: |s| only_in(s, "target.rs", names_any(s, &["bollard", "kube", "k8s_openapi"])),
        },
        Rule {
            invariant: "only api and wire know JSON wire shapes: no serde_json::json! elsewhere (but Kubernetes manifests)",
            allowed: &["api.rs", "api/", "target/kubernetes.rs", "build/kubernetes.rs"],
            breaks: |s| if s.facts.macros.contains("json") { vec!["json!".to_string()] } else { Vec::new() },
        },
        Rule {
            invariant: "pipeline, rollout and the docker target return typed errors, not strings",
            allowed: &[],
            breaks: |s| {
                if ["pipeline.rs", "rollout.rs", "target/docker.rs"].contains(&s.path.as_str()) {
                    s.facts.string_errors.iter().map(|f| format!("fn {f} returns a String error")).collect()
                } else {
                    Vec::new()
                }
            },
        },
        Rule {
            invariant: "helm's runs are typed errors (its exit status), never strings to match",
            allowed: &[],
            breaks: |s| {
                if s.path != "target/kubernetes.rs" {
                    return Vec::new();
                }
                s.facts
                    .string_errors
                    .iter()
                    .filter(|f| f.starts_with("run_helm") || *f == "history" || *f == "repair")
                    .map(|f| format!("fn {f} returns a String error"))
                    .collect()
            },
        },
        Rule {
            invariant: "a store write is never dropped silently (`let _ = …store…`, or `let … else` that logs nothing)",
            allowed: &[],
            breaks: |s| s.facts.silent_store_writes.iter().map(|line| format!("line {line}")).collect(),
        },
        Rule {
            invariant: "an app name read from the store is an AppName, never re-parsed with a silent `if let Ok`",
            allowed: &[],
            breaks: |s| s.facts.silent_name_parses.iter().map(|line| format!("line {line}")).collect(),
        },
        Rule {
            invariant: "the API's handlers make no store call: they call the apps service",
            allowed: &[],
            breaks: |s| {
                if s.path == "api.rs" || s.path.starts_with("api/") {
                    let mut found = names_any(s, &["Store", "store"]);
                    if s.facts.fields.contains("store") || s.facts.methods.contains("store") {
                        found.push("reads a store".to_string());
                    }
                    found
                } else {
                    Vec::new()
                }
            },
        },
        Rule {
            invariant: "the apps service knows no HTTP status codes or axum routing",
            allowed: &[],
            breaks: |s| {
                let mut found = only_in(s, "apps.rs", names_any(s, &["StatusCode", "IntoResponse", "routing", "Router"]));
                if s.path == "apps.rs" {
                    found.extend(s.facts.status_numbers.iter().map(|l| format!("compares with a status number at line {l}")));
                }
                found
            },
        },
        Rule {
            invariant: "every listener is served by listener::serve (connection cap, header and handshake deadlines)",
            allowed: &["listener.rs"],
            breaks: |s| {
                let mut found: Vec<String> =
                    s.facts.paths.iter().filter(|p| p.ends_with("axum::serve")).cloned().collect();
                found.extend(
                    s.facts.methods.iter().filter(|m| m.starts_with("serve_connection")).map(|m| format!("calls {m}")),
                );
                found
            },
        },
        Rule {
            invariant: "outside_url is pure: no disk, Docker, git, processes or HTTP client",
            allowed: &[],
            breaks: |s| only_in(s, "outside_url.rs", names_any(s, &["fs", "bollard", "reqwest", "git2", "Command"])),
        },
        Rule {
            invariant: "every repo URL and followed image an app is given passes outside_url before it is saved",
            allowed: &[],
            breaks: |s| {
                if s.path != "apps.rs" {
                    return Vec::new();
                }
                ["outside_url::check_repo_url", "outside_url::check_image", "outside_url::check_resolved"]
                    .iter()
                    .filter(|needle| !s.facts.paths.contains(**needle))
                    .map(|needle| format!("does not call {needle}"))
                    .collect()
            },
        },
        Rule {
            invariant: "every API handler takes a Caller (only the hook, the registry's events and webhooks prove themselves with their own secrets)",
            allowed: &[],
            breaks: |s| {
                if !(s.path == "api.rs" || s.path.starts_with("api/")) {
                    return Vec::new();
                }
                s.facts
                    .handlers
                    .iter()
                    .filter(|(name, takes_caller)| {
                        !takes_caller && !["receive_hook", "registry_events", "webhook"].contains(&name.as_str())
                    })
                    .map(|(name, _)| format!("{name} takes no Caller"))
                    .collect()
            },
        },
        Rule {
            invariant: "authorization is decided in the apps service: every public method about an app takes the caller and calls authorize or admin_only (webhooks: their signature; the hook's push: its ticket)",
            allowed: &[],
            breaks: |s| {
                if !(s.path == "apps.rs" || s.path.starts_with("apps/")) {
                    return Vec::new();
                }
                s.facts
                    .service_methods
                    .iter()
                    .filter(|m| m.name != "deliver_webhook")
                    .filter(|m| (m.takes_app && !(m.takes_caller && m.authorizes)) || (m.takes_caller && m.takes_app && !m.authorizes))
                    .map(|m| format!("{} does not authorize its caller", m.name))
                    .collect()
            },
        },
        Rule {
            invariant: "only the apps service decides who may do what: nobody else calls authorize, admin_only or role_on",
            allowed: &["apps.rs", "apps/"],
            breaks: |s| {
                ["authorize", "admin_only", "role_on"]
                    .iter()
                    .filter(|m| s.facts.methods.contains(**m))
                    .map(|m| format!("calls {m}"))
                    .collect()
            },
        },
        Rule {
            invariant: "access is pure: no store, disk, network or async",
            allowed: &[],
            breaks: |s| only_in(s, "access.rs", names_any(s, &["Store", "store", "fs", "tokio", "axum", "reqwest", "russh"])),
        },
        Rule {
            invariant: "every module says what it is for (`//!` first)",
            allowed: &[],
            breaks: |s| {
                if s.text.trim_start().starts_with("//!") {
                    Vec::new()
                } else {
                    vec!["no //! first".to_string()]
                }
            },
        },
        Rule {
            invariant: "no unsafe code: lib.rs and hoistd forbid it",
            allowed: &[],
            breaks: |s| {
                if (s.path == "lib.rs" || s.path == "bin/hoistd.rs") && !s.facts.forbids_unsafe {
                    vec!["no #![forbid(unsafe_code)]".to_string()]
                } else {
                    Vec::new()
                }
            },
        },
    ]
}

/// Every invariant broken in the code under `root`, with where.
fn broken_invariants(root: &Path) -> Vec<String> {
    let sources = sources(root);
    let mut broken = Vec::new();
    for rule in rules() {
        let allowed = |path: &str| rule.allowed.iter().any(|a| path == *a || (a.ends_with('/') && path.starts_with(a)));
        let mut found: Vec<String> = Vec::new();
        for source in &sources {
            let hits = (rule.breaks)(source);
            if !hits.is_empty() && !allowed(&source.path) {
                found.push(format!("{} ({})", source.path, hits.join("; ")));
            }
        }
        for entry in rule.allowed {
            let used = sources.iter().any(|s| {
                (s.path == *entry || (entry.ends_with('/') && s.path.starts_with(entry)))
                    && !(rule.breaks)(s).is_empty()
            });
            if !used {
                found.push(format!("{entry} (allowed, but it no longer does this: drop it from the list)"));
            }
        }
        if !found.is_empty() {
            broken.push(format!("{}\n    broken in: {}", rule.invariant, found.join(", ")));
        }
    }
    // Binaries and crates outside daemon/src forbid unsafe code too.
    for path in ["cli/src/main.rs", "wire/src/lib.rs"] {
        let text = std::fs::read_to_string(root.join(path)).unwrap_or_default();
        if !text.contains("#![forbid(unsafe_code)]") {
            broken.push(format!("no unsafe code: {path} forbids it\n    broken in: {path}"));
        }
    }
    // Every source path ARCHITECTURE.md names exists, and every module has a section.
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let missing: Vec<String> = architecture
        .split('`')
        .filter(|word| {
            ["daemon/", "tests/", "deploy/", "cli/", "wire/"].iter().any(|p| word.starts_with(p))
                && !word.contains(' ')
                && !word.contains('<')
                && !word.contains('*')
        })
        .filter(|path| !root.join(path).exists())
        .map(str::to_string)
        .collect();
    if !missing.is_empty() {
        broken.push(format!("every path ARCHITECTURE.md names exists\n    broken in: {}", missing.join(", ")));
    }
    let unmapped: Vec<String> = sources
        .iter()
        .map(|s| s.path.clone())
        .filter(|path| !path.starts_with("bin/") && path != "lib.rs")
        .filter(|path| {
            let module = path.split('/').next().unwrap();
            let folder = module.trim_end_matches(".rs");
            !architecture.contains(&format!("daemon/src/{path}"))
                && !architecture.contains(&format!("daemon/src/{folder}/"))
                && !architecture.contains(&format!("daemon/src/{module}"))
        })
        .collect();
    if !unmapped.is_empty() {
        broken.push(format!("every module has its section in ARCHITECTURE.md\n    broken in: {}", unmapped.join(", ")));
    }
    broken
}

#[test]
fn architecture_invariants_hold() {
    let broken = broken_invariants(&repo_root());
    assert!(broken.is_empty(), "ARCHITECTURE.md invariants broken:\n{}", broken.join("\n"));
}

/// Each check, proven by breaking it once in a copy of the code: the kinds of breakage a
/// substring check missed (`== 404`, `let Ok(..) = store… else { return }`) included.
#[test]
fn each_invariant_fails_when_broken() {
    let copy = std::env::temp_dir().join(format!("hoist-tidy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    for dir in ["daemon/src", "daemon/build.rs", "cli/src", "wire/src", "tests", "deploy"] {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(repo_root().join(dir))
            .arg(
                copy.join(dir)
                    .parent()
                    .map(|p| {
                        std::fs::create_dir_all(p).unwrap();
                        p.to_path_buf()
                    })
                    .unwrap(),
            )
            .status()
            .unwrap();
        assert!(status.success());
    }
    std::fs::copy(repo_root().join("ARCHITECTURE.md"), copy.join("ARCHITECTURE.md")).unwrap();
    assert_eq!(broken_invariants(&copy), Vec::<String>::new(), "the copy starts clean");
    // (file, text to find (empty: append), what to put instead, the invariant that must
    // then be broken)
    let breaks: &[(&str, &str, &str, &str)] = &[
        ("daemon/src/build.rs", "", "fn sneaky() -> Option<std::ffi::OsString> { std::env::var_os(\"X\") }", "config.rs is the only place"),
        ("daemon/src/stack.rs", "", "fn sneaky() { let _ = std::process::Command::new(\"git\"); }", "receive.rs is the only module that runs git"),
        ("daemon/src/build.rs", "", "fn sneaky(helm: &str) { let _ = tokio::process::Command::new(helm); }", "start programs"),
        ("daemon/src/image_watch.rs", "pub async fn poll_app(&self, app: &AppName) {", "pub async fn poll_app(&self, app: &AppName) {\n        let Ok(_apps) = self.store.apps() else { return };", "a store write is never dropped silently"),
        ("daemon/src/dev.rs", "", "fn sneaky(store: &crate::store::Store) { let _ = store; }", "dev.rs (hoist dev's working trees)"),
        ("daemon/src/target.rs", "pub mod docker;", "pub mod docker;\ntype Leak = kube::Error;", "target seam names no implementation"),
        ("daemon/src/apps.rs", "pub type Result<T, E = Error>", "fn leak(status: u16) -> bool { status == 404 }\npub type Result<T, E = Error>", "the apps service knows no HTTP status codes"),
        ("daemon/src/intake.rs", "let build = self.store.create_build(&app.name, commit, git_ref, audit)?;", "let Ok(build) = self.store.create_build(&app.name, commit, git_ref, audit) else { return Err(Error::Internal(String::new())) };", "a store write is never dropped silently"),
        ("daemon/src/api.rs", "Ok(Json(state.apps.list(&caller)?))", "Ok(Json(state.apps.store.apps().map(|_| Vec::new()).unwrap_or_default()))", "the API's handlers make no store call"),
        ("daemon/src/apps.rs", "Ok(wire::Config { version, vars, secret })", "let _ = serde_json::json!({}); Ok(wire::Config { version, vars, secret })", "no serde_json::json! elsewhere"),
        ("daemon/src/daemon.rs", "use crate::listener::serve;", "let _ = axum::serve;\n        use crate::listener::serve;", "every listener is served by listener::serve"),
        ("daemon/src/outside_url.rs", "pub type Result<T, E = Error>", "fn peek() { let _ = std::fs::read(\"/etc/passwd\"); }\npub type Result<T, E = Error>", "outside_url is pure"),
        ("daemon/src/apps.rs", "outside_url::check_image(image, &self.url_policy)", "crate::image_watch::parse_reference(image).map(|_| ()).ok_or(outside_url::Error::File)", "passes outside_url before it is saved"),
        ("daemon/src/rollout.rs", "use crate::target", "fn stringly() -> Result<(), String> { Ok(()) }\nuse crate::target", "pipeline, rollout and the docker target return typed errors"),
        ("daemon/src/target/docker.rs", "async fn answers(&self, upstream: SocketAddr) -> Result<(), Check> {", "async fn answers(&self, upstream: SocketAddr) -> Result<(), String> {", "pipeline, rollout and the docker target return typed errors"),
        ("daemon/src/target/kubernetes.rs", "async fn history(&self, name: &str, namespace: &str) -> Result<Vec<HistoryEntry>, HelmError> {", "async fn history(&self, name: &str, namespace: &str) -> Result<Vec<HistoryEntry>, String> {", "helm's runs are typed errors"),
        ("daemon/src/store.rs", "use rusqlite::", "use bollard::Docker as _Leak;\nuse rusqlite::", "the store knows rows"),
        ("daemon/src/build/docker.rs", "Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}", "Ok(()) => {}", "build/docker.rs (allowed, but it no longer does this"),
        ("daemon/src/build.rs", "", "type Leak = kube::Error;", "only target/kubernetes.rs (apps) and build/kubernetes.rs (build pods) talk to Kubernetes"),
        ("daemon/src/logs.rs", "//! ", "// ", "every module says what it is for"),
        ("daemon/src/api.rs", "async fn list_users(State(state): State<Arc<ApiState>>, caller: Caller)", "async fn list_users(State(state): State<Arc<ApiState>>)", "every API handler takes a Caller"),
        ("daemon/src/apps.rs", "let app = self.authorize(caller, name, Role::Viewer, \"reading releases\")?;", "let app = self.app(name)?;", "authorization is decided in the apps service"),
        ("daemon/src/ssh.rs", "", "fn sneaky(apps: &crate::apps::Apps, c: &crate::access::Caller) { let _ = apps.admin_only(c, \"x\"); }", "only the apps service decides"),
        ("daemon/src/access.rs", "", "fn sneaky() { let _ = std::fs::read(\"x\"); }", "access is pure"),
    ];
    for (file, find, replace, invariant) in breaks {
        let path = copy.join(file);
        let original = std::fs::read_to_string(&path).unwrap();
        assert!(original.contains(find), "{file} no longer has {find:?}: update this break");
        let changed =
            if find.is_empty() { format!("{original}\n{replace}\n") } else { original.replacen(find, replace, 1) };
        std::fs::write(&path, changed).unwrap();
        let broken = broken_invariants(&copy);
        std::fs::write(&path, &original).unwrap();
        assert!(
            broken.iter().any(|b| b.contains(invariant)),
            "breaking {file} ({replace:?}) should break {invariant:?}; broken: {broken:#?}"
        );
    }
    std::fs::remove_dir_all(&copy).unwrap();
}

/// The CLI is a thin client: `cargo tree` of its package shows none of the daemon's
/// heavy crates (it once linked bollard, kube, git2 and SQLite to use three items).
#[test]
fn the_cli_builds_without_the_daemons_crates() {
    let tree = std::process::Command::new(env!("CARGO"))
        .args(["tree", "--locked", "--offline", "-p", "hoist-cli", "-e", "normal,build", "--prefix", "none"])
        .current_dir(repo_root())
        .output()
        .expect("cargo runs");
    assert!(tree.status.success(), "cargo tree: {}", String::from_utf8_lossy(&tree.stderr));
    let text = String::from_utf8_lossy(&tree.stdout);
    let crates: Vec<&str> = text.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(crates.contains(&"hoist-wire") && crates.contains(&"reqwest"), "{text}");
    let heavy: Vec<&str> =
        ["hoist", "bollard", "kube", "kube-client", "git2", "libgit2-sys", "rusqlite", "oci-client", "k8s-openapi"]
            .into_iter()
            .filter(|heavy| crates.contains(heavy))
            .collect();
    assert!(heavy.is_empty(), "the CLI depends on {heavy:?}");
}

/// No pod hoist creates mounts the Docker socket or runs privileged: not the build pods,
/// not the apps' pods, not hoistd's own (its chart). The integration test checks the
/// pods that ran; this checks every manifest hoist writes, so a change cannot add one.
#[test]
fn no_pod_hoist_creates_mounts_the_docker_socket_or_runs_privileged() {
    let root = repo_root();
    let mut files = vec![root.join("daemon/src/build/kubernetes.rs"), root.join("daemon/src/target/kubernetes.rs")];
    for chart in ["deploy/chart/templates", "deploy/helm/hoistd/templates"] {
        for entry in std::fs::read_dir(root.join(chart)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    files.push(root.join("deploy/helm/hoistd/values.yaml"));
    let mut broken = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap().replace(char::is_whitespace, "");
        for (bad, what) in [
            ("docker.sock", "names the Docker socket"),
            ("\"privileged\":true", "runs privileged"),
            ("privileged:true", "runs privileged"),
            ("hostPath", "mounts a host path"),
            ("hostNetwork", "uses the host's network"),
            ("allowPrivilegeEscalation:true", "allows privilege escalation"),
            ("\"allowPrivilegeEscalation\":true", "allows privilege escalation"),
        ] {
            if text.contains(bad) {
                broken.push(format!("{} {what}", file.display()));
            }
        }
    }
    let pods =
        std::fs::read_to_string(root.join("daemon/src/build/kubernetes.rs")).unwrap().replace(char::is_whitespace, "");
    for needed in
        ["\"privileged\":false", "\"allowPrivilegeEscalation\":false", "\"drop\":[\"ALL\"]", "\"runAsNonRoot\":true"]
    {
        if !pods.contains(needed) {
            broken.push(format!("build pods lost {needed}"));
        }
    }
    assert!(broken.is_empty(), "the no-Docker-socket invariant is broken:\n{}", broken.join("\n"));
}
