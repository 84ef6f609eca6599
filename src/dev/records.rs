//! The dev profile's GP records, held by the simulators: each rule of what may be shown online
//! has an entry that exercises it (entries before and after access dates, redacted ones,
//! drafts, unfiled results, unreviewed documents, a diary entry, a third-party mention and a
//! clinical area the practice restricts).

use chrono::NaiveDate;

use crate::domain::Supplier;
use crate::domain::clinical::{ClinicalRecord, Code, Detail, Entry, Prescription};
use crate::domain::transactional::RepeatMedication;
use crate::suppliers::simulator::{AppointmentRules, SimulatorHandle};

/// The clinical area A81001 does not share online for anyone.
pub const RESTRICTED_AREA: &str = "sexual-health";

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default()
}

fn snomed(code: &str, display: &str) -> Option<Code> {
    Some(Code {
        system: "http://snomed.info/sct".to_owned(),
        code: code.to_owned(),
        display: display.to_owned(),
    })
}

fn entry(id: &str, recorded: NaiveDate, code: Option<Code>, detail: Detail) -> Entry {
    Entry {
        id: id.to_owned(),
        recorded,
        code,
        text: None,
        consultation: None,
        related: vec![],
        not_for_online: false,
        sensitivity: None,
        detail,
    }
}

fn consultation(id: &str, recorded: NaiveDate, draft: bool) -> Entry {
    entry(
        id,
        recorded,
        snomed("185317003", "Telephone encounter"),
        Detail::Consultation {
            draft,
            clinician: Some("Dr Ada Osei".to_owned()),
        },
    )
}

fn note(id: &str, recorded: NaiveDate, in_consultation: &str, text: &str) -> Entry {
    Entry {
        text: Some(text.to_owned()),
        consultation: Some(in_consultation.to_owned()),
        ..entry(id, recorded, None, Detail::Note)
    }
}

fn medication(id: &str, recorded: NaiveDate, code: Option<Code>, prescription: Prescription, dosage: &str) -> Entry {
    entry(
        id,
        recorded,
        code,
        Detail::Medication {
            prescription,
            dosage: dosage.to_owned(),
            quantity: Some("28 tablet".to_owned()),
            ended: None,
        },
    )
}

/// Jane Smith (A81001, EMIS-like): full access from 2024-01-01.
pub fn jane() -> ClinicalRecord {
    let entries = vec![
        entry(
            "jane-allergy-penicillin",
            day(2015, 3, 2),
            snomed("91936005", "Allergy to penicillin"),
            Detail::Allergy {
                reaction: Some("Rash".to_owned()),
                resolved: false,
            },
        ),
        entry(
            "jane-allergy-plasters",
            day(2010, 8, 14),
            snomed("405649005", "Allergy to adhesive plaster"),
            Detail::Allergy {
                reaction: Some("Itching".to_owned()),
                resolved: true,
            },
        ),
        medication(
            "jane-med-amlodipine",
            day(2019, 2, 1),
            Some(Code {
                system: "https://dmd.nhs.uk".to_owned(),
                code: "319283006".to_owned(),
                display: "Amlodipine 5mg tablets".to_owned(),
            }),
            Prescription::Repeat,
            "One tablet once a day",
        ),
        Entry {
            detail: Detail::Medication {
                prescription: Prescription::Acute,
                dosage: "One capsule three times a day for 7 days".to_owned(),
                quantity: Some("21 capsule".to_owned()),
                ended: Some(day(2024, 5, 17)),
            },
            ..medication(
                "jane-med-amoxicillin",
                day(2024, 5, 10),
                snomed("323509004", "Amoxicillin 500mg capsules"),
                Prescription::Acute,
                "",
            )
        },
        entry(
            "jane-problem-hypertension",
            day(2019, 2, 1),
            snomed("38341003", "Hypertensive disorder"),
            Detail::Problem {
                active: true,
                major: true,
            },
        ),
        entry(
            "jane-problem-asthma",
            day(2005, 6, 20),
            snomed("195967001", "Asthma"),
            Detail::Problem {
                active: false,
                major: false,
            },
        ),
        entry(
            "jane-imm-flu",
            day(2024, 10, 1),
            snomed("955691000000108", "Seasonal influenza vaccination"),
            Detail::Immunisation,
        ),
        // Before the access date: not shown above the summary.
        consultation("jane-cons-2023", day(2023, 11, 2), false),
        note(
            "jane-note-2023",
            day(2023, 11, 2),
            "jane-cons-2023",
            "Blood pressure reviewed; continue amlodipine.",
        ),
        consultation("jane-cons-2024-06", day(2024, 6, 12), false),
        note(
            "jane-note-2024-06",
            day(2024, 6, 12),
            "jane-cons-2024-06",
            "Palpitations on exertion. Refer to cardiology.",
        ),
        // A third party's details: the practice marked it not for online.
        Entry {
            not_for_online: true,
            ..note(
                "jane-note-third-party",
                day(2024, 6, 12),
                "jane-cons-2024-06",
                "Patient's sister also reports palpitations and is under investigation.",
            )
        },
        Entry {
            consultation: Some("jane-cons-2024-06".to_owned()),
            related: vec!["jane-problem-hypertension".to_owned()],
            ..entry(
                "jane-referral-cardiology",
                day(2024, 6, 12),
                snomed("183519002", "Referral to cardiology service"),
                Detail::Referral {
                    to: Some("Cardiology, Riverside Hospital".to_owned()),
                },
            )
        },
        // Still in draft: never shown, nor what was recorded in it.
        consultation("jane-cons-draft", day(2024, 9, 3), true),
        note(
            "jane-note-draft",
            day(2024, 9, 3),
            "jane-cons-draft",
            "Draft note, not finished.",
        ),
        entry(
            "jane-result-hba1c",
            day(2024, 6, 15),
            snomed("1019431000000105", "HbA1c level"),
            Detail::TestResult {
                value: Some("38 mmol/mol".to_owned()),
                filed: true,
            },
        ),
        // Not filed by a clinician yet: never shown.
        entry(
            "jane-result-unfiled",
            day(2024, 12, 1),
            snomed("1022441000000106", "Serum cholesterol level"),
            Detail::TestResult {
                value: Some("5.9 mmol/L".to_owned()),
                filed: false,
            },
        ),
        entry(
            "jane-doc-clinic-letter",
            day(2024, 7, 1),
            snomed("371535009", "Transfer summary report"),
            Detail::Document {
                title: "Cardiology clinic letter".to_owned(),
                reviewed: true,
                content_type: "text/plain".to_owned(),
                content: "Q2FyZGlvbG9neSBjbGluaWMgbGV0dGVyOiBubyBmdXJ0aGVyIGFjdGlvbi4=".to_owned(),
            },
        ),
        // Not reviewed yet: never shown.
        entry(
            "jane-doc-unreviewed",
            day(2024, 11, 20),
            None,
            Detail::Document {
                title: "Discharge summary".to_owned(),
                reviewed: false,
                content_type: "text/plain".to_owned(),
                content: "RGlzY2hhcmdlIHN1bW1hcnku".to_owned(),
            },
        ),
        entry("jane-diary", day(2025, 1, 10), None, Detail::Diary),
        // A clinical area the practice restricts for everyone.
        Entry {
            sensitivity: Some(RESTRICTED_AREA.to_owned()),
            ..entry(
                "jane-problem-restricted",
                day(2024, 3, 3),
                snomed("105629000", "Chlamydial infection"),
                Detail::Problem {
                    active: false,
                    major: false,
                },
            )
        },
    ];
    ClinicalRecord {
        entries,
        restricted: Default::default(),
    }
}

/// Amir Khan (A81001): granted summary, full prospective access by the opt-out model.
pub fn amir() -> ClinicalRecord {
    ClinicalRecord {
        entries: vec![
            entry(
                "amir-allergy-aspirin",
                day(2001, 4, 12),
                snomed("293586001", "Allergy to aspirin"),
                Detail::Allergy {
                    reaction: Some("Wheeze".to_owned()),
                    resolved: false,
                },
            ),
            medication(
                "amir-med-metformin",
                day(2012, 9, 3),
                snomed("325278007", "Metformin 500mg tablets"),
                Prescription::Repeat,
                "One tablet twice a day with meals",
            ),
            entry(
                "amir-problem-diabetes",
                day(2012, 9, 3),
                snomed("44054006", "Type 2 diabetes mellitus"),
                Detail::Problem {
                    active: true,
                    major: true,
                },
            ),
        ],
        restricted: Default::default(),
    }
}

/// Megan Jones (B82005, TPP-like): detailed coded access.
pub fn megan() -> ClinicalRecord {
    ClinicalRecord {
        entries: vec![
            entry(
                "megan-allergy-nuts",
                day(1999, 5, 5),
                snomed("91935009", "Allergy to peanut"),
                Detail::Allergy {
                    reaction: Some("Anaphylaxis".to_owned()),
                    resolved: false,
                },
            ),
            medication(
                "megan-med-levothyroxine",
                day(2016, 1, 20),
                snomed("315027000", "Levothyroxine 50microgram tablets"),
                Prescription::Repeat,
                "One tablet each morning",
            ),
            entry(
                "megan-problem-hypothyroid",
                day(2016, 1, 20),
                snomed("40930008", "Hypothyroidism"),
                Detail::Problem {
                    active: true,
                    major: true,
                },
            ),
            consultation("megan-cons", day(2025, 2, 11), false),
            Entry {
                consultation: Some("megan-cons".to_owned()),
                ..entry(
                    "megan-result-tsh",
                    day(2025, 2, 11),
                    snomed("1022791000000101", "Serum TSH level"),
                    Detail::TestResult {
                        value: Some("2.1 mU/L".to_owned()),
                        filed: true,
                    },
                )
            },
            note(
                "megan-note",
                day(2025, 2, 11),
                "megan-cons",
                "Thyroid function normal on current dose.",
            ),
        ],
        restricted: Default::default(),
    }
}

/// Lily Jones (B82005): a child, whose record her mother's proxy role does not reach.
pub fn lily() -> ClinicalRecord {
    ClinicalRecord {
        entries: vec![entry(
            "lily-imm-mmr",
            day(2020, 5, 10),
            snomed("38598009", "Measles, mumps and rubella vaccination"),
            Detail::Immunisation,
        )],
        restricted: Default::default(),
    }
}

/// Gives each seeded patient their record at their practice's simulator (once), and A81001
/// its restricted area.
pub fn seed(supplier: Supplier, simulator: &SimulatorHandle) {
    match supplier {
        Supplier::Emis => {
            simulator.seed_restrictions("A81001", &[RESTRICTED_AREA]);
            simulator.seed_record("9990000018", jane());
            simulator.seed_record("9990000034", amir());
        }
        Supplier::Tpp => {
            simulator.seed_record("9990000069", megan());
            simulator.seed_record("9990000174", lily());
        }
    }
}

/// A repeat template as the seeds write it: review `review_in_days` from `today` (negative: past
/// its review date already).
fn repeat(
    today: NaiveDate,
    id: &str,
    name: &str,
    dosage: &str,
    quantity: &str,
    review_in_days: i64,
    issuable_online: bool,
) -> RepeatMedication {
    RepeatMedication {
        id: id.to_owned(),
        name: name.to_owned(),
        dosage: dosage.to_owned(),
        quantity: quantity.to_owned(),
        review_date: Some(today + chrono::Duration::days(review_in_days)),
        issuable_online,
        last_issued: Some(today - chrono::Duration::days(28)),
    }
}

/// Gives seeded patients repeat templates (once): each list has one that may be requested and,
/// for some, one past its review date or not issuable online, which the gateway leaves out.
pub fn seed_repeats(supplier: Supplier, simulator: &SimulatorHandle, today: NaiveDate) {
    let r = |id: &str, name: &str, dosage: &str, quantity: &str, review: i64, online: bool| {
        repeat(today, id, name, dosage, quantity, review, online)
    };
    match supplier {
        Supplier::Emis => {
            simulator.seed_repeats(
                "9990000018",
                vec![
                    r(
                        "rpt-jane-salbutamol",
                        "Salbutamol 100micrograms/dose inhaler",
                        "Two puffs when required",
                        "1 inhaler",
                        180,
                        true,
                    ),
                    r(
                        "rpt-jane-sertraline",
                        "Sertraline 50mg tablets",
                        "One tablet daily",
                        "28 tablets",
                        -14,
                        true,
                    ),
                    r(
                        "rpt-jane-diazepam",
                        "Diazepam 2mg tablets",
                        "One tablet at night when required",
                        "7 tablets",
                        90,
                        false,
                    ),
                ],
            );
            simulator.seed_repeats(
                "9990000034",
                vec![
                    r(
                        "rpt-amir-ramipril",
                        "Ramipril 5mg capsules",
                        "One capsule daily",
                        "28 capsules",
                        200,
                        true,
                    ),
                    r(
                        "rpt-amir-atorvastatin",
                        "Atorvastatin 20mg tablets",
                        "One tablet at night",
                        "28 tablets",
                        200,
                        true,
                    ),
                    r(
                        "rpt-amir-metformin",
                        "Metformin 500mg tablets",
                        "One tablet twice daily with food",
                        "56 tablets",
                        120,
                        true,
                    ),
                ],
            );
            simulator.seed_repeats(
                "9990000204",
                vec![r(
                    "rpt-edith-donepezil",
                    "Donepezil 5mg tablets",
                    "One tablet at night",
                    "28 tablets",
                    150,
                    true,
                )],
            );
        }
        Supplier::Tpp => {
            // B82005 asks what each appointment is for.
            simulator.set_appointment_rules(
                "B82005",
                AppointmentRules {
                    reason_required: true,
                    ..AppointmentRules::default()
                },
            );
            simulator.seed_repeats(
                "9990000069",
                vec![r(
                    "rpt-megan-levothyroxine",
                    "Levothyroxine 75microgram tablets",
                    "One tablet each morning",
                    "28 tablets",
                    240,
                    true,
                )],
            );
            simulator.seed_repeats(
                "9990000050",
                vec![
                    r(
                        "rpt-william-amlodipine",
                        "Amlodipine 5mg tablets",
                        "One tablet daily",
                        "28 tablets",
                        160,
                        true,
                    ),
                    r(
                        "rpt-william-omeprazole",
                        "Omeprazole 20mg capsules",
                        "One capsule daily",
                        "28 capsules",
                        -3,
                        true,
                    ),
                ],
            );
            simulator.seed_repeats(
                "9990000174",
                vec![r(
                    "rpt-lily-cetirizine",
                    "Cetirizine 1mg/ml oral solution",
                    "5ml once daily",
                    "150ml",
                    90,
                    true,
                )],
            );
        }
    }
}
