//! Shared by the nodes that draw figures (`assess`, `change`): the bundled font and the PNG
//! encoder. Figures are drawn with plotters into an RGB buffer, then encoded with fixed
//! settings, so the same figure gives the same bytes on every machine (no system fonts).

use std::sync::OnceLock;

/// The bundled font (DejaVu Sans, Bitstream Vera licence: `nodes/assets/DejaVuSans-LICENSE.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
/// Registered under a name of our own, so that nothing else in the process can replace it.
pub const FONT_FAMILY: &str = "lulc-dejavu-sans";

/// Register the bundled font with plotters (once per process).
pub fn register_font() -> Result<(), String> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT_FAMILY, plotters::style::FontStyle::Normal, FONT_BYTES)
            .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err("the bundled font DejaVuSans.ttf does not load".to_string())
    }
}

/// An RGB buffer of `w` x `h` pixels as PNG bytes (8-bit, best compression: deterministic).
pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>, String> {
    let err = |e: png::EncodingError| e.to_string();
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Best);
        let mut writer = enc.write_header().map_err(err)?;
        writer.write_image_data(rgb).map_err(err)?;
        writer.finish().map_err(err)?;
    }
    Ok(out)
}
