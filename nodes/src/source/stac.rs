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

use serde_json::Value;

use super::{
    AssetRef, BoaOffset, Location, MAX_DOCUMENT_BYTES, SceneItem, SceneProps, SceneQuery, Source,
    SourceError, parse_date, sort_and_dedup, vsi_url,
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
}

impl StacSource {
    /// A catalog at a path or URL (`catalog.json`, a collection, an item collection, or an API
    /// landing page).
    pub fn new(root: Location) -> StacSource {
        StacSource {
            root,
            files: None,
            confinement: None,
        }
    }

    /// The catalog inside a `Catalog` artifact: `files` maps paths relative to the catalog
    /// folder to blob paths; `root` is the root document's key (usually `catalog.json`).
    pub fn from_catalog_files(files: BTreeMap<String, PathBuf>, root: &str) -> StacSource {
        StacSource {
            root: Location::Key(root.trim_start_matches("./").to_string()),
            files: Some(files),
            confinement: None,
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

    fn read_json(&self, loc: &Location) -> Result<Value, SourceError> {
        let bytes = self.read_bytes(loc)?;
        serde_json::from_slice(&bytes).map_err(|e| SourceError::Parse {
            what: "STAC document",
            location: loc.to_string(),
            detail: e.to_string(),
        })
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
            let child = self.read_json(&target)?;
            if rel == "item" {
                walk.out.push(parse_item(&child, &target, collection)?);
            } else {
                self.walk(walk, &target, &child, collection, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Page through an item search.
    fn search(&self, search: &Location, query: &SceneQuery) -> Result<Vec<SceneItem>, SourceError> {
        let Location::Url(base) = search else {
            return Err(SourceError::Unsupported {
                location: search.to_string(),
                detail: "item search needs an http(s) STAC API".into(),
            });
        };
        let mut params = vec![
            ("collections", query.collection.clone()),
            ("limit", PAGE_SIZE.to_string()),
        ];
        if let Some(b) = query.bbox {
            params.push(("bbox", format!("{},{},{},{}", b[0], b[1], b[2], b[3])));
        }
        if let Some(y) = query.year {
            params.push((
                "datetime",
                format!("{y}-01-01T00:00:00Z/{y}-12-31T23:59:59Z"),
            ));
        }
        let qs: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_query_value(v)))
            .collect();
        let sep = if base.contains('?') { '&' } else { '?' };
        let mut url = format!("{base}{sep}{}", qs.join("&"));
        let mut visited = BTreeSet::new();
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            visited.insert(url.clone());
            let loc = Location::Url(url.clone());
            let page = self.read_json(&loc)?;
            let Some(features) = page.get("features").and_then(Value::as_array) else {
                return Err(SourceError::Parse {
                    what: "STAC search page",
                    location: url,
                    detail: "no `features` array".into(),
                });
            };
            for f in features {
                out.push(parse_item(f, &loc, Some(&query.collection))?);
            }
            let next = links(&page).find(|l| l.get("rel").and_then(Value::as_str) == Some("next"));
            let Some(next) = next else { break };
            let method = next.get("method").and_then(Value::as_str).unwrap_or("GET");
            if !method.eq_ignore_ascii_case("GET") {
                return Err(SourceError::Unsupported {
                    location: url,
                    detail: format!(
                        "the `next` link asks for {method}; only GET paging is supported"
                    ),
                });
            }
            let Some(href) = next.get("href").and_then(Value::as_str) else {
                break;
            };
            let Location::Url(n) = loc.join(href) else {
                break;
            };
            if visited.contains(&n) {
                break;
            }
            url = n;
        }
        Ok(out)
    }
}

impl Source for StacSource {
    fn describe(&self) -> String {
        match &self.root {
            Location::Key(k) => format!("stac catalog `{k}` of the `catalog` input"),
            other => format!("stac catalog `{other}`"),
        }
    }

    fn list(&self, query: &SceneQuery) -> Result<Vec<SceneItem>, SourceError> {
        let root = self.read_json(&self.root)?;
        let search = links(&root)
            .find(|l| l.get("rel").and_then(Value::as_str) == Some("search"))
            .and_then(|l| l.get("href").and_then(Value::as_str))
            .map(|h| self.root.join(h));
        let mut items = match search {
            Some(s @ Location::Url(_)) => self.search(&s, query)?,
            _ => {
                let mut walk = Walk {
                    query,
                    seen: BTreeSet::from([self.root.clone()]),
                    out: Vec::new(),
                };
                self.walk(&mut walk, &self.root, &root, None, 0)?;
                walk.out
            }
        };
        items.retain(|i| query.keep(i));
        sort_and_dedup(&mut items);
        Ok(items)
    }

    fn resolve(&self, asset: &AssetRef) -> Result<String, SourceError> {
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
            Location::Url(_) => Ok(asset.location.gdal_path().expect("urls have a gdal path")),
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
    let baseline = match props.get("s2:processing_baseline") {
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
        assets.insert(
            key.clone(),
            AssetRef {
                href: href.to_string(),
                location: loc.join(href),
                band: None,
                band_names,
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
                .and_then(Value::as_bool)
                .unwrap_or(false),
            platform: str_prop("platform").map(str::to_string),
            tile,
            bbox,
        },
        assets,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{self, TestServer};
    use super::*;
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
        let path = src.resolve(&b04).unwrap();
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
        let blob = src.resolve(&a).unwrap();
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
        let gdal = src.resolve(&b04).unwrap();
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
}
