//! Text in bitmaps without system fonts: the bundled DejaVu Sans (`fovea_maps::FONT`) is
//! registered once with plotters' `ab_glyph` renderer under the family names the charts
//! use (`sans-serif`, normal and bold).

use std::sync::OnceLock;

use plotters::style::{register_font, FontStyle};

use crate::error::{ReportError, Result};

/// The family every chart asks for.
pub const FAMILY: &str = "sans-serif";

/// Registers the bundled font with plotters (idempotent, thread-safe).
pub fn ensure_registered() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        [FontStyle::Normal, FontStyle::Bold]
            .into_iter()
            .all(|style| register_font(FAMILY, style, fovea_maps::FONT).is_ok())
    });
    if ok {
        Ok(())
    } else {
        Err(ReportError::Font)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundled_font_registers_twice() {
        super::ensure_registered().unwrap();
        super::ensure_registered().unwrap();
    }
}
