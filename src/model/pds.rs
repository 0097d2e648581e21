//! Airudder's predictive dialer (PDS) callbacks: an envelope `{"type": …, "body": {…}}`.
//!
//! Nothing of it is documented in public: the members are those a production integrator reads
//! (see `SIBLINGS.md` in the contract notes). The three known types are typed, with every
//! member optional and type-checked where its type is known; any other type is kept whole.
//! Timestamps are epoch milliseconds sent as strings ([`EpochMillis`]), and the state key is
//! `state` or `State` depending on the type: both are read ([`PdsStatusBody::state`]).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fast::{Fast, Scanner};
use super::{Fields, Text};
use crate::redact::MaskedPhone;

/// A predictive dialer callback: its type, and its body typed by it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct PdsEvent {
    /// The body, by the envelope's `type`.
    pub body: PdsBody,
    /// Members of the envelope besides `type` and `body`, kept and serialized again.
    pub extra: Map<String, Value>,
}

/// The body of a [`PdsEvent`], by its `type`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PdsBody {
    /// `TaskStatus`: a task's state changed.
    TaskStatus(PdsStatusBody),
    /// `AgentStatus`: an agent's state changed (boxed: it is by far the largest body).
    AgentStatus(Box<AgentStatus>),
    /// `ContactStatus`: a call to a number changed state.
    ContactStatus(ContactStatus),
    /// Another type: its name, and the body whole.
    Other {
        /// The envelope's `type`.
        kind: String,
        /// The body, as sent.
        body: Value,
    },
}

impl PdsEvent {
    /// The envelope's `type`.
    pub fn kind(&self) -> &str {
        match &self.body {
            PdsBody::TaskStatus(_) => "TaskStatus",
            PdsBody::AgentStatus(_) => "AgentStatus",
            PdsBody::ContactStatus(_) => "ContactStatus",
            PdsBody::Other { kind, .. } => kind,
        }
    }

    /// The task the event is about, when the body names one.
    pub fn task_id(&self) -> Option<&str> {
        match &self.body {
            PdsBody::TaskStatus(body) => body.task_id.as_deref(),
            PdsBody::AgentStatus(body) => body.task_id.as_deref(),
            PdsBody::ContactStatus(body) => body.task_id.as_deref(),
            PdsBody::Other { .. } => None,
        }
    }

    /// What the event's order is kept by
    /// ([`Event::order_key`](crate::Event::order_key)), whichever the event carries: the
    /// contact's call for a `ContactStatus` (`call:<callid>`), the agent for an `AgentStatus`
    /// (`agent:<agentName>`, the agent's login), the task for a `TaskStatus` (`task:<taskId>`).
    /// `None` for another type, or a body without that member.
    pub fn order_key(&self) -> Option<String> {
        let (prefix, id) = match &self.body {
            PdsBody::TaskStatus(body) => ("task", body.task_id.as_deref()),
            PdsBody::AgentStatus(body) => ("agent", body.agent_name.as_deref()),
            PdsBody::ContactStatus(body) => ("call", body.callid.as_deref()),
            PdsBody::Other { .. } => ("", None),
        };
        id.filter(|id| !id.is_empty())
            .map(|id| format!("{prefix}:{id}"))
    }

    /// The call the event is about (`callid`), for a contact or an agent event.
    pub fn call_id(&self) -> Option<&str> {
        match &self.body {
            PdsBody::AgentStatus(body) => body.callid.as_deref(),
            PdsBody::ContactStatus(body) => body.callid.as_deref(),
            _ => None,
        }
    }
}

impl PdsBody {
    /// Types a body read before its `type` was known.
    fn typed(kind: String, body: Value) -> Result<Self, serde_json::Error> {
        Ok(match kind.as_str() {
            "TaskStatus" => Self::TaskStatus(serde_json::from_value(body)?),
            "AgentStatus" => Self::AgentStatus(serde_json::from_value(body)?),
            "ContactStatus" => Self::ContactStatus(serde_json::from_value(body)?),
            _ => Self::Other { kind, body },
        })
    }
}

impl<'de> Deserialize<'de> for PdsEvent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EnvelopeVisitor)
    }
}

/// Reads the envelope in place: with `type` before `body` (as sent), the body is typed as it
/// is read, so that a refusal names its member (`body.taskId`); a body before its type is read
/// whole first, then typed.
struct EnvelopeVisitor;

impl<'de> serde::de::Visitor<'de> for EnvelopeVisitor {
    type Value = PdsEvent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a PDS event object with `type` and `body`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<PdsEvent, A::Error> {
        use serde::de::Error;
        let mut kind: Option<String> = None;
        let mut body: Option<PdsBody> = None;
        let mut early: Option<Value> = None;
        let mut extra = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "type" if kind.is_some() => return Err(A::Error::duplicate_field("type")),
                "type" => kind = Some(map.next_value()?),
                "body" if body.is_some() || early.is_some() => {
                    return Err(A::Error::duplicate_field("body"));
                }
                "body" => match kind.as_deref() {
                    Some("TaskStatus") => body = Some(PdsBody::TaskStatus(map.next_value()?)),
                    Some("AgentStatus") => body = Some(PdsBody::AgentStatus(map.next_value()?)),
                    Some("ContactStatus") => {
                        body = Some(PdsBody::ContactStatus(map.next_value()?));
                    }
                    Some(other) => {
                        body = Some(PdsBody::Other {
                            kind: other.to_owned(),
                            body: map.next_value()?,
                        });
                    }
                    None => early = Some(map.next_value()?),
                },
                _ if extra.contains_key(&key) => {
                    return Err(A::Error::custom(format_args!("duplicate field `{key}`")));
                }
                _ => {
                    let value = map.next_value()?;
                    extra.insert(key, value);
                }
            }
        }
        let kind = kind.ok_or_else(|| A::Error::missing_field("type"))?;
        let body = match (body, early) {
            (Some(body), _) => body,
            (None, Some(value)) => PdsBody::typed(kind, value).map_err(A::Error::custom)?,
            (None, None) => return Err(A::Error::missing_field("body")),
        };
        Ok(PdsEvent { body, extra })
    }
}

impl Serialize for PdsEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("type", self.kind())?;
        match &self.body {
            PdsBody::TaskStatus(body) => map.serialize_entry("body", body)?,
            PdsBody::AgentStatus(body) => map.serialize_entry("body", body)?,
            PdsBody::ContactStatus(body) => map.serialize_entry("body", body)?,
            PdsBody::Other { body, .. } => map.serialize_entry("body", body)?,
        }
        for (key, value) in &self.extra {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

wire_enum! {
    /// A state of a PDS task, contact or agent (`state` or `State`).
    pub enum PdsState {
        /// `CALLING`
        Calling = "CALLING",
        /// `RINGING`
        Ringing = "RINGING",
        /// `ANSWERED`
        Answered = "ANSWERED",
        /// `HANGUP`
        Hangup = "HANGUP",
        /// `TALKRESULT`: the agent recorded the talk's result.
        TalkResult = "TALKRESULT",
        /// `Finished`: the task ended.
        Finished = "Finished",
    }
}

/// An instant sent as epoch milliseconds in a string (`"1700000000000"`); kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EpochMillis(Text);

impl EpochMillis {
    /// The text as sent.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The instant, when the text is a whole number of milliseconds.
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let ms: u64 = self.0.trim().parse().ok()?;
        UNIX_EPOCH.checked_add(Duration::from_millis(ms))
    }
}

impl<'de> Deserialize<'de> for EpochMillis {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Text::deserialize(deserializer).map(Self)
    }
}

impl Serialize for EpochMillis {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl Fast for EpochMillis {
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self> {
        Text::fast(scanner).map(Self)
    }
}

/// Why a PDS call ended (`hangupReason`), an integer code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HangupReason(pub i64);

impl HangupReason {
    /// The code's meaning as the integrator's code lists it; `None` for another code.
    pub fn description(&self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "Unknown",
            1 => "No agent after answer",
            2 => "Normal",
            3 => "Busy",
            4 => "Not in use",
            5 => "Hold",
            6 => "Switched off",
            7 => "Out of area",
            8 => "Invalid",
            9 => "Wrong number",
            12 => "Talked",
            13 => "Agent reject",
            14 => "User hang-up",
            15 => "Fusing",
            16 => "AMD",
            17 => "Agent network failed",
            18 => "Call attempt limits",
            19 => "Contact short abandoned",
            20 => "Do-not-call",
            _ => return None,
        })
    }
}

impl Fast for HangupReason {
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self> {
        i64::fast(scanner).map(Self)
    }
}

wire_struct! {
    /// The body of a `TaskStatus` event.
    #[derive(Debug, Clone, PartialEq)]
    pub struct PdsStatusBody expecting "a TaskStatus body" {
        /// `taskId`.
        optional task_id: Text = "taskId",
        /// `taskName`.
        optional task_name: Text = "taskName",
        /// `state`.
        optional state_lower: PdsState = "state",
        /// `State`, the other spelling.
        optional state_upper: PdsState = "State",
    }
}

/// Reads `state`, or else `State`.
macro_rules! either_state {
    ($ty:ty) => {
        impl $ty {
            /// The state, under either spelling of its key (`state` or `State`).
            pub fn state(&self) -> Option<&PdsState> {
                self.state_lower.as_ref().or(self.state_upper.as_ref())
            }
        }
    };
}
either_state!(PdsStatusBody);
either_state!(ContactStatus);
either_state!(AgentStatus);

wire_struct! {
    /// The body of a `ContactStatus` event. Its `Debug` output masks the number and the
    /// uploaded customer data.
    #[derive(Clone, PartialEq)]
    pub struct ContactStatus expecting "a ContactStatus body" {
        /// `taskId`.
        optional task_id: Text = "taskId",
        /// `taskName`.
        optional task_name: Text = "taskName",
        /// `callid`.
        optional callid: Text = "callid",
        /// `phoneNumber`. Personal data.
        optional phone_number: Text = "phoneNumber",
        /// `state`.
        optional state_lower: PdsState = "state",
        /// `State`, the other spelling.
        optional state_upper: PdsState = "State",
        /// `timestamp`, epoch milliseconds as a string.
        optional timestamp: EpochMillis = "timestamp",
        /// `hangupReason`.
        optional hangup_reason: HangupReason = "hangupReason",
        /// `customerInfo`: what you uploaded (any JSON is kept). Personal data.
        optional customer_info: Fields = "customerInfo",
    }
}

impl fmt::Debug for ContactStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContactStatus")
            .field("task_id", &self.task_id)
            .field("callid", &self.callid)
            .field(
                "phone_number",
                &self.phone_number.as_deref().map(MaskedPhone),
            )
            .field("state", &self.state())
            .field("timestamp", &self.timestamp)
            .field("hangup_reason", &self.hangup_reason)
            .field(
                "customer_info",
                &self.customer_info.as_ref().map(|_| "(hidden)"),
            )
            .finish_non_exhaustive()
    }
}

wire_struct! {
    /// The body of an `AgentStatus` event. Members whose type nobody documented keep any JSON.
    /// Its `Debug` output masks the number and leaves out the contact's details.
    #[derive(Clone, PartialEq)]
    pub struct AgentStatus expecting "an AgentStatus body" {
        /// `agentName`.
        optional agent_name: Text = "agentName",
        /// `registerState`.
        optional register_state: Fields = "registerState",
        /// `State` (the agent's spelling).
        optional state_upper: PdsState = "State",
        /// `state`, the other spelling.
        optional state_lower: PdsState = "state",
        /// `callType`.
        optional call_type: Fields = "callType",
        /// `taskId`.
        optional task_id: Text = "taskId",
        /// `taskName`.
        optional task_name: Text = "taskName",
        /// `groupName`.
        optional group_name: Text = "groupName",
        /// `phoneNumber`. Personal data.
        optional phone_number: Text = "phoneNumber",
        /// `callid`.
        optional callid: Text = "callid",
        /// `contactName`. Personal data.
        optional contact_name: Fields = "contactName",
        /// `address`. Personal data.
        optional address: Fields = "address",
        /// `info1`. Personal data, possibly.
        optional info1: Fields = "info1",
        /// `info2`.
        optional info2: Fields = "info2",
        /// `info3`.
        optional info3: Fields = "info3",
        /// `remark`.
        optional remark: Fields = "remark",
        /// `privateData`.
        optional private_data: Fields = "privateData",
        /// `timestamp`, epoch milliseconds as a string.
        optional timestamp: EpochMillis = "timestamp",
        /// `talkResultLabel`.
        optional talk_result_label: Fields = "talkResultLabel",
        /// `talkremarks`.
        optional talk_remarks: Fields = "talkremarks",
        /// `mainNumber`. Personal data.
        optional main_number: Fields = "mainNumber",
        /// `phoneTag`.
        optional phone_tag: Fields = "phoneTag",
        /// `nthCall`.
        optional nth_call: Fields = "nthCall",
        /// `recLink`: the recording.
        optional rec_link: Fields = "recLink",
        /// `reclink`, the pull API's spelling.
        optional rec_link_lower: Fields = "reclink",
        /// `curDayCallCount`: `{auto, manual}`.
        optional cur_day_call_count: Fields = "curDayCallCount",
        /// `curDayCallDuration`: `{auto, manual}`.
        optional cur_day_call_duration: Fields = "curDayCallDuration",
        /// `curDayTalkResults`: `[{talkResult, count}]`.
        optional cur_day_talk_results: Fields = "curDayTalkResults",
        /// `customizeResults`: an object keyed by title, or a list of `{title, groupName,
        /// value}`.
        optional customize_results: CustomizeResults = "customizeResults",
    }
}

impl AgentStatus {
    /// The recording link, under either spelling (`recLink`, `reclink`).
    pub fn recording(&self) -> Option<&Fields> {
        self.rec_link.as_ref().or(self.rec_link_lower.as_ref())
    }
}

impl fmt::Debug for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentStatus")
            .field("agent_name", &self.agent_name)
            .field("state", &self.state())
            .field("task_id", &self.task_id)
            .field("callid", &self.callid)
            .field(
                "phone_number",
                &self.phone_number.as_deref().map(MaskedPhone),
            )
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// `customizeResults`: an object keyed by title in callbacks, a list in the pull API.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CustomizeResults {
    /// An object keyed by title.
    ByTitle(Fields),
    /// A list of `{title, groupName, value}`.
    List(Vec<CustomizeResult>),
}

impl<'de> Deserialize<'de> for CustomizeResults {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            object @ Value::Object(_) => serde_json::from_value(object)
                .map(Self::ByTitle)
                .map_err(serde::de::Error::custom),
            list @ Value::Array(_) => serde_json::from_value(list)
                .map(Self::List)
                .map_err(serde::de::Error::custom),
            _ => Err(serde::de::Error::custom(
                "invalid type: expected an object or an array",
            )),
        }
    }
}

impl Serialize for CustomizeResults {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::ByTitle(fields) => fields.serialize(serializer),
            Self::List(list) => list.serialize(serializer),
        }
    }
}

impl Fast for CustomizeResults {
    fn fast(scanner: &mut Scanner<'_>) -> Option<Self> {
        serde_json::from_value(scanner.value()?).ok()
    }
}

wire_struct! {
    /// One entry of [`CustomizeResults::List`].
    #[derive(Debug, Clone, PartialEq)]
    pub struct CustomizeResult expecting "a customize result object" {
        /// `title`.
        optional title: Text = "title",
        /// `groupName`.
        optional group_name: Text = "groupName",
        /// `value` (any JSON is kept).
        optional value: Fields = "value",
    }
}
