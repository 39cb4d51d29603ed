//! Node kinds: one file each, opening with a `//!` doc (what it does, ports, params, a YAML
//! snippet), then params, the implementation and its unit tests.

pub mod acquire;
pub mod assess;
pub mod change;
pub mod composite;
pub mod index;
pub mod infer;
pub mod mask;
pub mod migrate;
pub mod mosaic;
pub mod points;
pub mod sample;
pub mod samples_csv;
pub mod simulate;
pub mod stack;
pub mod train;

use std::path::Path;

use lulc_engine::NodeError;
use lulc_engine::node::Confinement;
use rayon::prelude::*;

use crate::raster::{RasterError, RasterReader, Window};

/// Block-wise work over a raster (`index`, `stack`, `infer`, `change`): `compute` runs on groups
/// of `per_thread` blocks per rayon thread in parallel, each worker thread with its own state
/// from `open` (its readers; an error opening them fails the blocks it would compute), then
/// `write` takes the group's results in block order on the calling thread. The output is the
/// same whatever the thread count; one group's results are held at a time. (Writing one group
/// while the next is computed was tried: `index` over a 10980 x 1024 px strip took 75 s instead
/// of 77 s and 1.24 GB instead of 1.05 GB, so it was dropped.)
pub(crate) fn blockwise<S, T>(
    blocks: &[Window],
    per_thread: usize,
    open: impl Fn() -> Result<S, NodeError> + Sync + Send,
    compute: impl Fn(&S, &Window) -> Result<T, NodeError> + Sync + Send,
    mut write: impl FnMut(&Window, T) -> Result<(), NodeError>,
) -> Result<(), NodeError>
where
    T: Send,
{
    let group = rayon::current_num_threads().max(1) * per_thread.max(1);
    for g in blocks.chunks(group) {
        let results: Vec<Result<T, NodeError>> = g
            .par_iter()
            .map_init(&open, |state, w| {
                compute(state.as_ref().map_err(Clone::clone)?, w)
            })
            .collect();
        for (w, r) in g.iter().zip(results) {
            write(w, r?)?;
        }
    }
    Ok(())
}

/// GDAL drivers whose datasets name other files in ways GDAL's file list does not show (an OGR
/// VRT's `SrcDataSource`, a tile index's tiles, a STAC item's assets): refused for files a spec
/// names, as lulc cannot confine what they read.
const UNCHECKABLE_DRIVERS: [&str; 4] = ["OGR_VRT", "GTI", "STACIT", "STACTA"];

/// VRTs inside VRTs deeper than this are refused (a VRT may name itself).
const MAX_VRT_DEPTH: usize = 8;

/// Check every file GDAL reads for the dataset `main` (opened by `driver`, reading `files`)
/// against the confinement: a VRT's sources, and theirs when a source is a VRT again. `main`
/// names the dataset in errors (e.g. `points.vrt`).
pub(crate) fn confine_dataset(
    conf: &Confinement,
    main: &str,
    driver: &str,
    files: &[String],
) -> Result<(), NodeError> {
    confine_dataset_at(conf, main, driver, files, 0)
}

fn confine_dataset_at(
    conf: &Confinement,
    main: &str,
    driver: &str,
    files: &[String],
    depth: usize,
) -> Result<(), NodeError> {
    if UNCHECKABLE_DRIVERS.contains(&driver) {
        return Err(NodeError::new(format!(
            "`{main}` is a GDAL virtual dataset ({driver}): lulc cannot check which files it reads"
        ))
        .with_help(format!(
            "write it out as a real file first, e.g. `ogr2ogr out.gpkg {main}` or \
             `gdal_translate {main} out.tif`, and name that"
        )));
    }
    for f in files {
        conf.check(&format!("`{main}` reads another file"), f)?;
    }
    if driver != "VRT" {
        return Ok(());
    }
    for f in files
        .iter()
        .filter(|f| f.as_str() != main && is_vrt_file(f))
    {
        if depth >= MAX_VRT_DEPTH {
            return Err(NodeError::new(format!(
                "`{main}`: VRTs nested more than {MAX_VRT_DEPTH} deep (does one name itself?)"
            )));
        }
        let inner = RasterReader::open(f).map_err(|e| NodeError::new(e.to_string()))?;
        confine_dataset_at(conf, f, &inner.driver(), &inner.file_list(), depth + 1)?;
    }
    Ok(())
}

/// Does the file start like a GDAL raster VRT?
fn is_vrt_file(path: &str) -> bool {
    use std::io::Read;
    let mut head = [0u8; 256];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    String::from_utf8_lossy(&head[..n])
        .trim_start()
        .starts_with("<VRTDataset")
}

/// Readers of every raster in `paths`, in order; the first that cannot be opened is the error.
pub(crate) fn open_all<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<RasterReader>, NodeError> {
    paths
        .iter()
        .map(|p| RasterReader::open(p).map_err(raster_err))
        .collect()
}

/// A raster error as a step failure, its message unchanged (it names the file and band).
pub(crate) fn raster_err(e: RasterError) -> NodeError {
    NodeError::new(e.to_string())
}

/// A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn blocks(n: usize) -> Vec<Window> {
        (0..n)
            .map(|i| Window::new(i * 4, 0, 4, 1 + i % 3))
            .collect()
    }

    #[test]
    fn blockwise_writes_every_block_once_in_order_whatever_the_group_size() {
        let blocks = blocks(11);
        let expected: Vec<(Window, usize)> = blocks.iter().map(|w| (*w, w.x * 10 + w.h)).collect();
        for per_thread in [1, 2, 3, 4, 11, 64] {
            let mut written = Vec::new();
            blockwise(
                &blocks,
                per_thread,
                || Ok(10usize),
                |ten, w| Ok(w.x * ten + w.h),
                |w, v| {
                    written.push((*w, v));
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(written, expected, "{per_thread} per thread");
        }
        // No blocks: nothing opened, nothing written.
        blockwise(
            &[],
            4,
            || -> Result<(), NodeError> { panic!("opened") },
            |_, _| Ok(()),
            |_, _: ()| panic!("wrote"),
        )
        .unwrap();
    }

    #[test]
    fn blockwise_stops_at_the_first_error_in_block_order() {
        let blocks = blocks(9);
        // A compute error in block 5: blocks 0-4 are written, then the error is returned.
        let mut written = Vec::new();
        let err = blockwise(
            &blocks,
            2,
            || Ok(()),
            |_, w| {
                if w.x == 20 {
                    Err(NodeError::new("bad block 5"))
                } else {
                    Ok(w.x)
                }
            },
            |_, v| {
                written.push(v);
                Ok(())
            },
        )
        .unwrap_err();
        assert_eq!(err.message, "bad block 5");
        assert_eq!(written, vec![0, 4, 8, 12, 16]);
        // A write error stops the writing; an error opening the readers fails the blocks.
        let mut calls = 0;
        let err = blockwise(
            &blocks,
            3,
            || Ok(()),
            |_, w| Ok(w.x),
            |_, _| {
                calls += 1;
                if calls == 2 {
                    Err(NodeError::new("disk full"))
                } else {
                    Ok(())
                }
            },
        )
        .unwrap_err();
        assert_eq!((err.message.as_str(), calls), ("disk full", 2));
        let err = blockwise(
            &blocks,
            3,
            || -> Result<(), NodeError> { Err(NodeError::new("cannot open `a.tif`")) },
            |_, w| Ok(w.x),
            |_, _| Ok(()),
        )
        .unwrap_err();
        assert_eq!(err.message, "cannot open `a.tif`");
    }
}
