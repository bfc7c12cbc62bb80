//! The operator API's endpoints: their subjects below [`API_PREFIX`] and
//! their names in discovery.

use runfleet_schemas::api::{
    ApiRequest, CommandGetRequest, DlqListRequest, DlqRedriveRequest, DlqShowRequest,
    EventsAfterRequest, FleetStatsRequest, LimitDeleteRequest, LimitListRequest, LimitSetRequest,
    RunListRequest, RunStatusRequest, ScheduleCreateRequest, ScheduleListRequest,
    ScheduleUpdateRequest, SignerAddRequest, SignerListRequest, SignerRemoveRequest,
};

#[cfg(doc)]
use super::API_PREFIX;

/// Every endpoint, as its subject below [`API_PREFIX`].
pub const ENDPOINTS: [&str; 17] = [
    RunStatusRequest::ENDPOINT,
    CommandGetRequest::ENDPOINT,
    EventsAfterRequest::ENDPOINT,
    DlqListRequest::ENDPOINT,
    DlqShowRequest::ENDPOINT,
    DlqRedriveRequest::ENDPOINT,
    FleetStatsRequest::ENDPOINT,
    ScheduleCreateRequest::ENDPOINT,
    ScheduleListRequest::ENDPOINT,
    ScheduleUpdateRequest::ENDPOINT,
    LimitSetRequest::ENDPOINT,
    LimitListRequest::ENDPOINT,
    LimitDeleteRequest::ENDPOINT,
    RunListRequest::ENDPOINT,
    SignerAddRequest::ENDPOINT,
    SignerListRequest::ENDPOINT,
    SignerRemoveRequest::ENDPOINT,
];

/// The endpoints, dispatched on by [`Api::dispatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    /// `run.status`
    RunStatus,
    /// `command.get`
    CommandGet,
    /// `events.after`
    EventsAfter,
    /// `dlq.list`
    DlqList,
    /// `dlq.show`
    DlqShow,
    /// `dlq.redrive`
    DlqRedrive,
    /// `fleet.stats`
    FleetStats,
    /// `schedule.create`
    ScheduleCreate,
    /// `schedule.list`
    ScheduleList,
    /// `schedule.update`
    ScheduleUpdate,
    /// `limit.set`
    LimitSet,
    /// `limit.list`
    LimitList,
    /// `limit.delete`
    LimitDelete,
    /// `runs.list`
    RunsList,
    /// `signer.add`
    SignerAdd,
    /// `signer.list`
    SignerList,
    /// `signer.remove`
    SignerRemove,
}

impl Endpoint {
    /// Every endpoint, in the order of [`ENDPOINTS`].
    pub(super) const ALL: [Endpoint; 17] = [
        Endpoint::RunStatus,
        Endpoint::CommandGet,
        Endpoint::EventsAfter,
        Endpoint::DlqList,
        Endpoint::DlqShow,
        Endpoint::DlqRedrive,
        Endpoint::FleetStats,
        Endpoint::ScheduleCreate,
        Endpoint::ScheduleList,
        Endpoint::ScheduleUpdate,
        Endpoint::LimitSet,
        Endpoint::LimitList,
        Endpoint::LimitDelete,
        Endpoint::RunsList,
        Endpoint::SignerAdd,
        Endpoint::SignerList,
        Endpoint::SignerRemove,
    ];

    /// The subject below [`API_PREFIX`].
    pub(super) fn subject(self) -> &'static str {
        match self {
            Endpoint::RunStatus => ENDPOINTS[0],
            Endpoint::CommandGet => ENDPOINTS[1],
            Endpoint::EventsAfter => ENDPOINTS[2],
            Endpoint::DlqList => ENDPOINTS[3],
            Endpoint::DlqShow => ENDPOINTS[4],
            Endpoint::DlqRedrive => ENDPOINTS[5],
            Endpoint::FleetStats => ENDPOINTS[6],
            Endpoint::ScheduleCreate => ENDPOINTS[7],
            Endpoint::ScheduleList => ENDPOINTS[8],
            Endpoint::ScheduleUpdate => ENDPOINTS[9],
            Endpoint::LimitSet => ENDPOINTS[10],
            Endpoint::LimitList => ENDPOINTS[11],
            Endpoint::LimitDelete => ENDPOINTS[12],
            Endpoint::RunsList => ENDPOINTS[13],
            Endpoint::SignerAdd => ENDPOINTS[14],
            Endpoint::SignerList => ENDPOINTS[15],
            Endpoint::SignerRemove => ENDPOINTS[16],
        }
    }

    /// The endpoint's name in discovery and statistics (`run-status`, …).
    pub(super) fn name(self) -> &'static str {
        match self {
            Endpoint::RunStatus => "run-status",
            Endpoint::CommandGet => "command-get",
            Endpoint::EventsAfter => "events-after",
            Endpoint::DlqList => "dlq-list",
            Endpoint::DlqShow => "dlq-show",
            Endpoint::DlqRedrive => "dlq-redrive",
            Endpoint::FleetStats => "fleet-stats",
            Endpoint::ScheduleCreate => "schedule-create",
            Endpoint::ScheduleList => "schedule-list",
            Endpoint::ScheduleUpdate => "schedule-update",
            Endpoint::LimitSet => "limit-set",
            Endpoint::LimitList => "limit-list",
            Endpoint::LimitDelete => "limit-delete",
            Endpoint::RunsList => "runs-list",
            Endpoint::SignerAdd => "signer-add",
            Endpoint::SignerList => "signer-list",
            Endpoint::SignerRemove => "signer-remove",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_their_subjects() {
        let subjects: Vec<&str> = Endpoint::ALL.iter().map(|e| e.subject()).collect();
        assert_eq!(subjects, ENDPOINTS);
    }
}
