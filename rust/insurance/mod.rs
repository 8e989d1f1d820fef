//! Quality insurance: the checks that decide, when a request finishes, whether its answer was
//! one the account should be credited for. This module holds the objective content checks
//! (`unsatisfactory_content`) and the schema validation they use.

pub mod content;
pub mod schema;
