//! One line-chart description, drawn with plotters to PNG bytes (bitmap backend, text
//! rasterised from the bundled DejaVu Sans) or to an SVG string. Every plot of the crate
//! (training curves, PR and ROC curves) is a [`LineChart`]: a title, two axes with fixed
//! ticks, line series (solid, dashed or dotted, optionally with markers; a non-finite point
//! breaks the line), and a legend in a panel to the right of the plot, so it never hides a
//! curve.

use std::ops::Range;

use fovea_data::CHART_COLOURS;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{ReportError, Result};
use crate::font::{ensure_registered, FAMILY};
use crate::glyph_backend::GlyphBitMap;
use crate::raster::encode_rgb;

/// Default picture size in pixels (width, height).
pub const SIZE: (u32, u32) = (960, 540);

/// Colours of the four lesions (MA, HE, EX, SE) in a chart: [`fovea_data::CHART_COLOURS`],
/// the Okabe-Ito colour-blind-safe hues, as plotters colours.
pub const LESION_COLOURS: [RGBColor; 4] = [
    rgb(CHART_COLOURS[0]),
    rgb(CHART_COLOURS[1]),
    rgb(CHART_COLOURS[2]),
    rgb(CHART_COLOURS[3]),
];

const fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}
/// Colour of a neutral series (reference lines, style keys in a legend).
pub const NEUTRAL: RGBColor = RGBColor(110, 110, 110);
/// Colour of the training split's curves where lesions are not shown.
pub const TRAIN_COLOR: RGBColor = RGBColor(213, 94, 0);
/// Colour of the validation split's curves where lesions are not shown.
pub const VAL_COLOR: RGBColor = RGBColor(0, 114, 178);

const TEXT: RGBColor = RGBColor(40, 40, 40);
const GRID: RGBColor = RGBColor(228, 228, 228);
const AXIS: RGBColor = RGBColor(120, 120, 120);

/// Line style.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dash {
    Solid,
    Dashed,
    Dotted,
}

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// Legend text; `None` leaves the series out of the legend.
    pub label: Option<String>,
    /// Points in data coordinates; a non-finite coordinate breaks the line there. A series
    /// with no points appears in the legend only (a style key).
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    pub dash: Dash,
    /// Stroke width in pixels.
    pub width: u32,
    /// Whether each point gets a dot (so that a single epoch shows).
    pub markers: bool,
}

impl Series {
    /// A solid, 2-pixel, labelled line.
    pub fn new(label: impl Into<String>, color: RGBColor, points: Vec<(f64, f64)>) -> Series {
        Series {
            label: Some(label.into()),
            points,
            color,
            dash: Dash::Solid,
            width: 2,
            markers: false,
        }
    }

    /// The same, dashed.
    pub fn dashed(mut self) -> Series {
        self.dash = Dash::Dashed;
        self
    }

    /// The same, dotted.
    pub fn dotted(mut self) -> Series {
        self.dash = Dash::Dotted;
        self
    }

    /// The same, with a dot at every point.
    pub fn with_markers(mut self) -> Series {
        self.markers = true;
        self
    }

    /// The same, left out of the legend.
    pub fn unlabelled(mut self) -> Series {
        self.label = None;
        self
    }

    /// The same, with another stroke width.
    pub fn width(mut self, width: u32) -> Series {
        self.width = width;
        self
    }

    fn style(&self) -> ShapeStyle {
        ShapeStyle {
            color: self.color.to_rgba(),
            filled: false,
            stroke_width: self.width,
        }
    }

    /// Runs of consecutive finite points.
    fn segments(&self) -> Vec<Vec<(f64, f64)>> {
        let mut out = vec![Vec::new()];
        for &(x, y) in &self.points {
            if x.is_finite() && y.is_finite() {
                if let Some(last) = out.last_mut() {
                    last.push((x, y));
                }
            } else if out.last().is_some_and(|l| !l.is_empty()) {
                out.push(Vec::new());
            }
        }
        out.retain(|s| !s.is_empty());
        out
    }
}

/// An axis: its title, its range and where its ticks go.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub label: String,
    pub min: f64,
    pub max: f64,
    /// Tick positions (with labels and grid lines).
    pub ticks: Vec<f64>,
    /// Decimals in the tick labels.
    pub decimals: usize,
}

impl Axis {
    /// Epochs 1..=`last` (at least 1): integer ticks, at most about 10 of them.
    pub fn epochs(label: impl Into<String>, last: usize) -> Axis {
        let last = last.max(1);
        let step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000]
            .into_iter()
            .find(|s| last / s <= 10)
            .unwrap_or(last.div_ceil(10));
        let ticks: Vec<f64> = if step == 1 {
            (1..=last).map(|e| e as f64).collect()
        } else {
            (1..=last / step).map(|k| (k * step) as f64).collect()
        };
        let pad = (last as f64 * 0.02).max(0.3);
        Axis {
            label: label.into(),
            min: 1.0 - pad,
            max: last as f64 + pad,
            ticks,
            decimals: 0,
        }
    }

    /// [0, 1] with ticks every 0.2 and a sliver of room on each side.
    pub fn unit(label: impl Into<String>) -> Axis {
        Axis {
            label: label.into(),
            min: -0.015,
            max: 1.015,
            ticks: (0..=5).map(|k| k as f64 * 0.2).collect(),
            decimals: 1,
        }
    }

    /// [0, m] where m is the first "nice" number (1, 2, 2.5 or 5 times a power of ten,
    /// times the tick count) at or above `max`; [0, 1] for a non-positive or non-finite
    /// `max`.
    pub fn zero_to(label: impl Into<String>, max: f64) -> Axis {
        let max = if max.is_finite() && max > 0.0 {
            max
        } else {
            1.0
        };
        let raw = max / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let mantissa = [1.0, 2.0, 2.5, 5.0, 10.0]
            .into_iter()
            .find(|m| m * mag >= raw * (1.0 - 1e-9))
            .unwrap_or(10.0);
        let step = mantissa * mag;
        let n = (max / step - 1e-9).ceil().max(1.0) as usize;
        let top = n as f64 * step;
        let decimals = (-(step.log10().floor())).max(0.0) as usize + usize::from(mantissa == 2.5);
        Axis {
            label: label.into(),
            min: -top * 0.015,
            max: top * 1.015,
            ticks: (0..=n).map(|k| k as f64 * step).collect(),
            decimals,
        }
    }
}

/// An axis as plotters' coordinate: linear, with exactly the ticks of an [`Axis`] (no
/// minor grid). plotters' own `WithKeyPoints` would do, but it loses the value formatter
/// of `f64` axes in 0.3.7.
struct Ticked {
    min: f64,
    max: f64,
    ticks: Vec<f64>,
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let span = self.max - self.min;
        if span <= 0.0 || !span.is_finite() {
            return (limit.0 + limit.1) / 2;
        }
        let t = (v - self.min) / span;
        limit.0 + ((limit.1 - limit.0) as f64 * t).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.min..self.max
    }
}

impl From<&Axis> for Ticked {
    fn from(a: &Axis) -> Ticked {
        Ticked {
            min: a.min,
            max: a.max,
            ticks: a.ticks.clone(),
        }
    }
}

/// A line chart.
#[derive(Clone, Debug, PartialEq)]
pub struct LineChart {
    pub title: String,
    pub x: Axis,
    pub y: Axis,
    /// Drawn in order (later on top).
    pub series: Vec<Series>,
}

/// A chart drawn both ways.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    /// PNG file bytes.
    pub png: Vec<u8>,
    /// A whole SVG document (`<svg ...>...</svg>`).
    pub svg: String,
}

impl LineChart {
    /// PNG bytes of the chart at `size` (width, height) pixels.
    pub fn png(&self, size: (u32, u32)) -> Result<Vec<u8>> {
        ensure_registered()?;
        let (w, h) = size;
        let mut buf = vec![0u8; w as usize * h as usize * 3];
        {
            let root = GlyphBitMap(BitMapBackend::with_buffer(&mut buf, size)).into_drawing_area();
            self.draw(&root)
                .map_err(|e| ReportError::plot(&self.title, e))?;
            root.present()
                .map_err(|e| ReportError::plot(&self.title, e))?;
        }
        encode_rgb(&self.title, buf, w, h)
    }

    /// The chart as an SVG document of `size` (width, height) pixels.
    pub fn svg(&self, size: (u32, u32)) -> Result<String> {
        ensure_registered()?;
        let mut s = String::new();
        {
            let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
            self.draw(&root)
                .map_err(|e| ReportError::plot(&self.title, e))?;
            root.present()
                .map_err(|e| ReportError::plot(&self.title, e))?;
        }
        Ok(s)
    }

    /// Both.
    pub fn plot(&self, size: (u32, u32)) -> Result<Plot> {
        Ok(Plot {
            png: self.png(size)?,
            svg: self.svg(size)?,
        })
    }

    /// Width of the legend panel, from the longest label.
    fn legend_width(&self) -> u32 {
        let chars = self
            .series
            .iter()
            .filter_map(|s| s.label.as_ref())
            .map(|l| l.chars().count())
            .max();
        chars.map_or(0, |c| (c as u32 * 9 + 64).max(120))
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let root = root.margin(10, 0, 0, 0);
        let titled = root.titled(
            &self.title,
            (FAMILY, 22, FontStyle::Bold).into_font().color(&TEXT),
        )?;
        let legend_w = self.legend_width();
        let (plot_area, legend_area) = if legend_w == 0 {
            (titled, None)
        } else {
            let w = titled.dim_in_pixel().0;
            let (a, b) = titled.split_horizontally(w.saturating_sub(legend_w));
            (a, Some(b))
        };
        let mut chart = ChartBuilder::on(&plot_area)
            .margin(14)
            .margin_top(8)
            .x_label_area_size(56)
            .y_label_area_size(72)
            .build_cartesian_2d(Ticked::from(&self.x), Ticked::from(&self.y))?;
        let (xd, yd) = (self.x.decimals, self.y.decimals);
        let xf = move |v: &f64| format!("{v:.xd$}");
        let yf = move |v: &f64| format!("{v:.yd$}");
        chart
            .configure_mesh()
            .x_desc(self.x.label.as_str())
            .y_desc(self.y.label.as_str())
            .x_label_formatter(&xf)
            .y_label_formatter(&yf)
            .label_style((FAMILY, 15).into_font().color(&TEXT))
            .axis_desc_style((FAMILY, 17).into_font().color(&TEXT))
            .bold_line_style(GRID.stroke_width(1))
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS.stroke_width(1))
            .draw()?;
        for s in &self.series {
            let style = s.style();
            for seg in s.segments() {
                match s.dash {
                    Dash::Solid => {
                        chart.draw_series(LineSeries::new(seg.iter().copied(), style))?;
                    }
                    Dash::Dashed => {
                        chart.draw_series(std::iter::once(DashedPathElement::new(
                            seg.iter().copied(),
                            9,
                            5,
                            style,
                        )))?;
                    }
                    Dash::Dotted => {
                        chart.draw_series(std::iter::once(DashedPathElement::new(
                            seg.iter().copied(),
                            2,
                            4,
                            style,
                        )))?;
                    }
                }
                if s.markers {
                    chart.draw_series(
                        seg.iter()
                            .map(|&p| Circle::new(p, 3 + s.width / 2, s.color.filled())),
                    )?;
                }
            }
        }
        if let Some(area) = legend_area {
            self.draw_legend(&area)?;
        }
        Ok(())
    }

    /// The legend panel: a sample of each labelled series' line beside its label.
    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let font = (FAMILY, 15)
            .into_font()
            .color(&TEXT)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let (x0, x1) = (4, 40);
        let labelled = self
            .series
            .iter()
            .filter_map(|s| Some((s, s.label.as_ref()?)));
        for (i, (s, label)) in labelled.enumerate() {
            let y = 30 + i as i32 * 28;
            let style = s.style();
            let line = vec![(x0, y), (x1, y)];
            match s.dash {
                Dash::Solid => area.draw(&PathElement::new(line, style))?,
                Dash::Dashed => area.draw(&DashedPathElement::new(line, 9, 5, style))?,
                Dash::Dotted => area.draw(&DashedPathElement::new(line, 2, 4, style))?,
            }
            if s.markers {
                area.draw(&Circle::new(
                    ((x0 + x1) / 2, y),
                    3 + s.width / 2,
                    s.color.filled(),
                ))?;
            }
            area.draw(&Text::new(label.clone(), (x1 + 10, y), font.clone()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_axes() {
        let a = Axis::zero_to("y", 0.043);
        assert_eq!(a.ticks.last().copied(), Some(0.05));
        assert!(a.ticks.len() >= 2 && a.ticks.len() <= 7, "{:?}", a.ticks);
        assert_eq!(a.decimals, 2);
        let a = Axis::zero_to("y", 1.0);
        assert_eq!(a.ticks.last().copied(), Some(1.0));
        let a = Axis::zero_to("y", f64::NAN);
        assert_eq!(a.ticks.last().copied(), Some(1.0));
        let e = Axis::epochs("epoch", 1);
        assert_eq!(e.ticks, [1.0]);
        assert!(e.min < 1.0 && e.max > 1.0);
        let e = Axis::epochs("epoch", 16);
        assert_eq!(e.ticks.first().copied(), Some(2.0));
        assert_eq!(e.ticks.last().copied(), Some(16.0));
    }

    #[test]
    fn non_finite_points_break_lines() {
        let s = Series::new(
            "a",
            NEUTRAL,
            vec![(1.0, 1.0), (2.0, f64::NAN), (3.0, 1.0), (4.0, 2.0)],
        );
        assert_eq!(
            s.segments(),
            vec![vec![(1.0, 1.0)], vec![(3.0, 1.0), (4.0, 2.0)]]
        );
    }

    #[test]
    fn draws_png_and_svg() {
        let chart = LineChart {
            title: "t".into(),
            x: Axis::epochs("epoch", 3),
            y: Axis::unit("F1"),
            series: vec![
                Series::new(
                    "a",
                    LESION_COLOURS[0],
                    vec![(1.0, 0.1), (2.0, 0.5), (3.0, 0.4)],
                )
                .with_markers(),
                Series::new("b", LESION_COLOURS[1], vec![(1.0, 0.2), (3.0, 0.9)]).dashed(),
                Series::new("key", NEUTRAL, vec![]).dotted(),
            ],
        };
        let p = chart.plot((320, 200)).unwrap();
        let img = image::load_from_memory(&p.png).unwrap();
        assert_eq!((img.width(), img.height()), (320, 200));
        assert!(p.svg.starts_with("<svg") && p.svg.trim_end().ends_with("</svg>"));
    }
}
