//! Redaction of secrets in locations (connection strings, URLs).
//!
//! Every location that reaches stdout, stderr, a record, a manifest or a file
//! name goes through [`redact`] first.

const HIDDEN: &str = "***";

/// `location` with any password replaced by `***`.
///
/// Handles URLs (`postgres://user:secret@host/db`), `password=` in a URL
/// query, and key/value connection strings (`host=x password=secret`).
pub fn redact(location: &str) -> String {
    let mut out = redact_userinfo(location);
    for key in ["password=", "PASSWORD="] {
        out = redact_key_value(&out, key);
    }
    out
}

fn redact_userinfo(location: &str) -> String {
    let Some(scheme_end) = location.find("://") else {
        return location.to_owned();
    };
    let rest = &location[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return location.to_owned();
    };
    let userinfo = &authority[..at];
    let Some(colon) = userinfo.find(':') else {
        return location.to_owned();
    };
    format!(
        "{}{}:{HIDDEN}{}",
        &location[..scheme_end + 3],
        &userinfo[..colon],
        &rest[at..]
    )
}

fn redact_key_value(location: &str, key: &str) -> String {
    let mut out = String::with_capacity(location.len());
    let mut rest = location;
    while let Some(pos) = rest.find(key) {
        let at_boundary = pos == 0 || matches!(rest.as_bytes()[pos - 1], b' ' | b'?' | b'&' | b';');
        out.push_str(&rest[..pos + key.len()]);
        rest = &rest[pos + key.len()..];
        if !at_boundary {
            continue;
        }
        let value_end = if let Some(quoted) = rest.strip_prefix('\'') {
            quoted.find('\'').map_or(rest.len(), |end| end + 2)
        } else {
            rest.find([' ', '&', ';', '#']).unwrap_or(rest.len())
        };
        out.push_str(HIDDEN);
        rest = &rest[value_end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn url_password_is_hidden() {
        assert_eq!(
            redact("postgres://app:s3cr%40t@db.local:5432/app?sslmode=require"),
            "postgres://app:***@db.local:5432/app?sslmode=require"
        );
    }

    #[test]
    fn url_without_password_is_unchanged() {
        assert_eq!(
            redact("postgres://app@localhost/app"),
            "postgres://app@localhost/app"
        );
        assert_eq!(redact("/srv/data"), "/srv/data");
    }

    #[test]
    fn query_and_keyword_passwords_are_hidden() {
        assert_eq!(
            redact("postgres://localhost/app?user=x&password=hunter2&sslmode=disable"),
            "postgres://localhost/app?user=x&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("host=/tmp password='a b' dbname=app"),
            "host=/tmp password=*** dbname=app"
        );
    }

    #[test]
    fn password_like_words_inside_values_are_left_alone() {
        assert_eq!(redact("dbname=mypassword=x"), "dbname=mypassword=x");
    }
}
