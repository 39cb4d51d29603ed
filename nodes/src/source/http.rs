//! STAC JSON over HTTP: landing pages, catalogs, items and search pages, with GET and POST.
//!
//! Documents are fetched with a real HTTP client (`ureq`), not through GDAL: STAC API servers
//! such as stac-fastapi answer `HEAD` with 405, which GDAL's `/vsicurl/` takes for an empty file
//! (and caches). Pixels stay on GDAL (`/vsicurl/`, HTTP range requests).
//!
//! What every request does, as `pystac-client` does with the same servers:
//! - redirects are followed (at most [`MAX_REDIRECTS`]); a POST is sent again with its body to
//!   the new location (a search never turns into a GET without its query), and the document's
//!   own URL becomes the one redirected to, so its relative links resolve against it;
//! - `Accept-Encoding: gzip`, a user agent naming lulc and its version, the proxy of
//!   `HTTPS_PROXY`/`HTTP_PROXY`/`ALL_PROXY` (and `NO_PROXY`);
//! - a timeout per request ([`timeout`], `LULC_HTTP_TIMEOUT_SECS`, default 60 s);
//! - retries of 429, 502, 503, 504 and of dropped connections and timeouts, at most
//!   [`retries`] times (`LULC_HTTP_RETRIES`, default 4), waiting what `Retry-After` says (at most
//!   [`MAX_RETRY_AFTER`]) or else 0.5 s, 1 s, 2 s, ... A refused connection or an unknown host is
//!   not retried: the address is wrong, not busy;
//! - at most [`MAX_DOCUMENT_BYTES`] of body.
//!
//! Errors name the URL, the method, the HTTP status and the first characters of the answer.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::{MAX_DOCUMENT_BYTES, SourceError};

/// Redirects followed for one request.
pub const MAX_REDIRECTS: u32 = 10;
/// Longest wait a `Retry-After` header can ask for.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Characters of an error answer quoted in a message.
const EXCERPT_CHARS: usize = 300;

/// A request: GET, or POST with a JSON body.
#[derive(Clone, Debug, PartialEq)]
pub enum Request {
    Get(String),
    Post(String, Value),
}

impl Request {
    pub fn url(&self) -> &str {
        match self {
            Request::Get(u) | Request::Post(u, _) => u,
        }
    }

    fn method(&self) -> &'static str {
        match self {
            Request::Get(_) => "GET",
            Request::Post(..) => "POST",
        }
    }
}

/// A JSON document and the URL it was finally read from (after redirects).
#[derive(Debug)]
pub struct Fetched {
    pub url: String,
    pub doc: Value,
}

/// The user agent: `lulc/<version>`.
pub fn user_agent() -> String {
    format!("lulc/{}", env!("CARGO_PKG_VERSION"))
}

/// Seconds a request may take (`LULC_HTTP_TIMEOUT_SECS`, default 60).
pub fn timeout() -> Duration {
    Duration::from_secs(env_u64("LULC_HTTP_TIMEOUT_SECS").unwrap_or(60).max(1))
}

/// Retries of a failed request (`LULC_HTTP_RETRIES`, default 4).
pub fn retries() -> u32 {
    env_u64("LULC_HTTP_RETRIES").map_or(4, |n| n.min(20) as u32)
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

/// One agent per process: its connections are kept and reused across documents.
fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .user_agent(user_agent())
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout()))
            .timeout_connect(Some(Duration::from_secs(30)))
            .build()
            .into()
    })
}

/// What one attempt gave.
enum Attempt {
    Done(Fetched),
    Redirect(String),
    /// Worth another try, after the wait the server asked for (if any).
    Retry(SourceError, Option<Duration>),
    Fail(SourceError),
}

/// Fetch a JSON document, following redirects and retrying what may pass.
pub fn fetch_json(req: &Request) -> Result<Fetched, SourceError> {
    fetch_json_with(req, &[])
}

/// [`fetch_json`] with extra request headers (`name`, `value`), sent on every attempt.
pub fn fetch_json_with(req: &Request, headers: &[(&str, &str)]) -> Result<Fetched, SourceError> {
    let mut req = req.clone();
    let mut redirects = 0;
    let mut attempt = 0;
    loop {
        match attempt_once(&req, headers) {
            Attempt::Done(f) => return Ok(f),
            Attempt::Redirect(to) => {
                redirects += 1;
                if redirects > MAX_REDIRECTS {
                    return Err(SourceError::Read {
                        location: req.url().to_string(),
                        detail: format!("more than {MAX_REDIRECTS} redirects"),
                    });
                }
                req = match req {
                    Request::Get(_) => Request::Get(to),
                    Request::Post(_, body) => Request::Post(to, body),
                };
            }
            Attempt::Retry(e, wait) => {
                if attempt >= retries() {
                    return Err(e);
                }
                let backoff = Duration::from_millis(500 << attempt.min(6));
                std::thread::sleep(wait.unwrap_or(backoff).min(MAX_RETRY_AFTER));
                attempt += 1;
            }
            Attempt::Fail(e) => return Err(e),
        }
    }
}

fn attempt_once(req: &Request, headers: &[(&str, &str)]) -> Attempt {
    let url = req.url();
    let read_err = |detail: String| SourceError::Read {
        location: url.to_string(),
        detail,
    };
    let accept = "application/geo+json, application/json";
    let sent = match req {
        Request::Get(u) => {
            let mut r = agent().get(u).header("Accept", accept);
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.call()
        }
        Request::Post(u, body) => {
            let mut r = agent()
                .post(u)
                .header("Accept", accept)
                .header("Content-Type", "application/json");
            for (k, v) in headers {
                r = r.header(*k, *v);
            }
            r.send(serde_json::to_vec(body).expect("a JSON value serialises"))
        }
    };
    let mut resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let e2 = read_err(transport_words(&e));
            return match e {
                ureq::Error::HostNotFound | ureq::Error::BadUri(_) => Attempt::Fail(e2),
                ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                    Attempt::Fail(e2)
                }
                ureq::Error::Io(_) | ureq::Error::Timeout(_) | ureq::Error::ConnectionFailed => {
                    Attempt::Retry(e2, None)
                }
                _ => Attempt::Fail(e2),
            };
        }
    };
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if (300..400).contains(&status) && status != 304 {
        return match header("location") {
            Some(to) => Attempt::Redirect(super::join_url(url, &to)),
            None => Attempt::Fail(read_err(format!(
                "{} answered {status} without a `Location` to go to",
                req.method()
            ))),
        };
    }
    let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT_BYTES)
        .read_to_vec();
    let body = match body {
        Ok(b) => b,
        Err(ureq::Error::BodyExceedsLimit(_)) => {
            return Attempt::Fail(read_err(format!(
                "the answer is larger than {} MiB, the most a STAC document may be",
                MAX_DOCUMENT_BYTES >> 20
            )));
        }
        Err(e) => return Attempt::Retry(read_err(transport_words(&e)), None),
    };
    if !(200..300).contains(&status) {
        let detail = format!(
            "{} answered HTTP {status}{}",
            req.method(),
            excerpt_suffix(&body)
        );
        return match status {
            404 | 410 => Attempt::Fail(SourceError::NotFound {
                location: url.to_string(),
                context: format!(" (the server answered HTTP {status})"),
            }),
            429 | 502 | 503 | 504 => Attempt::Retry(read_err(detail), retry_after),
            _ => Attempt::Fail(read_err(detail)),
        };
    }
    match serde_json::from_slice(&body) {
        Ok(doc) => Attempt::Done(Fetched {
            url: url.to_string(),
            doc,
        }),
        Err(e) => Attempt::Fail(SourceError::Parse {
            what: "STAC document",
            location: url.to_string(),
            detail: format!(
                "{e}{}",
                if body.is_empty() {
                    " (the answer was empty)".to_string()
                } else {
                    excerpt_suffix(&body)
                }
            ),
        }),
    }
}

/// `Retry-After` as seconds (an HTTP date is not worth a clock comparison here: wait 1 s).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Some(Duration::from_secs_f64(s)),
        Ok(_) => None,
        Err(_) => Some(Duration::from_secs(1)),
    }
}

/// `: "first characters of the answer"`, whitespace collapsed.
fn excerpt_suffix(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() {
        return String::new();
    }
    let joined = words.join(" ");
    let mut cut: String = joined.chars().take(EXCERPT_CHARS).collect();
    if cut.len() < joined.len() {
        cut.push_str("...");
    }
    format!(": \"{cut}\"")
}

/// A transport failure in words.
fn transport_words(e: &ureq::Error) -> String {
    match e {
        ureq::Error::HostNotFound => "the host name is not known (DNS)".to_string(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "the connection was refused (nothing listens there)".to_string()
        }
        ureq::Error::Timeout(_) => format!(
            "no answer within {} s (LULC_HTTP_TIMEOUT_SECS)",
            timeout().as_secs()
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_and_excerpts_read_as_users_see_them() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(parse_retry_after("-3"), None);
        assert_eq!(excerpt_suffix(b"  "), "");
        assert_eq!(
            excerpt_suffix(b"{\"code\":\n  \"x\"}"),
            ": \"{\"code\": \"x\"}\""
        );
        let long = "a ".repeat(1000);
        let e = excerpt_suffix(long.as_bytes());
        assert!(e.ends_with("...\"") && e.len() < EXCERPT_CHARS + 10, "{e}");
        assert!(user_agent().starts_with("lulc/"));
    }
}
