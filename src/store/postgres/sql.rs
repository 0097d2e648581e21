//! The SQL: the schema's migrations, and the statements with the schema and the lease written
//! in.

use std::time::Duration;

use super::batch::GroupSql;
use super::row::{DEAD, DONE, HANDLED, PENDING};
use crate::store::{MAX_HISTORY, RecordQuery, RecordState, RefusedBodyLimits};

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
    // 3: the store is the queue. Each notification has a due time, its kind, when it was
    // received, its task id and its attempts' history (JSON, oldest first), so that claims,
    // lists, counts and purges read columns and indexes, never a body. A handled notification
    // (state 3) keeps its body and history for its retention; its key can be forgotten (NULL)
    // before it goes. Paused kinds have a table. Rows written before are read: their kind and
    // receipt come from their envelope (a damaged one gives the default kind and the time it
    // was stored), their due time is when they were stored. Bare keys (state 2), the bulk of
    // a busy table, are not rewritten: the new columns' defaults are never read for them.
    r"
    CREATE OR REPLACE FUNCTION pg_temp.airudder_kind(envelope TEXT) RETURNS TEXT
        LANGUAGE plpgsql AS $$
        BEGIN
            RETURN coalesce(envelope::jsonb ->> 'kind', 'task_notification');
        EXCEPTION WHEN others THEN
            RETURN 'task_notification';
        END $$;
    CREATE OR REPLACE FUNCTION pg_temp.airudder_received(envelope TEXT) RETURNS BIGINT
        LANGUAGE plpgsql AS $$
        BEGIN
            RETURN (envelope::jsonb ->> 'received_at_ms')::numeric::bigint;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END $$;
    ALTER TABLE {schema}.notifications
        ALTER COLUMN dedup_key DROP NOT NULL,
        ADD COLUMN kind TEXT NOT NULL DEFAULT 'task_notification',
        ADD COLUMN received_at_ms BIGINT NOT NULL
            DEFAULT floor(extract(epoch FROM now()) * 1000)::bigint,
        ADD COLUMN due_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        ADD COLUMN task_id TEXT,
        ADD COLUMN history JSONB NOT NULL DEFAULT '[]';
    UPDATE {schema}.notifications SET
        due_at = stored_at,
        received_at_ms = coalesce(
            pg_temp.airudder_received(envelope),
            floor(extract(epoch FROM stored_at) * 1000)::bigint),
        kind = pg_temp.airudder_kind(envelope)
    WHERE state <> 2;
    DROP FUNCTION pg_temp.airudder_kind(TEXT);
    DROP FUNCTION pg_temp.airudder_received(TEXT);
    DROP INDEX {schema}.notifications_claimable;
    CREATE INDEX notifications_due ON {schema}.notifications (kind, due_at, id) WHERE state = 0;
    CREATE INDEX notifications_finished ON {schema}.notifications (state, due_at)
        WHERE state IN (1, 3);
    CREATE INDEX notifications_task ON {schema}.notifications (task_id)
        WHERE task_id IS NOT NULL;
    CREATE INDEX notifications_claimed ON {schema}.notifications (claimed_by)
        WHERE claimed_by IS NOT NULL;
    CREATE INDEX notifications_handled_keys ON {schema}.notifications (stored_at)
        WHERE state = 3 AND dedup_key IS NOT NULL;
    CREATE TABLE {schema}.paused_kinds (
        kind        TEXT PRIMARY KEY,
        paused_at   TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    ",
    // 4: ordered delivery per key. An ordered notification has its key; a claim takes it only
    // when no notification of the same kind and key with a lower id is pending (or dead, when
    // `order_holds`). The index finds those.
    r"
    ALTER TABLE {schema}.notifications
        ADD COLUMN order_key TEXT,
        ADD COLUMN order_holds BOOLEAN NOT NULL DEFAULT false;
    CREATE INDEX notifications_order ON {schema}.notifications (kind, order_key, id)
        WHERE order_key IS NOT NULL AND state IN (0, 1);
    ",
];

/// Row `o` holds row `r`'s key back: of the same kind and key, before it, and pending (or a
/// dead letter that holds its key). The claim, the held-back count and the lists all ask it.
fn holds_back(o: &str, r: &str) -> String {
    format!(
        "{o}.kind = {r}.kind AND {o}.order_key = {r}.order_key AND {o}.id < {r}.id \
         AND ({o}.state = {PENDING} OR ({o}.state = {DEAD} AND {o}.order_holds))"
    )
}

/// The claim's condition on candidate `c`: not waiting behind an earlier record of its key.
fn first_of_its_key(t: &str) -> String {
    format!(
        "(c.order_key IS NULL OR NOT EXISTS (SELECT 1 FROM {t} AS o WHERE {}))",
        holds_back("o", "c")
    )
}

/// The statements, with the schema and the lease written in.
#[derive(Clone)]
pub(super) struct Sql {
    /// The notifications table, schema-qualified.
    table: String,
    pub(super) insert: String,
    pub(super) find_key: String,
    pub(super) begin_attempt: String,
    pub(super) complete_all: String,
    /// Completes one record in the handler's transaction, guarded by its claim (`$1` the id,
    /// `$2` the owner): one row, the id, or an error that aborts the transaction. The error
    /// is a cast of a sentence to a number, the only way a plain statement raises a message
    /// of its own; the sentence depends on `max(id)`, so that the planner cannot fold the
    /// cast ahead of time.
    pub(super) complete_in: String,
    pub(super) fail: String,
    pub(super) dead_letter: String,
    pub(super) in_state: String,
    pub(super) get: String,
    pub(super) replay: String,
    pub(super) make_due: String,
    pub(super) purge: String,
    pub(super) purge_before: String,
    pub(super) pause: String,
    pub(super) resume: String,
    pub(super) paused: String,
    pub(super) reject: String,
    pub(super) trim_rejected: String,
    pub(super) age_rejected: String,
    pub(super) rejected: String,
    pub(super) rejected_page: String,
    pub(super) get_rejected: String,
    pub(super) remove_rejected: String,
    pub(super) prune: String,
    pub(super) claim: String,
    /// [`claim`](Self::claim), counting each claimed record's attempt in the same statement,
    /// and past the first record none whose body takes the bodies past `$4` bytes.
    pub(super) claim_and_begin: String,
    /// Claimed records given back untried: their counted attempt taken back.
    pub(super) unclaim: String,
    /// Keys of kind `$1` with records waiting behind a head that failed.
    pub(super) keys_held_back: String,
    pub(super) group: GroupSql,
    pub(super) summary: String,
    pub(super) renew: String,
    pub(super) release: String,
}

/// Claims up to `$2` due records of kind `$3` for owner `$1`, setting `also` as well.
fn claim(t: &str, p: &str, lease: &str, also: &str) -> String {
    format!(
        "UPDATE {t} SET claimed_by = $1, lease_until = {lease}{also} WHERE id IN ( \
           SELECT id FROM {t} AS c WHERE c.state = {PENDING} AND c.kind = $3 \
           AND c.due_at <= now() \
           AND (c.lease_until IS NULL OR c.lease_until < now()) \
           AND NOT EXISTS (SELECT 1 FROM {p} WHERE {p}.kind = $3) AND {first} \
           ORDER BY c.due_at, c.id LIMIT $2 FOR UPDATE OF c SKIP LOCKED) \
         RETURNING {COLUMNS}",
        first = first_of_its_key(t)
    )
}

/// [`claim`]'s statement, counting the attempts of the first `$5` records (the others are
/// claimed ahead, counted by their outcome's write), and past the first record taking none
/// whose body would bring the bodies past `$4` bytes: the candidates are locked in due order,
/// and those past the budget let go at the statement's end.
fn claim_within(t: &str, p: &str, lease: &str) -> String {
    format!(
        "WITH c AS ( \
           SELECT c.id, c.due_at, coalesce(octet_length(c.body), 0)::int8 AS n FROM {t} AS c \
           WHERE c.state = {PENDING} AND c.kind = $3 AND c.due_at <= now() \
           AND (c.lease_until IS NULL OR c.lease_until < now()) \
           AND NOT EXISTS (SELECT 1 FROM {p} WHERE {p}.kind = $3) AND {first} \
           ORDER BY c.due_at, c.id LIMIT $2 FOR UPDATE OF c SKIP LOCKED), \
         w AS (SELECT id, row_number() OVER (ORDER BY due_at, id) AS k, \
           sum(n) OVER (ORDER BY due_at, id) AS running FROM c) \
         UPDATE {t} AS r SET claimed_by = $1, lease_until = {lease}, \
           attempts = r.attempts + CASE WHEN w.k <= $5::int8 THEN 1 ELSE 0 END \
         FROM w WHERE r.id = w.id AND (w.k = 1 OR w.running <= $4::int8) \
         RETURNING {CLAIMED_COLUMNS}",
        first = first_of_its_key(t)
    )
}

/// A record's columns, as `row::record_from` reads them: id, state, attempts, last error,
/// envelope, body, task id, due time in milliseconds, history as JSON text.
const COLUMNS: &str = "id, state, attempts, last_error, envelope, body, task_id, \
    floor(extract(epoch FROM due_at) * 1000)::int8, history::text, order_key";

/// [`COLUMNS`] of the table named `r`.
const CLAIMED_COLUMNS: &str = "r.id, r.state, r.attempts, r.last_error, r.envelope, r.body, \
    r.task_id, floor(extract(epoch FROM r.due_at) * 1000)::int8, r.history::text, r.order_key";

/// A record's columns without its body, as `row::summary_from` reads them: id, kind, state,
/// task id, receipt, attempts, last error, due time in milliseconds, body length (read from the
/// value's header, not its bytes).
const SUMMARY_COLUMNS: &str = "id, kind, state, task_id, received_at_ms, attempts, last_error, \
    floor(extract(epoch FROM due_at) * 1000)::int8, coalesce(octet_length(body), 0)::int8, \
    order_key";

/// The readable states: a done row (state 2) is a de-duplication key alone.
const READABLE: &str = "state IN (0, 1, 3)";

/// A time given in milliseconds since the Unix epoch (`param`, a bigint).
pub(super) fn at_ms(param: &str) -> String {
    format!("(timestamptz 'epoch' + {param}::int8 * interval '1 millisecond')")
}

/// `attempts` made at least `attempt`'s number (a jsonb object's `number`; absent in attempts
/// kept before 0.3): an attempt claimed ahead is counted by its outcome's write.
fn counted(attempts: &str, attempt: &str) -> String {
    format!(
        "GREATEST({attempts}, CASE WHEN jsonb_typeof({attempt} -> 'number') = 'number' \
           THEN LEAST(({attempt} ->> 'number')::numeric, 2147483647)::int4 ELSE 0 END)"
    )
}

/// `history` with `attempt` (a jsonb object) added, keeping the first attempt and the newest,
/// at most `MAX_HISTORY` (as `push_attempt` does); a history that is not an array (damaged)
/// starts over. One expression of the row's own value, so concurrent writers of one row are
/// serialized by its row lock.
fn push_history(history: &str, attempt: &str) -> String {
    const _: () = assert!(MAX_HISTORY >= 3);
    let newest = MAX_HISTORY - 3; // `last - newest to last`: MAX_HISTORY - 2 attempts
    format!(
        "CASE WHEN jsonb_typeof({history}) IS DISTINCT FROM 'array' \
           THEN jsonb_build_array({attempt}) \
         WHEN jsonb_array_length({history}) < {MAX_HISTORY} \
           THEN {history} || jsonb_build_array({attempt}) \
         ELSE jsonb_build_array({history} -> 0) \
           || jsonb_path_query_array({history}, '$[last - {newest} to last]') \
           || jsonb_build_array({attempt}) END"
    )
}

/// A record whose failed attempt `owner` (a parameter) may write: pending and held by this
/// receiver or by nobody, or completed in this receiver's handler's transaction (handled,
/// still claimed).
fn ours(owner: &str) -> String {
    format!(
        "((state = {PENDING} AND (claimed_by IS NULL OR claimed_by = {owner})) \
         OR (state = {HANDLED} AND claimed_by = {owner}))"
    )
}

/// The `state` column's value for `state`.
pub(super) fn state_code(state: RecordState) -> i16 {
    match state {
        RecordState::Pending => PENDING,
        RecordState::Dead => DEAD,
        RecordState::Handled => HANDLED,
    }
}

/// Forgets dead or handled rows chosen by `filter` (with `$1…` parameters): a row whose key
/// is still kept becomes a bare key (done, state 2, pruned with the keys), one whose key was
/// forgotten goes. Returns one row, how many.
fn forget(table: &str, filter: &str) -> String {
    format!(
        "WITH gone AS ( \
           DELETE FROM {table} WHERE {filter} AND dedup_key IS NULL RETURNING 1), \
         kept AS ( \
           UPDATE {table} SET state = {DONE}, body = NULL, history = '[]', last_error = NULL, \
             task_id = NULL, envelope = '{{}}', claimed_by = NULL, lease_until = NULL \
           WHERE {filter} AND dedup_key IS NOT NULL RETURNING 1) \
         SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM kept)"
    )
}

impl Sql {
    pub(super) fn new(schema: &str, lease: Duration) -> Self {
        let t = format!("{schema}.notifications");
        let r = format!("{schema}.rejected");
        let p = format!("{schema}.paused_kinds");
        let lease = format!("now() + interval '{} milliseconds'", lease.as_millis());
        const ENTRY_COST: u64 = RefusedBodyLimits::ENTRY_COST;
        let released = "claimed_by = NULL, lease_until = NULL";
        Self {
            insert: format!(
                "INSERT INTO {t} (dedup_key, state, attempts, envelope, body, claimed_by, \
                   lease_until, kind, received_at_ms, task_id, due_at, order_key, order_holds) \
                 VALUES ($1, {PENDING}, CASE WHEN $5::bool THEN 1 ELSE 0 END, $2, $3, \
                   CASE WHEN $5::bool THEN $4::text END, CASE WHEN $5::bool THEN {lease} END, \
                   $6, $7, $8, now(), $9, $10) \
                 ON CONFLICT (dedup_key) DO NOTHING RETURNING id"
            ),
            find_key: format!("SELECT id FROM {t} WHERE dedup_key = $1"),
            begin_attempt: format!(
                "UPDATE {t} SET attempts = attempts + 1, lease_until = {lease} \
                 WHERE id = $1 AND state = {PENDING} AND claimed_by = $2 RETURNING attempts"
            ),
            // A record its handler completed in its own transaction (`complete_in`) is
            // handled and still claimed by this attempt's owner: the mark adds the attempt to
            // its history and ends the claim, keeping the time it was handled.
            complete_all: format!(
                "UPDATE {t} AS n SET state = {HANDLED}, \
                   due_at = CASE WHEN n.state = {PENDING} THEN now() ELSE n.due_at END, \
                   attempts = {}, history = {}, {released} \
                 FROM unnest($1::int8[], $2::text[], $3::text[]) AS u(id, attempt, owner) \
                 WHERE n.id = u.id AND (n.state = {PENDING} \
                   OR (n.state = {HANDLED} AND n.claimed_by = u.owner)) RETURNING n.id",
                counted("n.attempts", "u.attempt::jsonb"),
                push_history("n.history", "u.attempt::jsonb")
            ),
            // Not over another receiver's claim (`$5` is this one's): a late attempt's outcome
            // would end the claim of the receiver that took the record over. As in
            // `complete_all`, a record completed in the handler's transaction stays handled:
            // the failed attempt goes to its history.
            fail: format!(
                "UPDATE {t} SET due_at = CASE WHEN state = {PENDING} THEN {} ELSE due_at END, \
                   last_error = $3, attempts = {}, history = {}, {released} \
                 WHERE id = $1 AND {}",
                at_ms("$4"),
                counted("attempts", "$2::text::jsonb"),
                push_history("history", "$2::text::jsonb"),
                ours("$5")
            ),
            // As `fail`, with this receiver's owner in `$4`.
            dead_letter: format!(
                "UPDATE {t} SET state = CASE WHEN state = {PENDING} THEN {DEAD} ELSE state END, \
                   due_at = CASE WHEN state = {PENDING} THEN now() ELSE due_at END, \
                   last_error = $3, attempts = {}, history = {}, {released} \
                 WHERE id = $1 AND {}",
                counted("attempts", "$2::text::jsonb"),
                push_history("history", "$2::text::jsonb"),
                ours("$4")
            ),
            complete_in: format!(
                "WITH done AS ( \
                   UPDATE {t} SET state = {HANDLED}, due_at = now() \
                   WHERE id = $1 AND state = {PENDING} AND claimed_by = $2 RETURNING id) \
                 SELECT coalesce(max(id)::text, \
                   'airudder-webhook: notification ' || $1::int8 || ' is no longer pending \
                   under the claim of ' || $2::text || ' (handled already, or taken over by \
                   another receiver)')::int8 FROM done"
            ),
            in_state: format!("SELECT {COLUMNS} FROM {t} WHERE state = $1 ORDER BY id"),
            get: format!("SELECT {COLUMNS} FROM {t} WHERE id = $1 AND {READABLE}"),
            replay: format!(
                "UPDATE {t} SET state = {PENDING}, attempts = 0, due_at = now(), {released}, \
                   order_key = CASE WHEN state = {DEAD} AND order_holds THEN order_key END \
                 WHERE id = $1 AND state IN ({DEAD}, {HANDLED}) RETURNING {COLUMNS}"
            ),
            make_due: format!(
                "UPDATE {t} SET due_at = now() WHERE id = $1 AND state = {PENDING} \
                 AND due_at > now() \
                 AND (claimed_by IS NULL OR lease_until IS NULL OR lease_until < now())"
            ),
            purge: forget(&t, &format!("id = $1 AND state IN ({DEAD}, {HANDLED})")),
            purge_before: forget(
                &t,
                &format!(
                    "state = $1 AND state IN ({DEAD}, {HANDLED}) AND due_at < {}",
                    at_ms("$2")
                ),
            ),
            pause: format!("INSERT INTO {p} (kind) VALUES ($1) ON CONFLICT (kind) DO NOTHING"),
            resume: format!("DELETE FROM {p} WHERE kind = $1"),
            paused: format!("SELECT kind FROM {p} ORDER BY kind"),
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
            // The keys of done notifications stored before $1 (seconds): a bare key goes; a
            // handled record stays for its retention, its key forgotten.
            prune: format!(
                "WITH gone AS ( \
                   DELETE FROM {t} WHERE state = {DONE} AND stored_at < to_timestamp($1) \
                   RETURNING 1), \
                 forgot AS ( \
                   UPDATE {t} SET dedup_key = NULL WHERE state = {HANDLED} \
                   AND dedup_key IS NOT NULL AND stored_at < to_timestamp($1) RETURNING 1) \
                 SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM forgot)"
            ),
            claim: claim(&t, &p, &lease, ""),
            claim_and_begin: claim_within(&t, &p, &lease),
            // `$3`: 1 for records whose claim counted an attempt, 0 for those claimed ahead.
            unclaim: format!(
                "UPDATE {t} SET attempts = GREATEST(attempts - $3::int4, 0), {released} \
                 WHERE id = ANY($1) AND claimed_by = $2 AND state = {PENDING}"
            ),
            keys_held_back: format!(
                "SELECT count(*) FROM {t} AS h WHERE h.kind = $1 AND h.order_key IS NOT NULL \
                 AND ((h.state = {PENDING} AND h.last_error IS NOT NULL) \
                   OR (h.state = {DEAD} AND h.order_holds)) \
                 AND NOT EXISTS (SELECT 1 FROM {t} AS o WHERE {}) \
                 AND EXISTS (SELECT 1 FROM {t} AS w WHERE w.kind = h.kind \
                   AND w.order_key = h.order_key AND w.id > h.id AND w.state = {PENDING})",
                holds_back("o", "h")
            ),
            group: GroupSql::new(&t, &lease, PENDING),
            summary: format!(
                "SELECT count(*) FILTER (WHERE state = {PENDING}), \
                 count(*) FILTER (WHERE state = {DEAD}), \
                 min(received_at_ms) FILTER (WHERE state = {PENDING}) \
                 FROM {t} WHERE state IN ({PENDING}, {DEAD})"
            ),
            renew: format!(
                "UPDATE {t} SET lease_until = {lease} WHERE claimed_by = $1 AND state = {PENDING}"
            ),
            release: format!(
                "UPDATE {t} SET {released} WHERE claimed_by = $1 AND state = {PENDING}"
            ),
            table: t,
        }
    }

    /// The `WHERE` clause of `query`'s filters (its page aside), numbering its parameters
    /// from `$1` in the order `Filter::params` gives them.
    fn filter(&self, query: &RecordQuery) -> String {
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        let mut clauses = Vec::new();
        match query.state {
            Some(_) => clauses.push(format!("state = {}::int2", next())),
            None => clauses.push(READABLE.to_owned()),
        }
        if query.kind.is_some() {
            clauses.push(format!("kind = {}::text", next()));
        }
        if query.task_id.is_some() {
            clauses.push(format!("task_id = {}::text", next()));
        }
        if query.since_ms.is_some() {
            clauses.push(format!("received_at_ms >= {}::int8", next()));
        }
        if query.until_ms.is_some() {
            clauses.push(format!("received_at_ms < {}::int8", next()));
        }
        if query.error.is_some() {
            clauses.push(format!("strpos(last_error, {}::text) > 0", next()));
        }
        clauses.join(" AND ")
    }

    /// One page of `query`: its filters, then `id > $n ORDER BY id LIMIT $n+1`. No body.
    pub(super) fn list(&self, query: &RecordQuery) -> String {
        let n = Filter::new(query).len();
        // For a pending ordered record, the first of its key that holds it back.
        let held_back_by = format!(
            "(SELECT min(o.id) FROM {t} AS o WHERE n.state = {PENDING} AND {})",
            holds_back("o", "n"),
            t = self.table
        );
        format!(
            "SELECT {SUMMARY_COLUMNS}, {held_back_by} FROM {} AS n WHERE {} AND id > ${} \
             ORDER BY id LIMIT ${}",
            self.table,
            self.filter(query),
            n + 1,
            n + 2
        )
    }

    /// How many match `query`'s filters.
    pub(super) fn count(&self, query: &RecordQuery) -> String {
        format!(
            "SELECT count(*) FROM {} WHERE {}",
            self.table,
            self.filter(query)
        )
    }
}

/// The parameters of a query's filters, in the order [`Sql::list`] numbers them.
pub(super) struct Filter {
    state: Option<i16>,
    kind: Option<String>,
    task_id: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
    error: Option<String>,
}

impl Filter {
    /// The parameters of `query`.
    pub(super) fn new(query: &RecordQuery) -> Self {
        Self {
            state: query.state.map(state_code),
            kind: query.kind.clone(),
            task_id: query.task_id.clone(),
            since_ms: query.since_ms,
            until_ms: query.until_ms,
            error: query.error.clone(),
        }
    }

    /// How many parameters.
    pub(super) fn len(&self) -> usize {
        self.params().len()
    }

    /// The parameters, in order.
    pub(super) fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
        if let Some(state) = &self.state {
            params.push(state);
        }
        if let Some(kind) = &self.kind {
            params.push(kind);
        }
        if let Some(task_id) = &self.task_id {
            params.push(task_id);
        }
        if let Some(since) = &self.since_ms {
            params.push(since);
        }
        if let Some(until) = &self.until_ms {
            params.push(until);
        }
        if let Some(error) = &self.error {
            params.push(error);
        }
        params
    }
}
