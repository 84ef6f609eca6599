use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::FhirError;
use super::{Address, ContactPoint, Extension, GATEWAY_FHIR_BASE, Identifier, Meta, ODS_SYSTEM, instant};
use crate::domain::{AccessModel, PracticeAddress, PracticeChanges, PracticeRecord, Supplier, Telephone};

pub fn supplier_extension_url() -> String {
    format!("{GATEWAY_FHIR_BASE}/StructureDefinition/gp-system-supplier")
}

pub fn online_services_extension_url() -> String {
    format!("{GATEWAY_FHIR_BASE}/StructureDefinition/online-services-settings")
}

/// FHIR R4 `Organization` for a GP practice: ODS code, name, address and telephone, the clinical
/// system supplier and the practice's online-services settings (as extensions).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Organization {
    #[schema(value_type = String, example = "Organization")]
    pub resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<Address>,
}

impl Organization {
    pub fn from_record(p: &PracticeRecord) -> Self {
        let s = &p.settings;
        Self {
            resource_type: "Organization".into(),
            id: Some(p.id.clone()),
            meta: Some(Meta {
                version_id: Some(p.version.to_string()),
                last_updated: Some(instant(p.last_updated)),
                profile: vec![],
            }),
            extension: vec![
                Extension {
                    url: supplier_extension_url(),
                    value_code: Some(p.supplier.as_str().into()),
                    ..Default::default()
                },
                Extension {
                    url: online_services_extension_url(),
                    extension: vec![
                        Extension {
                            url: "enabled".into(),
                            value_boolean: Some(s.enabled),
                            ..Default::default()
                        },
                        Extension {
                            url: "accessModel".into(),
                            value_code: Some(
                                match s.access_model {
                                    AccessModel::OptOut => "opt-out",
                                    AccessModel::OptIn => "opt-in",
                                }
                                .into(),
                            ),
                            ..Default::default()
                        },
                        Extension {
                            url: "proxyReviewAge".into(),
                            value_integer: Some(i64::from(s.proxy_review_age)),
                            ..Default::default()
                        },
                    ]
                    .into_iter()
                    .chain(s.prospective_go_live.map(|d| Extension {
                        url: "prospectiveAccessGoLive".into(),
                        value_date: Some(crate::fhir::date(d)),
                        ..Default::default()
                    }))
                    .collect(),
                    ..Default::default()
                },
            ],
            identifier: vec![Identifier {
                use_: Some("official".into()),
                system: Some(ODS_SYSTEM.into()),
                value: Some(p.ods_code.as_str().into()),
            }],
            active: Some(true),
            name: Some(p.name.clone()),
            telecom: p
                .telephone
                .iter()
                .map(|t| ContactPoint {
                    system: Some("phone".into()),
                    value: Some(t.as_str().into()),
                    use_: Some("work".into()),
                })
                .collect(),
            address: p
                .address
                .iter()
                .map(|a| Address {
                    use_: Some("work".into()),
                    type_: Some("both".into()),
                    line: a.lines.clone(),
                    city: a.city.clone(),
                    postal_code: a.postal_code.clone(),
                    ..Default::default()
                })
                .collect(),
        }
    }

    /// The practice's address and telephone from an update: at most one of each, replacing
    /// what was there (an update without them removes them, as a FHIR update replaces).
    fn parse_contact(&self) -> Result<(Option<PracticeAddress>, Option<Telephone>), FhirError> {
        let address = match self.address.as_slice() {
            [] => None,
            [a] => {
                if a.district.is_some() || a.text.is_some() || a.country.as_deref().is_some_and(|c| c != "GB") {
                    return Err(FhirError::resource(
                        "the address takes line, city and postalCode (country GB)",
                        "Organization.address",
                    ));
                }
                Some(
                    PracticeAddress::parse(&a.line, a.city.as_deref(), a.postal_code.as_deref())
                        .map_err(|e| FhirError::resource(e.to_string(), "Organization.address"))?,
                )
            }
            _ => {
                return Err(FhirError::resource(
                    "a practice has one address",
                    "Organization.address",
                ));
            }
        };
        let telephone = match self.telecom.as_slice() {
            [] => None,
            [t] if t.system.as_deref() == Some("phone") => Some(
                Telephone::parse(t.value.as_deref().unwrap_or_default())
                    .map_err(|e| FhirError::resource(e.to_string(), "Organization.telecom"))?,
            ),
            _ => {
                return Err(FhirError::resource(
                    "telecom may hold one telephone number (system phone) and nothing else",
                    "Organization.telecom",
                ));
            }
        };
        Ok((address, telephone))
    }

    /// Reads the parts of an Organization a practice may change: its name, address, telephone
    /// and settings. The ODS code and supplier identify the practice and cannot change through
    /// an update.
    pub fn parse_update(&self, current: &PracticeRecord) -> Result<PracticeChanges, FhirError> {
        if self.resource_type != "Organization" {
            return Err(FhirError::resource(
                "resourceType must be Organization",
                "Organization.resourceType",
            ));
        }
        let name = self
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| {
                !n.is_empty() && n.chars().count() <= 200 && crate::domain::text::forbidden_character(n).is_none()
            })
            .ok_or_else(|| FhirError::resource("name is required (at most 200 characters)", "Organization.name"))?
            .to_owned();
        let ods: Vec<&str> = self
            .identifier
            .iter()
            .filter(|i| i.system.as_deref() == Some(ODS_SYSTEM))
            .filter_map(|i| i.value.as_deref())
            .collect();
        if ods != [current.ods_code.as_str()] {
            return Err(FhirError::resource(
                "the ODS code identifier must be present and cannot change",
                "Organization.identifier",
            ));
        }
        if let Some(ext) = Extension::find(&self.extension, &supplier_extension_url())
            && ext.value_code.as_deref().and_then(Supplier::parse) != Some(current.supplier)
        {
            return Err(FhirError::resource(
                "the clinical system supplier cannot change through an update",
                "Organization.extension",
            ));
        }
        let mut settings = current.settings.clone();
        if let Some(ext) = Extension::find(&self.extension, &online_services_extension_url()) {
            for part in &ext.extension {
                let at = format!(
                    "Organization.extension('online-services-settings').extension('{}')",
                    part.url
                );
                match part.url.as_str() {
                    "enabled" => {
                        settings.enabled = part
                            .value_boolean
                            .ok_or_else(|| FhirError::resource("enabled needs valueBoolean", at.clone()))?;
                    }
                    "accessModel" => {
                        settings.access_model = match part.value_code.as_deref() {
                            Some("opt-out") => AccessModel::OptOut,
                            Some("opt-in") => AccessModel::OptIn,
                            _ => {
                                return Err(FhirError::resource("accessModel is opt-out or opt-in", at));
                            }
                        };
                    }
                    "proxyReviewAge" => {
                        settings.proxy_review_age = part
                            .value_integer
                            .and_then(|v| u8::try_from(v).ok())
                            .ok_or_else(|| FhirError::resource("proxyReviewAge needs valueInteger", at.clone()))?;
                    }
                    "prospectiveAccessGoLive" => {
                        settings.prospective_go_live = Some(
                            part.value_date
                                .as_deref()
                                .and_then(super::operations::parse_date)
                                .ok_or_else(|| {
                                    FhirError::resource("prospectiveAccessGoLive needs valueDate", at.clone())
                                })?,
                        );
                    }
                    _ => return Err(FhirError::resource("unknown online-services setting", at)),
                }
            }
        }
        settings
            .validate()
            .map_err(|m| FhirError::resource(m, "Organization.extension"))?;
        let (address, telephone) = self.parse_contact()?;
        Ok(PracticeChanges {
            name,
            address,
            telephone,
            settings,
        })
    }
}
