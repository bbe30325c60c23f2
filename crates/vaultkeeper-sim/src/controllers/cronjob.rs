//! CronJob schedules.

use crate::core::Core;
use crate::error::SimError;

/// Parses a standard five-field cron schedule (and the `@hourly`-style macros).
pub fn parse_schedule(s: &str) -> Result<croner::Cron, SimError> {
    s.parse::<croner::Cron>()
        .map_err(|e| SimError::BadRequest(format!("unparseable schedule {s:?}: {e}")))
}

/// One pass.
pub fn pass(_core: &Core) {}
