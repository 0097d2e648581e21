//! The string enums of the contract.

wire_enum! {
    /// The state of a task (top-level `status`).
    ///
    /// The contract spells it `canceled` here; `cancelled` is accepted as its own variant so that
    /// the value serializes back as sent. Use [`TaskStatus::is_cancelled`] to test for either.
    pub enum TaskStatus {
        /// `created`
        Created = "created",
        /// `pending`
        Pending = "pending",
        /// `finished`: the calls of the task are over.
        Finished = "finished",
        /// `calling`
        Calling = "calling",
        /// `canceled`, the documented spelling at the top level.
        Canceled = "canceled",
        /// `cancelled`, the other spelling.
        Cancelled = "cancelled",
        /// `paused`
        Paused = "paused",
    }
}

impl TaskStatus {
    /// True for both spellings of cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Canceled | Self::Cancelled)
    }
}

wire_enum! {
    /// The outcome of one call (`details[].result`).
    ///
    /// The contract spells it `cancelled` here; `canceled` is accepted as its own variant so that
    /// the value serializes back as sent. Use [`CallResult::is_cancelled`] to test for either.
    pub enum CallResult {
        /// `created`
        Created = "created",
        /// `pending`
        Pending = "pending",
        /// `finished`: the call took place.
        Finished = "finished",
        /// `cancelled`, the documented spelling for calls.
        Cancelled = "cancelled",
        /// `canceled`, the other spelling.
        Canceled = "canceled",
        /// `failed`
        Failed = "failed",
    }
}

impl CallResult {
    /// True for both spellings of cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Canceled | Self::Cancelled)
    }
}

wire_enum! {
    /// Who ended a call (`hangup_type`, `HangupType`).
    pub enum HangupType {
        /// `ByCallee`: the person called hung up.
        ByCallee = "ByCallee",
        /// `ByRobot`: the robot ended the call.
        ByRobot = "ByRobot",
        /// `Canceled`, the documented spelling.
        Canceled = "Canceled",
        /// `Cancelled`, the other spelling.
        Cancelled = "Cancelled",
    }
}

impl HangupType {
    /// True for both spellings of cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Self::Canceled | Self::Cancelled)
    }
}

wire_enum! {
    /// How the line answered (`ring_type`, `RingType`).
    ///
    /// The sender's page runs the values together; every reading of it is a variant
    /// (`holdline` + `switchoff` as well as `hold` + `lineswitchoff`), and so are the empty
    /// string and the string `"null"`. A JSON `null` is `None` on the field that holds it.
    pub enum RingType {
        /// `busy`
        Busy = "busy",
        /// `cantuse`: the number cannot be used.
        CantUse = "cantuse",
        /// `hold`
        Hold = "hold",
        /// `lineswitchoff`
        LineSwitchOff = "lineswitchoff",
        /// `holdline`, the other reading of the page.
        HoldLine = "holdline",
        /// `switchoff`, the other reading of the page.
        SwitchOff = "switchoff",
        /// `outofarea`
        OutOfArea = "outofarea",
        /// `unregister`: the number is not registered.
        Unregister = "unregister",
        /// `wrongnum`
        WrongNum = "wrongnum",
        /// `notmatch`
        NotMatch = "notmatch",
        /// `normal`: the call rang normally.
        Normal = "normal",
        /// The string `"null"` (not a JSON `null`).
        Null = "null",
        /// The empty string, as in the example's `RingType`.
        Empty = "",
    }
}

wire_enum! {
    /// How the robot was assigned (`robot_method`).
    pub enum RobotMethod {
        /// `single`
        Single = "single",
        /// `group`
        Group = "group",
    }
}
