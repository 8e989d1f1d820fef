//! Quality insurance: the rules that decide, when a request finishes, whether the account is
//! credited for it — triggers, scopes and payouts as data (`rules`), the objective checks of
//! the answer (`content`) and the schema validation they use (`schema`).

pub mod content;
pub mod rules;
pub mod schema;
