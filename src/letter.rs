//! The printable registration letter: a small, dependency-free PDF writer (one A4 page,
//! Helvetica) and the plain-language guidance both the PDF and the JSON form carry.

use crate::domain::account::Letter;
use crate::domain::{AccessSettings, RecordAccessLevel, ServiceLevel};

pub const GUIDANCE: [&str; 7] = [
    "To start, open the NHS App or your chosen GP online services app, log in with NHS login and choose to link your GP practice using registration details. Enter the Practice ID, Account ID and Linkage Key exactly as shown.",
    "Keep this letter safe and private. Anyone with these details could try to see your GP record or act in your name.",
    "Never share your login details. If someone pressures you to show them your record or your account, tell the practice: we can switch access off or change it straight away.",
    "Your record can include test results, letters and notes that you may find upsetting, sometimes before a clinician has spoken to you about them.",
    "If you see something in your record that is wrong, or about someone else, tell the practice.",
    "If you lose your phone or think someone else knows your login details, change your password and tell the practice.",
    "These registration details stop working after the date shown. After that, ask the practice for a new letter.",
];

/// The practice's address as printed: its lines, then the town, then the postcode.
pub fn address_lines(letter: &Letter) -> Vec<String> {
    letter
        .practice_address
        .iter()
        .flat_map(|a| {
            a.lines
                .iter()
                .cloned()
                .chain(a.city.clone())
                .chain(a.postal_code.clone())
        })
        .collect()
}

/// What the patient will find switched on once they link their login, in plain words.
pub fn switched_on(access: &AccessSettings) -> Vec<String> {
    let mut out = Vec::new();
    let s = &access.services;
    match s.appointments {
        ServiceLevel::Manage => out.push("Appointments: see, book and cancel".to_owned()),
        ServiceLevel::View => out.push("Appointments: see your appointments".to_owned()),
        ServiceLevel::None => {}
    }
    match s.prescriptions {
        ServiceLevel::Manage => out.push("Repeat prescriptions: see and order".to_owned()),
        ServiceLevel::View => out.push("Repeat prescriptions: see your repeat medicines".to_owned()),
        ServiceLevel::None => {}
    }
    if s.messaging {
        out.push("Messages to and from the practice".to_owned());
    }
    let record = match access.record_level {
        RecordAccessLevel::None => None,
        RecordAccessLevel::Summary => Some("summary information (allergies, medicines and reactions)"),
        RecordAccessLevel::DetailedCoded => Some("the detailed coded record (without notes or documents)"),
        RecordAccessLevel::Documents => Some("the detailed coded record and documents"),
        RecordAccessLevel::Full => Some("the full record, including notes and documents"),
    };
    if let Some(record) = record {
        out.push(match access.record_from {
            Some(from) => format!("Your GP record: {record}, for entries from {}", long_date(from)),
            None => format!("Your GP record: {record}"),
        });
    }
    if out.is_empty() {
        out.push("Nothing is switched on yet: the practice will tell you when it is.".to_owned());
    }
    out
}

fn long_date(d: chrono::NaiveDate) -> String {
    d.format("%-d %B %Y").to_string()
}

/// NHS, CHI and H&C numbers are read aloud and typed in groups of 3, 3 and 4.
fn grouped(v: &str) -> String {
    match (v.len(), v.get(..3), v.get(3..6), v.get(6..)) {
        (10, Some(a), Some(b), Some(c)) => format!("{a} {b} {c}"),
        _ => v.to_owned(),
    }
}

/// PDF string literal in WinAnsi: escapes delimiters, replaces what the font cannot show.
fn pdf_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\u{2019}' | '\u{2018}' => out.push('\''),
            ' '..='~' => out.push(c),
            c if (c as u32) >= 0xA0 && (c as u32) <= 0xFF => out.push_str(&format!("\\{:03o}", c as u32)),
            _ => out.push('?'),
        }
    }
    out
}

/// Wraps `text` to at most `width` characters per line (Helvetica at 10pt averages ~ 2 mm).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

pub fn render_pdf(letter: &Letter) -> Vec<u8> {
    let mut content = String::new();
    let mut y = 800.0_f32;
    let mut put = |size: f32, bold: bool, x: f32, y: f32, text: &str| {
        content.push_str(&format!(
            "BT /{} {size} Tf {x} {y} Td ({}) Tj ET\n",
            if bold { "F2" } else { "F1" },
            pdf_text(text)
        ));
    };
    // The column right of x=400 holds about 38 characters at 10pt (fewer in bold): longer
    // lines wrap.
    for part in wrap(&letter.practice_name, 34) {
        put(10.0, true, 400.0, y, &part);
        y -= 13.0;
    }
    let phone = letter
        .practice_telephone
        .as_ref()
        .map(|t| format!("Telephone: {}", t.as_str()));
    for line in address_lines(letter).iter().chain(phone.as_ref()) {
        for part in wrap(line, 38) {
            put(10.0, false, 400.0, y, &part);
            y -= 13.0;
        }
    }
    put(10.0, false, 400.0, y, &format!("Practice ID: {}", letter.ods_code));
    y -= 34.0;
    put(18.0, true, 56.0, y, "Your GP online services registration");
    y -= 28.0;
    put(11.0, false, 56.0, y, &format!("Dear {},", letter.patient_name));
    y -= 18.0;
    for line in wrap(
        "You have been registered for GP online services. Use the details below to connect your NHS login to your GP record.",
        95,
    ) {
        put(11.0, false, 56.0, y, &line);
        y -= 15.0;
    }
    y -= 12.0;
    let rows = [
        ("Practice ID (ODS code)", letter.ods_code.clone()),
        (
            letter.patient_identifier.system().label(),
            grouped(letter.patient_identifier.value()),
        ),
        ("Account ID", letter.account_id.clone()),
        ("Linkage Key", letter.linkage_key.clone()),
        ("Use these details by", long_date(letter.expires_on)),
    ];
    for (label, value) in rows {
        put(12.0, false, 72.0, y, label);
        put(12.0, true, 260.0, y, &value);
        y -= 22.0;
    }
    y -= 6.0;
    put(13.0, true, 56.0, y, "What is switched on for you");
    y -= 18.0;
    for item in switched_on(&letter.access) {
        put(10.0, false, 56.0, y, &format!("- {item}"));
        y -= 13.0;
    }
    y -= 10.0;
    put(13.0, true, 56.0, y, "Keeping your access safe");
    y -= 20.0;
    for point in GUIDANCE {
        for (i, line) in wrap(point, 95).iter().enumerate() {
            put(
                10.0,
                false,
                if i == 0 { 56.0 } else { 66.0 },
                y,
                &format!("{}{line}", if i == 0 { "- " } else { "" }),
            );
            y -= 13.0;
        }
        y -= 5.0;
    }
    y -= 10.0;
    put(
        9.0,
        false,
        56.0,
        y,
        &format!("Printed on {}.", long_date(letter.printed_on)),
    );

    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_owned(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_owned(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R /F2 5 0 R >> >> /Contents 6 0 R >>".to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_owned(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>".to_owned(),
        format!("<< /Length {} >>\nstream\n{content}endstream", content.len()),
    ];
    let mut pdf = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    pdf.extend_from_slice(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).as_bytes());
    for o in offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_pdf_delimiters_and_maps_latin1() {
        assert_eq!(pdf_text("a(b)c\\"), "a\\(b\\)c\\\\");
        assert_eq!(pdf_text("Zoë"), "Zo\\353");
        assert_eq!(pdf_text("O\u{2019}Neill"), "O'Neill");
        assert_eq!(pdf_text("名"), "?");
    }

    #[test]
    fn the_longest_letter_still_fits_on_one_page() {
        use crate::domain::{NhsNumber, PatientIdentifier, PracticeAddress, Services, Telephone};
        let letter = Letter {
            practice_name: "Validated Relationships Example Practice".into(),
            ods_code: "G8101234".into(),
            practice_address: Some(
                PracticeAddress::parse(
                    &[
                        "Unit 4".into(),
                        "The Old Mill".into(),
                        "22 Station Road".into(),
                        "Moorside".into(),
                    ],
                    Some("Newcastle upon Tyne"),
                    Some("NE1 5DL"),
                )
                .unwrap(),
            ),
            practice_telephone: Some(Telephone::parse("0191 498 0001").unwrap()),
            access: AccessSettings {
                services: Services {
                    appointments: ServiceLevel::Manage,
                    prescriptions: ServiceLevel::Manage,
                    messaging: true,
                },
                record_level: RecordAccessLevel::Full,
                record_from: chrono::NaiveDate::from_ymd_opt(2026, 12, 7),
            },
            patient_name: "Alexandra Montgomery-Fitzwilliam".into(),
            patient_identifier: PatientIdentifier::nhs(&NhsNumber::parse("9990000018").unwrap()),
            account_id: "1234567890".into(),
            linkage_key: "ABCDEFGHIJKLMNOP".into(),
            printed_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap(),
            expires_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 21).unwrap(),
        };
        let pdf = String::from_utf8_lossy(&render_pdf(&letter)).into_owned();
        let lowest = pdf
            .lines()
            .filter_map(|l| l.strip_prefix("BT /"))
            .filter_map(|l| l.split(" Td").next()?.split_whitespace().last()?.parse::<f32>().ok())
            .fold(f32::MAX, f32::min);
        // A4 is 842 points high; printers leave about half an inch unprinted.
        assert!((36.0..200.0).contains(&lowest), "the last line is at {lowest}pt");
        assert!(pdf.contains("Telephone: 0191 498 0001") && pdf.contains("NE1 5DL"));
    }

    #[test]
    fn wraps_on_word_boundaries() {
        let lines = wrap("one two three four five", 9);
        assert_eq!(lines, ["one two", "three", "four five"]);
        assert_eq!(grouped("9990000018"), "999 000 0018");
    }
}
