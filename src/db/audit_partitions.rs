//! PostgreSQL keeps the audit trail in one partition a month (SQLite keeps one table). Each
//! month's partition is made well before the month starts, so the writer never waits for one
//! and nothing lands in the default partition.

use chrono::{Datelike, Months, NaiveDate};
use diesel::RunQueryDsl;
use diesel::sql_types::{Bool, Text};

use super::{DbConnection, DbError};

#[derive(diesel::QueryableByName)]
struct Present {
    #[diesel(sql_type = Bool)]
    present: bool,
}

/// The partition's name and bounds for the month `start` is the first day of.
fn partition(start: NaiveDate) -> Option<(String, NaiveDate, NaiveDate)> {
    let end = start.checked_add_months(Months::new(1))?;
    Some((
        format!("audit_events_{:04}_{:02}", start.year(), start.month()),
        start,
        end,
    ))
}

/// Makes the partitions of the month `today` is in and of the `ahead` months after it, where
/// they are missing. Only a missing one is created: looking is a catalogue lookup, while
/// creating one locks the trail's table for a moment. Returns the partitions created.
pub fn create_ahead(conn: &mut DbConnection, today: NaiveDate, ahead: u32) -> Result<Vec<String>, DbError> {
    let DbConnection::Postgres(pg) = conn else {
        return Ok(vec![]);
    };
    let month = today.with_day(1).unwrap_or(today);
    let mut created = vec![];
    for i in 0..=ahead {
        let Some((name, start, end)) = month.checked_add_months(Months::new(i)).and_then(partition) else {
            break;
        };
        let present: Present = diesel::sql_query("SELECT to_regclass($1) IS NOT NULL AS present")
            .bind::<Text, _>(&name)
            .get_result(pg)?;
        if present.present {
            continue;
        }
        // Names and bounds are made here from dates, never from input.
        diesel::sql_query(format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF audit_events FOR VALUES FROM ('{start}') TO ('{end}')"
        ))
        .execute(pg)?;
        created.push(name);
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_covers_one_calendar_month() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            partition(d("2026-12-01")),
            Some(("audit_events_2026_12".into(), d("2026-12-01"), d("2027-01-01")))
        );
    }
}
