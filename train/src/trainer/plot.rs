//! `training.png`: loss curves (total, MLM, NSP), masked-LM accuracy on the
//! training batches and, when the run evaluates, on the held-out batches,
//! and the learning-rate curve, drawn with plotters' bitmap backend.
//!
//! plotters needs a font library to draw text, and system fonts may be
//! absent; so no text goes through plotters (its font-less build panics on
//! text) and labels are drawn pixel by pixel from font8x8's embedded 8×8
//! glyphs.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context, Result};
use nezha_stages::atomic_file;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::metrics::{EvalLine, StepMetrics};

const W: u32 = 1000;
const H: u32 = 800;
const GLYPH: i32 = 8;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}

/// ASCII text at pixel `(x, y)` (top-left), each glyph pixel `scale`² pixels.
fn text(area: &Area, x: i32, y: i32, s: &str, scale: i32, color: &RGBColor) -> Result<()> {
    for (i, c) in s.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY[(c as usize).min(127)];
        let gx = x + i as i32 * GLYPH * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits >> col & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let p = (gx + col * scale + dx, y + row as i32 * scale + dy);
                            area.draw_pixel(p, color).map_err(err)?;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

fn text_width(s: &str, scale: i32) -> i32 {
    s.chars().count() as i32 * GLYPH * scale
}

/// About `n` round tick values covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let raw = (hi - lo) / n as f64;
    if !(raw > 0.0 && raw.is_finite()) {
        return vec![lo];
    }
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut v = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while v <= hi + step * 1e-9 {
        out.push(if v.abs() < step * 1e-9 { 0.0 } else { v });
        v += step;
    }
    out
}

fn label(v: f64, scientific: bool) -> String {
    if scientific && v != 0.0 {
        format!("{v:.1e}")
    } else if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo {
        0.05 * (hi - lo)
    } else {
        0.1 * lo.abs().max(1e-12)
    };
    (lo - pad, hi + pad)
}

struct Series<'s> {
    name: &'s str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

fn panel(
    area: &Area,
    title: &str,
    xs: (f64, f64),
    series: &[Series],
    scientific: bool,
) -> Result<()> {
    let ys = range(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)));
    let (left, right, top, bottom) = (90, 20, 36, 44);
    let mut chart = ChartBuilder::on(area)
        .margin_left(left)
        .margin_right(right)
        .margin_top(top)
        .margin_bottom(bottom)
        .build_cartesian_2d(xs.0..xs.1, ys.0..ys.1)
        .map_err(err)?;
    let grid = RGBColor(225, 225, 225);
    let black = RGBColor(0, 0, 0);
    let xt = ticks(xs.0, xs.1, 8);
    let yt = ticks(ys.0, ys.1, 5);
    for &x in &xt {
        chart
            .draw_series(LineSeries::new([(x, ys.0), (x, ys.1)], &grid))
            .map_err(err)?;
    }
    for &y in &yt {
        chart
            .draw_series(LineSeries::new([(xs.0, y), (xs.1, y)], &grid))
            .map_err(err)?;
    }
    for s in series {
        let pts = s.points.iter().copied().filter(|p| p.1.is_finite());
        chart
            .draw_series(LineSeries::new(pts, s.color.stroke_width(2)))
            .map_err(err)?;
    }
    chart
        .plotting_area()
        .draw(&Rectangle::new(
            [(xs.0, ys.0), (xs.1, ys.1)],
            black.stroke_width(1),
        ))
        .map_err(err)?;

    // backend_coord is absolute; the area draws relative to its corner.
    let (bx, by) = area.get_base_pixel();
    let at = |x: f64, y: f64| {
        let (px, py) = chart.backend_coord(&(x, y));
        (px - bx, py - by)
    };
    let root = area;
    for &x in &xt {
        let (px, py) = at(x, ys.0);
        let l = label(x, false);
        text(root, px - text_width(&l, 1) / 2, py + 8, &l, 1, &black)?;
    }
    for &y in &yt {
        let (px, py) = at(xs.0, y);
        let l = label(y, scientific);
        text(
            root,
            px - text_width(&l, 1) - 6,
            py - GLYPH / 2,
            &l,
            1,
            &black,
        )?;
    }
    let (x0, y0) = at(xs.0, ys.1);
    let (x1, y1) = at(xs.1, ys.0);
    text(root, x0, y0 - 28, title, 2, &black)?;
    text(
        root,
        (x0 + x1) / 2 - text_width("step", 1) / 2,
        y1 + 26,
        "step",
        1,
        &black,
    )?;
    // Legend, top right, one row per series.
    for (i, s) in series.iter().enumerate() {
        let ly = y0 + 10 + i as i32 * 14;
        let lx = x1 - 10 - text_width(s.name, 1) - 26;
        root.draw(&PathElement::new(
            vec![(lx, ly + 4), (lx + 20, ly + 4)],
            s.color.stroke_width(2),
        ))
        .map_err(err)?;
        text(root, lx + 26, ly, s.name, 1, &black)?;
    }
    Ok(())
}

/// Draws the curves of `metrics` and `evals` into `path` (written
/// atomically).
pub fn write_png(path: &Path, metrics: &[StepMetrics], evals: &[EvalLine]) -> Result<()> {
    // The encoder picks the format from the extension, so the temporary
    // name keeps `.png` at the end.
    let mut tmp = atomic_file::temp_path(path).into_os_string();
    tmp.push(".png");
    let tmp = PathBuf::from(tmp);
    if let Err(e) = draw(&tmp, metrics, evals) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(atomic_file::persist(&tmp, path)?)
}

/// Draws the curves of `metrics` and `evals` into the PNG file `tmp`.
fn draw(tmp: &Path, metrics: &[StepMetrics], evals: &[EvalLine]) -> Result<()> {
    let xs = range(metrics.iter().map(|m| m.step as f64));
    let xs = (xs.0.max(0.0), xs.1);
    let pts = |f: fn(&StepMetrics) -> f64| metrics.iter().map(|m| (m.step as f64, f(m))).collect();
    let root = BitMapBackend::new(tmp, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let (top, rest) = root.split_vertically(H * 3 / 8);
    let (middle, bottom) = rest.split_vertically(H * 3 / 8);
    panel(
        &top,
        "loss",
        xs,
        &[
            Series {
                name: "total",
                color: RGBColor(31, 119, 180),
                points: pts(|m| m.loss),
            },
            Series {
                name: "mlm",
                color: RGBColor(255, 127, 14),
                points: pts(|m| m.mlm_loss),
            },
            Series {
                name: "nsp",
                color: RGBColor(44, 160, 44),
                points: pts(|m| m.nsp_loss),
            },
        ],
        false,
    )?;
    let mut accuracy = vec![Series {
        name: "mlm train",
        color: RGBColor(255, 127, 14),
        points: pts(|m| m.mlm_acc),
    }];
    if !evals.is_empty() {
        accuracy.push(Series {
            name: "mlm held out",
            color: RGBColor(148, 103, 189),
            points: evals
                .iter()
                .map(|e| (e.step as f64, e.eval.masked_lm_accuracy))
                .collect(),
        });
    }
    panel(&middle, "masked-LM accuracy", xs, &accuracy, false)?;
    panel(
        &bottom,
        "learning rate",
        xs,
        &[Series {
            name: "lr",
            color: RGBColor(214, 39, 40),
            points: pts(|m| m.lr),
        }],
        true,
    )?;
    root.present()
        .map_err(err)
        .with_context(|| format!("writing {}", tmp.display()))?;
    Ok(())
}
