//! Property tests of every parser that takes outside input: app names, Host headers,
//! Procfiles, `.s2i/environment`, the pre-receive hook's input, webhook bodies, config
//! files, runtime version files, log masking. Each runs 10,000 generated cases in the
//! normal test run (`PROPTEST_CASES=1000000 cargo test -p hoist --lib proptests` for more).
//!
//! The properties: nothing panics, whatever the input; what is accepted obeys the rules
//! the rest of hoist relies on (an app name is a DNS label, a process type has no
//! whitespace, a masked line contains no secret).

use crate::app::AppName;
use proptest::prelude::*;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(10_000);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

/// Text that looks like what the parsers see: ASCII, separators, some Unicode.
fn texty() -> impl Strategy<Value = String> {
    prop_oneof![".{0,200}", "[a-zA-Z0-9 :=#._/\\-\t\r\n\"']{0,200}", "([a-z]{1,8}: [a-z /$&;|]{0,30}\n){0,8}",]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn app_names_are_dns_labels_or_refused_with_a_short_message(name in prop_oneof![".{0,60}", "[a-z][a-z0-9-]{0,40}"]) {
        match AppName::parse(&name) {
            Ok(app) => {
                prop_assert_eq!(app.as_str(), name.as_str());
                prop_assert!(!name.is_empty() && name.len() <= crate::app::MAX_APP_NAME_LEN);
                prop_assert!(name.starts_with(|c: char| c.is_ascii_lowercase()));
                prop_assert!(!name.ends_with('-'));
                prop_assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            }
            Err(error) => prop_assert!(error.to_string().len() < 400, "the message stays short"),
        }
    }

    #[test]
    fn host_headers_name_a_valid_app_case_insensitively(host in prop_oneof![
        ".{0,80}",
        "[a-zA-Z0-9.-]{0,40}\\.(localhost|LOCALHOST|LocalHost)(:[0-9]{1,5})?\\.?",
    ]) {
        let app = crate::router::app_from_host(&host, "localhost");
        if let Some(app) = &app {
            prop_assert!(AppName::parse(app.as_str()).is_ok());
            prop_assert!(host.to_ascii_lowercase().starts_with(app.as_str()));
        }
        prop_assert_eq!(crate::router::app_from_host(&host.to_ascii_uppercase(), "localhost"), app.clone());
        prop_assert_eq!(crate::router::app_from_host(&host.to_ascii_lowercase(), "localhost"), app);
    }

    #[test]
    fn procfiles_give_process_types_without_whitespace_and_one_line_commands(text in texty()) {
        for (kind, command) in crate::buildpack::procfile_processes(&text) {
            prop_assert!(!kind.is_empty() && !kind.contains(char::is_whitespace) && !kind.contains(':'), "{kind:?}");
            prop_assert!(!command.trim().is_empty() && !command.contains('\n'), "{command:?}");
        }
        if let Some(web) = crate::buildpack::procfile_web_command(&text) {
            prop_assert!(!web.contains('\n'));
        }
    }

    #[test]
    fn s2i_environment_gives_names_without_separators(text in texty()) {
        for (name, value) in crate::buildpack::parse_s2i_environment(&text) {
            prop_assert!(!name.is_empty() && !name.contains('=') && !name.contains(char::is_whitespace), "{name:?}");
            prop_assert!(!value.contains('\n'), "{value:?}");
        }
    }

    #[test]
    fn the_hooks_input_gives_ref_updates_with_one_word_names(input in prop_oneof![
        texty(),
        "([0-9a-f]{40} [0-9a-f]{40} refs/heads/[a-z/]{1,20}\n){0,10}",
    ]) {
        for update in crate::receive::parse_ref_updates(&input) {
            prop_assert!(!update.name.is_empty() && !update.name.contains(char::is_whitespace), "{update:?}");
            prop_assert!(!update.old.contains(char::is_whitespace) && !update.new.contains(char::is_whitespace));
        }
    }

    #[test]
    fn webhook_bodies_of_any_shape_are_parsed_or_refused(body in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "\\{\"ref\": \"[a-z/]{0,20}\", \"after\": \"[0-9a-f]{0,40}\"(, \"repository\": \\{\\})?\\}".prop_map(String::into_bytes),
    ], host in prop_oneof![
        Just(crate::webhook::Host::GitHub), Just(crate::webhook::Host::GitLab),
        Just(crate::webhook::Host::Gitea), Just(crate::webhook::Host::Generic),
    ], event in prop_oneof![Just("push"), Just("Push Hook"), Just("ping"), Just("x")]) {
        let envelope = crate::webhook::Envelope { host, event: event.to_string(), delivery: None };
        let _ = crate::webhook::parse(&envelope, &body);
    }

    #[test]
    fn config_files_are_read_or_refused(text in prop_oneof![
        texty(),
        "(\\[(api|build|rollout|receive|registry|tls|kubernetes)\\]\n([a-z_]{1,16} = (\"[a-z0-9:./]{0,20}\"|[0-9]{1,6}|true)\n){0,4}){0,4}",
    ]) {
        let _ = crate::config::Config::from_toml(&text);
    }

    #[test]
    fn version_files_are_read_or_ignored(text in texty(), format in 0usize..8) {
        use crate::runtime_version::FileFormat::*;
        let format = [Plain, RuntimeTxt, RequiresPython, PackageJsonEngines, SystemProperties, GoMod, RustToolchain, Plain][format];
        let _ = crate::runtime_version::read_request(format, "file", &text);
    }

    #[test]
    fn masked_lines_never_contain_a_secret(
        line in ".{0,120}",
        secrets in proptest::collection::vec("[a-zA-Z0-9]{4,12}", 0..4),
        inject in any::<bool>(),
    ) {
        let line = match (inject, secrets.first()) {
            (true, Some(secret)) => format!("{line}{secret}{line}"),
            _ => line,
        };
        let masked = crate::logs::Secrets::new(secrets.clone()).mask(&line);
        for secret in &secrets {
            prop_assert!(!masked.contains(secret.as_str()) || crate::logs::MASK.contains(secret.as_str()),
                "{secret:?} survives in {masked:?}");
        }
    }

    #[test]
    fn accepted_repo_urls_carry_no_credentials_and_name_no_local_host(url in prop_oneof![
        ".{0,80}",
        "(https?|git|ssh|file|ext|fd)://([a-z0-9%:_]{0,12}@)?(\\[[0-9a-f:.]{2,20}\\]|[a-z0-9.-]{1,20}|[0-9x.]{1,16})(:[0-9]{1,5})?/[a-z./]{0,20}",
    ]) {
        let policy = crate::outside_url::Policy { allow_local: false, own_registry: "127.0.0.1:5000".into() };
        if crate::outside_url::check_repo_url(&url, &policy).is_ok() {
            let (scheme, rest) = url.split_once("://").expect("an accepted URL has a scheme");
            prop_assert!(matches!(scheme, "https" | "http" | "git" | "ssh"), "{url}");
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            if let Some((user, _)) = authority.rsplit_once('@') {
                prop_assert!(scheme == "ssh" && !user.contains([':', '%']), "credentials accepted: {url}");
            }
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            let host = host.strip_prefix('[').map_or_else(|| host.split(':').next().unwrap_or(""), |h| h.split(']').next().unwrap_or(""));
            prop_assert!(!crate::outside_url::is_local_host(host), "local host accepted: {url}");
        }
    }
}
