//! The SQL: the schema's migrations, and the statements with the schema and the lease written
//! in.

use std::time::Duration;

use super::batch::GroupSql;
use super::row::{DEAD, DONE, PENDING};
use crate::store::{DEFAULT_KIND, RejectedLimits};

/// The schema versions this crate knows, each applied once, in order, under an advisory lock.
/// Append only: a shipped migration is never edited.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: notifications with their de-duplication key and claim; refused bodies.
    r"
    CREATE TABLE {schema}.notifications (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        dedup_key   BYTEA NOT NULL UNIQUE,
        state       SMALLINT NOT NULL,
        attempts    INTEGER NOT NULL,
        last_error  TEXT,
        envelope    TEXT NOT NULL,
        body        BYTEA,
        stored_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        claimed_by  TEXT,
        lease_until TIMESTAMPTZ
    );
    CREATE INDEX notifications_claimable ON {schema}.notifications (lease_until, id)
        WHERE state = 0;
    CREATE INDEX notifications_done ON {schema}.notifications (stored_at) WHERE state = 2;
    CREATE TABLE {schema}.rejected (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        status      SMALLINT NOT NULL,
        reason      TEXT NOT NULL,
        envelope    TEXT NOT NULL,
        body        BYTEA NOT NULL,
        stored_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    ",
    // 2: each refused body's length, so that its limits are kept and it is listed without
    // reading a body; its age is its stored_at.
    r"
    ALTER TABLE {schema}.rejected ADD COLUMN bytes BIGINT;
    UPDATE {schema}.rejected SET bytes = octet_length(body);
    ALTER TABLE {schema}.rejected ALTER COLUMN bytes SET NOT NULL;
    CREATE INDEX rejected_stored_at ON {schema}.rejected (stored_at);
    ",
];

/// The statements, with the schema and the lease written in.
#[derive(Clone)]
pub(super) struct Sql {
    pub(super) insert: String,
    pub(super) find_key: String,
    pub(super) begin_attempt: String,
    pub(super) complete_all: String,
    pub(super) fail: String,
    pub(super) dead_letter: String,
    pub(super) in_state: String,
    pub(super) get: String,
    pub(super) replay: String,
    pub(super) reject: String,
    pub(super) trim_rejected: String,
    pub(super) age_rejected: String,
    pub(super) rejected: String,
    pub(super) rejected_page: String,
    pub(super) get_rejected: String,
    pub(super) remove_rejected: String,
    pub(super) prune: String,
    pub(super) claim: String,
    pub(super) group: GroupSql,
    pub(super) summary: String,
    pub(super) renew: String,
    pub(super) release: String,
}

const COLUMNS: &str = "id, state, attempts, last_error, envelope, body";

impl Sql {
    pub(super) fn new(schema: &str, lease: Duration) -> Self {
        let t = format!("{schema}.notifications");
        let r = format!("{schema}.rejected");
        let lease = format!("now() + interval '{} milliseconds'", lease.as_millis());
        const ENTRY_COST: u64 = RejectedLimits::ENTRY_COST;
        Self {
            insert: format!(
                "INSERT INTO {t} (dedup_key, state, attempts, envelope, body, claimed_by, lease_until) \
                 VALUES ($1, {PENDING}, 1, $2, $3, $4, {lease}) \
                 ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
            ),
            find_key: format!("SELECT id FROM {t} WHERE dedup_key = $1"),
            begin_attempt: format!(
                "UPDATE {t} SET attempts = attempts + 1, lease_until = {lease} \
                 WHERE id = $1 AND state = {PENDING} AND claimed_by = $2 RETURNING attempts"
            ),
            complete_all: format!(
                "UPDATE {t} SET state = {DONE}, body = NULL, last_error = NULL, \
                 claimed_by = NULL, lease_until = NULL \
                 WHERE id = ANY($1) AND state = {PENDING}"
            ),
            fail: format!("UPDATE {t} SET last_error = $2 WHERE id = $1 AND state = {PENDING}"),
            dead_letter: format!(
                "UPDATE {t} SET state = {DEAD}, last_error = $2, claimed_by = NULL, \
                 lease_until = NULL WHERE id = $1 AND state = {PENDING}"
            ),
            in_state: format!("SELECT {COLUMNS} FROM {t} WHERE state = $1 ORDER BY id"),
            get: format!(
                "SELECT {COLUMNS} FROM {t} WHERE id = $1 AND state IN ({PENDING}, {DEAD})"
            ),
            replay: format!(
                "UPDATE {t} SET state = {PENDING}, attempts = 0, claimed_by = $2, \
                 lease_until = {lease} WHERE id = $1 AND state = {DEAD} RETURNING {COLUMNS}"
            ),
            reject: format!(
                "INSERT INTO {r} (status, reason, envelope, body, bytes) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id"
            ),
            // In the transaction of the insert, whose now() is the new body's stored_at: the
            // ones past the age, then the oldest of the rest beyond the cap (the charges of
            // newer ones summed, newest first: body, reason, envelope and a fixed cost, so
            // that empty bodies count too). Reads no body.
            trim_rejected: format!(
                "DELETE FROM {r} WHERE id IN ( \
                   SELECT id FROM {r} WHERE stored_at < now() - $2::float8 * interval '1 millisecond' \
                   UNION ALL \
                   SELECT id FROM ( \
                     SELECT id, sum(bytes + octet_length(reason) + octet_length(envelope) \
                       + {ENTRY_COST}) OVER (ORDER BY id DESC) AS newer FROM {r} \
                     WHERE stored_at >= now() - $2::float8 * interval '1 millisecond') kept \
                   WHERE newer > $1::bigint) \
                 RETURNING bytes, stored_at < now() - $2::float8 * interval '1 millisecond'"
            ),
            age_rejected: format!(
                "DELETE FROM {r} WHERE stored_at < now() - $1::float8 * interval '1 millisecond' \
                 RETURNING bytes"
            ),
            rejected: format!("SELECT id, status, reason, envelope, body FROM {r} ORDER BY id"),
            rejected_page: format!(
                "SELECT id, status, reason, envelope, bytes FROM {r} WHERE id > $1 \
                 ORDER BY id LIMIT $2"
            ),
            get_rejected: format!(
                "SELECT id, status, reason, envelope, body FROM {r} WHERE id = $1"
            ),
            remove_rejected: format!("DELETE FROM {r} WHERE id = $1"),
            prune: format!("DELETE FROM {t} WHERE state = {DONE} AND stored_at < to_timestamp($1)"),
            claim: format!(
                "UPDATE {t} SET claimed_by = $1, lease_until = {lease} WHERE id IN ( \
                   SELECT id FROM {t} WHERE state = {PENDING} \
                   AND (lease_until IS NULL OR lease_until < now()) \
                   AND coalesce(envelope::jsonb ->> 'kind', '{DEFAULT_KIND}') = $3 \
                   ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 RETURNING {COLUMNS}"
            ),
            group: GroupSql::new(&t, &lease, PENDING),
            summary: format!(
                "SELECT count(*) FILTER (WHERE state = {PENDING}), \
                 count(*) FILTER (WHERE state = {DEAD}), \
                 (extract(epoch FROM min(stored_at) FILTER (WHERE state = {PENDING})) * 1000)::float8 \
                 FROM {t} WHERE state IN ({PENDING}, {DEAD})"
            ),
            renew: format!(
                "UPDATE {t} SET lease_until = {lease} WHERE claimed_by = $1 AND state = {PENDING}"
            ),
            release: format!(
                "UPDATE {t} SET claimed_by = NULL, lease_until = NULL \
                 WHERE claimed_by = $1 AND state = {PENDING}"
            ),
        }
    }
}
