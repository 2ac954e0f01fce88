//! Host names as a mesh sees them: short names, `name.namespace`, FQDNs and wildcards.

/// The cluster DNS suffix every Service name lives under.
pub const CLUSTER_SUFFIX: &str = "svc.cluster.local";

/// Splits an optional `:port` off a request host (`reviews:9080`).
pub(crate) fn split_port(host: &str) -> (&str, Option<u16>) {
    if let Some((name, port)) = host.rsplit_once(':')
        && let Ok(p) = port.parse::<u16>()
    {
        return (name, Some(p));
    }
    (host, None)
}

/// The fully-qualified form of `host` written in (or requested from) namespace
/// `ns`: `reviews` and `reviews.<ns>` and `reviews.<ns>.svc` all become
/// `reviews.<ns>.svc.cluster.local`. Wildcards and other names are kept as
/// written (lower-cased, without a trailing dot).
pub fn qualify(host: &str, ns: &str) -> String {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if h == "*" || h.starts_with("*.") {
        return h;
    }
    let parts: Vec<&str> = h.split('.').collect();
    match parts.as_slice() {
        [_] => format!("{h}.{ns}.{CLUSTER_SUFFIX}"),
        [_, n] if *n == ns => format!("{h}.{CLUSTER_SUFFIX}"),
        [_, _, "svc"] => format!("{h}.cluster.local"),
        _ => h,
    }
}

/// FQDN of Service `name` in namespace `ns`.
pub fn service_fqdn(name: &str, ns: &str) -> String {
    format!("{name}.{ns}.{CLUSTER_SUFFIX}")
}

/// The Service name an FQDN designates in namespace `ns`, if it is one.
pub(crate) fn service_name<'a>(fqdn: &'a str, ns: &str) -> Option<&'a str> {
    let name = fqdn.strip_suffix(CLUSTER_SUFFIX)?.strip_suffix('.')?;
    let name = name.strip_suffix(ns)?.strip_suffix('.')?;
    (!name.is_empty() && !name.contains('.')).then_some(name)
}

/// How specifically a host pattern matches a name: an exact name beats any
/// wildcard, a longer wildcard suffix beats a shorter one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Specificity {
    Wildcard(usize),
    Exact,
}

/// Does the (qualified) pattern match the (qualified) name?
pub(crate) fn matches(pattern: &str, fqdn: &str) -> Option<Specificity> {
    if pattern == fqdn {
        return Some(Specificity::Exact);
    }
    if pattern == "*" {
        return Some(Specificity::Wildcard(0));
    }
    let suffix = pattern.strip_prefix('*')?;
    // `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
    (suffix.starts_with('.') && fqdn.len() > suffix.len() && fqdn.ends_with(suffix))
        .then_some(Specificity::Wildcard(suffix.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_partial_names_qualify_in_the_namespace() {
        assert_eq!(
            qualify("reviews", "bookinfo"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            qualify("reviews.bookinfo", "bookinfo"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            qualify("reviews.bookinfo.svc", "x"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            qualify("Reviews.Bookinfo.svc.cluster.local.", "x"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(qualify("example.com", "bookinfo"), "example.com");
        assert_eq!(qualify("*", "bookinfo"), "*");
        assert_eq!(
            qualify("*.bookinfo.svc.cluster.local", "x"),
            "*.bookinfo.svc.cluster.local"
        );
    }

    #[test]
    fn ports_split_off() {
        assert_eq!(split_port("reviews:9080"), ("reviews", Some(9080)));
        assert_eq!(split_port("reviews"), ("reviews", None));
        assert_eq!(split_port("reviews:http"), ("reviews:http", None));
    }

    #[test]
    fn service_names_come_back_only_from_their_namespace() {
        assert_eq!(
            service_name("reviews.default.svc.cluster.local", "default"),
            Some("reviews")
        );
        assert_eq!(
            service_name("reviews.other.svc.cluster.local", "default"),
            None
        );
        assert_eq!(service_name("example.com", "default"), None);
        assert_eq!(
            service_name("a.b.default.svc.cluster.local", "default"),
            None
        );
    }

    #[test]
    fn wildcards_match_by_suffix_and_rank_below_exact() {
        let fq = "reviews.default.svc.cluster.local";
        assert_eq!(matches(fq, fq), Some(Specificity::Exact));
        assert_eq!(matches("*", fq), Some(Specificity::Wildcard(0)));
        assert_eq!(
            matches("*.default.svc.cluster.local", fq),
            Some(Specificity::Wildcard(".default.svc.cluster.local".len()))
        );
        assert_eq!(matches("*.other.svc.cluster.local", fq), None);
        assert_eq!(matches("*.example.com", "example.com"), None);
        assert!(Specificity::Exact > Specificity::Wildcard(100));
        assert!(Specificity::Wildcard(10) > Specificity::Wildcard(2));
    }
}
