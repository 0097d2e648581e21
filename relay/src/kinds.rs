//! The callbacks the relay serves: each at its own path, under its own kind (its receiver's
//! name, the kind of its stored records, its `airudder-event` header and its metrics label).

/// The typed callbacks: path and kind.
pub(crate) const TYPED: [(&str, &str); 6] = [
    ("/airudder/task", "task_notification"),
    ("/airudder/workflow/call", "workflow_call_completion"),
    ("/airudder/workflow/list", "workflow_list_completion"),
    ("/airudder/workflow/status", "workflow_status_change"),
    ("/airudder/chatbot/session", "chatbot_session_end"),
    ("/airudder/pds", "pds_event"),
];

/// The kind of the raw callback `name` (`AIRUDDER_RAW_NAMES`).
pub(crate) fn raw_kind(name: &str) -> String {
    format!("raw_{name}")
}

/// The path of the raw callback `name`.
pub(crate) fn raw_path(name: &str) -> String {
    format!("/airudder/raw/{name}")
}

/// The variable that sends `kind` to its own URL.
pub(crate) fn url_variable(kind: &str) -> String {
    format!("AIRUDDER_FORWARD_URL_{}", kind.to_uppercase())
}

/// Every kind served: the typed ones, then the raw names'.
pub(crate) fn all(raw_names: &[String]) -> Vec<String> {
    TYPED
        .iter()
        .map(|(_, kind)| (*kind).to_owned())
        .chain(raw_names.iter().map(|name| raw_kind(name)))
        .collect()
}
