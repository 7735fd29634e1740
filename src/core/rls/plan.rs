//! A request in domain terms, its plan (what each descriptor needs) and
//! the all-or-nothing GCRA decision of one request.

use smallvec::SmallVec;

use super::USER_TYPE_KEY;
use super::config::{Invalid, invalid};
use super::rules::{PlanOptions, Rate};
use crate::core::gcra::{self, GcraOutcome, RateLimit, Spacing};
use crate::core::{Transport, UserType};

// ---- a request and its plan ----

/// One descriptor entry, borrowed from the request as it was read off the
/// wire (no copy of a key or value per request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The entry's key.
    pub key: &'a str,
    /// The entry's value.
    pub value: &'a str,
}

/// `ShouldRateLimit`'s request in domain terms: its descriptors' entries
/// one after the other, on the stack for up to four entries in up to four
/// descriptors (a request is built, read and dropped without allocating).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RlsRequest<'a> {
    /// The rules' domain.
    pub domain: &'a str,
    /// 0 means 1.
    pub hits_addend: u32,
    entries: SmallVec<[Entry<'a>; 4]>,
    /// Where each descriptor's entries end in `entries`.
    ends: SmallVec<[usize; 4]>,
}

impl<'a> RlsRequest<'a> {
    /// A request of no descriptor yet.
    pub fn new(domain: &'a str, hits_addend: u32) -> RlsRequest<'a> {
        RlsRequest { domain, hits_addend, ..RlsRequest::default() }
    }

    /// Adds a descriptor of `entries` after the others.
    pub fn push_descriptor(&mut self, entries: impl IntoIterator<Item = Entry<'a>>) {
        self.entries.extend(entries);
        self.ends.push(self.entries.len());
    }

    /// The request with a descriptor of `entries` added.
    pub fn with_descriptor(mut self, entries: impl IntoIterator<Item = Entry<'a>>) -> RlsRequest<'a> {
        self.push_descriptor(entries);
        self
    }

    /// How many descriptors the request holds.
    pub fn descriptor_count(&self) -> usize {
        self.ends.len()
    }

    /// Each descriptor's entries, in order.
    pub fn descriptors(&self) -> impl ExactSizeIterator<Item = &[Entry<'a>]> + '_ {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let entries = self.entries.get(start..end).unwrap_or_default();
            start = end;
            entries
        })
    }
}

/// What one descriptor needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned<'r> {
    /// No rule matches (or the domain is unknown): OK, nothing counted.
    NoRule,
    /// The matching rule is `unlimited`: OK, nothing counted.
    Unlimited,
    /// Counted with GCRA under `counter`.
    Limited {
        /// The matching rule.
        rate: &'r Rate,
        /// The store key the request is counted under.
        counter: String,
    },
    /// The matching rule has `requests_per_unit: 0`: over the limit, nothing counted.
    RefusesAll {
        /// The matching rule.
        rate: &'r Rate,
    },
    /// The matching rule's limit is named in another matched rule's
    /// `replaces`: OK, nothing counted.
    Replaced,
    /// floodgate's Level 1 decides it (see [`AdmissionEntries`]).
    Admission,
}

impl<'r> Planned<'r> {
    /// The matched rule's rate, for limited and refusing rules.
    pub fn rate(&self) -> Option<&'r Rate> {
        match self {
            Planned::Limited { rate, .. } | Planned::RefusesAll { rate } => Some(rate),
            _ => None,
        }
    }
}

/// The Level 1 request a `user_type` descriptor stands for: entries
/// `user_type` (anonymous, registered, privileged), and optionally
/// `subject` (else `remote_address`, else the domain: one shared subject),
/// `route` (admin-route bypass) and `transport` (rest, websocket; analytics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionEntries {
    /// Which descriptor of the request it is.
    pub index: usize,
    /// Who the request is for.
    pub user_type: UserType,
    /// Whom the rate limit counts.
    pub subject: String,
    /// The route asked for (admin routes bypass for privileged users).
    pub route: String,
    /// Which frontend entry point asked.
    pub transport: Transport,
}

impl AdmissionEntries {
    pub(super) fn parse(index: usize, domain: &str, entries: &[Entry<'_>]) -> Result<AdmissionEntries, Invalid> {
        let value = |key: &str| entries.iter().find(|e| e.key == key).map(|e| e.value);
        let user_type = match value(USER_TYPE_KEY) {
            Some("anonymous") => UserType::Anonymous,
            Some("registered") => UserType::Registered,
            Some("privileged") => UserType::Privileged,
            _ => {
                return Err(invalid(
                    format!("descriptors[{index}].user_type"),
                    "must be anonymous, registered or privileged",
                ));
            }
        };
        let subject = value("subject").or(value("remote_address")).filter(|s| !s.is_empty()).unwrap_or(domain);
        let transport = match value("transport") {
            Some("rest") => Transport::Rest,
            Some("websocket") => Transport::Websocket,
            _ => Transport::Unspecified,
        };
        Ok(AdmissionEntries {
            index,
            user_type,
            subject: subject.to_owned(),
            route: value("route").unwrap_or_default().to_owned(),
            transport,
        })
    }
}

/// A validated request: one [`Planned`] per descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<'r> {
    /// One plan per descriptor, in order (on the stack for up to four).
    pub descriptors: SmallVec<[Planned<'r>; 4]>,
    /// The Level-1 entries, when a descriptor carries `user_type`.
    pub admission: Option<AdmissionEntries>,
    /// `hits_addend`, 0 made 1.
    pub hits: u32,
    /// Global shadow mode and response headers.
    pub options: PlanOptions,
}

impl Plan<'_> {
    /// The GCRA checks the request needs, each with its descriptor's index,
    /// in request order. `admission_rate` is the user type's limit when
    /// Level 1 reached its rate-limit step; Level 1 counts one request, as
    /// `CheckCapacity` does, whatever `hits_addend` says.
    pub fn checks(&self, admission_rate: Option<RateLimit>) -> Checks {
        let mut checks = Checks::new();
        for (i, planned) in self.descriptors.iter().enumerate() {
            match planned {
                Planned::Limited { rate, .. } => checks.push((
                    i,
                    Check {
                        spacing: rate.spacing(),
                        cost: rate.cost(self.hits),
                        enforce: !rate.shadow_mode && !self.options.shadow_mode,
                    },
                )),
                Planned::Admission => {
                    if let Some(limit) = admission_rate {
                        checks.push((i, Check { spacing: limit.spacing(), cost: 1, enforce: true }));
                    }
                }
                Planned::NoRule | Planned::Unlimited | Planned::RefusesAll { .. } | Planned::Replaced => {}
            }
        }
        checks
    }
}

// ---- the all-or-nothing decision of one request ----

/// A request's GCRA checks, each with its descriptor's index: on the stack
/// for the usual one to four descriptors (no allocation per request).
pub type Checks = SmallVec<[(usize, Check); 4]>;

/// The arrival times [`decide_all`] keeps, by key: on the stack for up to four.
pub type Writes<K> = SmallVec<[(K, u64); 4]>;

/// One GCRA check of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// The rule's GCRA parameters.
    pub spacing: Spacing,
    /// Hits this request takes.
    pub cost: u32,
    /// Whether this check being limited refuses the request (not in shadow mode).
    pub enforce: bool,
}

/// Decides one request's checks together; both stores follow this rule
/// (the Redis script `rls.lua` mirrors it). Each check runs GCRA against
/// its key's arrival time, checks sharing a key seeing the earlier ones'
/// new times. The new times are kept only when no enforcing check is
/// limited and this is not a `dry_run`: a refused request consumes nothing.
/// Returns the outcomes and the arrival times to store (empty when none).
pub fn decide_all<K: PartialEq + Clone>(
    checks: &[(K, Check)],
    stored: impl Fn(&K) -> Option<u64>,
    now_us: u64,
    dry_run: bool,
) -> (Vec<GcraOutcome>, Writes<K>) {
    let mut pending: Writes<K> = Writes::new();
    let mut outcomes = Vec::with_capacity(checks.len());
    for (key, check) in checks {
        let tat = pending.iter().rev().find(|(k, _)| k == key).map(|(_, t)| *t).or_else(|| stored(key));
        let outcome = gcra::check_spacing(tat, now_us, check.spacing, check.cost);
        if let GcraOutcome::Allowed { tat } = outcome {
            pending.retain(|(k, _)| k != key);
            pending.push((key.clone(), tat));
        }
        outcomes.push(outcome);
    }
    if !kept(checks.iter().map(|(_, c)| c), &outcomes, dry_run) {
        pending.clear();
    }
    (outcomes, pending)
}

/// Whether a request's new arrival times were kept.
pub fn kept<'c>(checks: impl IntoIterator<Item = &'c Check>, outcomes: &[GcraOutcome], dry_run: bool) -> bool {
    !dry_run && !checks.into_iter().zip(outcomes).any(|(c, o)| c.enforce && matches!(o, GcraOutcome::Limited { .. }))
}
