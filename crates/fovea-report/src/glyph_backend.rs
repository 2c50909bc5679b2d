//! A bitmap drawing backend that sets text properly. plotters 0.3.7's `ab_glyph` text
//! renderer drops each glyph's left side bearing (uneven letter spacing: "E X") and puts
//! the baseline half-way down the text's layout box (text sits high). [`GlyphBitMap`]
//! wraps plotters' `BitMapBackend`, delegates all drawing to it, and draws text itself
//! with `ab_glyph`: glyphs placed by advance, kerning and bearing, capitals centred in the
//! same layout box plotters measures, anchors and rotations as plotters applies them.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::prelude::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// The bundled DejaVu Sans, parsed once (`None` if it cannot be, which the font module
/// reports as an error before anything is drawn).
fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(fovea_maps::FONT).ok())
        .as_ref()
}

/// `BitMapBackend` with correct text.
pub struct GlyphBitMap<'a>(pub BitMapBackend<'a>);

type Error = <BitMapBackend<'static> as DrawingBackend>::ErrorType;
type DrawResult = Result<(), DrawingErrorKind<Error>>;

impl DrawingBackend for GlyphBitMap<'_> {
    type ErrorType = Error;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }

    fn ensure_prepared(&mut self) -> DrawResult {
        self.0.ensure_prepared()
    }

    fn present(&mut self) -> DrawResult {
        self.0.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> DrawResult {
        self.0.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> DrawResult {
        self.0.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> DrawResult {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> DrawResult {
        self.0.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> DrawResult {
        self.0.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> DrawResult {
        self.0.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> DrawResult {
        self.0.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> DrawResult {
        let Some(font) = font() else {
            return self.0.draw_text(text, style, pos);
        };
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let size = style.size() as f32;
        let scaled = font.as_scaled(PxScale::from(size));
        // Lay out on a baseline at y = 0, as plotters measures: advances plus kerning.
        let mut caret = 0f32;
        let mut prev = None;
        let mut glyphs = Vec::with_capacity(text.len());
        for ch in text.chars() {
            let id = scaled.glyph_id(ch);
            if let Some(p) = prev {
                caret += scaled.kern(p, id);
            }
            glyphs.push(id.with_scale_and_position(scaled.scale(), point(caret, 0.0)));
            caret += scaled.h_advance(id);
            prev = Some(id);
        }
        // The layout box plotters uses for anchoring: advance width x size / 1.24.
        let (width, height) = (caret as i32, (f64::from(size) / 1.24) as i32);
        let cap = font
            .outline_glyph(scaled.glyph_id('H').with_scale(size))
            .map_or(size * 0.7, |g| g.px_bounds().height());
        let baseline = (height as f32 + cap) / 2.0;
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        for mut g in glyphs {
            g.position.y = baseline;
            let Some(outline) = font.outline_glyph(g) else {
                continue;
            };
            let b = outline.px_bounds();
            let mut result = Ok(());
            outline.draw(|x, y, coverage| {
                if coverage <= 0.0 || result.is_err() {
                    return;
                }
                let (px, py) = (
                    b.min.x as i32 + x as i32 + dx,
                    b.min.y as i32 + y as i32 + dy,
                );
                let (tx, ty) = trans.transform(px, py);
                let (ox, oy) = (pos.0 + tx, pos.1 + ty);
                if ox >= 0 && oy >= 0 && (ox as u32) < w && (oy as u32) < h {
                    result = self.0.draw_pixel(
                        (ox, oy),
                        BackendColor {
                            alpha: color.alpha * f64::from(coverage.min(1.0)),
                            rgb: color.rgb,
                        },
                    );
                }
            });
            result?;
        }
        Ok(())
    }
}
