// One schema for both backends; the migration trees are compared by a test.

diesel::table! {
    practices (id) {
        id -> Text,
        ods_code -> Text,
        name -> Text,
        supplier -> Text,
        settings -> Text,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        address -> Nullable<Text>,
        telephone -> Nullable<Text>,
    }
}

diesel::table! {
    patients (id) {
        id -> Text,
        practice_id -> Text,
        identifier_system -> Text,
        identifier_value -> Text,
        family -> Text,
        family_folded -> Text,
        given -> Text,
        birth_date -> Date,
        gender -> Text,
        email -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deceased_on -> Nullable<Date>,
    }
}

diesel::table! {
    patient_versions (id, version) {
        id -> Text,
        version -> BigInt,
        practice_id -> Text,
        identifier_system -> Text,
        identifier_value -> Text,
        family -> Text,
        family_folded -> Text,
        given -> Text,
        birth_date -> Date,
        gender -> Text,
        email -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deceased_on -> Nullable<Date>,
    }
}

diesel::table! {
    idempotency_records (caller, request_id) {
        caller -> Text,
        request_id -> Text,
        method -> Text,
        path -> Text,
        fingerprint -> Text,
        status -> Nullable<Integer>,
        response_headers -> Nullable<Text>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
        owner -> Nullable<Text>,
    }
}

diesel::table! {
    instance_heartbeats (instance) {
        instance -> Text,
        beat_at -> Timestamp,
    }
}

diesel::table! {
    identity_bindings (issuer, subject) {
        issuer -> Text,
        subject -> Text,
        nhs_number -> Text,
        patient_id -> Text,
        practice_id -> Text,
        proofing_level -> Text,
        source -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    linkage_attempts (ods_code, account_id) {
        ods_code -> Text,
        account_id -> Text,
        failures -> Integer,
        window_started_at -> Timestamp,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        chain -> Text,
        seq -> BigInt,
        recorded_at -> Timestamp,
        actor_kind -> Text,
        actor -> Text,
        patient_id -> Nullable<Text>,
        action -> Text,
        outcome -> Text,
        assurance -> Nullable<Text>,
        reason -> Nullable<Text>,
        request_id -> Nullable<Text>,
        prev_hash -> Text,
        hash -> Text,
        practice -> Nullable<Text>,
        rule -> Nullable<Text>,
        code -> Nullable<Text>,
    }
}

diesel::table! {
    audit_chains (chain) {
        chain -> Text,
        started_at -> Timestamp,
        anchor_chain -> Nullable<Text>,
        anchor_seq -> Nullable<BigInt>,
        anchor_hash -> Nullable<Text>,
        anchor_mac -> Text,
        head_seq -> BigInt,
        head_hash -> Text,
        head_mac -> Text,
    }
}

diesel::table! {
    audit_checkpoints (chain) {
        chain -> Text,
        seq -> BigInt,
        hash -> Text,
        verified_at -> Timestamp,
        signature -> Text,
    }
}

diesel::table! {
    audit_archives (chain, first_seq) {
        chain -> Text,
        first_seq -> BigInt,
        last_seq -> BigInt,
        anchor -> Text,
        last_hash -> Text,
        events -> BigInt,
        location -> Text,
        archived_at -> Timestamp,
        dropped_at -> Nullable<Timestamp>,
        signature -> Text,
    }
}

diesel::table! {
    actor_snapshots (caller_key) {
        caller_key -> Text,
        kind -> Text,
        facts -> Text,
        first_seen -> Timestamp,
        last_seen -> Timestamp,
    }
}

diesel::joinable!(patients -> practices (practice_id));

diesel::table! {
    online_accounts (id) {
        id -> Text,
        patient_id -> Text,
        practice_id -> Text,
        status -> Text,
        status_reason -> Nullable<Text>,
        email -> Text,
        access -> Text,
        verification -> Text,
        attestation -> Text,
        supplier_ref -> Nullable<Text>,
        supplier_account_id -> Nullable<Text>,
        linkage_key_enc -> Nullable<Text>,
        linkage_key_issued_at -> Nullable<Timestamp>,
        letter_printed_at -> Nullable<Timestamp>,
        letter_expires_at -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        pending_access -> Nullable<Text>,
        sent_access -> Nullable<Text>,
        source -> Text,
    }
}

diesel::table! {
    outbox_jobs (id) {
        id -> Text,
        kind -> Text,
        account_id -> Nullable<Text>,
        patient_id -> Text,
        supplier -> Text,
        payload -> Text,
        idempotency_key -> Text,
        status -> Text,
        attempts -> Integer,
        max_attempts -> Integer,
        next_attempt_at -> Timestamp,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        last_error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        role_id -> Nullable<Text>,
    }
}

diesel::table! {
    proxy_roles (id) {
        id -> Text,
        proxy_nhs_number -> Text,
        patient_id -> Text,
        patient_nhs_number -> Text,
        practice_id -> Text,
        status -> Text,
        reason_code -> Text,
        reason_text -> Nullable<Text>,
        legal_basis -> Text,
        relationships -> Text,
        grantor -> Nullable<Text>,
        date_time -> Timestamp,
        period_start -> Nullable<Timestamp>,
        period_end -> Nullable<Timestamp>,
        grants -> Text,
        assessment -> Text,
        access_request_id -> Nullable<Text>,
        supplier_ref -> Nullable<Text>,
        last_used_at -> Nullable<Timestamp>,
        reviewed_at -> Nullable<Timestamp>,
        version -> BigInt,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        sent_access -> Nullable<Text>,
    }
}

diesel::table! {
    access_requests (id) {
        id -> Text,
        reference -> Text,
        proxy_nhs_number -> Text,
        patient_nhs_number -> Text,
        patient_id -> Nullable<Text>,
        role_id -> Nullable<Text>,
        body -> Text,
        submitted_by -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    proxy_reviews (id) {
        id -> Text,
        role_id -> Text,
        patient_id -> Text,
        status -> Text,
        completed_by -> Nullable<Text>,
        note -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    review_tasks (id) {
        id -> Text,
        account_id -> Text,
        patient_id -> Text,
        status -> Text,
        requested_access -> Text,
        requested_by -> Text,
        completed_by -> Nullable<Text>,
        note -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(online_accounts -> patients (patient_id));
diesel::joinable!(patient_versions -> practices (practice_id));
diesel::joinable!(outbox_jobs -> online_accounts (account_id));
diesel::joinable!(review_tasks -> online_accounts (account_id));
diesel::table! {
    record_access_codes (id) {
        id -> Text,
        patient_id -> Text,
        code -> Text,
        source -> Text,
        added_by -> Text,
        added_at -> Timestamp,
        removed_by -> Nullable<Text>,
        removed_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    bulk_jobs (id) {
        id -> Text,
        practice_id -> Text,
        kind -> Text,
        status -> Text,
        params -> Text,
        cursor -> Text,
        processed -> BigInt,
        total -> BigInt,
        counts -> Text,
        requested_by -> Text,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    supplier_events (event_id) {
        event_id -> Text,
        source -> Text,
        kind -> Text,
        patient_id -> Nullable<Text>,
        outcome -> Text,
        received_at -> Timestamp,
    }
}

diesel::table! {
    scheduled_runs (name, day) {
        name -> Text,
        day -> Date,
        claimed_by -> Text,
        started_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        report -> Nullable<Text>,
    }
}

diesel::table! {
    audit_exports (id) {
        id -> Text,
        practice -> Text,
        requested_by -> Text,
        request -> Text,
        since -> Nullable<Timestamp>,
        until -> Timestamp,
        transaction_time -> Timestamp,
        status -> Text,
        cursor_recorded_at -> Nullable<Timestamp>,
        cursor_chain -> Nullable<Text>,
        cursor_seq -> Nullable<BigInt>,
        exported -> BigInt,
        files -> BigInt,
        error -> Nullable<Text>,
        claimed_by -> Nullable<Text>,
        claimed_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        expires_at -> Timestamp,
    }
}

diesel::table! {
    audit_export_files (export_id, part) {
        export_id -> Text,
        part -> BigInt,
        events -> BigInt,
        content -> Text,
    }
}

diesel::joinable!(record_access_codes -> patients (patient_id));
diesel::joinable!(audit_export_files -> audit_exports (export_id));

diesel::allow_tables_to_appear_in_same_query!(
    instance_heartbeats,
    record_access_codes,
    bulk_jobs,
    practices,
    patients,
    patient_versions,
    idempotency_records,
    online_accounts,
    outbox_jobs,
    review_tasks,
    identity_bindings,
    linkage_attempts,
    audit_events,
    audit_chains,
    actor_snapshots,
    proxy_roles,
    access_requests,
    proxy_reviews,
    audit_exports,
    audit_export_files
);
