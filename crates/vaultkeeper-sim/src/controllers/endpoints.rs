//! placeholder

use crate::core::Core;

/// One pass.
pub fn pass(_core: &Core) {}
