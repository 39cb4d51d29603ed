//! Planetary Computer signing: its assets on Azure Blob Storage (`https://<account>.blob.core.
//! windows.net/<container>/...`) answer only hrefs that carry a SAS token, which its public token
//! endpoint hands out without an account:
//!
//! - `GET <sas>/token/<collection>` when the item names its collection, else
//!   `GET <sas>/token/<account>/<container>` (as the `planetary-computer` Python package does);
//!   `<sas>` is `PC_SDK_SAS_URL` or `https://planetarycomputer.microsoft.com/api/sas/v1`;
//! - the answer is `{"msr:expiry": "<RFC 3339>", "token": "st=...&se=...&sig=..."}`; the token is
//!   appended to the href as its query (`?` or `&`);
//! - with `PC_SDK_SUBSCRIPTION_KEY` set, it is sent as `Ocp-Apim-Subscription-Key` (higher rate
//!   limits), never logged;
//! - a token is kept per endpoint path until 5 minutes before its expiry, so a step signs its
//!   hundreds of band files with one request.
//!
//! An href that already has a `sig=` in its query, or is on another host, is left as it is.
//! Signing happens when a band file is opened (`Source::resolve`), never when items are listed:
//! a token never enters an item, a key, an output or a message (errors name the unsigned href).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use super::SourceError;
use super::http::{self, Request};
use crate::simulate::time::days_from_civil;

/// Planetary Computer's public SAS endpoint.
pub const DEFAULT_SAS_URL: &str = "https://planetarycomputer.microsoft.com/api/sas/v1";
/// A token is fetched again this long before it expires.
const MARGIN: Duration = Duration::from_secs(300);

/// Signs Planetary Computer hrefs, keeping the tokens it fetched.
pub struct Signer {
    sas_url: String,
    subscription_key: Option<String>,
    tokens: Mutex<HashMap<String, (String, SystemTime)>>,
}

impl Signer {
    pub fn new(sas_url: &str, subscription_key: Option<String>) -> Signer {
        Signer {
            sas_url: sas_url.trim_end_matches('/').to_string(),
            subscription_key,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The process's signer: `PC_SDK_SAS_URL` and `PC_SDK_SUBSCRIPTION_KEY`, as the
    /// `planetary-computer` package reads them. These are transport settings like GDAL's own
    /// variables: they decide whether a file can be read, never what it holds.
    pub fn global() -> &'static Signer {
        static SIGNER: OnceLock<Signer> = OnceLock::new();
        SIGNER.get_or_init(|| {
            let var = |n: &str| std::env::var(n).ok().filter(|v| !v.trim().is_empty());
            Signer::new(
                &var("PC_SDK_SAS_URL").unwrap_or_else(|| DEFAULT_SAS_URL.to_string()),
                var("PC_SDK_SUBSCRIPTION_KEY"),
            )
        })
    }

    /// `url` with a SAS token appended when it is a Planetary Computer blob that needs one;
    /// `collection` is the item's collection (`sentinel-2-l2a`), when it names one.
    pub fn sign(&self, url: &str, collection: Option<&str>) -> Result<String, SourceError> {
        let Some((account, container)) = blob_container(url) else {
            return Ok(url.to_string());
        };
        if query_has_signature(url) {
            return Ok(url.to_string());
        }
        let path = match collection.filter(|c| is_path_segment(c)) {
            Some(c) => c.to_string(),
            None => format!("{account}/{container}"),
        };
        let token = self.token(&path, url)?;
        let sep = if url.contains('?') { '&' } else { '?' };
        Ok(format!("{url}{sep}{token}"))
    }

    fn token(&self, path: &str, href: &str) -> Result<String, SourceError> {
        let now = SystemTime::now();
        if let Some((t, expiry)) = self.tokens.lock().unwrap().get(path)
            && now + MARGIN < *expiry
        {
            return Ok(t.clone());
        }
        let endpoint = format!("{}/token/{path}", self.sas_url);
        let headers: Vec<(&str, &str)> = self
            .subscription_key
            .as_deref()
            .map(|k| vec![("Ocp-Apim-Subscription-Key", k)])
            .unwrap_or_default();
        let fetched =
            http::fetch_json_with(&Request::Get(endpoint.clone()), &headers).map_err(|e| {
                SourceError::Read {
                    location: href.to_string(),
                    detail: format!("cannot get a Planetary Computer SAS token to read it: {e}"),
                }
            })?;
        let bad = |what: &str| SourceError::Parse {
            what: "Planetary Computer SAS token",
            location: endpoint.clone(),
            detail: what.to_string(),
        };
        let token = fetched
            .doc
            .get("token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("the answer has no `token`"))?
            .trim_start_matches('?')
            .to_string();
        let expiry = fetched
            .doc
            .get("msr:expiry")
            .and_then(Value::as_str)
            .and_then(parse_rfc3339)
            .ok_or_else(|| bad("the answer has no `msr:expiry` date-time"))?;
        self.tokens
            .lock()
            .unwrap()
            .insert(path.to_string(), (token.clone(), expiry));
        Ok(token)
    }
}

/// `text` with the signature of every SAS token in it (`sig=...`) blanked, for messages: a
/// token is a short-lived credential.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("sig=") {
        let (head, tail) = rest.split_at(i + 4);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '&' || c == '`' || c == '\'' || c == '"' || c.is_whitespace())
            .unwrap_or(tail.len());
        if end > 0 {
            out.push_str("...");
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `(account, container)` of an `https://<account>.blob.core.windows.net/<container>/...` URL.
fn blob_container(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("https://")?;
    let (host, path) = rest.split_once('/')?;
    let account = host.strip_suffix(".blob.core.windows.net")?;
    let container = path.split(['/', '?']).next().filter(|c| !c.is_empty())?;
    Some((account, container))
}

fn query_has_signature(url: &str) -> bool {
    url.split_once('?')
        .is_some_and(|(_, q)| q.split('&').any(|kv| kv.starts_with("sig=")))
}

fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `2026-12-07T18:04:05Z`, `2026-12-07T18:04:05.123+01:00` -> the instant.
fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (date, time) = s.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, mo, day): (i32, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (clock, offset_s) = if let Some(c) = time.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let mut c = clock.split(':');
    let (h, mi): (i64, i64) = (c.next()?.parse().ok()?, c.next()?.parse().ok()?);
    let sec: f64 = c.next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec >= 61.0 {
        return None;
    }
    let secs = days_from_civil(y, mo, day) * 86_400 + h * 3600 + mi * 60 - offset_s;
    let t = Duration::from_secs_f64(secs as f64 + sec);
    (secs >= 0).then(|| UNIX_EPOCH + t)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{Reply, TestServer};
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const BLOB: &str =
        "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/48/P/XS/2020/03/05/x/B04.tif";

    fn iso(t: SystemTime) -> String {
        let s = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let (days, rem) = (s.div_euclid(86_400), s.rem_euclid(86_400));
        let (y, m, d) = crate::simulate::time::civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )
    }

    #[test]
    fn rfc3339_dates_read_as_instants() {
        let at = |s| {
            parse_rfc3339(s)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        };
        assert_eq!(at("1970-01-01T00:00:00Z"), 0.0);
        assert_eq!(at("2000-03-01T00:00:00Z"), 951_868_800.0);
        assert_eq!(at("2026-12-07T18:04:05.5Z"), 1_796_666_645.5);
        assert_eq!(at("2026-12-07T19:04:05+01:00"), 1_796_666_645.0);
        for bad in ["", "2026-13-01T00:00:00Z", "yesterday", "2026-12-07"] {
            assert!(parse_rfc3339(bad).is_none(), "{bad}");
        }
        let now = UNIX_EPOCH + Duration::from_secs(1_796_666_645);
        assert_eq!(parse_rfc3339(&iso(now)), Some(now));
    }

    /// A stand-in for the token endpoint: counts requests, records the subscription key and
    /// user agent each sent, hands out tokens that expire `life` from now.
    fn token_server(life: Duration) -> (TestServer, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
        let n = Arc::new(AtomicUsize::new(0));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let (count, h) = (n.clone(), heard.clone());
        let server = TestServer::start_raw(move |req| {
            let i = count.fetch_add(1, Ordering::SeqCst);
            h.lock().unwrap().push(format!(
                "{} {}",
                req.header("ocp-apim-subscription-key").unwrap_or("-"),
                req.header("user-agent").unwrap_or("-")
            ));
            if req.method != "GET" || !req.path.starts_with("/api/sas/v1/token/") {
                return Reply::status(404, "no");
            }
            Reply::json(&json!({
                "msr:expiry": iso(SystemTime::now() + life),
                "token": format!("st=2026&se=2026&sp=rl&sv=2021&sr=c&sig=abc{i}%3D"),
            }))
        });
        (server, n, heard)
    }

    #[test]
    fn planetary_computer_hrefs_are_signed_once_per_collection_until_expiry() {
        let (server, n, heard) = token_server(Duration::from_secs(3600));
        let signer = Signer::new(&format!("{}/api/sas/v1/", server.base), Some("k3y".into()));
        let a = signer.sign(BLOB, Some("sentinel-2-l2a")).unwrap();
        assert_eq!(
            a,
            format!("{BLOB}?st=2026&se=2026&sp=rl&sv=2021&sr=c&sig=abc0%3D")
        );
        // The same collection: the kept token, no request.
        let other = BLOB.replace("B04", "B08");
        let b = signer.sign(&other, Some("sentinel-2-l2a")).unwrap();
        assert!(b.ends_with("sig=abc0%3D"), "{b}");
        assert_eq!(n.load(Ordering::SeqCst), 1);
        // Another collection, and an item without one (account/container).
        let c = signer.sign(BLOB, Some("sentinel-1-rtc")).unwrap();
        assert!(c.ends_with("sig=abc1%3D"), "{c}");
        signer.sign(BLOB, None).unwrap();
        let log = server.requests();
        let prefix = &server.base[server.base.find("/srv").unwrap()..];
        assert_eq!(
            log,
            [
                format!("GET {prefix}/api/sas/v1/token/sentinel-2-l2a"),
                format!("GET {prefix}/api/sas/v1/token/sentinel-1-rtc"),
                format!("GET {prefix}/api/sas/v1/token/sentinel2l2a01/sentinel2-l2"),
            ]
        );
        let agent = format!("k3y {}", http::user_agent());
        assert_eq!(
            *heard.lock().unwrap(),
            [agent.clone(), agent.clone(), agent]
        );
        // Not a blob, or already signed: as it is, no request.
        for u in [
            "https://sentinel-cogs.s3.us-west-2.amazonaws.com/x/B04.tif",
            "https://a.blob.core.windows.net/c/x.tif?sv=1&sig=zz",
        ] {
            assert_eq!(signer.sign(u, Some("sentinel-2-l2a")).unwrap(), u);
        }
        assert_eq!(n.load(Ordering::SeqCst), 3);
        assert_eq!(
            redact(&format!("cannot open `/vsicurl/{a}`: HTTP 403")),
            format!(
                "cannot open `/vsicurl/{BLOB}?st=2026&se=2026&sp=rl&sv=2021&sr=c&sig=...`: HTTP 403"
            )
        );
    }

    #[test]
    fn a_token_near_its_expiry_is_fetched_again_and_failures_name_the_href() {
        let (server, n, _) = token_server(Duration::from_secs(60));
        let signer = Signer::new(&format!("{}/api/sas/v1", server.base), None);
        signer.sign(BLOB, Some("alos-dem")).unwrap();
        let again = signer.sign(BLOB, Some("alos-dem")).unwrap();
        assert!(again.ends_with("sig=abc1%3D"), "{again}");
        assert_eq!(n.load(Ordering::SeqCst), 2);
        let e = Signer::new(&format!("{}/nowhere", server.base), None)
            .sign(BLOB, Some("alos-dem"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(BLOB) && e.contains("SAS token") && e.contains("HTTP 404"),
            "{e}"
        );
    }
}
