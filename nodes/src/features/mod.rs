//! The features of the method (`docs/method.md`, "Features") as pure functions on pixel buffers, for
//! the `index` node (which reads blocks and writes the `Features` artifact) and the `stack` node
//! (which selects from it by name).
//!
//! Why a module apart from the nodes: the formulas are the science and must be checked against
//! hand-computed values, `gdaldem` and brute force, and benchmarked against numpy and
//! scikit-image, without GDAL files in the way. Nothing here does I/O.
//!
//! - [`sets`]: feature names, their sensors, the named sets (`s2`, `s2_s1`, ...).
//! - [`spectral`]: Sentinel-2 indices, SAR differences and ratios, PALSAR-2 NDI and NLI.
//! - [`glcm`]: GLCM sum average and dissimilarity with a sliding histogram.
//! - [`terrain`]: slope by Horn's method, as `gdaldem slope`.
//! - [`distance`]: road rasterisation and the exact Euclidean distance transform.
//!
//! Nodata is `NaN` everywhere; no function returns `Inf`.

pub mod distance;
pub mod glcm;
pub mod sets;
pub mod spectral;
pub mod terrain;

pub use sets::{CATALOGUE, FeatureDef, FeatureSelection, S2_BANDS, Sensor};

/// `n / d`, or `NaN` (nodata) when the quotient is not finite: a zero denominator, an overflow,
/// or a `NaN` input.
#[inline]
pub fn ratio(n: f32, d: f32) -> f32 {
    let q = n / d;
    if q.is_finite() { q } else { f32::NAN }
}
