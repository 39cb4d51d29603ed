//! Test support for sources and `acquire`: small real GeoTIFFs, a tiny static STAC catalog,
//! and an HTTP server (GET, HEAD, Range) on 127.0.0.1 so that `/vsicurl/` is exercised for real.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{Value, json};

use crate::raster::{DType, Grid, RasterMeta, RasterWriter, WriteOptions, crs_to_wkt};

// ---------------------------------------------------------------------------------------------
// Rasters
// ---------------------------------------------------------------------------------------------

/// A north-up grid in UTM 48N (southern Viet Nam) whose top-left corner is (600000, 1200080).
pub(crate) fn utm48(res: f64, width: usize, height: usize) -> Grid {
    Grid {
        crs_wkt: crs_to_wkt("EPSG:32648").unwrap(),
        geo_transform: [600_000.0, res, 0.0, 1_200_080.0, 0.0, -res],
        width,
        height,
    }
}

/// Write a GeoTIFF with one `Vec` of row-major values per band.
pub(crate) fn write_tif(
    path: &Path,
    grid: &Grid,
    dtype: DType,
    nodata: Option<f64>,
    names: &[&str],
    bands: &[Vec<f64>],
) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let meta = RasterMeta {
        grid: grid.clone(),
        dtype,
        nodata,
        band_names: names.iter().map(|s| s.to_string()).collect(),
    };
    let mut w = RasterWriter::create(path, &meta, &WriteOptions::default()).unwrap();
    for (i, values) in bands.iter().enumerate() {
        assert_eq!(values.len(), grid.pixel_count());
        let v: Vec<f32> = values.iter().map(|&x| x as f32).collect();
        w.write_window_f32(i + 1, &grid.full_window(), &v).unwrap();
    }
    w.finish().unwrap();
}

/// Values of a `width x height` raster from a function of (col, row).
pub(crate) fn fill(width: usize, height: usize, f: impl Fn(usize, usize) -> f64) -> Vec<f64> {
    (0..width * height)
        .map(|i| f(i % width, i / width))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// A Sentinel-2 L2A catalog: two items, processing baselines 02.14 and 04.00
// ---------------------------------------------------------------------------------------------

pub(crate) const ITEM_OLD: &str = "S2B_20200305_OLD";
pub(crate) const ITEM_NEW: &str = "S2B_20200310_NEW";
pub(crate) const S2_10M: [&str; 4] = ["B02", "B03", "B04", "B08"];
pub(crate) const S2_20M: [&str; 6] = ["B05", "B06", "B07", "B8A", "B11", "B12"];
const S2_ORDER: [&str; 10] = [
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
];

/// Reflectance x 10000 of `band` at native pixel (col, row), after the offset: 10 m bands on an
/// 8 x 8 grid, 20 m bands on a 4 x 4 grid, both linear in (col, row).
pub(crate) fn s2_value(band: &str, col: usize, row: usize) -> f64 {
    let k = S2_ORDER.iter().position(|b| *b == band).unwrap() as f64;
    if S2_10M.contains(&band) {
        1000.0 + 100.0 * k + col as f64 + 10.0 * row as f64
    } else {
        1000.0 + 100.0 * k + 20.0 * col as f64 + 200.0 * row as f64
    }
}

/// SCL at 20 m pixel (col, row): vegetation (4), one cloud pixel (9) at (1, 1).
pub(crate) fn scl_value(col: usize, row: usize) -> f64 {
    if (col, row) == (1, 1) { 9.0 } else { 4.0 }
}

/// Write the data of one Sentinel-2 item (11 single-band GeoTIFFs, DN = value - offset).
pub(crate) fn write_s2_item_data(dir: &Path, offset: f64) {
    for b in S2_10M {
        let g = utm48(10.0, 8, 8);
        let v = fill(8, 8, |c, r| s2_value(b, c, r) - offset);
        write_tif(
            &dir.join(format!("{b}.tif")),
            &g,
            DType::U16,
            Some(0.0),
            &[b],
            &[v],
        );
    }
    for b in S2_20M {
        let g = utm48(20.0, 4, 4);
        let v = fill(4, 4, |c, r| s2_value(b, c, r) - offset);
        write_tif(
            &dir.join(format!("{b}.tif")),
            &g,
            DType::U16,
            Some(0.0),
            &[b],
            &[v],
        );
    }
    let g = utm48(20.0, 4, 4);
    let v = fill(4, 4, scl_value);
    write_tif(
        &dir.join("SCL.tif"),
        &g,
        DType::U8,
        Some(0.0),
        &["SCL"],
        &[v],
    );
}

/// A STAC item document with relative asset hrefs `../data/<id>/<key>.tif`.
pub(crate) fn item_json(
    id: &str,
    datetime: &str,
    collection: &str,
    props: Value,
    keys: &[&str],
) -> Value {
    let mut properties = json!({ "datetime": datetime });
    if let (Some(p), Value::Object(extra)) = (properties.as_object_mut(), props) {
        p.extend(extra);
    }
    let assets: serde_json::Map<String, Value> = keys
        .iter()
        .map(|k| {
            (
                k.to_string(),
                json!({ "href": format!("../data/{id}/{k}.tif"), "type": "image/tiff; application=geotiff" }),
            )
        })
        .collect();
    json!({
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": id,
        "collection": collection,
        "bbox": [105.5, 10.5, 106.5, 11.5],
        "geometry": {"type": "Polygon", "coordinates": [[[105.5, 10.5], [106.5, 10.5], [106.5, 11.5], [105.5, 11.5], [105.5, 10.5]]]},
        "properties": properties,
        "assets": assets,
        "links": [{"rel": "collection", "href": "../collection.json"}]
    })
}

/// Write `catalog.json` -> `<collection>/collection.json` -> `<collection>/items/<id>.json` for
/// the given item documents (data files are the caller's). Returns the root path.
pub(crate) fn write_catalog(dir: &Path, collection: &str, items: &[Value]) -> PathBuf {
    let cdir = dir.join(collection);
    std::fs::create_dir_all(cdir.join("items")).unwrap();
    let root = dir.join("catalog.json");
    let catalog = json!({
        "type": "Catalog", "stac_version": "1.0.0", "id": "test", "description": "test catalog",
        "links": [
            {"rel": "root", "href": "./catalog.json"},
            {"rel": "child", "href": format!("./{collection}/collection.json")}
        ]
    });
    std::fs::write(&root, serde_json::to_vec_pretty(&catalog).unwrap()).unwrap();
    let mut links = vec![json!({"rel": "root", "href": "../catalog.json"})];
    for it in items {
        let id = it["id"].as_str().unwrap();
        links.push(json!({"rel": "item", "href": format!("./items/{id}.json")}));
        std::fs::write(
            cdir.join(format!("items/{id}.json")),
            serde_json::to_vec_pretty(it).unwrap(),
        )
        .unwrap();
    }
    let coll = json!({
        "type": "Collection", "stac_version": "1.0.0", "id": collection, "description": "test",
        "license": "proprietary",
        "extent": {"spatial": {"bbox": [[105.5, 10.5, 106.5, 11.5]]},
                   "temporal": {"interval": [["2020-01-01T00:00:00Z", null]]}},
        "links": links
    });
    std::fs::write(
        cdir.join("collection.json"),
        serde_json::to_vec_pretty(&coll).unwrap(),
    )
    .unwrap();
    root
}

/// The standard Sentinel-2 fixture: item `ITEM_OLD` (2020-03-05, baseline 02.14, cloud 10 %)
/// and `ITEM_NEW` (2020-03-10, baseline 04.00, cloud 50 %, DN shifted by +1000), both with
/// identical reflectance. Returns `catalog.json`.
pub(crate) fn write_s2_catalog(dir: &Path) -> PathBuf {
    let keys: Vec<&str> = S2_ORDER.iter().copied().chain(["SCL"]).collect();
    let old = item_json(
        ITEM_OLD,
        "2020-03-05T03:12:00Z",
        "sentinel-2-l2a",
        json!({"eo:cloud_cover": 10.0, "s2:processing_baseline": "02.14", "platform": "sentinel-2b", "s2:mgrs_tile": "48PXS"}),
        &keys,
    );
    let new = item_json(
        ITEM_NEW,
        "2020-03-10T03:12:00Z",
        "sentinel-2-l2a",
        json!({"eo:cloud_cover": 50.0, "s2:processing_baseline": "04.00", "platform": "sentinel-2b", "s2:mgrs_tile": "48PXS"}),
        &keys,
    );
    write_s2_item_data(&dir.join("sentinel-2-l2a/data").join(ITEM_OLD), 0.0);
    write_s2_item_data(&dir.join("sentinel-2-l2a/data").join(ITEM_NEW), -1000.0);
    write_catalog(dir, "sentinel-2-l2a", &[old, new])
}

/// Every file under `dir` copied to an opaque name in `blobs`, keyed by its path relative to
/// `dir` (what a `Catalog` artifact's `files` look like).
pub(crate) fn catalog_as_blobs(dir: &Path, blobs: &Path) -> BTreeMap<String, PathBuf> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<(String, PathBuf)>) {
        let mut entries: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let key = p
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push((key, p));
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    std::fs::create_dir_all(blobs).unwrap();
    found
        .into_iter()
        .enumerate()
        .map(|(i, (key, p))| {
            let blob = blobs.join(format!("{i:04x}"));
            std::fs::copy(&p, &blob).unwrap();
            (key, blob)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// A request as a raw handler sees it: the path after `base`, starting with `/`.
pub(crate) struct Req<'a> {
    pub base: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub range: Option<&'a str>,
    pub body: &'a [u8],
    pub headers: &'a [(&'a str, &'a str)],
}

impl Req<'_> {
    /// The value of header `name` (any case), if sent.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

/// What a raw handler answers: status, extra headers, body.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(v: &Value) -> Reply {
        Reply::status(200, serde_json::to_vec(v).unwrap())
    }

    pub(crate) fn status(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }
}

type Handler = dyn Fn(&Req<'_>) -> Reply + Send + Sync;

/// An HTTP/1.1 server on 127.0.0.1 for one test. Everything is served under `base` (a unique
/// path prefix, so GDAL's per-URL cache never mixes two servers that got the same port). GET,
/// HEAD and single `Range: bytes=a-b` requests; every response closes the connection. The
/// server thread stops when the value is dropped.
pub(crate) struct TestServer {
    pub base: String,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Serve whatever `handler(base, path_and_query)` returns (`None` = 404) to GET and HEAD,
    /// with single byte ranges; the path is the part after `base`, starting with `/`.
    pub(crate) fn start(
        handler: impl Fn(&str, &str) -> Option<Vec<u8>> + Send + Sync + 'static,
    ) -> TestServer {
        TestServer::start_raw(move |req| match handler(req.base, req.path) {
            None => Reply::status(404, "not found"),
            Some(data) => ranged(data, req.range),
        })
    }

    /// Serve every request (any method, with its body) with `handler`.
    pub(crate) fn start_raw(
        handler: impl Fn(&Req<'_>) -> Reply + Send + Sync + 'static,
    ) -> TestServer {
        static SERVERS: AtomicUsize = AtomicUsize::new(0);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let prefix = format!(
            "/srv{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        );
        let base = format!("http://127.0.0.1:{port}{prefix}");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let thread = {
            let (stop, log, base) = (stop.clone(), log.clone(), base.clone());
            std::thread::spawn(move || {
                let mut conns: Vec<JoinHandle<()>> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (h, l, b, p) =
                                (handler.clone(), log.clone(), base.clone(), prefix.clone());
                            conns.push(std::thread::spawn(move || {
                                let _ = serve_one(stream, &p, &b, &*h, &l);
                            }));
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => break,
                    }
                    conns.retain(|c| !c.is_finished());
                }
                for c in conns {
                    let _ = c.join();
                }
            })
        };
        TestServer {
            base,
            stop,
            log,
            thread: Some(thread),
        }
    }

    /// Serve the files under `dir`.
    pub(crate) fn serve_dir(dir: &Path) -> TestServer {
        let dir = dir.to_path_buf();
        TestServer::start(move |_base, path| read_under(&dir, path))
    }

    /// Requests so far: `METHOD path [range]`, a POST with its body after a space.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The file at `path` (URL path, query ignored) under `dir`, if any.
pub(crate) fn read_under(dir: &Path, path: &str) -> Option<Vec<u8>> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|s| s == "..") || rel.is_empty() {
        return None;
    }
    let f = dir.join(rel);
    if f.is_file() {
        std::fs::read(f).ok()
    } else {
        None
    }
}

fn serve_one(
    mut stream: TcpStream,
    prefix: &str,
    base: &str,
    handler: &Handler,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 || buf.len() > 64 * 1024 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (first.next().unwrap_or(""), first.next().unwrap_or(""));
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    };
    let range = header("range");
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    log.lock().unwrap().push(match (range, method) {
        (Some(r), _) => format!("{method} {target} [{r}]"),
        (None, "POST") => format!("{method} {target} {}", String::from_utf8_lossy(&body)),
        (None, _) => format!("{method} {target}"),
    });
    let reply = match target
        .strip_prefix(prefix)
        .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
    {
        None => Reply::status(404, "not found"),
        Some(rest) => handler(&Req {
            base,
            method,
            path: if rest.is_empty() { "/" } else { rest },
            range,
            body: &body,
            headers: &headers,
        }),
    };
    let content_type = if target.split('?').next().unwrap_or("").ends_with(".tif") {
        "image/tiff"
    } else {
        "application/json"
    };
    let mut resp = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\n\
         Accept-Ranges: bytes\r\nConnection: close\r\n",
        reply.status,
        reason(reply.status),
        reply.body.len()
    );
    for h in &reply.headers {
        resp.push_str(h);
        resp.push_str("\r\n");
    }
    resp.push_str("\r\n");
    stream.write_all(resp.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(&reply.body)?;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        307 => "Temporary Redirect",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// `data`, or the part a `Range` header asks for.
fn ranged(data: Vec<u8>, range: Option<&str>) -> Reply {
    let total = data.len();
    match range.and_then(|r| parse_range(r, total)) {
        Some(Ok((a, b))) => Reply {
            status: 206,
            headers: vec![format!("Content-Range: bytes {a}-{b}/{total}")],
            body: data[a..=b].to_vec(),
        },
        Some(Err(())) => Reply {
            status: 416,
            headers: vec![format!("Content-Range: bytes */{total}")],
            body: Vec::new(),
        },
        None => Reply::status(200, data),
    }
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` -> inclusive byte range; `Err` if unsatisfiable.
fn parse_range(r: &str, total: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = r.strip_prefix("bytes=")?;
    let spec = spec.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let range = if a.is_empty() {
        let n: usize = b.parse().ok()?;
        (total.saturating_sub(n), total.checked_sub(1)?)
    } else {
        let a: usize = a.parse().ok()?;
        let b: usize = if b.is_empty() {
            total.saturating_sub(1)
        } else {
            b.parse().ok()?
        };
        (a, b.min(total.saturating_sub(1)))
    };
    if total == 0 || range.0 >= total || range.0 > range.1 {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// A STAC API over the catalog written by [`write_s2_catalog`] in `dir`: landing page at
/// `<base>/api` with a `search` link; `/api/search` answers with the first item and a `next`
/// link, then (`page=2`) the second item; the data files are served from `dir`. Asset hrefs in
/// search results are absolute URLs.
pub(crate) fn stac_api_server(dir: &Path) -> TestServer {
    let dir = dir.to_path_buf();
    TestServer::start(move |base, path| {
        let route = path.split('?').next().unwrap_or("");
        let query = path.split_once('?').map_or("", |(_, q)| q);
        match route {
            "/api" => Some(
                serde_json::to_vec(&json!({
                    "type": "Catalog", "stac_version": "1.0.0", "id": "api", "description": "test api",
                    "conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"],
                    "links": [{"rel": "search", "href": format!("{base}/api/search"),
                               "type": "application/geo+json", "method": "GET"}]
                }))
                .unwrap(),
            ),
            "/api/search" => {
                if !query.contains("collections=sentinel-2-l2a") {
                    return Some(br#"{"type": "FeatureCollection", "features": [], "links": []}"#.to_vec());
                }
                let second = query.contains("page=2");
                let id = if second { ITEM_NEW } else { ITEM_OLD };
                let text = std::fs::read_to_string(
                    dir.join(format!("sentinel-2-l2a/items/{id}.json")),
                )
                .ok()?;
                let text = text.replace(
                    "\"../data/",
                    &format!("\"{base}/sentinel-2-l2a/data/"),
                );
                let item: Value = serde_json::from_str(&text).ok()?;
                let links = if second {
                    json!([])
                } else {
                    json!([{"rel": "next", "href": format!("{base}/api/search?{query}&page=2"),
                            "type": "application/geo+json", "method": "GET"}])
                };
                Some(
                    serde_json::to_vec(&json!({
                        "type": "FeatureCollection", "features": [item], "links": links
                    }))
                    .unwrap(),
                )
            }
            other => read_under(&dir, other),
        }
    })
}

/// An http URL on 127.0.0.1 where nothing listens (connections are refused).
pub(crate) fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/nothing-here")
}
