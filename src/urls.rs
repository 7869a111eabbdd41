//! URLs as logs and errors may show them: without the credentials they
//! can carry (a webhook's `https://user:pw@host/hook?token=...`, a
//! PostgreSQL URL's password).

/// A URL as logs and errors show it: scheme, host and path; no user,
/// password, query or fragment.
pub fn url_without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    match rest.contains('/') {
        true => format!("{scheme}://{host}/{path}"),
        false => format!("{scheme}://{host}"),
    }
}

/// A database URL with its password (if any) replaced by `***`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let mut redacted = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{hosts}"),
            None => format!("{scheme}://{userinfo}@{hosts}"),
        },
        None => format!("{scheme}://{authority}"),
    };
    // A password may also come as a query parameter.
    let mut query = Vec::new();
    let (path, params) = match tail.split_once('?') {
        Some((path, params)) => (path, Some(params)),
        None => (tail, None),
    };
    redacted.push_str(path);
    if let Some(params) = params {
        for pair in params.split('&') {
            match pair.split_once('=') {
                Some(("password", _)) => query.push("password=***".to_owned()),
                _ => query.push(pair.to_owned()),
            }
        }
        redacted.push('?');
        redacted.push_str(&query.join("&"));
    }
    redacted
}
