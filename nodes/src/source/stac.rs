//! Scenes from a STAC catalog: static JSON (on disk, over HTTP, or the files of a `Catalog`
//! artifact) or a STAC API with item search.
//!
//! Which one is decided by the root document, not by the caller: a root with a `search` link is
//! an API and is searched (`GET <search>?collections=..&bbox=..&datetime=..&limit=100`, following
//! `next` links); anything else is walked as a static catalog (`child` links to catalogs and
//! collections, `item` links to items; collections with another id are not entered). A root that
//! is an item collection (`FeatureCollection`) or a single item works too.
//!
//! Hrefs are resolved as STAC says: relative to the document they are written in. For a
//! `Catalog` artifact the documents and data are keyed by their path inside the catalog folder
//! (`catalog.json`, `sentinel-2-l2a/items/x.json`, `sentinel-2-l2a/data/x/B04.tif`), so relative
//! hrefs resolve to keys, and keys to the artifact's blob paths.
//!
//! Everything remote is read through GDAL: JSON with `/vsicurl_streaming/` (one sequential
//! GET, right for dynamic search pages), rasters with `/vsicurl/` (HTTP range requests), and
//! `s3://`, `gs://`, `az://` through GDAL's cloud file systems. Filters the server may not
//! implement (`eo:cloud_cover`, months, tile) are applied here, to every page.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::{Value, json};

use super::http::{self, Request};
use super::sign::Signer;
use super::{
    AssetRef, BandScaling, BoaOffset, Location, MAX_DOCUMENT_BYTES, SceneItem, SceneProps,
    SceneQuery, Source, SourceError, parse_date, sort_and_dedup, vsi_url,
};
use crate::raster::read_vsi_bytes;
use lulc_engine::node::Confinement;

/// Deepest nesting of catalogs followed in a static catalog.
const MAX_DEPTH: usize = 16;
/// Most pages of one search (100 items each).
const MAX_PAGES: usize = 10_000;
/// Items per search page asked for.
const PAGE_SIZE: usize = 100;

/// A STAC catalog or API.
#[derive(Clone, Debug)]
pub struct StacSource {
    root: Location,
    /// Files of a `Catalog` artifact by their path in the catalog folder (for [`Location::Key`]).
    files: Option<BTreeMap<String, PathBuf>>,
    /// Where documents on disk may be read from (a link may point anywhere).
    confinement: Option<Confinement>,
    /// Most pages of one search ([`MAX_PAGES`]).
    max_pages: usize,
}

impl StacSource {
    /// A catalog at a path or URL (`catalog.json`, a collection, an item collection, or an API
    /// landing page).
    pub fn new(root: Location) -> StacSource {
        StacSource {
            root,
            files: None,
            confinement: None,
            max_pages: MAX_PAGES,
        }
    }

    /// The catalog inside a `Catalog` artifact: `files` maps paths relative to the catalog
    /// folder to blob paths; `root` is the root document's key (usually `catalog.json`).
    pub fn from_catalog_files(files: BTreeMap<String, PathBuf>, root: &str) -> StacSource {
        StacSource {
            root: Location::Key(root.trim_start_matches("./").to_string()),
            files: Some(files),
            confinement: None,
            max_pages: MAX_PAGES,
        }
    }

    /// Read documents on disk only where `c` allows (the spec's folder, `--allow-path`).
    pub fn confined_to(mut self, c: Confinement) -> StacSource {
        self.confinement = Some(c);
        self
    }

    fn read_bytes(&self, loc: &Location) -> Result<Vec<u8>, SourceError> {
        let read_err = |detail: String| SourceError::Read {
            location: loc.to_string(),
            detail,
        };
        let read_file = |p: &std::path::Path| match std::fs::read(p) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SourceError::NotFound {
                location: loc.to_string(),
                context: String::new(),
            }),
            Err(e) => Err(read_err(e.to_string())),
        };
        match loc {
            Location::Path(p) => {
                let s = p.to_string_lossy();
                if let Some(c) = &self.confinement {
                    c.check("a STAC link", &s)
                        .map_err(|e| SourceError::Outside {
                            message: e.message,
                            help: e.help.unwrap_or_default(),
                        })?;
                }
                if s.starts_with("/vsi") {
                    read_vsi_bytes(&s, MAX_DOCUMENT_BYTES).map_err(|e| read_err(e.detail))
                } else {
                    read_file(p)
                }
            }
            // Cloud storage (`s3://`, `gs://`, ...) through GDAL's file systems; http(s) is
            // fetched in `read_doc`.
            Location::Url(u) => read_vsi_bytes(&vsi_url(u, true), MAX_DOCUMENT_BYTES)
                .map_err(|e| read_err(e.detail)),
            Location::Key(k) => {
                let blob = self.blob(k)?;
                read_file(&blob)
            }
        }
    }

    fn blob(&self, key: &str) -> Result<PathBuf, SourceError> {
        let files = self
            .files
            .as_ref()
            .ok_or_else(|| SourceError::Unsupported {
                location: key.to_string(),
                detail: "a catalog key outside of a `catalog` input".into(),
            })?;
        files
            .get(key)
            .cloned()
            .ok_or_else(|| SourceError::NotFound {
                location: format!("catalog:{key}"),
                context: format!(
                    " (the `catalog` input has {} files; hrefs resolve relative to the document \
                 that holds them)",
                    files.len()
                ),
            })
    }

    /// A JSON document and where it was read from: for an http(s) URL the one redirects led to,
    /// so that its relative links resolve as the server meant.
    fn read_doc(&self, loc: &Location) -> Result<(Location, Value), SourceError> {
        if let Location::Url(u) = loc
            && is_http(u)
        {
            let f = http::fetch_json(&Request::Get(u.clone()))?;
            return Ok((Location::Url(f.url), f.doc));
        }
        let bytes = self.read_bytes(loc)?;
        let doc = serde_json::from_slice(&bytes).map_err(|e| SourceError::Parse {
            what: "STAC document",
            location: loc.to_string(),
            detail: e.to_string(),
        })?;
        Ok((loc.clone(), doc))
    }

    /// Walk a static catalog from `loc` (holding `doc`), collecting items into `walk.out`.
    fn walk(
        &self,
        walk: &mut Walk<'_>,
        loc: &Location,
        doc: &Value,
        collection: Option<&str>,
        depth: usize,
    ) -> Result<(), SourceError> {
        if depth > MAX_DEPTH {
            return Err(SourceError::Unsupported {
                location: loc.to_string(),
                detail: format!("catalog nested deeper than {MAX_DEPTH} levels"),
            });
        }
        match doc.get("type").and_then(Value::as_str) {
            Some("Feature") => {
                walk.out.push(parse_item(doc, loc, collection)?);
                return Ok(());
            }
            Some("FeatureCollection") => {
                for f in doc
                    .get("features")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    walk.out.push(parse_item(f, loc, collection)?);
                }
                return Ok(());
            }
            _ => {}
        }
        let is_collection = doc.get("type").and_then(Value::as_str) == Some("Collection")
            || doc.get("extent").is_some();
        let here = doc.get("id").and_then(Value::as_str);
        if is_collection && here.is_some_and(|id| !walk.query.matches_collection(Some(id))) {
            return Ok(());
        }
        let collection = if is_collection { here } else { collection };
        for link in links(doc) {
            let (Some(rel), Some(href)) = (
                link.get("rel").and_then(Value::as_str),
                link.get("href").and_then(Value::as_str),
            ) else {
                continue;
            };
            if rel != "child" && rel != "item" {
                continue;
            }
            let target = loc.join(href);
            if !walk.seen.insert(target.clone()) {
                continue;
            }
            let (target, child) = self.read_doc(&target)?;
            if rel == "item" {
                walk.out.push(parse_item(&child, &target, collection)?);
            } else {
                self.walk(walk, &target, &child, collection, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Page through an item search (see [`Api`]).
    fn search(&self, api: &Api, query: &SceneQuery) -> Result<Vec<SceneItem>, SourceError> {
        let mut req = api.first_request(query);
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for _ in 0..self.max_pages {
            seen.insert(request_id(&req));
            let page = http::fetch_json(&req)?;
            let loc = Location::Url(page.url.clone());
            let Some(features) = page.doc.get("features").and_then(Value::as_array) else {
                return Err(SourceError::Parse {
                    what: "STAC search page",
                    location: page.url,
                    detail: "no `features` array".into(),
                });
            };
            for f in features {
                out.push(parse_item(f, &loc, Some(&query.collection))?);
            }
            let next =
                links(&page.doc).find(|l| l.get("rel").and_then(Value::as_str) == Some("next"));
            let Some(next) = next_request(next, &req, &loc)? else {
                return Ok(out);
            };
            // A server whose `next` leads back to a page already read has no more.
            if features.is_empty() || seen.contains(&request_id(&next)) {
                return Ok(out);
            }
            req = next;
        }
        Err(SourceError::Unsupported {
            location: api.search.clone(),
            detail: format!(
                "the search has more than {} pages of {PAGE_SIZE} items ({} items so far): \
                 narrow it with the step's grid, `months` or `max_cloud_cover`",
                self.max_pages,
                out.len()
            ),
        })
    }
}

/// A STAC API as its landing page describes it: where to search, with which method, and which
/// filters the server applies itself (its `conformsTo`).
///
/// - POST `/search` with a JSON body when the landing page has a `search` link with
///   `method: POST` (as Earth Search, Planetary Computer, Copernicus Data Space and
///   stac-fastapi do), else GET with the query in the URL;
/// - `eo:cloud_cover <= max` and the MGRS tile as a CQL2 `filter` where the server conforms to
///   the Filter extension (CQL2 JSON for POST, CQL2 text for GET); else cloud cover through the
///   `query` extension where it conforms to that; else nothing. Every filter is applied again
///   here to every item, so a server that ignores one gives the same scenes, only more pages.
#[derive(Clone, Debug, PartialEq)]
pub struct Api {
    pub search: String,
    pub post: bool,
    pub filter: bool,
    pub query_ext: bool,
}

impl Api {
    /// The API of a landing page read from `loc`; `None` if it has no `search` link.
    pub fn of_landing_page(doc: &Value, loc: &Location) -> Option<Api> {
        let searches: Vec<&Value> = links(doc)
            .filter(|l| l.get("rel").and_then(Value::as_str) == Some("search"))
            .collect();
        let method = |l: &Value| {
            l.get("method")
                .and_then(Value::as_str)
                .unwrap_or("GET")
                .to_ascii_uppercase()
        };
        let post = searches.iter().find(|l| method(l) == "POST");
        let link = post.or_else(|| searches.iter().find(|l| method(l) == "GET"))?;
        let Location::Url(search) = loc.join(link.get("href")?.as_str()?) else {
            return None;
        };
        let conforms: Vec<&str> = doc
            .get("conformsTo")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let has = |suffix: &str| conforms.iter().any(|c| c.ends_with(suffix));
        let post = post.is_some();
        let cql2 = if post {
            has("cql2-json")
        } else {
            has("cql2-text")
        };
        Some(Api {
            search,
            post,
            filter: has("item-search#filter") && cql2,
            query_ext: has("item-search#query"),
        })
    }

    /// The request for the first page of `query`.
    pub fn first_request(&self, q: &SceneQuery) -> Request {
        let datetime = q
            .year
            .map(|y| format!("{y}-01-01T00:00:00Z/{y}-12-31T23:59:59Z"));
        if self.post {
            let mut body = serde_json::Map::new();
            body.insert("collections".into(), json!([q.collection]));
            body.insert("limit".into(), json!(PAGE_SIZE));
            if let Some(b) = q.bbox {
                body.insert("bbox".into(), json!(b));
            }
            if let Some(d) = datetime {
                body.insert("datetime".into(), json!(d));
            }
            if let Some(f) = self.filter.then(|| cql2_json(q)).flatten() {
                body.insert("filter-lang".into(), json!("cql2-json"));
                body.insert("filter".into(), f);
            } else if let (true, Some(max)) = (self.query_ext, q.max_cloud_cover) {
                body.insert("query".into(), json!({"eo:cloud_cover": {"lte": max}}));
            }
            return Request::Post(self.search.clone(), Value::Object(body));
        }
        let mut params = vec![
            ("collections", q.collection.clone()),
            ("limit", PAGE_SIZE.to_string()),
        ];
        if let Some(b) = q.bbox {
            params.push(("bbox", format!("{},{},{},{}", b[0], b[1], b[2], b[3])));
        }
        if let Some(d) = datetime {
            params.push(("datetime", d));
        }
        if let Some(f) = self.filter.then(|| cql2_text(q)).flatten() {
            params.push(("filter-lang", "cql2-text".into()));
            params.push(("filter", f));
        } else if let (true, Some(max)) = (self.query_ext, q.max_cloud_cover) {
            params.push(("query", json!({"eo:cloud_cover": {"lte": max}}).to_string()));
        }
        let qs: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect();
        let sep = if self.search.contains('?') { '&' } else { '?' };
        Request::Get(format!("{}{sep}{}", self.search, qs.join("&")))
    }
}

/// The MGRS tile as the three conventions of public catalogs write it: `s2:mgrs_tile` `48PXS`
/// (Planetary Computer), `grid:code` `MGRS-48PXS` (Earth Search, Copernicus Data Space), and
/// `mgrs:utm_zone` / `mgrs:latitude_band` / `mgrs:grid_square` (Earth Search).
fn tile_parts(q: &SceneQuery) -> Option<(String, u64, String, String)> {
    let t = super::normalize_tile(q.tile.as_deref()?);
    let digits = t.chars().take_while(char::is_ascii_digit).count();
    let zone: u64 = t[..digits].parse().ok()?;
    let rest = &t[digits..];
    (rest.len() == 3).then(|| {
        (
            t.clone(),
            zone,
            rest[..1].to_string(),
            rest[1..].to_string(),
        )
    })
}

/// The server-side filter of `q` in CQL2 JSON, `None` when there is nothing to filter.
fn cql2_json(q: &SceneQuery) -> Option<Value> {
    let eq = |p: &str, v: Value| json!({"op": "=", "args": [{"property": p}, v]});
    let mut args = Vec::new();
    if let Some(max) = q.max_cloud_cover {
        args.push(json!({"op": "<=", "args": [{"property": "eo:cloud_cover"}, max]}));
    }
    if let Some((t, zone, band, square)) = tile_parts(q) {
        args.push(json!({"op": "or", "args": [
            eq("s2:mgrs_tile", json!(t)),
            eq("grid:code", json!(format!("MGRS-{t}"))),
            {"op": "and", "args": [
                eq("mgrs:utm_zone", json!(zone)),
                eq("mgrs:latitude_band", json!(band)),
                eq("mgrs:grid_square", json!(square)),
            ]},
        ]}));
    }
    match args.len() {
        0 => None,
        1 => args.pop(),
        _ => Some(json!({"op": "and", "args": args})),
    }
}

/// The same filter in CQL2 text, for GET.
fn cql2_text(q: &SceneQuery) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(max) = q.max_cloud_cover {
        parts.push(format!("\"eo:cloud_cover\" <= {max}"));
    }
    if let Some((t, zone, band, square)) = tile_parts(q) {
        parts.push(format!(
            "(\"s2:mgrs_tile\" = '{t}' OR \"grid:code\" = 'MGRS-{t}' OR (\"mgrs:utm_zone\" = {zone} \
             AND \"mgrs:latitude_band\" = '{band}' AND \"mgrs:grid_square\" = '{square}'))"
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" AND "))
}

/// The request a `next` link asks for, `None` when there is none. A GET link is its `href`
/// (relative to the page); a POST link sends its `body`, merged into the previous request's
/// body when `merge` is true, else instead of it (the previous body when the link has none).
fn next_request(
    link: Option<&Value>,
    prev: &Request,
    page: &Location,
) -> Result<Option<Request>, SourceError> {
    let Some(link) = link else { return Ok(None) };
    let Some(href) = link.get("href").and_then(Value::as_str) else {
        return Ok(None);
    };
    let Location::Url(url) = page.join(href) else {
        return Ok(None);
    };
    let method = link.get("method").and_then(Value::as_str).unwrap_or("GET");
    if method.eq_ignore_ascii_case("GET") {
        return Ok(Some(Request::Get(url)));
    }
    if !method.eq_ignore_ascii_case("POST") {
        return Err(SourceError::Unsupported {
            location: page.to_string(),
            detail: format!("the `next` link asks for HTTP {method}; STAC paging uses GET or POST"),
        });
    }
    let prev_body = match prev {
        Request::Post(_, b) => b.clone(),
        Request::Get(_) => json!({}),
    };
    let body = match link.get("body") {
        None => prev_body,
        Some(Value::Object(extra)) if link.get("merge").and_then(Value::as_bool) == Some(true) => {
            let mut merged = prev_body.as_object().cloned().unwrap_or_default();
            merged.extend(extra.clone());
            Value::Object(merged)
        }
        Some(b) => b.clone(),
    };
    Ok(Some(Request::Post(url, body)))
}

/// What identifies a request, to notice a `next` link that loops.
fn request_id(r: &Request) -> String {
    match r {
        Request::Get(u) => format!("GET {u}"),
        Request::Post(u, b) => format!("POST {u} {b}"),
    }
}

fn is_http(u: &str) -> bool {
    let l = u.get(..8).unwrap_or(u).to_ascii_lowercase();
    l.starts_with("http://") || l.starts_with("https://")
}

impl Source for StacSource {
    fn describe(&self) -> String {
        match &self.root {
            Location::Key(k) => format!("stac catalog `{k}` of the `catalog` input"),
            other => format!("stac catalog `{other}`"),
        }
    }

    fn list(&self, query: &SceneQuery) -> Result<Vec<SceneItem>, SourceError> {
        let (root_loc, root) = self.read_doc(&self.root)?;
        let api = Api::of_landing_page(&root, &root_loc).filter(|a| is_http(&a.search));
        let mut items = match api {
            Some(api) => self.search(&api, query)?,
            None => {
                let mut walk = Walk {
                    query,
                    seen: BTreeSet::from([self.root.clone(), root_loc.clone()]),
                    out: Vec::new(),
                };
                self.walk(&mut walk, &root_loc, &root, None, 0)?;
                walk.out
            }
        };
        items.retain(|i| query.keep(i));
        sort_and_dedup(&mut items);
        Ok(items)
    }

    fn resolve(&self, item: &SceneItem, asset: &AssetRef) -> Result<String, SourceError> {
        match &asset.location {
            Location::Key(k) => Ok(self.blob(k)?.to_string_lossy().into_owned()),
            Location::Path(p) => {
                let s = p.to_string_lossy();
                if !s.starts_with("/vsi") && !p.is_file() {
                    return Err(SourceError::NotFound {
                        location: s.into_owned(),
                        context: format!(" (asset href `{}`)", asset.href),
                    });
                }
                Ok(s.into_owned())
            }
            // Planetary Computer's blobs need a SAS token (`sign`); other URLs are as they are.
            Location::Url(u) => {
                let signed = Signer::global().sign(u, item.collection.as_deref())?;
                Ok(Location::Url(signed)
                    .gdal_path()
                    .expect("urls have a gdal path"))
            }
        }
    }
}

/// State of a static-catalog walk: what is asked for, documents already read, items found.
struct Walk<'q> {
    query: &'q SceneQuery,
    seen: BTreeSet<Location>,
    out: Vec<SceneItem>,
}

fn links(doc: &Value) -> impl Iterator<Item = &Value> {
    doc.get("links")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// Percent-encode a query value; `,` and `:` stay (STAC APIs expect `bbox=a,b,c,d`), `/`
/// does not (GDAL's `/vsicurl/` would take it for a path separator).
fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b',' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A STAC item (`Feature`) found at `loc`; `collection` is the collection it was listed under.
pub fn parse_item(
    v: &Value,
    loc: &Location,
    collection: Option<&str>,
) -> Result<SceneItem, SourceError> {
    let bad = |detail: String| SourceError::Parse {
        what: "STAC item",
        location: loc.to_string(),
        detail,
    };
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no `id`".into()))?
        .to_string();
    let props = v
        .get("properties")
        .and_then(Value::as_object)
        .ok_or_else(|| bad(format!("item `{id}` has no `properties`")))?;
    let str_prop = |k: &str| props.get(k).and_then(Value::as_str);
    let datetime = str_prop("datetime")
        .or_else(|| str_prop("start_datetime"))
        .ok_or_else(|| bad(format!("item `{id}` has no `datetime`")))?;
    let date = parse_date(datetime)
        .ok_or_else(|| bad(format!("item `{id}`: bad datetime `{datetime}`")))?;
    // Earth Search and Planetary Computer: `s2:processing_baseline`; Copernicus Data Space:
    // `processing:version`.
    let baseline = match props
        .get("s2:processing_baseline")
        .or_else(|| props.get("processing:version"))
    {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(format!("{:05.2}", n.as_f64().unwrap_or(0.0))),
        _ => None,
    };
    let boa = match props.get("s2:boa_add_offset") {
        Some(Value::Number(n)) => n.as_f64().map(BoaOffset::Uniform),
        Some(Value::Object(m)) => Some(BoaOffset::PerBand(
            m.iter()
                .filter_map(|(k, v)| v.as_f64().map(|v| (k.clone(), v)))
                .collect(),
        )),
        _ => None,
    };
    let tile = str_prop("s2:mgrs_tile")
        .map(str::to_string)
        .or_else(|| str_prop("grid:code").map(str::to_string))
        .or_else(|| {
            let zone = props.get("mgrs:utm_zone")?;
            let zone = zone
                .as_u64()
                .map(|z| z.to_string())
                .or_else(|| zone.as_str().map(str::to_string))?;
            Some(format!(
                "{zone}{}{}",
                str_prop("mgrs:latitude_band")?,
                str_prop("mgrs:grid_square")?
            ))
        })
        .or_else(|| str_prop("tile").map(str::to_string));
    let bbox = v.get("bbox").and_then(Value::as_array).and_then(|b| {
        let n: Vec<f64> = b.iter().filter_map(Value::as_f64).collect();
        match n.len() {
            4 => Some([n[0], n[1], n[2], n[3]]),
            6 => Some([n[0], n[1], n[3], n[4]]),
            _ => None,
        }
    });
    let mut assets = BTreeMap::new();
    for (key, a) in v
        .get("assets")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let Some(href) = a.get("href").and_then(Value::as_str) else {
            return Err(bad(format!("item `{id}`: asset `{key}` has no `href`")));
        };
        let band_names = a
            .get("eo:bands")
            .or_else(|| a.get("bands"))
            .and_then(Value::as_array)
            .map(|bs| {
                bs.iter()
                    .map(|b| {
                        b.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        // STAC 1.0 `raster:bands` (`scale`, `offset`); STAC 1.1 `bands` (`raster:scale`,
        // `raster:offset`, or `scale`/`offset`).
        let number = |b: &Value, keys: [&str; 2]| keys.iter().find_map(|k| b.get(*k)?.as_f64());
        let scaling = a
            .get("raster:bands")
            .or_else(|| a.get("bands"))
            .and_then(Value::as_array)
            .map(|bs| {
                bs.iter()
                    .map(|b| BandScaling {
                        scale: number(b, ["scale", "raster:scale"]),
                        offset: number(b, ["offset", "raster:offset"]),
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|v| v.iter().any(|s| s.scale.is_some() || s.offset.is_some()))
            .unwrap_or_default();
        assets.insert(
            key.clone(),
            AssetRef {
                href: href.to_string(),
                location: loc.join(href),
                band: None,
                band_names,
                scaling,
            },
        );
    }
    Ok(SceneItem {
        id,
        date,
        collection: v
            .get("collection")
            .and_then(Value::as_str)
            .or(collection)
            .map(str::to_string),
        origin: loc.to_string(),
        props: SceneProps {
            cloud_cover: props.get("eo:cloud_cover").and_then(Value::as_f64),
            processing_baseline: baseline,
            boa_add_offset: boa,
            boa_offset_applied: props
                .get("earthsearch:boa_offset_applied")
                .and_then(Value::as_bool),
            platform: str_prop("platform").map(str::to_string),
            tile,
            bbox,
        },
        assets,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, Reply, TestServer};
    use super::*;
    use std::path::Path;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tempfile::TempDir;

    fn s2_query(year: i32) -> SceneQuery {
        SceneQuery {
            collection: "sentinel-2-l2a".into(),
            year: Some(year),
            ..SceneQuery::default()
        }
    }

    #[test]
    fn source_stac_static_catalog_on_disk() {
        let dir = TempDir::new().unwrap();
        let root = testkit::write_s2_catalog(dir.path());
        let src = StacSource::new(Location::Path(root.clone()));
        let items = src.list(&s2_query(2020)).unwrap();
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, [testkit::ITEM_OLD, testkit::ITEM_NEW]);
        assert_eq!(items[0].boa_add_offset("B04"), 0.0);
        assert_eq!(items[1].boa_add_offset("B04"), -1000.0);
        assert_eq!(items[1].props.cloud_cover, Some(50.0));
        assert_eq!(items[1].props.tile.as_deref(), Some("48PXS"));
        assert!(
            items[0]
                .origin
                .ends_with("sentinel-2-l2a/items/S2B_20200305_OLD.json"),
            "{}",
            items[0].origin
        );
        let b04 = items[0].asset_for("B04").unwrap();
        let path = src.resolve(&items[0], &b04).unwrap();
        assert_eq!(
            PathBuf::from(&path),
            dir.path()
                .join("sentinel-2-l2a/data/S2B_20200305_OLD/B04.tif")
        );
        // Filters: cloud cover, year, bbox, months, another collection.
        let mut q = s2_query(2020);
        q.max_cloud_cover = Some(20.0);
        assert_eq!(src.list(&q).unwrap().len(), 1);
        assert!(src.list(&s2_query(2021)).unwrap().is_empty());
        let mut q = s2_query(2020);
        q.bbox = Some([0.0, 0.0, 1.0, 1.0]);
        assert!(src.list(&q).unwrap().is_empty());
        q.bbox = Some([105.9, 10.8, 106.0, 10.9]);
        assert_eq!(src.list(&q).unwrap().len(), 2);
        q.months = Some(vec![4]);
        assert!(src.list(&q).unwrap().is_empty());
        let mut q = s2_query(2020);
        q.collection = "sentinel-1-grd".into();
        assert!(src.list(&q).unwrap().is_empty());
    }

    #[test]
    fn source_stac_catalog_artifact_resolves_keys_to_blobs() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        // A store keeps files under opaque names: map every key to a renamed copy.
        let files = testkit::catalog_as_blobs(dir.path(), &dir.path().join("blobs"));
        assert!(files.contains_key("sentinel-2-l2a/data/S2B_20200310_NEW/SCL.tif"));
        let src = StacSource::from_catalog_files(files.clone(), "catalog.json");
        let items = src.list(&s2_query(2020)).unwrap();
        assert_eq!(items.len(), 2);
        let a = items[1].asset_for("SCL").unwrap();
        assert_eq!(
            a.location,
            Location::Key("sentinel-2-l2a/data/S2B_20200310_NEW/SCL.tif".into())
        );
        let blob = src.resolve(&items[1], &a).unwrap();
        assert_eq!(
            PathBuf::from(blob),
            files["sentinel-2-l2a/data/S2B_20200310_NEW/SCL.tif"]
        );
        assert!(
            src.describe()
                .contains("`catalog.json` of the `catalog` input")
        );
        // A key the artifact does not have is named.
        let mut missing = files.clone();
        missing.remove("sentinel-2-l2a/items/S2B_20200310_NEW.json");
        let e = StacSource::from_catalog_files(missing, "catalog.json")
            .list(&s2_query(2020))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("catalog:sentinel-2-l2a/items/S2B_20200310_NEW.json"),
            "{e}"
        );
    }

    #[test]
    fn source_stac_api_search_pages_over_http() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        let server = testkit::stac_api_server(dir.path());
        let src = StacSource::new(Location::Url(format!("{}/api", server.base)));
        let mut q = s2_query(2020);
        q.bbox = Some([105.9, 10.8, 106.0, 10.9]);
        let items = src.list(&q).unwrap();
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, [testkit::ITEM_OLD, testkit::ITEM_NEW]);
        // Two pages were fetched, the second through the `next` link, with the query.
        let log = server.requests();
        let searches: Vec<&String> = log.iter().filter(|r| r.contains("/api/search")).collect();
        assert!(searches.iter().any(|r| r.contains("page=2")), "{log:#?}");
        let first = searches.first().expect("a search request");
        assert!(
            first.contains("collections=sentinel-2-l2a")
                && first.contains("bbox=105.9,10.8,106,10.9")
                && first.contains("datetime=2020-01-01T00:00:00Z%2F2020-12-31T23:59:59Z"),
            "{first}"
        );
        // Assets are absolute URLs read through /vsicurl/.
        let b04 = items[0].asset_for("B04").unwrap();
        let gdal = src.resolve(&items[0], &b04).unwrap();
        assert!(
            gdal.starts_with("/vsicurl/http://127.0.0.1:") && gdal.ends_with("/B04.tif"),
            "{gdal}"
        );
        let r = crate::raster::RasterReader::open(&gdal).unwrap();
        assert_eq!(r.grid().width, 8);
        // Cloud cover is filtered here even though the server ignores it.
        q.max_cloud_cover = Some(20.0);
        assert_eq!(src.list(&q).unwrap().len(), 1);
    }

    #[test]
    fn source_stac_static_catalog_over_http() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        let server = TestServer::serve_dir(dir.path());
        let src = StacSource::new(Location::Url(format!("{}/catalog.json", server.base)));
        let items = src.list(&s2_query(2020)).unwrap();
        assert_eq!(items.len(), 2);
        assert!(
            items[0].origin.starts_with("http://127.0.0.1:"),
            "{}",
            items[0].origin
        );
        // A link to a document the server does not have (404) names its URL.
        std::fs::remove_file(
            dir.path()
                .join("sentinel-2-l2a/items/S2B_20200310_NEW.json"),
        )
        .unwrap();
        let e = src.list(&s2_query(2020)).unwrap_err();
        assert!(
            e.to_string()
                .contains("/sentinel-2-l2a/items/S2B_20200310_NEW.json"),
            "{e}"
        );
    }

    #[test]
    fn source_stac_unreachable_url_is_named() {
        let url = format!("{}/catalog.json", testkit::dead_url());
        let e = StacSource::new(Location::Url(url.clone()))
            .list(&s2_query(2020))
            .unwrap_err();
        assert!(matches!(e, SourceError::Read { .. }), "{e:?}");
        assert!(e.to_string().contains(&url), "{e}");
    }

    #[test]
    fn source_stac_bad_documents_are_named() {
        let dir = TempDir::new().unwrap();
        let root = testkit::write_s2_catalog(dir.path());
        let item = dir
            .path()
            .join("sentinel-2-l2a/items/S2B_20200310_NEW.json");
        std::fs::write(&item, "{ not json").unwrap();
        let e = StacSource::new(Location::Path(root.clone()))
            .list(&s2_query(2020))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("S2B_20200310_NEW.json") && e.contains("invalid STAC document"),
            "{e}"
        );
        std::fs::write(
            &item,
            r#"{"type": "Feature", "id": "x", "properties": {"datetime": null}, "assets": {}}"#,
        )
        .unwrap();
        let e = StacSource::new(Location::Path(root))
            .list(&s2_query(2020))
            .unwrap_err()
            .to_string();
        assert!(e.contains("item `x` has no `datetime`"), "{e}");
    }

    #[test]
    fn source_stac_parse_item_properties() {
        let v: Value = serde_json::from_str(
            r#"{"type": "Feature", "id": "S2A_T48PXS", "bbox": [105, 10, 0, 106, 11, 5],
                "properties": {"start_datetime": "2022-02-01T03:00:00Z", "datetime": null,
                  "mgrs:utm_zone": 48, "mgrs:latitude_band": "P", "mgrs:grid_square": "XS",
                  "s2:boa_add_offset": {"B04": -1000}, "platform": "sentinel-2a",
                  "earthsearch:boa_offset_applied": false},
                "assets": {"red": {"href": "https://x/B04.tif", "eo:bands": [{"name": "B04"}]}}}"#,
        )
        .unwrap();
        let i = parse_item(&v, &Location::Url("https://x/i.json".into()), Some("s2")).unwrap();
        assert_eq!(i.date, "2022-02-01");
        assert_eq!(i.collection.as_deref(), Some("s2"));
        assert_eq!(i.props.tile.as_deref(), Some("48PXS"));
        assert_eq!(i.props.bbox, Some([105.0, 10.0, 106.0, 11.0]));
        assert_eq!(i.boa_add_offset("B04"), -1000.0);
        assert_eq!(i.boa_add_offset("B03"), 0.0);
        assert_eq!(i.asset_for("B04").unwrap().href, "https://x/B04.tif");
        assert_eq!(encode_query_value("a b/c,d:e"), "a%20b%2Fc,d:e");
    }

    /// A STAC API like stac-fastapi: HEAD is 405, `/v1` redirects to `/v1/` whose links are
    /// relative, search is POST with CQL2 JSON, the `next` link is a POST with `merge`.
    fn post_api(dir: &Path) -> TestServer {
        let dir = dir.to_path_buf();
        TestServer::start_raw(move |req| {
            if req.method == "HEAD" {
                return Reply::status(405, r#"{"detail":"Method Not Allowed"}"#);
            }
            match (req.method, req.path) {
                ("GET", "/v1") => Reply {
                    status: 307,
                    headers: vec![format!("Location: {}/v1/", req.base)],
                    body: Vec::new(),
                },
                ("GET", "/v1/") => Reply::json(&json!({
                    "type": "Catalog", "id": "api", "stac_version": "1.0.0", "description": "d",
                    "conformsTo": [
                        "https://api.stacspec.org/v1.0.0/item-search",
                        "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
                        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json"],
                    "links": [
                        {"rel": "search", "href": "search", "method": "GET"},
                        {"rel": "search", "href": "search", "method": "POST"}]
                })),
                ("POST", "/v1/search") => {
                    let body: Value = serde_json::from_slice(req.body).unwrap();
                    let second = body.get("token").and_then(Value::as_str) == Some("page-2");
                    let id = if second {
                        testkit::ITEM_NEW
                    } else {
                        testkit::ITEM_OLD
                    };
                    let text = std::fs::read_to_string(
                        dir.join(format!("sentinel-2-l2a/items/{id}.json")),
                    )
                    .unwrap()
                    .replace("\"../data/", &format!("\"{}/data/", req.base));
                    let item: Value = serde_json::from_str(&text).unwrap();
                    let links = if second {
                        json!([])
                    } else {
                        json!([{"rel": "next", "href": "./search", "method": "POST",
                                "body": {"token": "page-2"}, "merge": true}])
                    };
                    Reply::json(
                        &json!({"type": "FeatureCollection", "features": [item], "links": links}),
                    )
                }
                _ => Reply::status(404, r#"{"code":"NotFoundError"}"#),
            }
        })
    }

    #[test]
    fn source_stac_api_post_search_with_filter_and_post_next_link() {
        let dir = TempDir::new().unwrap();
        testkit::write_s2_catalog(dir.path());
        let server = post_api(dir.path());
        let src = StacSource::new(Location::Url(format!("{}/v1", server.base)));
        let mut q = s2_query(2020);
        q.bbox = Some([105.9, 10.8, 106.0, 10.9]);
        q.max_cloud_cover = Some(80.0);
        q.tile = Some("T48PXS".into());
        let items = src.list(&q).unwrap();
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, [testkit::ITEM_OLD, testkit::ITEM_NEW]);
        let log = server.requests();
        assert!(!log.iter().any(|r| r.starts_with("HEAD")), "{log:#?}");
        let posts: Vec<Value> = log
            .iter()
            .filter_map(|r| {
                r.strip_prefix(&format!(
                    "POST {}/v1/search ",
                    &server.base[server.base.find("/srv").unwrap()..]
                ))
            })
            .map(|b| serde_json::from_str(b).unwrap())
            .collect();
        assert_eq!(posts.len(), 2, "{log:#?}");
        assert_eq!(posts[0]["collections"], json!(["sentinel-2-l2a"]));
        assert_eq!(posts[0]["bbox"], json!([105.9, 10.8, 106.0, 10.9]));
        assert_eq!(
            posts[0]["datetime"],
            "2020-01-01T00:00:00Z/2020-12-31T23:59:59Z"
        );
        assert_eq!(posts[0]["filter-lang"], "cql2-json");
        let filter = posts[0]["filter"].to_string();
        assert!(
            filter.contains(r#"{"args":[{"property":"eo:cloud_cover"},80.0],"op":"<="}"#)
                && filter.contains(r#""MGRS-48PXS""#)
                && filter.contains(r#"{"args":[{"property":"s2:mgrs_tile"},"48PXS"],"op":"="}"#),
            "{filter}"
        );
        // The `next` body was merged into the first one.
        assert_eq!(posts[1]["token"], "page-2");
        assert_eq!(posts[1]["collections"], posts[0]["collections"]);
        assert_eq!(posts[1]["filter"], posts[0]["filter"]);
        // Relative asset hrefs resolved against the page's URL after the redirect.
        let b04 = items[0].asset_for("B04").unwrap();
        assert!(
            src.resolve(&items[0], &b04)
                .unwrap()
                .starts_with(&format!("/vsicurl/{}/data/", server.base)),
            "{:?}",
            b04
        );
    }

    #[test]
    fn source_stac_http_errors_name_the_url_status_and_answer() {
        let server = TestServer::start_raw(|req| match req.path {
            "/broken" => Reply::status(500, "{\"detail\": \"database   is\n down\"}"),
            "/empty" => Reply::status(200, ""),
            _ => Reply::status(404, "no"),
        });
        let e = StacSource::new(Location::Url(format!("{}/broken", server.base)))
            .list(&s2_query(2020))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("{}/broken", server.base))
                && e.contains("GET answered HTTP 500")
                && e.contains(r#""{"detail": "database is down"}""#),
            "{e}"
        );
        // A 500 is not retried (it is not busy, it is broken).
        assert_eq!(server.requests().len(), 1);
        let e = StacSource::new(Location::Url(format!("{}/empty", server.base)))
            .list(&s2_query(2020))
            .unwrap_err()
            .to_string();
        assert!(e.contains("the answer was empty"), "{e}");
        let e = StacSource::new(Location::Url(format!("{}/gone", server.base)))
            .list(&s2_query(2020))
            .unwrap_err();
        assert!(matches!(e, SourceError::NotFound { .. }), "{e:?}");
        assert!(e.to_string().contains("HTTP 404"), "{e}");
    }

    #[test]
    fn source_stac_endless_paging_stops_at_the_page_cap_with_a_clear_error() {
        // A server whose every page has an item and a `next` link to a page not seen yet.
        let server = TestServer::start_raw(|req| {
            let page: u32 = req
                .path
                .split("page=")
                .nth(1)
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            if req.path == "/" {
                return Reply::json(&json!({"type": "Catalog", "id": "api",
                    "links": [{"rel": "search", "href": "search", "method": "GET"}]}));
            }
            Reply::json(&json!({"type": "FeatureCollection",
                "features": [{"type": "Feature", "id": format!("i{page}"),
                              "properties": {"datetime": "2020-03-05T00:00:00Z"}, "assets": {}}],
                "links": [{"rel": "next", "href": format!("search?page={}", page + 1)}]}))
        });
        let mut src = StacSource::new(Location::Url(format!("{}/", server.base)));
        src.max_pages = 3;
        let e = src.list(&s2_query(2020)).unwrap_err().to_string();
        assert!(
            e.contains("more than 3 pages of 100 items (3 items so far)")
                && e.contains("narrow it with the step's grid"),
            "{e}"
        );
        assert_eq!(server.requests().len(), 4, "landing page + 3 pages");
    }

    #[test]
    fn source_stac_busy_server_is_asked_again_after_retry_after() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let server = TestServer::start_raw(move |_req| {
            if c.fetch_add(1, Ordering::SeqCst) < 2 {
                Reply {
                    status: 503,
                    headers: vec!["Retry-After: 0".into()],
                    body: b"busy".to_vec(),
                }
            } else {
                Reply::json(&json!({"type": "FeatureCollection", "features": [], "links": []}))
            }
        });
        let items = StacSource::new(Location::Url(format!("{}/items.json", server.base)))
            .list(&s2_query(2020))
            .unwrap();
        assert!(items.is_empty());
        assert_eq!(calls.load(Ordering::SeqCst), 3, "{:#?}", server.requests());
    }

    #[test]
    fn source_stac_copernicus_data_space_conventions() {
        // The shape of a Copernicus Data Space Sentinel-2 L2A item (STAC 1.1, assets per band
        // and resolution, `processing:version`, `raster:bands` offset -0.1).
        let v: Value = serde_json::from_str(
            r#"{"type": "Feature", "stac_version": "1.1.0",
                "id": "S2B_MSIL2A_20220310T032539_N0400_R018_T48PXS_20220310T060000",
                "properties": {"datetime": "2022-03-10T03:25:39Z", "processing:version": "04.00",
                  "grid:code": "MGRS-48PXS", "eo:cloud_cover": 12.5, "platform": "sentinel-2b"},
                "assets": {
                  "B04_20m": {"href": "s3://eodata/x/B04_20m.jp2",
                    "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]},
                  "B04_10m": {"href": "s3://eodata/x/B04_10m.jp2",
                    "raster:bands": [{"scale": 0.0001, "offset": -0.1, "nodata": 0}]},
                  "SCL_60m": {"href": "s3://eodata/x/SCL_60m.jp2"},
                  "SCL_20m": {"href": "s3://eodata/x/SCL_20m.jp2"}}}"#,
        )
        .unwrap();
        let i = parse_item(&v, &Location::Url("https://cdse/i.json".into()), None).unwrap();
        assert_eq!(i.props.processing_baseline.as_deref(), Some("04.00"));
        assert_eq!(i.props.tile.as_deref(), Some("MGRS-48PXS"));
        let b04 = i.asset_for("B04").unwrap();
        assert_eq!(b04.href, "s3://eodata/x/B04_10m.jp2");
        assert_eq!(
            b04.location.gdal_path().unwrap(),
            "/vsis3/eodata/x/B04_10m.jp2"
        );
        assert_eq!(
            i.asset_for("SCL").unwrap().href,
            "s3://eodata/x/SCL_20m.jp2"
        );
        assert_eq!(i.reflectance_transform("B04", &b04), (1.0, -1000.0));
        // Earth Search with the offset applied: the flag wins over `raster:bands`.
        let mut applied = i.clone();
        applied.props.boa_offset_applied = Some(true);
        assert_eq!(applied.reflectance_transform("B04", &b04), (1.0, 0.0));
        // Earth Search's flag false: its `raster:bands` (-0.1 on every item) is not read, the
        // baseline decides (a 2020 item of baseline 02.14 has no offset).
        let mut es = i.clone();
        es.props.boa_offset_applied = Some(false);
        assert_eq!(es.reflectance_transform("B04", &b04), (1.0, -1000.0));
        es.props.processing_baseline = Some("02.14".into());
        assert_eq!(es.reflectance_transform("B04", &b04), (1.0, 0.0));
        // No `raster:bands`: from the baseline; a stated scale of 2e-4 doubles the DNs.
        let mut plain = b04.clone();
        plain.scaling.clear();
        assert_eq!(i.reflectance_transform("B04", &plain), (1.0, -1000.0));
        plain.scaling = vec![BandScaling {
            scale: Some(2e-4),
            offset: None,
        }];
        assert_eq!(i.reflectance_transform("B04", &plain), (2.0, -2000.0));
    }

    #[test]
    fn source_stac_get_search_sends_cql2_text_or_query() {
        let landing = |conforms: &[&str]| {
            json!({"conformsTo": conforms,
                   "links": [{"rel": "search", "href": "/search", "method": "GET"}]})
        };
        let at = Location::Url("https://api.example/v1/".into());
        let mut q = s2_query(2021);
        q.max_cloud_cover = Some(50.0);
        let plain = Api::of_landing_page(&landing(&[]), &at).unwrap();
        assert_eq!(
            plain,
            Api {
                search: "https://api.example/search".into(),
                post: false,
                filter: false,
                query_ext: false
            }
        );
        let Request::Get(u) = plain.first_request(&q) else {
            panic!()
        };
        assert!(!u.contains("filter") && !u.contains("query"), "{u}");
        let text = Api::of_landing_page(
            &landing(&[
                "https://api.stacspec.org/v1.0.0/item-search#filter",
                "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
            ]),
            &at,
        )
        .unwrap();
        let Request::Get(u) = text.first_request(&q) else {
            panic!()
        };
        assert!(
            u.contains("filter-lang=cql2-text&filter=%22eo:cloud_cover%22%20%3C%3D%2050"),
            "{u}"
        );
        let query = Api::of_landing_page(
            &landing(&["https://api.stacspec.org/v1.0.0-rc.1/item-search#query"]),
            &at,
        )
        .unwrap();
        let Request::Get(u) = query.first_request(&q) else {
            panic!()
        };
        assert!(
            u.contains("query=%7B%22eo:cloud_cover%22:%7B%22lte%22:50.0%7D%7D"),
            "{u}"
        );
        assert!(Api::of_landing_page(&json!({"links": []}), &at).is_none());
    }
}
