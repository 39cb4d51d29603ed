//! Accuracy of a class map from a confusion matrix (`docs/method.md`, "Accuracy"): pure arithmetic,
//! no I/O. Used by the `assess` node.
//!
//! A confusion matrix `n[i][j]` counts sample units whose **map** class is `i` (rows) and whose
//! **reference** class is `j` (columns), both in legend order; `n_i+` is a row total, `n_+j` a
//! column total, `n` the grand total.
//!
//! - Sample counts ([`Confusion::metrics`]): OA = sum n_ii / n (SE sqrt(OA (1 - OA) / (n - 1)),
//!   as for a simple random sample); UA_i = n_ii / n_i+ (1 - commission error); PA_j = n_jj /
//!   n_+j (1 - omission error); F1_i = 2 n_ii / (n_i+ + n_+i) (the harmonic mean of UA_i and
//!   PA_i, written with counts so that it is defined whenever class `i` occurs on either side). No kappa (Pontius & Millones 2011; Olofsson et al. 2014 advise
//!   against it).
//! - Area-weighted, stratified by map class (Olofsson et al. 2014, Remote Sens. Environ. 148,
//!   42-57; [`area_weighted`]): with W_i the mapped area share of class `i`, p_ij = W_i n_ij /
//!   n_i+ estimates the share of the area that is mapped `i` and is `j` in reality; OA = sum p_ii,
//!   UA_i = p_ii / p_i+, PA_j = p_jj / p_+j, the area share of class `j` is p_+j with
//!   SE(p_+j) = sqrt(sum_i W_i^2 (n_ij/n_i+)(1 - n_ij/n_i+) / (n_i+ - 1)),
//!   SE(OA) = sqrt(sum_i W_i^2 UA_i (1 - UA_i) / (n_i+ - 1)), SE(UA_i) = sqrt(UA_i (1 - UA_i) /
//!   (n_i+ - 1)) and SE(PA_j) from eq. 7 of the paper (written with W instead of pixel counts).
//!   A 95 % confidence interval is +/- 1.96 SE.
//! - Repeated splits ([`summarize`]): mean and sample standard deviation (n - 1) of OA, UA and PA
//!   over several confusion matrices, as the seed reports "92.3 +/- 0.2".
//!
//! Conventions for the corner cases (each one tested):
//! - A ratio with a zero denominator is `None` (UA of a class no sample is mapped as, PA of a
//!   class absent from the reference), never NaN.
//! - A stratum with a single sample (`n_i+ = 1`) has `(n_ij/n_i+)(1 - n_ij/n_i+) = 0` for every
//!   `j`, so its variance term is 0/0; it contributes 0 to the standard errors and is listed in
//!   [`AreaWeighted::single_sample`] (its variance is not estimable: the SEs are a lower bound).
//! - A stratum with mapped area but no sample (`W_i > 0`, `n_i+ = 0`) makes the estimator
//!   undefined: [`AccuracyError::UnsampledStratum`]. The caller decides what to do (the `assess`
//!   node leaves such classes out of the strata and says so).

use serde::{Deserialize, Serialize};

/// What makes an accuracy computation impossible.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AccuracyError {
    #[error("the confusion matrix has no classes")]
    NoClasses,
    #[error("the confusion matrix is not square: row {row} has {len} entries, expected {k}")]
    NotSquare { row: usize, len: usize, k: usize },
    #[error("the confusion matrix is empty (no sample units)")]
    Empty,
    #[error("{got} area weights for {k} classes")]
    WeightCount { got: usize, k: usize },
    #[error("area weight {index} is {value}; weights must be finite and >= 0")]
    BadWeight { index: usize, value: f64 },
    #[error("the area weights sum to 0 (nothing is mapped)")]
    NoArea,
    #[error(
        "class {index} covers {share} of the mapped area but no sample unit is mapped as it; \
         the stratified estimator needs at least one sample per mapped class"
    )]
    UnsampledStratum { index: usize, share: f64 },
    #[error("no confusion matrices to summarise")]
    NoRepeats,
    #[error("repeat {repeat} has {got} classes, the first has {k}")]
    RepeatSize { repeat: usize, got: usize, k: usize },
}

/// A square confusion matrix: `matrix[i][j]` = units mapped as class `i` with reference `j`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confusion {
    matrix: Vec<Vec<u64>>,
}

/// Accuracy from sample counts, per class in legend order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n: u64,
    pub oa: f64,
    /// SE of OA under simple random sampling, sqrt(OA (1 - OA) / (n - 1)); `None` when n = 1.
    pub oa_se: Option<f64>,
    pub ua: Vec<Option<f64>>,
    pub pa: Vec<Option<f64>>,
    pub f1: Vec<Option<f64>>,
}

/// Area-weighted (stratified) estimates, per class in legend order. Shares are fractions of
/// the mapped area; multiply by the total area for areas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AreaWeighted {
    /// W_i, normalised to sum to 1.
    pub weights: Vec<f64>,
    /// p_ij.
    pub p: Vec<Vec<f64>>,
    pub oa: f64,
    pub oa_se: f64,
    pub ua: Vec<Option<f64>>,
    pub ua_se: Vec<Option<f64>>,
    pub pa: Vec<Option<f64>>,
    pub pa_se: Vec<Option<f64>>,
    /// p_+j: the estimated share of the area that is class `j` in reality.
    pub share: Vec<f64>,
    /// SE(p_+j).
    pub share_se: Vec<f64>,
    /// Classes (indices) whose stratum has exactly one sample: their variance terms are 0.
    pub single_sample: Vec<usize>,
}

/// Mean and sample standard deviation of a quantity over repeats.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeanSd {
    pub mean: f64,
    /// Sample standard deviation (n - 1); `None` with a single value.
    pub sd: Option<f64>,
    /// Number of repeats in which the quantity is defined.
    pub n: usize,
}

/// OA, UA and PA as mean +/- sd over repeated train/validation splits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RepeatSummary {
    pub repeats: usize,
    pub oa: MeanSd,
    /// Per class; `None` when the quantity is undefined in every repeat.
    pub ua: Vec<Option<MeanSd>>,
    pub pa: Vec<Option<MeanSd>>,
}

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

impl Confusion {
    /// A `k x k` matrix with `k >= 1` (it may hold only zeros; [`Confusion::metrics`] refuses
    /// that).
    pub fn new(matrix: Vec<Vec<u64>>) -> Result<Confusion, AccuracyError> {
        let k = matrix.len();
        if k == 0 {
            return Err(AccuracyError::NoClasses);
        }
        if let Some((row, r)) = matrix.iter().enumerate().find(|(_, r)| r.len() != k) {
            return Err(AccuracyError::NotSquare {
                row,
                len: r.len(),
                k,
            });
        }
        Ok(Confusion { matrix })
    }

    /// A `k x k` matrix of zeros.
    pub fn zeros(k: usize) -> Result<Confusion, AccuracyError> {
        Confusion::new(vec![vec![0; k]; k])
    }

    /// Count one unit mapped as class index `map` with reference class index `reference`.
    ///
    /// # Panics
    /// If an index is out of range.
    pub fn add(&mut self, map: usize, reference: usize) {
        self.matrix[map][reference] += 1;
    }

    pub fn k(&self) -> usize {
        self.matrix.len()
    }

    pub fn matrix(&self) -> &[Vec<u64>] {
        &self.matrix
    }

    pub fn n(&self) -> u64 {
        self.matrix.iter().flatten().sum()
    }

    /// n_i+ (units mapped as class `i`).
    pub fn row_total(&self, i: usize) -> u64 {
        self.matrix[i].iter().sum()
    }

    /// n_+j (units whose reference is class `j`).
    pub fn col_total(&self, j: usize) -> u64 {
        self.matrix.iter().map(|r| r[j]).sum()
    }

    /// OA, UA, PA and F1 from the counts.
    pub fn metrics(&self) -> Result<Metrics, AccuracyError> {
        let n = self.n();
        if n == 0 {
            return Err(AccuracyError::Empty);
        }
        let k = self.k();
        let diag: Vec<f64> = (0..k).map(|i| self.matrix[i][i] as f64).collect();
        let rows: Vec<f64> = (0..k).map(|i| self.row_total(i) as f64).collect();
        let cols: Vec<f64> = (0..k).map(|j| self.col_total(j) as f64).collect();
        let oa = diag.iter().sum::<f64>() / n as f64;
        Ok(Metrics {
            n,
            oa,
            oa_se: (n > 1).then(|| (oa * (1.0 - oa) / (n - 1) as f64).sqrt()),
            ua: (0..k).map(|i| ratio(diag[i], rows[i])).collect(),
            pa: (0..k).map(|j| ratio(diag[j], cols[j])).collect(),
            f1: (0..k)
                .map(|i| ratio(2.0 * diag[i], rows[i] + cols[i]))
                .collect(),
        })
    }
}

/// The stratified estimators of Olofsson et al. (2014) with strata = map classes. `weights`
/// are the mapped areas (or pixel counts) of the classes in matrix order; they are normalised.
pub fn area_weighted(c: &Confusion, weights: &[f64]) -> Result<AreaWeighted, AccuracyError> {
    let k = c.k();
    if weights.len() != k {
        return Err(AccuracyError::WeightCount {
            got: weights.len(),
            k,
        });
    }
    if let Some((index, &value)) = weights
        .iter()
        .enumerate()
        .find(|(_, w)| !(w.is_finite() && **w >= 0.0))
    {
        return Err(AccuracyError::BadWeight { index, value });
    }
    if c.n() == 0 {
        return Err(AccuracyError::Empty);
    }
    let total: f64 = weights.iter().sum();
    if total <= 0.0 {
        return Err(AccuracyError::NoArea);
    }
    let w: Vec<f64> = weights.iter().map(|x| x / total).collect();
    let rows: Vec<f64> = (0..k).map(|i| c.row_total(i) as f64).collect();
    if let Some(index) = (0..k).find(|&i| w[i] > 0.0 && rows[i] == 0.0) {
        return Err(AccuracyError::UnsampledStratum {
            index,
            share: w[index],
        });
    }
    // Row proportions n_ij / n_i+ (0 for an unsampled stratum, whose weight is then 0).
    let q: Vec<Vec<f64>> = (0..k)
        .map(|i| {
            (0..k)
                .map(|j| ratio(c.matrix[i][j] as f64, rows[i]).unwrap_or(0.0))
                .collect()
        })
        .collect();
    let p: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..k).map(|j| w[i] * q[i][j]).collect())
        .collect();
    let share: Vec<f64> = (0..k).map(|j| (0..k).map(|i| p[i][j]).sum()).collect();
    let row_share: Vec<f64> = (0..k).map(|i| p[i].iter().sum()).collect();
    let oa: f64 = (0..k).map(|i| p[i][i]).sum();
    let ua: Vec<Option<f64>> = (0..k).map(|i| ratio(p[i][i], row_share[i])).collect();
    let pa: Vec<Option<f64>> = (0..k).map(|j| ratio(p[j][j], share[j])).collect();
    // Variance of a row proportion in stratum i: q (1 - q) / (n_i+ - 1); 0 when n_i+ <= 1
    // (n_i+ = 1 gives q in {0, 1}, so the numerator is 0 too).
    let var = |i: usize, qq: f64| {
        if rows[i] > 1.0 {
            qq * (1.0 - qq) / (rows[i] - 1.0)
        } else {
            0.0
        }
    };
    let share_se: Vec<f64> = (0..k)
        .map(|j| {
            (0..k)
                .map(|i| w[i] * w[i] * var(i, q[i][j]))
                .sum::<f64>()
                .sqrt()
        })
        .collect();
    let oa_se = (0..k)
        .map(|i| ua[i].map_or(0.0, |u| w[i] * w[i] * var(i, u)))
        .sum::<f64>()
        .sqrt();
    let ua_se: Vec<Option<f64>> = (0..k).map(|i| ua[i].map(|u| var(i, u).sqrt())).collect();
    // Olofsson et al. 2014, eq. 7, divided through by N^2 (N_i. / N = W_i, N^_.j / N = p_+j).
    let pa_se: Vec<Option<f64>> = (0..k)
        .map(|j| {
            let (pj, uj) = (pa[j]?, ua[j]?);
            let own = w[j] * w[j] * (1.0 - pj).powi(2) * var(j, uj);
            let others: f64 = (0..k)
                .filter(|&i| i != j)
                .map(|i| w[i] * w[i] * var(i, q[i][j]))
                .sum();
            Some((own + pj * pj * others).sqrt() / share[j])
        })
        .collect();
    Ok(AreaWeighted {
        single_sample: (0..k).filter(|&i| rows[i] == 1.0).collect(),
        weights: w,
        p,
        oa,
        oa_se,
        ua,
        ua_se,
        pa,
        pa_se,
        share,
        share_se,
    })
}

/// Mean and sample sd of the defined values (`None` when there are none).
pub fn mean_sd(values: impl IntoIterator<Item = Option<f64>>) -> Option<MeanSd> {
    let v: Vec<f64> = values.into_iter().flatten().collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = (v.len() > 1)
        .then(|| (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt());
    Some(MeanSd {
        mean,
        sd,
        n: v.len(),
    })
}

/// OA, UA and PA as mean +/- sd over repeated splits (all matrices of the same size; an empty
/// one is an error, as for [`Confusion::metrics`]).
pub fn summarize(repeats: &[Confusion]) -> Result<RepeatSummary, AccuracyError> {
    let first = repeats.first().ok_or(AccuracyError::NoRepeats)?;
    let k = first.k();
    if let Some((repeat, c)) = repeats.iter().enumerate().find(|(_, c)| c.k() != k) {
        return Err(AccuracyError::RepeatSize {
            repeat,
            got: c.k(),
            k,
        });
    }
    let m: Vec<Metrics> = repeats
        .iter()
        .map(Confusion::metrics)
        .collect::<Result<_, _>>()?;
    Ok(RepeatSummary {
        repeats: m.len(),
        oa: mean_sd(m.iter().map(|x| Some(x.oa))).expect("at least one repeat"),
        ua: (0..k).map(|i| mean_sd(m.iter().map(|x| x.ua[i]))).collect(),
        pa: (0..k).map(|j| mean_sd(m.iter().map(|x| x.pa[j]))).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) {
        assert!((a - b).abs() <= tol, "{a} vs {b} (tol {tol})");
    }

    fn some_close(a: Option<f64>, b: f64, tol: f64) {
        close(a.expect("defined"), b, tol);
    }

    fn cm(m: &[&[u64]]) -> Confusion {
        Confusion::new(m.iter().map(|r| r.to_vec()).collect()).unwrap()
    }

    /// Two classes, computed by hand.
    ///
    /// ```text
    ///            ref 1  ref 2 | n_i+      W
    /// map 1        8      2   |  10     0.4
    /// map 2        1      9   |  10     0.6
    /// n_+j         9     11   |  20
    /// ```
    /// Counts: OA = 17/20 = 0.85; UA = 8/10, 9/10; PA = 8/9, 9/11; F1 = 2*8/(10+9) = 16/19,
    /// 2*9/(10+11) = 6/7.
    /// Area: p = [[0.32, 0.08], [0.06, 0.54]]; OA = 0.86; p_+1 = 0.38, p_+2 = 0.62;
    /// PA_1 = 0.32/0.38 = 16/19, PA_2 = 0.54/0.62 = 27/31; UA as with counts.
    /// SE(OA)^2 = 0.4^2*0.8*0.2/9 + 0.6^2*0.9*0.1/9 = (0.0256 + 0.0324)/9 = 0.058/9;
    /// SE(p_+1)^2 = 0.16*(0.8*0.2)/9 + 0.36*(0.1*0.9)/9 = 0.058/9 as well (and p_+2 the same:
    /// with two classes q(1-q) is symmetric). SE(UA_1)^2 = 0.8*0.2/9 = 0.16/9.
    /// SE(PA_1)^2 = [W_1^2 (1-PA_1)^2 UA_1(1-UA_1)/9 + PA_1^2 W_2^2 q_21(1-q_21)/9] / p_+1^2
    ///   = [0.16*(3/19)^2*0.16/9 + (16/19)^2*0.36*0.09/9] / 0.38^2.
    #[test]
    fn two_classes_by_hand() {
        let c = cm(&[&[8, 2], &[1, 9]]);
        assert_eq!(c.n(), 20);
        assert_eq!((c.row_total(0), c.col_total(0)), (10, 9));
        let m = c.metrics().unwrap();
        close(m.oa, 0.85, 1e-15);
        some_close(m.oa_se, (0.85f64 * 0.15 / 19.0).sqrt(), 1e-15);
        some_close(m.ua[0], 0.8, 1e-15);
        some_close(m.ua[1], 0.9, 1e-15);
        some_close(m.pa[0], 8.0 / 9.0, 1e-15);
        some_close(m.pa[1], 9.0 / 11.0, 1e-15);
        some_close(m.f1[0], 16.0 / 19.0, 1e-15);
        some_close(m.f1[1], 6.0 / 7.0, 1e-15);

        // Pixel counts work as weights: 4000 and 6000 px -> W = 0.4, 0.6.
        let a = area_weighted(&c, &[4000.0, 6000.0]).unwrap();
        close(a.weights[0], 0.4, 1e-15);
        close(a.p[0][0], 0.32, 1e-15);
        close(a.p[0][1], 0.08, 1e-15);
        close(a.p[1][0], 0.06, 1e-15);
        close(a.p[1][1], 0.54, 1e-15);
        close(a.oa, 0.86, 1e-15);
        close(a.share[0], 0.38, 1e-15);
        close(a.share[1], 0.62, 1e-15);
        some_close(a.ua[0], 0.8, 1e-15);
        some_close(a.pa[0], 16.0 / 19.0, 1e-15);
        some_close(a.pa[1], 27.0 / 31.0, 1e-15);
        let se = (0.058f64 / 9.0).sqrt();
        close(a.oa_se, se, 1e-15);
        close(a.share_se[0], se, 1e-15);
        close(a.share_se[1], se, 1e-15);
        some_close(a.ua_se[0], (0.16f64 / 9.0).sqrt(), 1e-15);
        let pa1 = 16.0 / 19.0;
        let v = (0.16 * (3.0f64 / 19.0).powi(2) * 0.16 / 9.0 + pa1 * pa1 * 0.36 * 0.09 / 9.0)
            / (0.38f64 * 0.38);
        some_close(a.pa_se[0], v.sqrt(), 1e-15);
        assert!(a.single_sample.is_empty());
    }

    /// The worked example of Olofsson et al. (2014), section 5 (Tables 8-10): four strata
    /// (deforestation, forest gain, stable forest, stable non-forest) of 200,000, 150,000,
    /// 3,200,000 and 6,450,000 pixels of 30 m (0.09 ha; 900,000 ha in all), so W = 0.020,
    /// 0.015, 0.320, 0.645, and 640 sample units.
    ///
    /// By hand: p_+1 = 0.020*66/75 + 0.015*0/75 + 0.320*1/165 + 0.645*2/325
    ///          = 0.0176 + 0 + 0.00193939 + 0.00396923 = 0.02350862;
    /// area of deforestation = 900,000 ha * 0.02350862 = 21,158 ha. OA = 0.020*66/75 +
    /// 0.015*55/75 + 0.320*153/165 + 0.645*313/325 = 0.0176 + 0.011 + 0.29672727 + 0.62118462
    /// = 0.94651189.
    /// Published: areas 21,158 +/- 6,158; 11,686 +/- 3,756; 285,770 +/- 15,510;
    /// 581,386 +/- 16,282 ha (95 %); UA 0.88 +/- 0.07, 0.73 +/- 0.10, 0.93 +/- 0.04,
    /// 0.96 +/- 0.02; PA 0.75 +/- 0.21, 0.85 +/- 0.25, 0.93 +/- 0.03, 0.96 +/- 0.02;
    /// OA 0.95 +/- 0.02.
    #[test]
    fn olofsson_2014_worked_example() {
        let c = cm(&[
            &[66, 0, 5, 4],
            &[0, 55, 8, 12],
            &[1, 0, 153, 11],
            &[2, 1, 9, 313],
        ]);
        let px = [200_000.0, 150_000.0, 3_200_000.0, 6_450_000.0];
        let a = area_weighted(&c, &px).unwrap();
        let total_ha = 10_000_000.0 * 0.09;
        close(
            a.share[0],
            0.0176 + 1.0 / 165.0 * 0.32 + 0.645 * 2.0 / 325.0,
            1e-15,
        );
        close(
            a.oa,
            0.0176 + 0.011 + 0.32 * 153.0 / 165.0 + 0.645 * 313.0 / 325.0,
            1e-15,
        );
        let areas = [21_158.0, 11_686.0, 285_770.0, 581_386.0];
        let cis = [6_158.0, 3_756.0, 15_510.0, 16_282.0];
        for j in 0..4 {
            close(total_ha * a.share[j], areas[j], 0.5);
            close(total_ha * 1.96 * a.share_se[j], cis[j], 0.5);
        }
        let ua = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)];
        let pa = [(0.75, 0.21), (0.85, 0.25), (0.93, 0.03), (0.96, 0.02)];
        for i in 0..4 {
            some_close(a.ua[i], ua[i].0, 0.005);
            close(1.96 * a.ua_se[i].unwrap(), ua[i].1, 0.005);
            some_close(a.pa[i], pa[i].0, 0.005);
            close(1.96 * a.pa_se[i].unwrap(), pa[i].1, 0.005);
        }
        close(a.oa, 0.95, 0.005);
        close(1.96 * a.oa_se, 0.02, 0.005);
        // Shares sum to 1 and the sample-count OA differs: 587 / 640.
        close(a.share.iter().sum::<f64>(), 1.0, 1e-12);
        close(c.metrics().unwrap().oa, 587.0 / 640.0, 1e-15);
    }

    /// Class 3 is mapped (one unit, whose reference is class 1) but never in the reference:
    /// PA_3 is undefined, UA_3 = 0, F1_3 = 2*0/(1+0) = 0; its stratum has one sample.
    ///
    /// ```text
    ///          r1 r2 r3 | n_i+  W
    /// map 1     3  1  0 |  4   0.5
    /// map 2     0  4  0 |  4   0.3
    /// map 3     1  0  0 |  1   0.2
    /// ```
    /// p = [[0.375, 0.125, 0], [0, 0.3, 0], [0.2, 0, 0]]; p_+ = 0.575, 0.425, 0; OA = 0.675.
    /// SE(OA)^2 = 0.25*0.75*0.25/3 + 0.09*0 + (n_3+ = 1: 0) = 0.046875/3 = 0.015625 -> 0.125.
    /// SE(p_+1)^2 = 0.25*(0.75*0.25)/3 + 0 + 0 = 0.015625 -> 0.125.
    #[test]
    fn class_mapped_but_never_in_the_reference_and_a_single_sample_stratum() {
        let c = cm(&[&[3, 1, 0], &[0, 4, 0], &[1, 0, 0]]);
        let m = c.metrics().unwrap();
        close(m.oa, 7.0 / 9.0, 1e-15);
        assert_eq!(m.ua[2], Some(0.0));
        assert_eq!(m.pa[2], None);
        assert_eq!(m.f1[2], Some(0.0));
        let a = area_weighted(&c, &[0.5, 0.3, 0.2]).unwrap();
        close(a.p[0][0], 0.375, 1e-15);
        close(a.p[2][0], 0.2, 1e-15);
        close(a.share[0], 0.575, 1e-15);
        close(a.share[1], 0.425, 1e-15);
        assert_eq!(a.share[2], 0.0);
        close(a.oa, 0.675, 1e-15);
        close(a.oa_se, 0.125, 1e-15);
        close(a.share_se[0], 0.125, 1e-15);
        assert_eq!(a.share_se[2], 0.0);
        assert_eq!(a.ua[2], Some(0.0));
        assert_eq!(a.ua_se[2], Some(0.0));
        assert_eq!(a.pa[2], None);
        assert_eq!(a.pa_se[2], None);
        assert_eq!(a.single_sample, vec![2]);
        // UA_2 = 1 with 4 samples: SE 0; PA_2 = 0.3 / 0.425.
        assert_eq!(a.ua_se[1], Some(0.0));
        some_close(a.pa[1], 0.3 / 0.425, 1e-15);
    }

    #[test]
    fn a_class_neither_mapped_nor_sampled_is_harmless() {
        // Class 2 has no area and no sample: it takes no part.
        let c = cm(&[&[5, 0], &[0, 0]]);
        let a = area_weighted(&c, &[10.0, 0.0]).unwrap();
        close(a.oa, 1.0, 1e-15);
        assert_eq!(a.ua[1], None);
        assert_eq!(a.pa[1], None);
        let m = c.metrics().unwrap();
        assert_eq!(m.f1[1], None);
        assert_eq!(m.oa_se, Some(0.0));
        let one = cm(&[&[1, 0], &[0, 0]]).metrics().unwrap();
        assert_eq!(one.oa_se, None);
        assert_eq!(m.ua[1], None);
    }

    #[test]
    fn errors() {
        assert_eq!(Confusion::new(vec![]), Err(AccuracyError::NoClasses));
        assert!(matches!(
            Confusion::new(vec![vec![1, 2], vec![3]]),
            Err(AccuracyError::NotSquare {
                row: 1,
                len: 1,
                k: 2
            })
        ));
        let empty = Confusion::zeros(3).unwrap();
        assert_eq!(empty.metrics(), Err(AccuracyError::Empty));
        assert_eq!(
            area_weighted(&empty, &[1.0, 1.0, 1.0]),
            Err(AccuracyError::Empty)
        );
        let c = cm(&[&[5, 1], &[0, 0]]);
        assert!(matches!(
            area_weighted(&c, &[1.0]),
            Err(AccuracyError::WeightCount { got: 1, k: 2 })
        ));
        assert!(matches!(
            area_weighted(&c, &[1.0, f64::NAN]),
            Err(AccuracyError::BadWeight { index: 1, .. })
        ));
        assert!(matches!(
            area_weighted(&c, &[1.0, -1.0]),
            Err(AccuracyError::BadWeight { index: 1, .. })
        ));
        assert_eq!(area_weighted(&c, &[0.0, 0.0]), Err(AccuracyError::NoArea));
        // Class 2 is mapped (a quarter of the area) but has no sample.
        let e = area_weighted(&c, &[3.0, 1.0]).unwrap_err();
        assert_eq!(
            e,
            AccuracyError::UnsampledStratum {
                index: 1,
                share: 0.25
            }
        );
        assert!(e.to_string().contains("no sample unit"), "{e}");
        assert_eq!(summarize(&[]), Err(AccuracyError::NoRepeats));
        assert!(matches!(
            summarize(&[c.clone(), Confusion::zeros(3).unwrap()]),
            Err(AccuracyError::RepeatSize {
                repeat: 1,
                got: 3,
                k: 2
            })
        ));
        assert_eq!(
            summarize(&[c, Confusion::zeros(2).unwrap()]),
            Err(AccuracyError::Empty)
        );
    }

    /// Three splits with OA 0.9, 0.8 and 0.7: mean 0.8, sample sd sqrt((0.01 + 0 + 0.01)/2) = 0.1.
    #[test]
    fn mean_and_sample_sd_over_repeats() {
        let r = [
            cm(&[&[5, 0], &[1, 4]]), // OA 0.9; UA 1, 0.8; PA 5/6, 1
            cm(&[&[4, 1], &[1, 4]]), // OA 0.8; UA 0.8, 0.8; PA 0.8, 0.8
            cm(&[&[7, 3], &[0, 0]]), // OA 0.7; UA 0.7, -; PA 1, 0
        ];
        let s = summarize(&r).unwrap();
        assert_eq!(s.repeats, 3);
        close(s.oa.mean, 0.8, 1e-12);
        close(s.oa.sd.unwrap(), 0.1, 1e-12);
        assert_eq!(s.oa.n, 3);
        // UA of class 2 is defined in two repeats only: 0.8, 0.8 -> sd 0.
        let ua2 = s.ua[1].unwrap();
        assert_eq!(ua2.n, 2);
        close(ua2.mean, 0.8, 1e-15);
        close(ua2.sd.unwrap(), 0.0, 1e-15);
        // PA of class 2: 1, 0.8, 0 -> mean 0.6, sd sqrt((0.16 + 0.04 + 0.36)/2) = sqrt(0.28).
        let pa2 = s.pa[1].unwrap();
        close(pa2.mean, 0.6, 1e-12);
        close(pa2.sd.unwrap(), 0.28f64.sqrt(), 1e-12);
        // One repeat: no sd.
        let one = summarize(&r[..1]).unwrap();
        assert_eq!(one.oa.sd, None);
        close(one.oa.mean, 0.9, 1e-15);
        assert_eq!(mean_sd([None, None]), None);
    }
}
