//! Who to tell and what to say: pure functions over the job's meta_data, the stored pull and
//! the configured templates.

use crate::domain::pull_data::PullSummary;
use serde_json::Value;

/// Where meta_data keeps contact details (keys tried in order).
#[derive(Debug, Clone)]
pub struct ContactKeys {
    pub email: Vec<String>,
    pub phone: Vec<String>,
    pub first_name: Vec<String>,
}

impl Default for ContactKeys {
    fn default() -> Self {
        Self {
            email: vec!["email".into()],
            phone: vec!["phone".into(), "mobile_phone".into()],
            first_name: vec!["first_name".into()],
        }
    }
}

/// How to reach a consumer. Personal data: `Debug` shows only which fields are known.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub email: Option<String>,
    /// E.164 (`+18885550000`).
    pub phone: Option<String>,
    pub first_name: Option<String>,
}

impl std::fmt::Debug for Contact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Contact")
            .field("email", &self.email.is_some())
            .field("phone", &self.phone.is_some())
            .finish_non_exhaustive()
    }
}

fn first_str(meta: Option<&Value>, keys: &[String]) -> Option<String> {
    let obj = meta?.as_object()?;
    keys.iter()
        .filter_map(|k| obj.get(k).and_then(Value::as_str))
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A US 10-digit number (Canopy's format) becomes `+1...`; `+...` numbers are kept; anything
/// else is not a phone number we can text.
pub fn to_e164(raw: &str) -> Option<String> {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if raw.trim_start().starts_with('+') && (8..=15).contains(&digits.len()) {
        return Some(format!("+{digits}"));
    }
    match digits.len() {
        10 => Some(format!("+1{digits}")),
        11 if digits.starts_with('1') => Some(format!("+{digits}")),
        _ => None,
    }
}

fn plausible_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty() && domain.contains('.') && !s.contains(char::is_whitespace)
}

/// Contact details: meta_data first (the integrator's own record of the user), then the
/// stored pull's `account_email`, `email`, `mobile_phone`, `phone`, `first_name`.
pub fn resolve_contact(
    meta: Option<&Value>,
    pull: Option<&PullSummary>,
    keys: &ContactKeys,
) -> Contact {
    let email = first_str(meta, &keys.email)
        .filter(|e| plausible_email(e))
        .or_else(|| {
            let p = pull?;
            [&p.account_email, &p.email]
                .into_iter()
                .flatten()
                .find(|e| plausible_email(e))
                .cloned()
        });
    let phone = first_str(meta, &keys.phone)
        .and_then(|p| to_e164(&p))
        .or_else(|| {
            let p = pull?;
            [&p.mobile_phone, &p.phone]
                .into_iter()
                .flatten()
                .find_map(|n| to_e164(n))
        });
    let first_name =
        first_str(meta, &keys.first_name).or_else(|| pull.and_then(|p| p.first_name.clone()));
    Contact {
        email,
        phone,
        first_name,
    }
}

/// The message templates; `{first_name}`, `{carrier}` and `{link}` are replaced.
#[derive(Debug, Clone)]
pub struct Templates {
    pub email_subject: String,
    pub email_text: String,
    pub email_html: String,
    pub sms: String,
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            email_subject: "Please reconnect your {carrier} account".into(),
            email_text:
                "Hi {first_name},\n\nWe could not refresh the policies of your {carrier} account: \
                         it needs you to log in again. Reconnect here:\n\n{link}\n\n\
                         The link is personal; please do not share it.\n"
                    .into(),
            email_html: "<p>Hi {first_name},</p><p>We could not refresh the policies of your \
                         {carrier} account: it needs you to log in again.</p>\
                         <p><a href=\"{link}\">Reconnect your account</a></p>\
                         <p>The link is personal; please do not share it.</p>"
                .into(),
            sms: "Please reconnect your {carrier} account: {link}".into(),
        }
    }
}

/// The values put into a template.
#[derive(Clone)]
pub struct MessageValues<'a> {
    pub first_name: Option<&'a str>,
    pub carrier: Option<&'a str>,
    pub link: &'a str,
}

/// Escapes a value for HTML text or a double- or single-quoted attribute.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills each `{name}` of `template` that `value` knows, in one pass over the template: a value
/// is never read as a template, so a first name of `{link}` stays that text. A placeholder
/// `value` does not know stays as written.
fn fill(template: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Some((close, value(&after[..close])?)))
        {
            Some((close, filled)) => {
                out.push_str(&filled);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Fills a template; with `html`, the values are escaped for HTML.
pub fn render(template: &str, values: &MessageValues<'_>, html: bool) -> String {
    fill(template, |name| {
        let value = match name {
            "first_name" => values.first_name.unwrap_or("there"),
            "carrier" => values.carrier.unwrap_or("insurance"),
            "link" => values.link,
            _ => return None,
        };
        Some(if html {
            html_escape(value)
        } else {
            value.to_owned()
        })
    })
}

/// What a value may keep unencoded in a link: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The link to send: the integrator's template (whitelabel) with the token URL-encoded, or
/// Canopy's hosted reconnect URL.
pub fn reconnect_link(
    url_template: Option<&str>,
    reconnect_url: &str,
    token: &str,
    monitoring_id: &str,
) -> String {
    match url_template {
        Some(t) => fill(t, |name| {
            let value = match name {
                "reconnect_token" => token,
                "monitoring_id" => monitoring_id,
                _ => return None,
            };
            Some(percent_encoding::utf8_percent_encode(value, UNRESERVED).to_string())
        }),
        None => reconnect_url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary() -> PullSummary {
        PullSummary {
            account_email: Some("holder@example.com".into()),
            mobile_phone: Some("8885550000".into()),
            first_name: Some("Clark".into()),
            ..PullSummary::default()
        }
    }

    #[test]
    fn meta_data_wins_then_the_pull() {
        let keys = ContactKeys::default();
        let meta =
            json!({"email": "user@example.com", "phone": "(212) 555-0100", "first_name": "Lois"});
        let c = resolve_contact(Some(&meta), Some(&summary()), &keys);
        assert_eq!(c.email.as_deref(), Some("user@example.com"));
        assert_eq!(c.phone.as_deref(), Some("+12125550100"));
        assert_eq!(c.first_name.as_deref(), Some("Lois"));
        let c = resolve_contact(Some(&json!({"user_id": "u1"})), Some(&summary()), &keys);
        assert_eq!(c.email.as_deref(), Some("holder@example.com"));
        assert_eq!(c.phone.as_deref(), Some("+18885550000"));
        assert_eq!(c.first_name.as_deref(), Some("Clark"));
        assert_eq!(resolve_contact(None, None, &keys), Contact::default());
        let bad = json!({"email": "not-an-address", "phone": "12"});
        assert_eq!(resolve_contact(Some(&bad), None, &keys), Contact::default());
        assert!(!format!("{c:?}").contains("example.com"));
    }

    #[test]
    fn configurable_keys() {
        let keys = ContactKeys {
            email: vec!["contact_email".into()],
            ..ContactKeys::default()
        };
        let c = resolve_contact(
            Some(&json!({"contact_email": "x@example.org"})),
            None,
            &keys,
        );
        assert_eq!(c.email.as_deref(), Some("x@example.org"));
    }

    #[test]
    fn phone_numbers() {
        assert_eq!(to_e164("8885550000").as_deref(), Some("+18885550000"));
        assert_eq!(to_e164("1-888-555-0000").as_deref(), Some("+18885550000"));
        assert_eq!(
            to_e164("+44 20 7946 0958").as_deref(),
            Some("+442079460958")
        );
        assert_eq!(to_e164(""), None);
        assert_eq!(to_e164("555-0100"), None);
    }

    #[test]
    fn templates_and_links() {
        let v = MessageValues {
            first_name: Some("<Lois>"),
            carrier: None,
            link: "https://x/r?a=1&b=2",
        };
        assert_eq!(
            render("Hi {first_name}, {carrier}: {link}", &v, false),
            "Hi <Lois>, insurance: https://x/r?a=1&b=2"
        );
        assert_eq!(
            render("{first_name} {link}", &v, true),
            "&lt;Lois&gt; https://x/r?a=1&amp;b=2"
        );
        assert_eq!(
            reconnect_link(None, "https://canopy/r", "t", "m"),
            "https://canopy/r"
        );
        assert_eq!(
            reconnect_link(
                Some("https://app.example.com/reconnect?token={reconnect_token}"),
                "u",
                "a b/c",
                "m"
            ),
            "https://app.example.com/reconnect?token=a%20b%2Fc"
        );
    }

    #[test]
    fn values_are_filled_once_and_escaped_where_they_land() {
        // A consumer controls their name (and a carrier name comes from a pull): neither may
        // pull the link into another place, nor break out of the HTML.
        let v = MessageValues {
            first_name: Some("{link}<script>alert(1)</script>"),
            carrier: Some("{first_name}\" onmouseover=\"x"),
            link: "https://x/r?t={carrier}&a=1",
        };
        assert_eq!(
            render("Hi {first_name} ({carrier}): {link}", &v, false),
            "Hi {link}<script>alert(1)</script> ({first_name}\" onmouseover=\"x): \
             https://x/r?t={carrier}&a=1"
        );
        assert_eq!(
            render(
                "<p>{first_name}</p><a title=\"{carrier}\" href=\"{link}\">",
                &v,
                true
            ),
            "<p>{link}&lt;script&gt;alert(1)&lt;/script&gt;</p>\
             <a title=\"{first_name}&quot; onmouseover=&quot;x\" \
             href=\"https://x/r?t={carrier}&amp;a=1\">"
        );
        // Unknown and unclosed placeholders stay as written.
        assert_eq!(render("{unknown} {link", &v, false), "{unknown} {link");
        // A token that looks like a placeholder is encoded, not filled.
        assert_eq!(
            reconnect_link(
                Some("https://app/r?t={reconnect_token}&m={monitoring_id}"),
                "u",
                "{monitoring_id}&x=é",
                "m 1"
            ),
            "https://app/r?t=%7Bmonitoring_id%7D%26x%3D%C3%A9&m=m%201"
        );
    }
}
