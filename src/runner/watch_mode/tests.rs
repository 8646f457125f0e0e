//! Unit tests of `watch_mode`.

use super::*;
use std::time::Duration;

#[test]
fn quiescence_waits_min_after_the_last_change_but_never_past_max() {
    let w = Wait {
        min: Duration::from_millis(200),
        max: Duration::from_millis(1000),
    };
    let mut s = JobState {
        rendered_once: true,
        ..JobState::default()
    };
    let t0 = Instant::now();
    assert!(!s.changed(Some(w), t0));
    assert_eq!(s.quiet, Some((t0 + w.min, t0 + w.max)));
    let t1 = t0 + Duration::from_millis(150);
    s.changed(Some(w), t1);
    assert_eq!(
        s.quiet,
        Some((t1 + w.min, t0 + w.max)),
        "each change pushes the render back"
    );
    let t2 = t0 + Duration::from_millis(900);
    s.changed(Some(w), t2);
    assert_eq!(
        s.quiet,
        Some((t0 + w.max, t0 + w.max)),
        "but never past max"
    );
}

#[test]
fn the_first_render_and_no_wait_are_immediate() {
    let w = Wait {
        min: Duration::from_millis(200),
        max: Duration::from_millis(1000),
    };
    let mut s = JobState::default();
    assert!(
        s.changed(Some(w), Instant::now()),
        "first render is never delayed"
    );
    s.rendered_once = true;
    assert!(s.changed(None, Instant::now()));
}
