//! The one place access is decided: load the facts, ask the engine, put the decision on
//! record, and hand the caller what was loaded so nothing is looked up twice.
//!
//! One job a file: deciding and concluding (`decide`); the target a request names (`target`); the facts a decision is made from
//! (`facts`); what goes on the trail for it (`trail`); and replaying a decision for
//! `$explain-access` (`explain`).

mod decide;
mod explain;
mod facts;
mod target;
mod trail;

pub use decide::{Permit, actor_facts, authorize, conclude};
pub use explain::{Subject, explain, hides_target};
pub use target::{AnyTask, Target};
pub use trail::{Refused, disclosed, disclosure, home_practice};
