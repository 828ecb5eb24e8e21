//! PNG charts with plotters. Text is drawn with a font that ships inside a crate
//! (`epaint_default_fonts`' Hack), so no system font is needed.

use std::error::Error;
use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

type Result<T> = std::result::Result<T, Box<dyn Error + Send + Sync>>;

const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // A font that fails to load leaves charts without text rather than failing the run.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            epaint_default_fonts::HACK_REGULAR,
        );
    });
}

fn err<E: std::fmt::Debug>(e: E) -> Box<dyn Error + Send + Sync> {
    format!("chart: {e:?}").into()
}

/// One bar of the ratio chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// Workload and alternative.
    pub label: String,
    /// dal relative to the alternative (> 1: dal better).
    pub factor: f64,
    /// The target, in the same terms.
    pub target: Option<f64>,
    /// Whether the target was met.
    pub met: Option<bool>,
}

/// Horizontal bars of dal relative to each alternative, with 1.0 and the targets marked.
pub fn ratio_chart(path: &Path, title: &str, bars: &[Bar]) -> Result<()> {
    register_font();
    let row_h = 26i32;
    let top = 70i32;
    let left = 440i32;
    let right = 110i32;
    let width = 1300u32;
    let height = (top + row_h * bars.len().max(1) as i32 + 50) as u32;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;

    let max_factor = bars
        .iter()
        .flat_map(|b| [Some(b.factor), b.target])
        .flatten()
        .filter(|f| f.is_finite())
        .fold(1.0f64, f64::max);
    let x_max = (max_factor * 1.1).min(4.0);
    let plot_w = width as i32 - left - right;
    let x_of = |f: f64| left + ((f.min(x_max) / x_max) * plot_w as f64) as i32;

    let title_style = TextStyle::from((FONT, 22).into_font()).color(&BLACK);
    let text = TextStyle::from((FONT, 14).into_font()).color(&BLACK);
    let small = TextStyle::from((FONT, 12).into_font()).color(&RGBColor(90, 90, 90));
    root.draw(&Text::new(title.to_owned(), (20, 15), title_style))
        .map_err(err)?;
    root.draw(&Text::new(
        "bar: dal relative to the alternative (>1 = dal faster); black line: 1.0; orange tick: target".to_owned(),
        (20, 45),
        small.clone(),
    ))
    .map_err(err)?;

    // Grid lines every 0.5.
    let bottom = top + row_h * bars.len() as i32;
    let mut g = 0.0;
    while g <= x_max + 1e-9 {
        let x = x_of(g);
        root.draw(&PathElement::new(
            vec![(x, top - 4), (x, bottom)],
            RGBColor(225, 225, 225),
        ))
        .map_err(err)?;
        root.draw(&Text::new(
            format!("{g:.1}"),
            (x - 10, bottom + 6),
            small.clone(),
        ))
        .map_err(err)?;
        g += 0.5;
    }

    for (i, b) in bars.iter().enumerate() {
        let y = top + i as i32 * row_h;
        let color = match b.met {
            Some(true) => RGBColor(60, 160, 90),
            Some(false) => RGBColor(210, 70, 60),
            None => RGBColor(120, 140, 180),
        };
        let label = if b.label.chars().count() > 62 {
            format!("{}…", b.label.chars().take(61).collect::<String>())
        } else {
            b.label.clone()
        };
        root.draw(&Text::new(label, (10, y + 5), text.clone()))
            .map_err(err)?;
        if b.factor.is_finite() {
            root.draw(&Rectangle::new(
                [(left, y + 3), (x_of(b.factor), y + row_h - 3)],
                color.filled(),
            ))
            .map_err(err)?;
            let x_text = x_of(b.factor).max(x_of(1.0) + 2) + 6;
            root.draw(&Text::new(
                format!("{:.2}×", b.factor),
                (x_text, y + 5),
                text.clone(),
            ))
            .map_err(err)?;
        } else {
            root.draw(&Text::new(
                "n/a".to_owned(),
                (left + 6, y + 5),
                text.clone(),
            ))
            .map_err(err)?;
        }
        if let Some(t) = b.target.filter(|t| t.is_finite()) {
            let x = x_of(t);
            root.draw(&PathElement::new(
                vec![(x, y + 1), (x, y + row_h - 1)],
                RGBColor(240, 140, 0).stroke_width(3),
            ))
            .map_err(err)?;
        }
    }
    let one = x_of(1.0);
    root.draw(&PathElement::new(
        vec![(one, top - 4), (one, bottom)],
        BLACK.stroke_width(2),
    ))
    .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One point of the capacity chart.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityPoint {
    /// Concurrent users.
    pub users: usize,
    /// Completed queries per second.
    pub throughput: f64,
    /// Theoretical limit (pool ÷ query time).
    pub limit: f64,
    /// Share of acquisitions that timed out, in `0..=1`.
    pub timeout_rate: f64,
}

/// Throughput (with the theoretical limit) and timeout rate against users, in two panels.
pub fn capacity_chart(path: &Path, title: &str, points: &[CapacityPoint]) -> Result<()> {
    register_font();
    let root = BitMapBackend::new(path, (1000, 800)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, (FONT, 22)).map_err(err)?;
    let panels = root.split_evenly((2, 1));
    let n = points.len().max(1);
    let x_range = -0.5f64..(n as f64 - 0.5);
    let users: Vec<usize> = points.iter().map(|p| p.users).collect();
    let x_label = |x: &f64| -> String {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            users
                .get(i as usize)
                .map(|u| format!("{u} users"))
                .unwrap_or_default()
        } else {
            String::new()
        }
    };

    // Throughput.
    let y_max = points
        .iter()
        .flat_map(|p| [p.throughput, p.limit])
        .fold(1.0f64, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(&panels[0])
        .margin(15)
        .caption("Throughput (queries/s) vs theoretical limit", (FONT, 16))
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range.clone(), 0.0..y_max)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&x_label)
        .y_desc("q/s")
        .label_style((FONT, 13))
        .draw()
        .map_err(err)?;
    let blue = RGBColor(50, 100, 200);
    chart
        .draw_series(LineSeries::new(
            points
                .iter()
                .enumerate()
                .map(|(i, p)| (i as f64, p.throughput)),
            blue.stroke_width(3),
        ))
        .map_err(err)?
        .label("measured")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue.stroke_width(3)));
    chart
        .draw_series(
            points
                .iter()
                .enumerate()
                .map(|(i, p)| Circle::new((i as f64, p.throughput), 5, blue.filled())),
        )
        .map_err(err)?;
    let grey = RGBColor(120, 120, 120);
    chart
        .draw_series(LineSeries::new(
            points.iter().enumerate().map(|(i, p)| (i as f64, p.limit)),
            grey.stroke_width(2),
        ))
        .map_err(err)?
        .label("limit: pool ÷ query time")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;

    // Timeout rate.
    let red = RGBColor(210, 70, 60);
    let mut chart = ChartBuilder::on(&panels[1])
        .margin(15)
        .caption("Acquisition timeout rate (%)", (FONT, 16))
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(x_range, 0.0..100.0f64)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&x_label)
        .y_desc("%")
        .label_style((FONT, 13))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            points
                .iter()
                .enumerate()
                .map(|(i, p)| (i as f64, p.timeout_rate * 100.0)),
            red.stroke_width(3),
        ))
        .map_err(err)?;
    chart
        .draw_series(
            points
                .iter()
                .enumerate()
                .map(|(i, p)| Circle::new((i as f64, p.timeout_rate * 100.0), 5, red.filled())),
        )
        .map_err(err)?;
    let amber = RGBColor(240, 140, 0);
    chart
        .draw_series(LineSeries::new(
            vec![(-0.5, 5.0), (n as f64 - 0.5, 5.0)],
            amber.stroke_width(1),
        ))
        .map_err(err)?
        .label("5 %: scale horizontally above")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], amber));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 13))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}
