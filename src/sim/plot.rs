//! SVG plots of a report (plotters' SVG backend: no font files needed).

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use super::report::SimReport;

/// One named line of points.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// The points.
    pub points: Vec<(f64, f64)>,
    /// Draw markers instead of a line.
    pub markers: bool,
}

/// Axes of a chart.
pub struct Axes<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// X axis label.
    pub x: &'a str,
    /// Y axis label.
    pub y: &'a str,
    /// Logarithmic x axis.
    pub log_x: bool,
}

const COLOURS: [RGBColor; 4] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
];

/// A line chart of `series` as an SVG document.
pub fn chart(axes: &Axes, series: &[Series]) -> Result<String, String> {
    let points = || series.iter().flat_map(|s| s.points.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = points().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), (x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if axes.log_x {
        x0 = x0.max(1e-9);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-9);
    let (y0, y1) = (y0.min(0.0), y1 + pad);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (800, 500)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(axes.title, ("sans-serif", 20))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60);
        if axes.log_x {
            let mut chart = builder
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .map_err(|e| e.to_string())?;
            draw(&mut chart, axes, series)?;
        } else {
            let mut chart = builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?;
            draw(&mut chart, axes, series)?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

/// Draws the axes, the series and their legend on a chart of either x
/// scale (linear or logarithmic: different coordinate types).
fn draw<'b, X, Y>(
    chart: &mut ChartContext<'b, SVGBackend<'b>, Cartesian2d<X, Y>>,
    axes: &Axes,
    series: &[Series],
) -> Result<(), String>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(axes.x)
        .y_desc(axes.y)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, s) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let style = colour.stroke_width(2);
        if s.markers {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 5, colour.filled())))
                .map_err(|e| e.to_string())?
                .label(s.name)
                .legend(move |(x, y)| Circle::new((x + 10, y), 5, colour.filled()));
        } else {
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))
                .map_err(|e| e.to_string())?
                .label(s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(|e| e.to_string())
}

/// The empirical CDF of a sorted sample, thinned to at most ~500 points.
fn cdf(sorted: &[f32]) -> Vec<(f64, f64)> {
    let n = sorted.len();
    let step = (n / 500).max(1);
    (0..n)
        .step_by(step)
        .chain(n.checked_sub(1))
        .map(|i| (f64::from(sorted[i]), (i + 1) as f64 / n as f64))
        .collect()
}

/// Writes `latency_cdf.svg`, `entropy_cdf.svg` and `node_held.svg` of
/// `report` into `dir`.
pub fn write_all(report: &SimReport, dir: &Path) -> Result<(), String> {
    let write = |name: &str, svg: String| {
        std::fs::write(dir.join(name), svg).map_err(|e| format!("{name}: {e}"))
    };
    write(
        "latency_cdf.svg",
        chart(
            &Axes {
                title: "End-to-end latency of real messages",
                x: "latency (ms)",
                y: "fraction of messages",
                log_x: false,
            },
            &[Series {
                name: "CDF",
                points: cdf(&report.latency_sample_ms),
                markers: false,
            }],
        )?,
    )?;
    write(
        "entropy_cdf.svg",
        chart(
            &Axes {
                title: "Sender entropy of delivered messages",
                x: "entropy (bits)",
                y: "fraction of messages",
                log_x: false,
            },
            &[Series {
                name: "CDF",
                points: cdf(&report.entropy_sample_bits),
                markers: false,
            }],
        )?,
    )?;
    let held: Vec<(f64, f64)> = report
        .nodes
        .iter()
        .map(|n| (n.node as f64, n.mean_held))
        .collect();
    let model: Vec<(f64, f64)> = report
        .nodes
        .iter()
        .map(|n| {
            (
                n.node as f64,
                n.load_pps * report.config.mean_delay_ms / 1e3,
            )
        })
        .collect();
    write(
        "node_held.svg",
        chart(
            &Axes {
                title: "Packets held per node",
                x: "node (layer-major)",
                y: "mean packets held",
                log_x: false,
            },
            &[
                Series {
                    name: "measured (time average)",
                    points: held,
                    markers: true,
                },
                Series {
                    name: "arrival rate x mean delay",
                    points: model,
                    markers: false,
                },
            ],
        )?,
    )
}
