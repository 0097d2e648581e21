//! Airudder's workflow callbacks: call completion, list completion and status change.
//!
//! The call completion is the task notification plus five workflow members, whose place the
//! sender's docs do not give: they are accepted at the top level and in each call. The list
//! completion and the status change have the members of their field tables. What the docs do
//! not say is not invented: undocumented values are kept as text, unknown members in `extra`.

use std::fmt;

use super::{CallResult, Fields, HangupType, RingType, RobotMethod, TaskStatus, Text, Timestamp};
use super::{QuestionAnswer, RedialAttempt};
use crate::redact::{MaskedPhone, MaskedValue};

task_struct! {
    /// A workflow's call completion notice: one per number, after it connects or its redials
    /// run out. The task notification's members, plus the workflow's; see
    /// [`workflow_id`](Self::workflow_id) and the others to read them wherever they were sent.
    #[derive(Debug, Clone, PartialEq)]
    pub struct WorkflowCallCompletion of WorkflowCall,
        expecting "a workflow call completion object" {
        /// `workflow_id`, when sent at the top level.
        optional workflow_id: Text = "workflow_id",
        /// `workflow_name`, when sent at the top level.
        optional workflow_name: Text = "workflow_name",
        /// `nodetask_id`, when sent at the top level.
        optional nodetask_id: Text = "nodetask_id",
        /// `nodetask_name`, when sent at the top level.
        optional nodetask_name: Text = "nodetask_name",
        /// `case_id`, when sent at the top level.
        optional case_id: Text = "case_id",
    }
}

call_struct! {
    /// One call of a [`WorkflowCallCompletion`]: a task notification's call, plus the
    /// workflow's members when they are sent in each call.
    ///
    /// Its `Debug` output masks the phone numbers and the uploaded variables.
    #[derive(Clone, PartialEq)]
    pub struct WorkflowCall expecting "a call object" {
        /// `workflow_id`, when sent in the call.
        optional workflow_id: Text = "workflow_id",
        /// `workflow_name`, when sent in the call.
        optional workflow_name: Text = "workflow_name",
        /// `nodetask_id`, when sent in the call.
        optional nodetask_id: Text = "nodetask_id",
        /// `nodetask_name`, when sent in the call.
        optional nodetask_name: Text = "nodetask_name",
        /// `case_id`, when sent in the call.
        optional case_id: Text = "case_id",
    }
}

/// Reads a workflow member at the top level, else in the first call that has it.
macro_rules! workflow_member {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub fn $name(&self) -> Option<&str> {
            self.$name
                .as_deref()
                .or_else(|| self.details.iter().find_map(|call| call.$name.as_deref()))
        }
    };
}

impl WorkflowCallCompletion {
    workflow_member!(
        /// `workflow_id`, at the top level or else in the first call that has it.
        workflow_id
    );
    workflow_member!(
        /// `workflow_name`, at the top level or else in the first call that has it.
        workflow_name
    );
    workflow_member!(
        /// `nodetask_id`, at the top level or else in the first call that has it.
        nodetask_id
    );
    workflow_member!(
        /// `nodetask_name`, at the top level or else in the first call that has it.
        nodetask_name
    );
    workflow_member!(
        /// `case_id`, at the top level or else in the first call that has it.
        case_id
    );

    /// Decodes a body, strictly, through the same fast pass as the task notification.
    ///
    /// # Errors
    /// A [`DecodeError`](crate::DecodeError), as [`decode`](crate::decode) reports it.
    pub fn from_slice(body: &[u8]) -> Result<Self, crate::DecodeError> {
        crate::decode::decode_with(body, super::fast::decode)
    }
}

impl WorkflowCall {
    /// One of the variables you uploaded for this number.
    pub fn variable(&self, name: &str) -> Option<&serde_json::Value> {
        self.variables.as_ref()?.get(name)
    }
}

impl fmt::Debug for WorkflowCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowCall")
            .field("id", &self.id)
            .field("callee", &MaskedPhone(self.callee.as_str()))
            .field("result", &self.result)
            .field("result_label", &self.result_label)
            .field("hangup_type", &self.hangup_type)
            .field("caller_number", &MaskedPhone(self.caller_number.as_str()))
            .field(
                "variables",
                &super::task::keys_only(&self.variables).map(MaskedValue),
            )
            .field("workflow_id", &self.workflow_id)
            .field("nodetask_id", &self.nodetask_id)
            .field("case_id", &self.case_id)
            .finish_non_exhaustive()
    }
}

wire_struct! {
    /// A workflow's list completion notice: every node a number went through.
    ///
    /// Its `Debug` output masks the number.
    #[derive(Clone, PartialEq)]
    pub struct WorkflowListCompletion expecting "a workflow list completion object" {
        /// `workflow_id`.
        required workflow_id: Text = "workflow_id",
        /// `workflow_name`.
        required workflow_name: Text = "workflow_name",
        /// `case_id`.
        required case_id: Text = "case_id",
        /// `callee_number` (here, not `callee`). Personal data.
        required callee_number: Text = "callee_number",
        /// `rows`: the nodes.
        required rows: Vec<WorkflowNode> = "rows",
    }
}

impl fmt::Debug for WorkflowListCompletion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkflowListCompletion")
            .field("workflow_id", &self.workflow_id)
            .field("workflow_name", &self.workflow_name)
            .field("case_id", &self.case_id)
            .field("callee_number", &MaskedPhone(self.callee_number.as_str()))
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

wire_struct! {
    /// One node of a [`WorkflowListCompletion`].
    #[derive(Debug, Clone, PartialEq)]
    pub struct WorkflowNode expecting "a workflow node object" {
        /// `nodetask_id`.
        required nodetask_id: Text = "nodetask_id",
        /// `nodetask_name`.
        required nodetask_name: Text = "nodetask_name",
        /// `node_type` (values not documented).
        required node_type: Text = "node_type",
        /// `task_id`, for a node that ran a task.
        optional task_id: Text = "task_id",
    }
}

wire_struct! {
    /// A workflow's status change notice.
    #[derive(Debug, Clone, PartialEq)]
    pub struct WorkflowStatusChange expecting "a workflow status change object" {
        /// `workflow_id`.
        required workflow_id: Text = "workflow_id",
        /// `workflow_name`.
        required workflow_name: Text = "workflow_name",
        /// `status` (values not documented: kept as sent).
        required status: Text = "status",
        /// `actions`: the nodes and their tasks.
        required actions: Vec<WorkflowAction> = "actions",
    }
}

wire_struct! {
    /// One action of a [`WorkflowStatusChange`].
    #[derive(Debug, Clone, PartialEq)]
    pub struct WorkflowAction expecting "a workflow action object" {
        /// `nodetask_id`.
        required nodetask_id: Text = "nodetask_id",
        /// `nodetask_name`.
        required nodetask_name: Text = "nodetask_name",
        /// `node_type` (values not documented).
        required node_type: Text = "node_type",
        /// `task_id`.
        optional task_id: Text = "task_id",
        /// `task_status` (values not documented).
        optional task_status: Text = "task_status",
    }
}
