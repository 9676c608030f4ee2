//! Where hoistd may be sent to fetch from: an app's repository URL (webhook builds) and
//! the image an app follows. Both come from users, and hoistd runs as root next to
//! every app's repository, its registry and the machine's metadata service, so by
//! default it refuses `file://` URLs, local paths, credentials in URLs, and hosts on
//! loopback or link-local addresses. An operator who keeps Git hosts or registries on
//! this machine allows them with `receive.allow_local_urls`.
//!
//! Pure: parsing and policy, no network, except [`check_resolved`], which asks DNS once
//! more right before a fetch (a name may point at 127.0.0.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why a URL or image reference is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("invalid repo URL {0:?}: give an https://, http://, git:// or ssh:// URL")]
    Scheme(String),
    #[error("the repo URL {0:?} carries credentials: give the URL without them and the token as repo_token (`hoist apps set-repo APP URL --repo-token T`), which is never shown")]
    Credentials(String),
    #[error("{what} {host:?} is on this machine or its link-local network (loopback, link-local or unspecified address), which hoistd does not fetch from unless receive.allow_local_urls is set")]
    Local { what: &'static str, host: String },
    #[error("file:// URLs and local paths are refused: hoistd runs as root and would read any repository on this machine; set receive.allow_local_urls to allow them")]
    File,
    #[error("the image reference {0:?} has an empty, '.' or '..' path segment")]
    DotSegment(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the operator allows.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// `file://` URLs and loopback or link-local hosts are allowed.
    pub allow_local: bool,
    /// hoistd's own registry (`host:port`): always allowed for images.
    pub own_registry: String,
}

/// The parts of a URL this policy looks at.
#[derive(Debug, PartialEq, Eq)]
struct Parsed<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
}

fn parse(url: &str) -> Option<Parsed<'_>> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let host = if let Some(bracketed) = host_port.strip_prefix('[') {
        bracketed.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    Some(Parsed { scheme, userinfo, host })
}

/// Checks a repository URL webhooks fetch from.
pub fn check_repo_url(url: &str, policy: &Policy) -> Result<()> {
    let shown = || url.chars().take(100).collect::<String>();
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) || url.len() > 2048 {
        return Err(Error::Scheme(shown()));
    }
    let Some(parsed) = parse(url) else {
        // Local paths and scp-like `host:path` forms.
        return if url.starts_with('/') || url.starts_with('.') {
            Err(Error::File)
        } else {
            Err(Error::Scheme(shown()))
        };
    };
    match parsed.scheme {
        "https" | "http" | "git" | "ssh" => {}
        "file" if policy.allow_local => return Ok(()),
        "file" => return Err(Error::File),
        _ => return Err(Error::Scheme(shown())),
    }
    if parsed.host.is_empty() {
        return Err(Error::Scheme(shown()));
    }
    if let Some(userinfo) = parsed.userinfo {
        // ssh names the account (`git@`), never a secret; any other user part is a
        // credential (`ghp_…@`, `user:pass@`, `user%3Apass@`) that would be shown.
        let ssh_account = parsed.scheme == "ssh" && !userinfo.contains([':', '%']);
        if !ssh_account {
            return Err(Error::Credentials(redact(url)));
        }
    }
    if !policy.allow_local && is_local_host(parsed.host) {
        return Err(Error::Local { what: "the repo host", host: parsed.host.to_string() });
    }
    Ok(())
}

/// Checks the registry host of an image an app follows (`host[:port]`), and that its
/// path has no dot segments.
pub fn check_image(reference: &str, policy: &Policy) -> Result<()> {
    let (registry, path) = reference.split_once('/').unwrap_or((reference, ""));
    if path.split('/').any(|part| part.is_empty() || part == "." || part == ".." || part.starts_with("..")) {
        return Err(Error::DotSegment(reference.chars().take(100).collect()));
    }
    if policy.allow_local || registry == policy.own_registry {
        return Ok(());
    }
    let host = parse(&format!("x://{registry}/")).map(|p| p.host.to_string()).unwrap_or_default();
    if is_local_host(&host) {
        return Err(Error::Local { what: "the image's registry", host });
    }
    Ok(())
}

/// `url` with its user part replaced, for messages.
fn redact(url: &str) -> String {
    match (url.split_once("://"), url.find('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            format!("{scheme}://***@{host}{}", path.chars().take(80).collect::<String>())
        }
        _ => url.chars().take(100).collect(),
    }
}

/// Whether `host` names this machine or its link-local network, written any way an IP
/// address can be written (decimal `2130706433`, hex `0x7f.1`, short `127.1`, IPv6,
/// IPv4-mapped IPv6) or as `localhost`.
pub fn is_local_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return true;
    }
    match parse_ip(&host) {
        Some(ip) => is_local_ip(ip),
        None => false,
    }
}

/// Loopback, link-local (169.254/16 holds cloud metadata services), unspecified.
pub fn is_local_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_local_ip(IpAddr::V4(v4)),
            None => v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80,
        },
    }
}

/// An IP address as resolvers read it: dotted IPv4 with 1–4 parts, each decimal, octal
/// (`0` prefix) or hex (`0x`), or IPv6.
fn parse_ip(host: &str) -> Option<IpAddr> {
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let numbers: Vec<u64> = parts
        .iter()
        .map(|part| {
            if let Some(hex) = part.strip_prefix("0x") {
                u64::from_str_radix(hex, 16).ok()
            } else if part.len() > 1 && part.starts_with('0') {
                u64::from_str_radix(part, 8).ok()
            } else {
                part.parse::<u64>().ok()
            }
        })
        .collect::<Option<_>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|n| *n > 255) {
        return None;
    }
    let room = 32 - 8 * leading.len() as u32;
    if *last >= 1u64 << room {
        return None;
    }
    let mut value: u64 = 0;
    for (i, n) in leading.iter().enumerate() {
        value |= n << (24 - 8 * i as u32);
    }
    Some(IpAddr::V4(Ipv4Addr::from((value | last) as u32)))
}

/// Right before a fetch: refuses a repo host whose name resolves to a local address
/// (a name can point anywhere, and change). Names that do not resolve are left for git
/// to report.
pub async fn check_resolved(url: &str, policy: &Policy) -> Result<()> {
    if policy.allow_local {
        return Ok(());
    }
    let Some(parsed) = parse(url) else { return Ok(()) };
    if parsed.host.is_empty() {
        return Ok(());
    }
    if let Ok(addresses) = tokio::net::lookup_host((parsed.host, 0)).await {
        for address in addresses {
            if is_local_ip(address.ip()) {
                return Err(Error::Local {
                    what: "the repo host",
                    host: format!("{} ({})", parsed.host, address.ip()),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> Policy {
        Policy { allow_local: false, own_registry: "127.0.0.1:5000".into() }
    }

    #[test]
    fn repo_urls() {
        let ok =
            ["https://github.com/a/b.git", "ssh://git@github.com/a/b.git", "git://git.example/x", "http://10.0.0.5/x"];
        for url in ok {
            assert_eq!(check_repo_url(url, &strict()), Ok(()), "{url}");
        }
        let cases: &[(&str, fn(&Error) -> bool)] = &[
            (
                "https://ghp_TOKEN@github.com/a/b.git",
                |e| matches!(e, Error::Credentials(shown) if !shown.contains("ghp_")),
            ),
            ("https://user%3Apass@host/x.git", |e| matches!(e, Error::Credentials(_))),
            ("https://user:pass@host/x.git", |e| matches!(e, Error::Credentials(_))),
            ("ssh://git:pw@host/x.git", |e| matches!(e, Error::Credentials(_))),
            ("file:///var/lib/hoist/repos/web1.git", |e| *e == Error::File),
            ("/var/lib/hoist/repos/web1.git", |e| *e == Error::File),
            ("ext::sh -c touch% /tmp/x", |e| matches!(e, Error::Scheme(_))),
            ("fd::17", |e| matches!(e, Error::Scheme(_))),
            ("http://169.254.169.254/latest", |e| matches!(e, Error::Local { .. })),
            ("ssh://127.0.0.1/x.git", |e| matches!(e, Error::Local { .. })),
            ("http://[::1]:8080/x", |e| matches!(e, Error::Local { .. })),
            ("http://[::ffff:127.0.0.1]/x", |e| matches!(e, Error::Local { .. })),
            ("http://2130706433/x", |e| matches!(e, Error::Local { .. })),
            ("http://0x7f.1/x", |e| matches!(e, Error::Local { .. })),
            ("http://0177.0.0.1/x", |e| matches!(e, Error::Local { .. })),
            ("git://LOCALHOST./x", |e| matches!(e, Error::Local { .. })),
            ("http://0.0.0.0:80/x", |e| matches!(e, Error::Local { .. })),
            ("http://[fe80::1]/x", |e| matches!(e, Error::Local { .. })),
        ];
        for (url, expected) in cases {
            let error = check_repo_url(url, &strict()).unwrap_err();
            assert!(expected(&error), "{url}: {error}");
        }
        let open = Policy { allow_local: true, ..strict() };
        assert_eq!(check_repo_url("file:///srv/git/x.git", &open), Ok(()));
        assert_eq!(check_repo_url("git://127.0.0.1:9418/x.git", &open), Ok(()));
        assert!(matches!(check_repo_url("https://t@127.0.0.1/x", &open), Err(Error::Credentials(_))));
    }

    #[test]
    fn images() {
        assert_eq!(check_image("127.0.0.1:5000/team/edge:latest", &strict()), Ok(()), "hoistd's own registry");
        assert_eq!(check_image("registry.example:443/team/edge:latest", &strict()), Ok(()));
        assert!(matches!(check_image("127.0.0.1:5001/team/edge", &strict()), Err(Error::Local { .. })));
        assert!(matches!(check_image("169.254.169.254/x/y", &strict()), Err(Error::Local { .. })));
        assert!(matches!(check_image("registry.example/team/../other", &strict()), Err(Error::DotSegment(_))));
        assert!(matches!(check_image("127.0.0.1:5000/../../v2/_catalog", &strict()), Err(Error::DotSegment(_))));
    }

    #[test]
    fn ip_forms() {
        assert_eq!(parse_ip("127.1"), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))));
        assert_eq!(parse_ip("10.0.0.5"), Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5))));
        assert_eq!(parse_ip("256.0.0.1"), None);
        assert_eq!(parse_ip("github.com"), None);
        assert!(!is_local_host("192.168.1.10"), "private networks are Git hosts people run");
    }
}
