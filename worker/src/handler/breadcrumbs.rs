//! Where a command is, for watchdog messages: the phases it went through
//! (with how long each took) and its last event.

use std::fmt::Write as _;
use std::time::Instant;

use runfleet_schemas::EventBody;

use super::event_text::summary;

/// Phases kept for breadcrumbs (the first and the most recent).
const MAX_PHASES: usize = 16;

/// Where the command is, for watchdog messages.
pub(crate) struct Breadcrumbs {
    started: Instant,
    phases: Vec<(String, Instant)>,
    last_event: Option<String>,
    /// When the backend last emitted an event or output (the inactivity watchdog).
    pub(crate) last_activity: Instant,
}

impl Breadcrumbs {
    pub(crate) fn new() -> Breadcrumbs {
        let now = Instant::now();
        Breadcrumbs {
            started: now,
            phases: vec![("start".into(), now)],
            last_event: None,
            last_activity: now,
        }
    }

    pub(crate) fn saw(&mut self, body: &EventBody) {
        if let EventBody::Phase { name } = body {
            if self.phases.len() >= MAX_PHASES {
                self.phases.remove(1);
            }
            self.phases.push((name.clone(), Instant::now()));
        }
        self.last_event = Some(summary(body));
    }

    /// "in phase "build" (start 0.2s, build 5.1s); last event: progress 3/5".
    pub(crate) fn describe(&self) -> String {
        let now = Instant::now();
        let mut text = String::new();
        let current = self.phases.last().map_or("start", |(n, _)| n.as_str());
        let _ = write!(text, "in phase {current:?} (");
        for (i, (name, since)) in self.phases.iter().enumerate() {
            let until = self.phases.get(i + 1).map_or(now, |(_, t)| *t);
            if i > 0 {
                text.push_str(", ");
            }
            let _ = write!(text, "{name} {:.1}s", (until - *since).as_secs_f64());
        }
        let _ = write!(
            text,
            "; {:.1}s in all); last event: {}",
            (now - self.started).as_secs_f64(),
            self.last_event.as_deref().unwrap_or("none")
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breadcrumbs_name_the_phase_and_the_last_event() {
        let mut crumbs = Breadcrumbs::new();
        crumbs.saw(&EventBody::Phase {
            name: "build".into(),
        });
        crumbs.saw(&EventBody::Progress {
            done: 3,
            total: Some(5),
        });
        let text = crumbs.describe();
        assert!(
            text.starts_with("in phase \"build\" (start 0.0s, build 0.0s"),
            "{text}"
        );
        assert!(text.ends_with("last event: progress 3/5"), "{text}");
    }
}
