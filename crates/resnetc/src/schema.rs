//! JSON Schemas of every report `--json` prints (and the Python package returns), generated from
//! the report types themselves; `schemas/*.schema.json` hold them, and a test keeps those files
//! equal to what this module generates and checks real outputs against them.

/// A report's name (its file is `schemas/{name}.schema.json`) and its schema.
pub fn all() -> Vec<(&'static str, schemars::Schema)> {
    use schemars::schema_for;
    vec![
        ("about", schema_for!(crate::about::About)),
        ("bench", schema_for!(crate::BenchReport)),
        ("demo", schema_for!(crate::demo::DemoReport)),
        ("eval", schema_for!(crate::eval::EvalReport)),
        ("extract", schema_for!(crate::ExtractReport)),
        ("inspect", schema_for!(crate::InspectReport)),
        ("levels", schema_for!(crate::picture::LevelsReport)),
        ("run", schema_for!(crate::eval::RunReport)),
        ("wrote", schema_for!(crate::WroteReport)),
    ]
}

/// What a command that writes a file (`compile`, `export`, `zoo`, `inspect --svg`) prints with
/// `--json`.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct WroteReport {
    pub schema_version: u32,
    /// The file written.
    pub path: String,
    pub bytes: u64,
    /// What else there is to know (a fallback, a target's note).
    pub notes: Vec<String>,
}

impl WroteReport {
    /// The report for a file just written.
    pub fn of(path: &std::path::Path, notes: Vec<String>) -> WroteReport {
        WroteReport {
            schema_version: crate::SCHEMA_VERSION,
            path: path.display().to_string(),
            bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
            notes,
        }
    }
}

/// What `inspect MODEL.rnc --extract DIR --json` prints.
#[derive(Clone, Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ExtractReport {
    pub schema_version: u32,
    /// Every file written, with its size.
    pub files: Vec<WroteReport>,
}
