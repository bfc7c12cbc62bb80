//! The overview: workers, commands and runs by state, dead-letter depth,
//! and throughput and latency over the last minutes; the live part is a
//! fragment the page fetches again every 2 s (htmx).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use runfleet_producer::inspect;
use runfleet_schemas::api::FleetStats;

use super::rates::{BUCKET, Bar, WINDOW};
use super::view::{Nav, fleet_error, render, when};
use super::{Console, Shared};

/// Chart size (SVG user units).
const CHART_WIDTH: f64 = 300.0;
const CHART_HEIGHT: f64 = 60.0;

/// A worker's row.
struct WorkerRow {
    worker_id: String,
    host: String,
    version: String,
    alive: bool,
    state: &'static str,
    last_seen: String,
    started_at: String,
    in_flight: i64,
}

/// A small bar chart: each series' bars as SVG rectangles (`x y width
/// height`, the first series full width, the second narrower in front),
/// and its labels.
struct Chart {
    series: Vec<(&'static str, Vec<Rect>)>,
    peak: String,
    latest: String,
}

/// One bar, in SVG user units.
struct Rect {
    x: String,
    y: String,
    width: String,
    height: String,
}

/// What the live part shows.
struct Live {
    at: String,
    workers: Vec<WorkerRow>,
    alive: usize,
    commands: Vec<(String, i64)>,
    runs: Vec<(String, i64)>,
    dead_letters: i64,
    redriven: i64,
    throughput: Chart,
    latency: Chart,
    window: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    nav: Nav,
    live: Live,
}

#[derive(Template)]
#[template(path = "overview_live.html")]
struct OverviewFragment {
    live: Live,
}

/// `GET /`.
pub(super) async fn page(State(console): State<Shared>) -> Response {
    match live(&console).await {
        Ok(live) => render(&OverviewPage {
            nav: Nav::new(&console, "overview", "Overview"),
            live,
        }),
        Err(response) => response,
    }
}

/// `GET /fragments/overview`: the live part alone.
pub(super) async fn fragment(State(console): State<Shared>) -> Response {
    match live(&console).await {
        Ok(live) => render(&OverviewFragment { live }),
        Err(response) => response,
    }
}

async fn live(console: &Console) -> Result<Live, Response> {
    let stats = inspect::fleet_stats(console.producer.client())
        .await
        .map_err(|err| fleet_error(console, &err))?;
    let bars = console.rates.bars();
    Ok(shown(stats, &bars))
}

fn shown(stats: FleetStats, bars: &[Bar]) -> Live {
    let workers: Vec<WorkerRow> = stats
        .workers
        .into_iter()
        .map(|w| WorkerRow {
            state: if w.alive {
                "alive"
            } else if w.stopped_at.is_some() {
                "stopped"
            } else {
                "gone"
            },
            alive: w.alive,
            worker_id: w.worker_id,
            host: w.host,
            version: w.version,
            last_seen: when(w.last_seen),
            started_at: when(w.started_at),
            in_flight: w.in_flight,
        })
        .collect();
    let throughput = chart(
        &[
            (
                "receipts/s",
                bars.iter().map(|b| Some(b.per_second)).collect(),
            ),
            (
                "failed/s",
                bars.iter().map(|b| Some(b.failed_per_second)).collect(),
            ),
        ],
        "/s",
    );
    let latency = chart(
        &[
            ("p99", bars.iter().map(|b| b.p99_ms).collect()),
            ("p50", bars.iter().map(|b| b.p50_ms).collect()),
        ],
        " ms",
    );
    Live {
        at: when(stats.at),
        alive: workers.iter().filter(|w| w.alive).count(),
        workers,
        commands: stats.commands_by_status.into_iter().collect(),
        runs: stats.runs_by_status.into_iter().collect(),
        dead_letters: stats.dead_letters.pending,
        redriven: stats.dead_letters.redriven,
        throughput,
        latency,
        window: format!(
            "last {} min, {} s bars",
            WINDOW.as_secs() / 60,
            BUCKET.as_secs()
        ),
    }
}

/// Bars of `series` (none where a value is missing) scaled to their common peak.
fn chart(series: &[(&'static str, Vec<Option<f64>>)], unit: &str) -> Chart {
    let peak = series
        .iter()
        .flat_map(|(_, values)| values.iter().flatten())
        .fold(0.0_f64, |a, &b| a.max(b));
    let scale = if peak > 0.0 { CHART_HEIGHT / peak } else { 0.0 };
    let drawn = series
        .iter()
        .enumerate()
        .map(|(n, (name, values))| {
            let slot = CHART_WIDTH / values.len().max(1) as f64;
            // The first series fills 80 % of its slot, the next ones less, centred.
            let width = slot * 0.8 / (n + 1) as f64;
            let bars = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let height = v.filter(|v| *v > 0.0)? * scale;
                    Some(Rect {
                        x: format!("{:.2}", i as f64 * slot + (slot - width) / 2.0),
                        y: format!("{:.2}", CHART_HEIGHT - height),
                        width: format!("{width:.2}"),
                        height: format!("{height:.2}"),
                    })
                })
                .collect();
            (*name, bars)
        })
        .collect();
    let latest = series
        .first()
        .and_then(|(_, values)| values.last().copied().flatten())
        .map_or_else(|| "—".to_owned(), |v| format!("{v:.1}{unit}"));
    Chart {
        series: drawn,
        peak: format!("{peak:.1}{unit}"),
        latest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_scales_to_its_peak_and_skips_missing_values() {
        let c = chart(&[("a", vec![Some(5.0), None, Some(10.0)])], "/s");
        let bars = &c.series[0].1;
        assert_eq!(bars.len(), 2);
        assert_eq!(
            (bars[0].y.as_str(), bars[0].height.as_str()),
            ("30.00", "30.00")
        );
        assert_eq!(
            (bars[1].x.as_str(), bars[1].width.as_str()),
            ("210.00", "80.00")
        );
        assert_eq!(c.peak, "10.0/s");
        assert_eq!(c.latest, "10.0/s");
    }
}
