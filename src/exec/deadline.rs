//! Layered deadlines: how long a hop is waited for, and how long its callee
//! is told it has.
//!
//! A caller waits `timer` for a hop (the time left to its own deadline,
//! capped by `--hop-timeout`) but tells the callee a smaller budget:
//! `timer` less an answering margin ([`answer_margin`]). The callee gives its
//! own hops less again, and so on down the tree. So when a hop deep in a
//! cascade is slow or silent, the innermost timer fires first, that level
//! answers with a report naming the slow hop as `timeout`, and every level
//! above still has time to receive it and nest it. The budget travels in
//! `x-servicemock-timeout-ms` on every protocol; gRPC hops also carry the
//! caller's real deadline in `grpc-timeout`, as any gRPC client does.

use std::time::Duration;

/// The smallest margin a level keeps for answering its caller.
pub(crate) const MIN_MARGIN: Duration = Duration::from_millis(5);
/// The largest margin a level keeps.
pub(crate) const MAX_MARGIN: Duration = Duration::from_millis(500);

/// The time a callee keeps to answer before its caller gives up: a tenth of
/// what the caller waits, between [`MIN_MARGIN`] and [`MAX_MARGIN`] (so a
/// 30 s budget still allows more than 32 levels of nesting).
pub(crate) fn answer_margin(timer: Duration) -> Duration {
    (timer / 10).clamp(MIN_MARGIN, MAX_MARGIN)
}

/// The budget a callee is given when its caller waits `timer` for it.
pub(crate) fn callee_budget(timer: Duration) -> Duration {
    timer.saturating_sub(answer_margin(timer))
}

pub(crate) use crate::units::human;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_gets_less_than_its_caller_waits() {
        let mut timer = Duration::from_secs(10);
        for _ in 0..40 {
            let budget = callee_budget(timer);
            assert!(budget < timer || timer.is_zero());
            assert!(timer - budget >= MIN_MARGIN.min(timer));
            timer = budget;
        }
        assert_eq!(callee_budget(Duration::from_millis(3)), Duration::ZERO);
        assert_eq!(
            callee_budget(Duration::from_millis(500)),
            Duration::from_millis(450)
        );
        assert_eq!(
            callee_budget(Duration::from_secs(30)),
            Duration::from_millis(29_500)
        );
    }
}
