//! Redaction of secrets in locations (connection strings, URLs).
//!
//! Every location that reaches stdout, stderr, a record, a manifest or a file
//! name goes through [`redact`] first.

const HIDDEN: &str = "***";

/// `location` with any password replaced by `***`.
///
/// Handles URLs (`postgres://user:secret@host/db`, any scheme and case),
/// `password=` in a URL query, and libpq keyword strings (`host=x
/// password=secret`, `password = 'a b'`), the key in any case.
pub fn redact(location: &str) -> String {
    redact_key_value(&redact_userinfo(location))
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

fn redact_key_value(location: &str) -> String {
    const KEY: &str = "password";
    let lower = location.to_ascii_lowercase();
    let bytes = location.as_bytes();
    let mut out = String::with_capacity(location.len());
    let mut done = 0;
    let mut from = 0;
    while let Some(found) = lower[from..].find(KEY) {
        let pos = from + found;
        from = pos + KEY.len();
        let at_boundary = pos == 0 || matches!(bytes[pos - 1], b' ' | b'\t' | b'?' | b'&' | b';');
        let mut i = from;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        if !at_boundary || bytes.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
            i += 1;
        }
        let value_end = if bytes.get(i) == Some(&b'\'') {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'\'' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            (j + 1).min(bytes.len())
        } else {
            lower[i..]
                .find([' ', '\t', '&', ';', '#'])
                .map_or(bytes.len(), |end| i + end)
        };
        out.push_str(&location[done..i]);
        out.push_str(HIDDEN);
        done = value_end;
        from = value_end;
    }
    out.push_str(&location[done..]);
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
    fn keyword_strings_in_any_case_and_spacing_are_hidden() {
        assert_eq!(
            redact("host=db PASSWORD=hunter2 user=x"),
            "host=db PASSWORD=*** user=x"
        );
        assert_eq!(
            redact("host=db Password = 'it\\'s x' user=x"),
            "host=db Password = *** user=x"
        );
        assert_eq!(
            redact("password=a\tpassword= b"),
            "password=***\tpassword= ***"
        );
        assert_eq!(
            redact("POSTGRES://App:s3cret@db/app"),
            "POSTGRES://App:***@db/app"
        );
    }

    #[test]
    fn password_like_words_inside_values_are_left_alone() {
        assert_eq!(redact("dbname=mypassword=x"), "dbname=mypassword=x");
    }
}
