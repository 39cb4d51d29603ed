//! Reference and validation points.
//!
//! Both are stratified by class with a share of the points split equally between the classes
//! present (so rare classes such as solar farms get some) and the rest in proportion to area.
//! Reference labels carry interpretation errors: a wrong label is a plausible confusion
//! (rice/other crops, forest types, water/aquaculture, ...), as a human interpreter would make.
//! Validation points avoid the reference pixels and are labelled from the truth of their year.

use super::landscape::{
    AQUACULTURE, BARREN, CLASS_COUNT, DECIDUOUS, EBF, ENF, GRASS, MANGROVE, ORCHARD, OTHER_CROPS,
    PLANTATION, RICE, SOLAR, URBAN, WATER,
};
use super::rng::Rng;

/// A sampled pixel and its label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub pixel: usize,
    pub class: u8,
}

/// Classes an interpreter confuses a class with, most likely first.
fn confusions(class: u8) -> &'static [u8] {
    match class {
        WATER => &[AQUACULTURE, RICE],
        URBAN => &[BARREN, ORCHARD],
        RICE => &[OTHER_CROPS, GRASS, AQUACULTURE],
        OTHER_CROPS => &[RICE, GRASS, ORCHARD],
        GRASS => &[OTHER_CROPS, BARREN, ORCHARD],
        ORCHARD => &[OTHER_CROPS, EBF, GRASS],
        BARREN => &[GRASS, URBAN],
        EBF => &[PLANTATION, DECIDUOUS, ENF],
        ENF => &[EBF, PLANTATION],
        DECIDUOUS => &[EBF, GRASS],
        PLANTATION => &[EBF, GRASS],
        MANGROVE => &[EBF, AQUACULTURE],
        AQUACULTURE => &[WATER, RICE],
        SOLAR => &[URBAN, WATER],
        _ => &[],
    }
}

/// A plausible wrong label for `class`.
fn mislabel(class: u8, rng: &mut Rng) -> u8 {
    let c = confusions(class);
    if c.is_empty() {
        return class;
    }
    // Weights 3, 2, 1 for the first, second and third confusion.
    let weights: Vec<usize> = (0..c.len()).map(|i| 3 - i.min(2)).collect();
    let total: usize = weights.iter().sum();
    let mut r = rng.below(total);
    for (i, w) in weights.iter().enumerate() {
        if r < *w {
            return c[i];
        }
        r -= w;
    }
    c[0]
}

/// Draw `n` distinct pixels of `truth` (skipping `excluded`), stratified: `equal_share` of the
/// points split equally between the classes present, the rest by area (largest remainders).
pub fn stratified(
    truth: &[u8],
    n: usize,
    equal_share: f64,
    excluded: &[bool],
    rng: &mut Rng,
) -> Vec<Sample> {
    let mut pools: Vec<Vec<usize>> = vec![Vec::new(); CLASS_COUNT + 1];
    for (p, &c) in truth.iter().enumerate() {
        if c > 0 && !excluded.get(p).copied().unwrap_or(false) {
            pools[usize::from(c)].push(p);
        }
    }
    let available: usize = pools.iter().map(Vec::len).sum();
    let n = n.min(available);
    let present: Vec<usize> = (1..=CLASS_COUNT)
        .filter(|&c| !pools[c].is_empty())
        .collect();
    if n == 0 || present.is_empty() {
        return Vec::new();
    }
    let mut alloc = [0usize; CLASS_COUNT + 1];
    let equal = ((n as f64 * equal_share) / present.len() as f64).floor() as usize;
    for &c in &present {
        alloc[c] = equal.min(pools[c].len());
    }
    // The rest in proportion to area, by largest remainder, never beyond a pool's size.
    loop {
        let left = n - alloc.iter().sum::<usize>();
        if left == 0 {
            break;
        }
        let open: Vec<usize> = present
            .iter()
            .copied()
            .filter(|&c| alloc[c] < pools[c].len())
            .collect();
        if open.is_empty() {
            break;
        }
        let area: usize = open.iter().map(|&c| pools[c].len()).sum();
        let mut shares: Vec<(f64, usize)> = open
            .iter()
            .map(|&c| (left as f64 * pools[c].len() as f64 / area as f64, c))
            .collect();
        let mut given = 0;
        for (s, c) in &shares {
            let k = (s.floor() as usize).min(pools[*c].len() - alloc[*c]);
            alloc[*c] += k;
            given += k;
        }
        if given == 0 {
            shares.sort_by(|a, b| {
                (b.0 - b.0.floor())
                    .total_cmp(&(a.0 - a.0.floor()))
                    .then(a.1.cmp(&b.1))
            });
            for (_, c) in shares.iter().take(left) {
                alloc[*c] += 1;
            }
        }
    }
    let mut out = Vec::with_capacity(n);
    for &c in &present {
        let pool = &mut pools[c];
        // Partial Fisher-Yates: the first alloc[c] entries become a uniform sample.
        for i in 0..alloc[c] {
            let j = i + rng.below(pool.len() - i);
            pool.swap(i, j);
            out.push(Sample {
                pixel: pool[i],
                class: c as u8,
            });
        }
    }
    // Shuffle so ids do not reveal the class.
    for i in (1..out.len()).rev() {
        let j = rng.below(i + 1);
        out.swap(i, j);
    }
    out
}

/// Relabel about `error_rate` of the samples with a plausible wrong class.
pub fn add_interpretation_errors(samples: &mut [Sample], error_rate: f64, rng: &mut Rng) -> usize {
    let mut wrong = 0;
    for s in samples {
        if rng.f64() < error_rate {
            let c = mislabel(s.class, rng);
            if c != s.class {
                s.class = c;
                wrong += 1;
            }
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratification_gives_rare_classes_points_and_respects_exclusions() {
        // 1000 pixels: 980 rice, 20 solar.
        let mut truth = vec![RICE; 1000];
        for t in truth.iter_mut().take(20) {
            *t = SOLAR;
        }
        let mut excluded = vec![false; 1000];
        excluded[0] = true;
        let s = stratified(&truth, 100, 0.5, &excluded, &mut Rng::new(&[1]));
        assert_eq!(s.len(), 100);
        let solar = s.iter().filter(|x| x.class == SOLAR).count();
        assert!(solar >= 19, "{solar}");
        assert!(s.iter().all(|x| x.pixel != 0 && truth[x.pixel] == x.class));
        let mut px: Vec<usize> = s.iter().map(|x| x.pixel).collect();
        px.sort();
        px.dedup();
        assert_eq!(px.len(), 100);
    }
}
