//! Root certificates: one bundle file, read once.
//!
//! Both HTTPS stacks (the AWS SDK's and reqwest's) find the platform's roots through
//! `rustls-native-certs`. Unless told otherwise, it reads the bundle file *and* opens every
//! file of the certificate directory (about 150 on Debian) at each cold start. When
//! `SSL_CERT_FILE` names a file, it reads that file alone. [`use_one_root_bundle`] points it at
//! the platform's bundle before anything starts.

/// Bundle files, most likely first: Amazon Linux 2023 (the `provided.al2023` Lambda runtime)
/// and Fedora; Debian, Ubuntu and Alpine; macOS and the BSDs.
pub const BUNDLE_FILES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
];

/// The bundle to use when the environment names none: the first of `candidates` that exists.
pub fn pick_bundle<'a>(
    cert_file: Option<&str>,
    cert_dir: Option<&str>,
    candidates: &[&'a str],
    exists: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    if cert_file.is_some() || cert_dir.is_some() {
        return None;
    }
    candidates.iter().copied().find(|path| exists(path))
}

/// Sets `SSL_CERT_FILE` to the platform's bundle unless `SSL_CERT_FILE` or `SSL_CERT_DIR` is
/// set. Call it first in `main`, before the async runtime starts threads: changing the
/// environment is only sound while one thread runs.
pub fn use_one_root_bundle() {
    let file = std::env::var("SSL_CERT_FILE").ok();
    let dir = std::env::var("SSL_CERT_DIR").ok();
    if let Some(bundle) = pick_bundle(file.as_deref(), dir.as_deref(), BUNDLE_FILES, |p| {
        std::path::Path::new(p).is_file()
    }) {
        std::env::set_var("SSL_CERT_FILE", bundle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_wins_then_the_first_bundle_found() {
        let all = |_: &str| true;
        assert_eq!(pick_bundle(Some("/x.pem"), None, BUNDLE_FILES, all), None);
        assert_eq!(pick_bundle(None, Some("/certs"), BUNDLE_FILES, all), None);
        assert_eq!(
            pick_bundle(None, None, BUNDLE_FILES, |p| p.starts_with("/etc/ssl")),
            Some("/etc/ssl/certs/ca-certificates.crt")
        );
        assert_eq!(pick_bundle(None, None, BUNDLE_FILES, |_| false), None);
    }
}
