//! Per-pixel features: the Sentinel-2 indices, the SAR differences and ratios, PALSAR-2's NDI and
//! NLI (`docs/method.md`, "Features"). Every function works on one block of pixels in one pass: the
//! caller reads each band of the block once and gets every feature of the sensor back.
//!
//! Conventions: inputs are physical values (reflectance 0..1, backscatter in dB), `NaN` is
//! nodata and propagates; every quotient goes through [`ratio`], so a zero denominator (or an
//! overflow) gives `NaN`, never `Inf`.

use std::fmt;

use super::ratio;

/// Names of the indices [`s2_indices`] computes, in output order.
pub const S2_INDICES: [&str; 7] = ["NDVI", "EVI", "GNDVI", "GRVI", "NDWI1", "NDWI2", "GSI"];

/// The Sentinel-2 bands the indices need (reflectance 0..1, one block each, same length).
#[derive(Clone, Copy, Debug)]
pub struct S2Bands<'a> {
    /// B02
    pub blue: &'a [f32],
    /// B03
    pub green: &'a [f32],
    /// B04
    pub red: &'a [f32],
    /// B08
    pub nir: &'a [f32],
    /// B11
    pub swir1: &'a [f32],
    /// B12
    pub swir2: &'a [f32],
}

/// All seven Sentinel-2 indices of a block in one pass, into `out` in [`S2_INDICES`] order:
/// - NDVI = (B8 - B4) / (B8 + B4)
/// - EVI = 2.5 (B8 - B4) / (B8 + 6 B4 - 7.5 B2 + 1)
/// - GNDVI = (B8 - B3) / (B8 + B3)
/// - GRVI = (B3 - B4) / (B3 + B4)
/// - NDWI1 = (B8 - B11) / (B8 + B11)
/// - NDWI2 = (B8 - B12) / (B8 + B12)
/// - GSI = (B4 - B2) / (B2 + B3 + B4)
///
/// # Panics
/// If the slices differ in length.
pub fn s2_indices(b: &S2Bands<'_>, out: [&mut [f32]; 7]) {
    let n = b.blue.len();
    for s in [b.green, b.red, b.nir, b.swir1, b.swir2] {
        assert_eq!(s.len(), n, "S2 band blocks differ in length");
    }
    let [ndvi, evi, gndvi, grvi, ndwi1, ndwi2, gsi] = out;
    for o in [&*ndvi, &*evi, &*gndvi, &*grvi, &*ndwi1, &*ndwi2, &*gsi] {
        assert_eq!(o.len(), n, "output blocks differ in length");
    }
    // Indexing with a common bound lets the compiler drop the checks and vectorise.
    let (b2, b3, b4, b8, b11, b12) = (
        &b.blue[..n],
        &b.green[..n],
        &b.red[..n],
        &b.nir[..n],
        &b.swir1[..n],
        &b.swir2[..n],
    );
    let (ndvi, evi, gndvi, grvi) = (
        &mut ndvi[..n],
        &mut evi[..n],
        &mut gndvi[..n],
        &mut grvi[..n],
    );
    let (ndwi1, ndwi2, gsi) = (&mut ndwi1[..n], &mut ndwi2[..n], &mut gsi[..n]);
    for i in 0..n {
        let (blue, green, red, nir, s1, s2) = (b2[i], b3[i], b4[i], b8[i], b11[i], b12[i]);
        ndvi[i] = ratio(nir - red, nir + red);
        evi[i] = ratio(2.5 * (nir - red), nir + 6.0 * red - 7.5 * blue + 1.0);
        gndvi[i] = ratio(nir - green, nir + green);
        grvi[i] = ratio(green - red, green + red);
        ndwi1[i] = ratio(nir - s1, nir + s1);
        ndwi2[i] = ratio(nir - s2, nir + s2);
        gsi[i] = ratio(red - blue, blue + green + red);
    }
}

/// How the SAR ratio features (`VV/VH`, `HH/HV`) are formed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SarRatio {
    /// The quotient of the two dB values, as is common with dB bands [assumed default].
    #[default]
    DbQuotient,
    /// The quotient of the linear powers, `10^((co - cross) / 10)`.
    Linear,
}

/// dB to linear power: `10^(db / 10)`.
#[inline]
pub fn db_to_linear(db: f32) -> f32 {
    // 10^(x/10) = exp(x ln(10) / 10)
    (db * (std::f32::consts::LN_10 / 10.0)).exp()
}

/// Difference and ratio of a co- and a cross-polarised band in dB (`VV-VH`, `VV/VH`;
/// `HH-HV`, `HH/HV`), in one pass.
pub fn sar_pair(co: &[f32], cross: &[f32], how: SarRatio, diff: &mut [f32], quot: &mut [f32]) {
    let n = co.len();
    assert!(
        cross.len() == n && diff.len() == n && quot.len() == n,
        "SAR blocks differ in length"
    );
    let (co, cross, diff, quot) = (&co[..n], &cross[..n], &mut diff[..n], &mut quot[..n]);
    match how {
        SarRatio::DbQuotient => {
            for i in 0..n {
                diff[i] = co[i] - cross[i];
                quot[i] = ratio(co[i], cross[i]);
            }
        }
        SarRatio::Linear => {
            for i in 0..n {
                let d = co[i] - cross[i];
                diff[i] = d;
                let q = db_to_linear(d);
                quot[i] = if q.is_finite() { q } else { f32::NAN };
            }
        }
    }
}

/// PALSAR-2's NDI = (HH - HV) / (HH + HV) and NLI (`nli`, a formula of `HH` and `HV`), both in
/// linear power, from HH and HV in dB, in one pass over chunks of the block.
pub fn palsar_indices(
    hh_db: &[f32],
    hv_db: &[f32],
    nli: &Formula,
    ndi: &mut [f32],
    nli_out: &mut [f32],
) {
    let n = hh_db.len();
    assert!(
        hv_db.len() == n && ndi.len() == n && nli_out.len() == n,
        "PALSAR blocks differ in length"
    );
    let mut hh = [0f32; CHUNK];
    let mut hv = [0f32; CHUNK];
    let mut stack = vec![[0f32; CHUNK]; nli.max_depth];
    let mut start = 0;
    while start < n {
        let len = CHUNK.min(n - start);
        for i in 0..len {
            hh[i] = db_to_linear(hh_db[start + i]);
            hv[i] = db_to_linear(hv_db[start + i]);
        }
        let ndi = &mut ndi[start..start + len];
        for i in 0..len {
            ndi[i] = ratio(hh[i] - hv[i], hh[i] + hv[i]);
        }
        nli.eval_chunk(
            &[&hh[..len], &hv[..len]],
            &mut stack,
            &mut nli_out[start..start + len],
        );
        start += len;
    }
}

/// Pixels per chunk when a formula is evaluated (a few KiB of stack, in L1).
const CHUNK: usize = 256;

/// A small arithmetic formula over named per-pixel variables (for PALSAR-2's NLI: `HH`, `HV`
/// in linear power), compiled once and evaluated chunk by chunk (one operation over a chunk of
/// pixels at a time, like numpy but in cache).
///
/// Grammar: numbers, the variables, `+ - * / ^`, unary minus, parentheses and the functions
/// `sqrt`, `abs`, `ln`, `log10`, `exp`. The result goes through [`ratio`]'s rule: anything not
/// finite is `NaN`.
#[derive(Clone, PartialEq)]
pub struct Formula {
    source: String,
    ops: Vec<Op>,
    max_depth: usize,
}

impl fmt::Debug for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Formula({:?})", self.source)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Var(usize),
    Const(f32),
    Neg,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Func(Func),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Func {
    Sqrt,
    Abs,
    Ln,
    Log10,
    Exp,
}

impl Func {
    fn parse(name: &str) -> Option<Func> {
        Some(match name {
            "sqrt" => Func::Sqrt,
            "abs" => Func::Abs,
            "ln" => Func::Ln,
            "log10" => Func::Log10,
            "exp" => Func::Exp,
            _ => return None,
        })
    }

    fn apply(self, x: f32) -> f32 {
        match self {
            Func::Sqrt => x.sqrt(),
            Func::Abs => x.abs(),
            Func::Ln => x.ln(),
            Func::Log10 => x.log10(),
            Func::Exp => x.exp(),
        }
    }
}

impl Formula {
    /// Compile `source` over the variables `vars` (case-sensitive). Errors say where and why.
    pub fn parse(source: &str, vars: &[&str]) -> Result<Formula, String> {
        let tokens = tokenize(source)?;
        let mut p = Parser {
            tokens: &tokens,
            pos: 0,
            vars,
            ops: Vec::new(),
        };
        p.expr()?;
        if p.pos != tokens.len() {
            return Err(format!(
                "unexpected `{}` in formula `{source}`",
                tokens[p.pos]
            ));
        }
        // Stack depth of the RPN program.
        let (mut depth, mut max_depth) = (0usize, 0usize);
        for op in &p.ops {
            match op {
                Op::Var(_) | Op::Const(_) => depth += 1,
                Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Pow => depth -= 1,
                Op::Neg | Op::Func(_) => {}
            }
            max_depth = max_depth.max(depth);
        }
        Ok(Formula {
            source: source.to_string(),
            ops: p.ops,
            max_depth,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluate for one pixel (tests, and the reference for [`Formula::eval_chunk`]).
    pub fn eval(&self, vars: &[f32]) -> f32 {
        let mut stack: Vec<f32> = Vec::with_capacity(self.max_depth);
        for op in &self.ops {
            match *op {
                Op::Var(i) => stack.push(vars[i]),
                Op::Const(c) => stack.push(c),
                Op::Neg => {
                    let a = stack.pop().expect("valid program");
                    stack.push(-a);
                }
                Op::Func(f) => {
                    let a = stack.pop().expect("valid program");
                    stack.push(f.apply(a));
                }
                bin => {
                    let b = stack.pop().expect("valid program");
                    let a = stack.pop().expect("valid program");
                    stack.push(binary(bin, a, b));
                }
            }
        }
        finite_or_nan(stack.pop().expect("valid program"))
    }

    /// Evaluate over a chunk: `vars[k]` is variable `k` for each pixel (at most [`CHUNK`]
    /// pixels); `stack` has at least `max_depth` slots.
    fn eval_chunk(&self, vars: &[&[f32]], stack: &mut [[f32; CHUNK]], out: &mut [f32]) {
        let n = out.len();
        let mut sp = 0usize;
        for op in &self.ops {
            match *op {
                Op::Var(i) => {
                    stack[sp][..n].copy_from_slice(&vars[i][..n]);
                    sp += 1;
                }
                Op::Const(c) => {
                    stack[sp][..n].fill(c);
                    sp += 1;
                }
                Op::Neg => stack[sp - 1][..n].iter_mut().for_each(|v| *v = -*v),
                Op::Func(f) => stack[sp - 1][..n].iter_mut().for_each(|v| *v = f.apply(*v)),
                bin => {
                    let (lo, hi) = stack.split_at_mut(sp - 1);
                    let (a, b) = (&mut lo[sp - 2][..n], &hi[0][..n]);
                    match bin {
                        Op::Add => a.iter_mut().zip(b).for_each(|(x, y)| *x += y),
                        Op::Sub => a.iter_mut().zip(b).for_each(|(x, y)| *x -= y),
                        Op::Mul => a.iter_mut().zip(b).for_each(|(x, y)| *x *= y),
                        Op::Div => a.iter_mut().zip(b).for_each(|(x, y)| *x /= y),
                        _ => a.iter_mut().zip(b).for_each(|(x, y)| *x = x.powf(*y)),
                    }
                    sp -= 1;
                }
            }
        }
        for (o, v) in out.iter_mut().zip(&stack[0][..n]) {
            *o = finite_or_nan(*v);
        }
    }
}

fn binary(op: Op, a: f32, b: f32) -> f32 {
    match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div => a / b,
        _ => a.powf(b),
    }
}

#[inline]
fn finite_or_nan(v: f32) -> f32 {
    if v.is_finite() { v } else { f32::NAN }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Num(f32),
    Ident(String),
    Sym(char),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Num(n) => write!(f, "{n}"),
            Token::Ident(s) => f.write_str(s),
            Token::Sym(c) => write!(f, "{c}"),
        }
    }
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == '.' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || chars[i] == '.'
                    || chars[i] == 'e'
                    || chars[i] == 'E'
                    || ((chars[i] == '-' || chars[i] == '+') && matches!(chars[i - 1], 'e' | 'E')))
            {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            let v: f32 = text
                .parse()
                .map_err(|_| format!("bad number `{text}` in formula `{s}`"))?;
            out.push(Token::Num(v));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if "+-*/^()".contains(c) {
            out.push(Token::Sym(c));
            i += 1;
        } else {
            return Err(format!("unexpected character `{c}` in formula `{s}`"));
        }
    }
    if out.is_empty() {
        return Err("the formula is empty".to_string());
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
    vars: &'a [&'a str],
    ops: Vec<Op>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expr(&mut self) -> Result<(), String> {
        self.term()?;
        loop {
            if self.eat('+') {
                self.term()?;
                self.ops.push(Op::Add);
            } else if self.eat('-') {
                self.term()?;
                self.ops.push(Op::Sub);
            } else {
                return Ok(());
            }
        }
    }

    fn term(&mut self) -> Result<(), String> {
        self.unary()?;
        loop {
            if self.eat('*') {
                self.unary()?;
                self.ops.push(Op::Mul);
            } else if self.eat('/') {
                self.unary()?;
                self.ops.push(Op::Div);
            } else {
                return Ok(());
            }
        }
    }

    fn unary(&mut self) -> Result<(), String> {
        if self.eat('-') {
            self.unary()?;
            self.ops.push(Op::Neg);
            Ok(())
        } else {
            self.power()
        }
    }

    /// `a ^ b`, right-associative, binding tighter than unary minus on its left
    /// (`-a^2` is `-(a^2)`).
    fn power(&mut self) -> Result<(), String> {
        self.primary()?;
        if self.eat('^') {
            self.unary()?;
            self.ops.push(Op::Pow);
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<(), String> {
        let vars = self.vars;
        match self.tokens.get(self.pos).cloned() {
            Some(Token::Num(v)) => {
                self.pos += 1;
                self.ops.push(Op::Const(v));
                Ok(())
            }
            Some(Token::Ident(name)) => {
                self.pos += 1;
                if let Some(i) = vars.iter().position(|v| *v == name) {
                    self.ops.push(Op::Var(i));
                    Ok(())
                } else if let Some(f) = Func::parse(&name) {
                    if !self.eat('(') {
                        return Err(format!("`{name}` needs parentheses: `{name}(...)`"));
                    }
                    self.expr()?;
                    if !self.eat(')') {
                        return Err(format!("missing `)` after the argument of `{name}`"));
                    }
                    self.ops.push(Op::Func(f));
                    Ok(())
                } else {
                    Err(format!(
                        "unknown name `{name}` (variables: {}; functions: sqrt, abs, ln, log10, exp)",
                        vars.join(", ")
                    ))
                }
            }
            Some(Token::Sym('(')) => {
                self.pos += 1;
                self.expr()?;
                if self.eat(')') {
                    Ok(())
                } else {
                    Err("missing `)`".to_string())
                }
            }
            Some(t) => Err(format!("unexpected `{t}`")),
            None => Err("the formula ends too early".to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn features_s2_indices_match_hand_values() {
        // Two pixels: a vegetated one and bare soil.
        let blue = [0.04f32, 0.10];
        let green = [0.08f32, 0.14];
        let red = [0.05f32, 0.20];
        let nir = [0.40f32, 0.25];
        let swir1 = [0.20f32, 0.30];
        let swir2 = [0.10f32, 0.25];
        let mut out = vec![vec![0f32; 2]; 7];
        let mut o = out.iter_mut();
        let refs: [&mut [f32]; 7] = std::array::from_fn(|_| o.next().unwrap().as_mut_slice());
        s2_indices(
            &S2Bands {
                blue: &blue,
                green: &green,
                red: &red,
                nir: &nir,
                swir1: &swir1,
                swir2: &swir2,
            },
            refs,
        );
        // Pixel 0, by hand:
        // NDVI = 0.35 / 0.45; EVI = 2.5 * 0.35 / (0.4 + 0.3 - 0.3 + 1) = 0.875 / 1.4
        // GNDVI = 0.32 / 0.48; GRVI = 0.03 / 0.13; NDWI1 = 0.2 / 0.6; NDWI2 = 0.3 / 0.5
        // GSI = 0.01 / 0.17
        let want0 = [
            0.35 / 0.45,
            0.875 / 1.4,
            0.32 / 0.48,
            0.03 / 0.13,
            0.2 / 0.6,
            0.3 / 0.5,
            0.01 / 0.17,
        ];
        // Pixel 1: NDVI = 0.05 / 0.45; EVI = 0.125 / (0.25 + 1.2 - 0.75 + 1) = 0.125 / 1.7
        // GNDVI = 0.11 / 0.39; GRVI = -0.06 / 0.34; NDWI1 = -0.05 / 0.55; NDWI2 = 0
        // GSI = 0.10 / 0.44
        let want1 = [
            0.05 / 0.45,
            0.125 / 1.7,
            0.11 / 0.39,
            -0.06 / 0.34,
            -0.05 / 0.55,
            0.0,
            0.10 / 0.44,
        ];
        for k in 0..7 {
            assert!(
                close(out[k][0], want0[k]),
                "{} px0: {} vs {}",
                S2_INDICES[k],
                out[k][0],
                want0[k]
            );
            assert!(
                close(out[k][1], want1[k]),
                "{} px1: {} vs {}",
                S2_INDICES[k],
                out[k][1],
                want1[k]
            );
        }
    }

    fn s2_one(b2: f32, b3: f32, b4: f32, b8: f32, b11: f32, b12: f32) -> Vec<f32> {
        let mut out = vec![vec![0f32; 1]; 7];
        let mut o = out.iter_mut();
        let refs: [&mut [f32]; 7] = std::array::from_fn(|_| o.next().unwrap().as_mut_slice());
        s2_indices(
            &S2Bands {
                blue: &[b2],
                green: &[b3],
                red: &[b4],
                nir: &[b8],
                swir1: &[b11],
                swir2: &[b12],
            },
            refs,
        );
        out.into_iter().map(|v| v[0]).collect()
    }

    #[test]
    fn features_zero_denominators_give_nan_never_inf() {
        // All bands zero: every normalised difference is 0/0; EVI's denominator is 1 (EVI = 0).
        let v = s2_one(0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        for (k, name) in S2_INDICES.iter().enumerate() {
            if *name == "EVI" {
                assert_eq!(v[k], 0.0);
            } else {
                assert!(v[k].is_nan(), "{name}: {}", v[k]);
            }
        }
        // B8 = B4 = 0: NDVI is 0/0; GNDVI = -0.3/0.3 = -1; NDWI1 = -0.1/0.1 = -1.
        let v = s2_one(0.2, 0.3, 0.0, 0.0, 0.1, 0.1);
        assert!(v[0].is_nan());
        assert_eq!(v[2], -1.0);
        assert_eq!(v[4], -1.0);
        // EVI's denominator exactly zero (values exact in binary):
        // B8 + 6 B4 - 7.5 B2 + 1 = 0.875 + 0 - 1.875 + 1 = 0.
        let v = s2_one(0.25, 0.1, 0.0, 0.875, 0.1, 0.1);
        assert!(v[1].is_nan(), "EVI {}", v[1]);
        assert!(v.iter().all(|x| !x.is_infinite()));
        // GSI: B2 + B3 + B4 = 0 with negative reflectance noise.
        let v = s2_one(0.1, -0.2, 0.1, 0.3, 0.3, 0.3);
        assert!(v[6].is_nan());
        // ratio() itself.
        assert!(ratio(1.0, 0.0).is_nan());
        assert!(ratio(-1.0, 0.0).is_nan());
        assert!(ratio(0.0, 0.0).is_nan());
        assert!(ratio(f32::MAX, 1e-30).is_nan());
        assert_eq!(ratio(1.0, 4.0), 0.25);
    }

    #[test]
    fn features_nodata_in_gives_nodata_out() {
        let v = s2_one(f32::NAN, 0.1, 0.1, 0.3, 0.2, 0.2);
        // NDVI, GNDVI, GRVI, NDWI1, NDWI2 do not use B2.
        assert!(!v[0].is_nan() && !v[2].is_nan() && !v[3].is_nan());
        assert!(v[1].is_nan(), "EVI uses B2");
        assert!(v[6].is_nan(), "GSI uses B2");
        let v = s2_one(0.1, 0.1, 0.1, f32::NAN, 0.2, 0.2);
        for k in [0, 1, 2, 4, 5] {
            assert!(v[k].is_nan(), "{} uses B8: {v:?}", S2_INDICES[k]);
        }
        assert!(
            !v[3].is_nan() && !v[6].is_nan(),
            "GRVI and GSI do not use B8"
        );
        let (mut d, mut q) = ([0f32; 2], [0f32; 2]);
        sar_pair(
            &[-8.0, f32::NAN],
            &[-16.0, -15.0],
            SarRatio::DbQuotient,
            &mut d,
            &mut q,
        );
        assert!(d[1].is_nan() && q[1].is_nan());
        let (mut ndi, mut nli) = ([0f32; 1], [0f32; 1]);
        let f = Formula::parse("HV / (HH + HV)", &["HH", "HV"]).unwrap();
        palsar_indices(&[f32::NAN], &[-12.0], &f, &mut ndi, &mut nli);
        assert!(ndi[0].is_nan() && nli[0].is_nan());
    }

    #[test]
    fn features_sar_pair_hand_values() {
        let (mut d, mut q) = ([0f32; 3], [0f32; 3]);
        sar_pair(
            &[-8.0, -10.0, -3.0],
            &[-16.0, -10.0, 0.0],
            SarRatio::DbQuotient,
            &mut d,
            &mut q,
        );
        assert_eq!(d, [8.0, 0.0, -3.0]);
        assert_eq!(q[0], 0.5);
        assert_eq!(q[1], 1.0);
        assert!(q[2].is_nan(), "cross-pol of exactly 0 dB: zero denominator");
        sar_pair(
            &[-8.0, -10.0, -3.0],
            &[-16.0, -10.0, 0.0],
            SarRatio::Linear,
            &mut d,
            &mut q,
        );
        // 10^(8/10) = 6.3095734; 10^0 = 1; 10^(-0.3) = 0.5011872
        assert!(close(q[0], 6.309_573_444_801_933), "{}", q[0]);
        assert!(close(q[1], 1.0));
        assert!(close(q[2], 0.501_187_233_627_272_3), "{}", q[2]);
        assert!(close(db_to_linear(-20.0), 0.01));
    }

    #[test]
    fn features_palsar_ndi_nli_hand_values() {
        // HH = -10 dB -> 0.1, HV = -20 dB -> 0.01 (linear power).
        // NDI = (0.1 - 0.01) / (0.1 + 0.01) = 0.09 / 0.11; NLI = 0.01 / 0.11.
        let f = Formula::parse("HV / (HH + HV)", &["HH", "HV"]).unwrap();
        let n = 600; // more than two chunks
        let hh = vec![-10f32; n];
        let hv = vec![-20f32; n];
        let (mut ndi, mut nli) = (vec![0f32; n], vec![0f32; n]);
        palsar_indices(&hh, &hv, &f, &mut ndi, &mut nli);
        for i in [0, 255, 256, 599] {
            assert!(close(ndi[i], 0.09 / 0.11), "{}", ndi[i]);
            assert!(close(nli[i], 0.01 / 0.11), "{}", nli[i]);
        }
        // Another NLI formula, and a zero denominator in it.
        let f = Formula::parse("(HH^2 - HV) / (HH^2 + HV)", &["HH", "HV"]).unwrap();
        palsar_indices(&[-10.0], &[-20.0], &f, &mut ndi[..1], &mut nli[..1]);
        // (0.01 - 0.01) / (0.02) = 0
        assert!(nli[0].abs() < 1e-6, "{}", nli[0]);
        let f = Formula::parse("1 / (HH - HH)", &["HH", "HV"]).unwrap();
        palsar_indices(&[-10.0], &[-20.0], &f, &mut ndi[..1], &mut nli[..1]);
        assert!(nli[0].is_nan());
    }

    #[test]
    fn features_formula_parses_and_evaluates() {
        let vars = ["HH", "HV"];
        let cases: [(&str, f32); 8] = [
            ("HV / (HH + HV)", 2.0 / 6.0),
            ("HH - HV * 2", 0.0),
            ("-HH^2", -16.0),
            ("2^3^2", 512.0),
            ("sqrt(HH) + abs(-HV)", 4.0),
            ("log10(100) * 1.5e1", 30.0),
            ("(HH + HV) / 2 - -1", 4.0),
            ("exp(ln(HV))", 2.0),
        ];
        for (src, want) in cases {
            let f = Formula::parse(src, &vars).unwrap();
            let got = f.eval(&[4.0, 2.0]);
            assert!((got - want).abs() < 1e-5, "{src}: {got} vs {want}");
            // The chunked evaluation agrees with the per-pixel one.
            let mut stack = vec![[0f32; CHUNK]; f.max_depth];
            let mut out = [0f32; 3];
            f.eval_chunk(&[&[4.0; 3], &[2.0; 3]], &mut stack, &mut out);
            assert_eq!(out, [got; 3], "{src}");
        }
        for bad in [
            "", "HH +", "VV / HH", "sqrt HH", "(HH", "HH $ HV", "HH HV", "1..2",
        ] {
            assert!(Formula::parse(bad, &vars).is_err(), "{bad}");
        }
        let e = Formula::parse("VV / HH", &vars).unwrap_err();
        assert!(
            e.contains("unknown name `VV`") && e.contains("HH, HV"),
            "{e}"
        );
    }
}
