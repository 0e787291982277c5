//! The plans of paths parsed a moment ago, kept per worker thread: a load
//! test, a probe or a person at a terminal asks the same path over and over,
//! and parsing it again (about 2,000 instructions a level of @-commands) was
//! the largest part of a middle hop's own work. A plan is what its path and
//! the limits make of it and nothing else, so a kept one is the same plan;
//! only paths that parsed are kept (a refused one is parsed, and refused,
//! each time, with its own error).
//!
//! Bounded: [`SLOTS`] plans a thread, each of a path of at most [`LONGEST`]
//! bytes (a longer path is parsed every time); a path takes the slot its
//! hash chooses, replacing what was there, so paths that keep changing cost
//! one hash and one comparison more than no keeping at all.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::path::parse_path;
use super::{Limits, Plan, PlanError};

/// Plans kept by one thread.
pub const SLOTS: usize = 32;

/// The longest path whose plan is kept, in bytes.
pub const LONGEST: usize = 512;

struct Kept {
    path: Box<str>,
    limits: Limits,
    plan: Arc<Plan>,
}

struct Recent {
    /// Seeded per thread (a chosen path cannot pick its neighbours).
    hasher: foldhash::fast::RandomState,
    slots: [Option<Kept>; SLOTS],
}

thread_local! {
    static RECENT: RefCell<Recent> = RefCell::new(Recent {
        hasher: foldhash::fast::RandomState::default(),
        slots: [const { None }; SLOTS],
    });
}

/// The plan of `path` under `limits`: the one kept when this thread parsed
/// the same path under the same limits a moment ago, else parsed (and kept
/// when it parses and is short enough).
pub fn plan_of(path: &str, limits: &Limits) -> Result<Arc<Plan>, PlanError> {
    if path.len() > LONGEST {
        return parse_path(path, limits).map(Arc::new);
    }
    RECENT.with(|recent| {
        let slot = {
            let recent = recent.borrow();
            let slot = recent.hasher.hash_one(path) as usize % SLOTS;
            if let Some(kept) = &recent.slots[slot] {
                if &*kept.path == path && kept.limits == *limits {
                    return Ok(Arc::clone(&kept.plan));
                }
            }
            slot
        };
        let plan = Arc::new(parse_path(path, limits)?);
        recent.borrow_mut().slots[slot] = Some(Kept {
            path: path.into(),
            limits: *limits,
            plan: Arc::clone(&plan),
        });
        Ok(plan)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept_on_this_thread() -> usize {
        RECENT.with(|recent| recent.borrow().slots.iter().flatten().count())
    }

    #[test]
    fn a_path_asked_again_gets_the_same_plan_without_a_parse() {
        let limits = Limits::default();
        let path = "/@recent-a|recent-b/@recent-c[x-k=v]/end?q=1";
        let first = plan_of(path, &limits).unwrap();
        let again = plan_of(path, &limits).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "kept, not parsed again");
        assert_eq!(*first, parse_path(path, &limits).unwrap());
        let other = plan_of("/@recent-d/end", &limits).unwrap();
        assert_eq!(other.parallel[0].hops[0].target.host, "recent-d");
    }

    #[test]
    fn the_limits_are_part_of_what_is_kept() {
        let path = "/@l1/@l2/@l3/end";
        let roomy = Limits::default();
        assert!(plan_of(path, &roomy).is_ok());
        let tight = Limits {
            max_depth: 2,
            ..Limits::default()
        };
        let refused = plan_of(path, &tight).unwrap_err();
        assert!(
            matches!(refused, PlanError::TooDeep { depth: 3, .. }),
            "{refused}"
        );
        // And the other way round: a path refused first is kept by nobody.
        let wide = "/@w1,w2,w3/end";
        let narrow = Limits {
            max_targets: 2,
            ..Limits::default()
        };
        assert!(plan_of(wide, &narrow).is_err());
        assert!(plan_of(wide, &narrow).is_err(), "refused again, not kept");
        assert_eq!(plan_of(wide, &roomy).unwrap().parallel[0].hops.len(), 3);
    }

    #[test]
    fn what_is_kept_is_bounded_in_count_and_length() {
        let limits = Limits::default();
        for i in 0..(SLOTS * 8) {
            plan_of(&format!("/@bounded{i}/end"), &limits).unwrap();
        }
        assert!(kept_on_this_thread() <= SLOTS);
        let long = format!("/@{}/end", "h".repeat(LONGEST));
        let first = plan_of(&long, &limits).unwrap();
        let again = plan_of(&long, &limits).unwrap();
        assert!(!Arc::ptr_eq(&first, &again), "a long path is not kept");
        assert_eq!(first, again);
    }
}
