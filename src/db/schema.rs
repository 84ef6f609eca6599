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
    }
}

diesel::joinable!(patients -> practices (practice_id));
diesel::allow_tables_to_appear_in_same_query!(practices, patients, idempotency_records);
