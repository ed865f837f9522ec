//! The plan: every candidate judged, group by group, with the safety rules
//! laid over the policy, before anything is touched. `--dry-run` prints the
//! plan; a real run executes it.
//!
//! Safety comes after the policy and only ever turns a removal into a keep:
//! a group with an upstream verification failure is left whole; an item whose
//! last verification failed is not counted and is kept for inspection; the
//! newest good backup of a series stays; the parent of a kept item stays.

use std::collections::{BTreeMap, HashMap};

use jiff::tz::TimeZone;
use jiff::Timestamp;
use ops_shared::ids::compare_dated;

use crate::item::Candidate;
use crate::policy::RetentionPolicy;

/// What happens to one candidate, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub keep: bool,
    pub reasons: Vec<String>,
}

impl Decision {
    fn keep(reason: String) -> Self {
        Decision {
            keep: true,
            reasons: vec![reason],
        }
    }
}

/// How to judge.
pub struct Rules<'a> {
    pub policy: &'a RetentionPolicy,
    pub now: Timestamp,
    pub zone: &'a TimeZone,
    pub allow_remove_all: bool,
}

/// The decisions, one per candidate, and the groups left alone (with why).
#[derive(Debug, Default)]
pub struct Plan {
    pub decisions: Vec<Decision>,
    pub halted: Vec<String>,
}

/// Judges every candidate.
pub fn plan(candidates: &[Candidate], rules: &Rules) -> Plan {
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, candidate) in candidates.iter().enumerate() {
        groups.entry(&candidate.group).or_default().push(index);
    }
    let mut plan = Plan {
        decisions: vec![Decision::default(); candidates.len()],
        halted: Vec::new(),
    };
    for (group, mut members) in groups {
        members.sort_by(|&a, &b| {
            let (a, b) = (&candidates[a], &candidates[b]);
            compare_dated((b.time, &b.id), (a.time, &a.id))
        });
        if let Some(&bad) = members.iter().find(|&&i| candidates[i].failed_upstream) {
            let why = format!(
                "{group} is not pruned: a record on stdin says {} failed verification",
                candidates[bad].id
            );
            for &member in &members {
                plan.decisions[member] = Decision::keep(why.clone());
            }
            plan.halted.push(why);
            continue;
        }
        judge_group(candidates, &members, rules, &mut plan.decisions);
    }
    plan
}

/// Keeps every member of the groups in `why` (group name to reason), after
/// the plan was made; returns the reasons of the groups that had members.
pub fn keep_groups(
    plan: &mut Plan,
    candidates: &[Candidate],
    why: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut kept = Vec::new();
    for (index, candidate) in candidates.iter().enumerate() {
        if let Some(reason) = why.get(&candidate.group) {
            plan.decisions[index] = Decision::keep(reason.clone());
            if !kept.contains(reason) {
                kept.push(reason.clone());
            }
        }
    }
    kept
}

fn judge_group(
    candidates: &[Candidate],
    members: &[usize],
    rules: &Rules,
    decisions: &mut [Decision],
) {
    let (counted, failed): (Vec<usize>, Vec<usize>) = members
        .iter()
        .partition(|&&i| candidates[i].failed.is_none());
    let times: Vec<Timestamp> = counted.iter().map(|&i| candidates[i].time).collect();
    let verdicts = rules.policy.apply(&times, rules.now, rules.zone);
    for (&index, verdict) in counted.iter().zip(verdicts) {
        decisions[index] = Decision {
            keep: verdict.keep,
            reasons: verdict.reasons,
        };
    }
    for &index in &failed {
        let why = candidates[index].failed.clone().unwrap_or_default();
        decisions[index] = Decision::keep(format!(
            "{why}; not counted towards --keep-*, kept for you to inspect"
        ));
    }
    if let Some(&newest) = counted.first() {
        if candidates[newest].guard_newest && !rules.allow_remove_all && !decisions[newest].keep {
            decisions[newest] = Decision::keep(
                "the newest good backup of its series (kept unless --allow-remove-all)".into(),
            );
        }
    }
    let by_id: HashMap<&str, usize> = members
        .iter()
        .map(|&i| (candidates[i].id.as_str(), i))
        .collect();
    let mut pending: Vec<usize> = members
        .iter()
        .copied()
        .filter(|&i| decisions[i].keep)
        .collect();
    while let Some(child) = pending.pop() {
        let parent = candidates[child].parent.as_deref();
        let Some(&parent) = parent.and_then(|id| by_id.get(id)) else {
            continue;
        };
        let reason = format!("parent of {}, which is kept", candidates[child].id);
        let decision = &mut decisions[parent];
        if !decision.keep {
            *decision = Decision::keep(reason);
            pending.push(parent);
        } else if !decision.reasons.contains(&reason) {
            decision.reasons.push(reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Count, Period};
    use jiff::SignedDuration;
    use proptest::prelude::*;

    fn candidate(group: &str, id: usize, hours_ago: i64, parent: Option<usize>) -> Candidate {
        let now: Timestamp = "2026-11-22T12:00:00Z".parse().unwrap();
        Candidate {
            group: group.into(),
            id: format!("{group}_{id:04}"),
            time: now
                .checked_sub(SignedDuration::from_hours(hours_ago))
                .unwrap(),
            parent: parent.map(|p| format!("{group}_{p:04}")),
            bytes: 1,
            failed: None,
            failed_upstream: false,
            guard_newest: true,
        }
    }

    fn judge(candidates: &[Candidate], policy: &RetentionPolicy) -> Plan {
        plan(
            candidates,
            &Rules {
                policy,
                now: "2026-11-22T12:00:00Z".parse().unwrap(),
                zone: &TimeZone::UTC,
                allow_remove_all: false,
            },
        )
    }

    fn last(n: u64) -> RetentionPolicy {
        RetentionPolicy {
            last: Some(Count::Limited(n)),
            ..Default::default()
        }
    }

    #[test]
    fn groups_are_judged_separately() {
        let items = [
            candidate("a", 1, 1, None),
            candidate("a", 2, 2, None),
            candidate("b", 1, 3, None),
            candidate("b", 2, 4, None),
        ];
        let keeps: Vec<bool> = judge(&items, &last(1))
            .decisions
            .iter()
            .map(|d| d.keep)
            .collect();
        assert_eq!(keeps, [true, false, true, false]);
    }

    #[test]
    fn an_upstream_failure_leaves_its_group_whole() {
        let mut items = vec![
            candidate("a", 1, 1, None),
            candidate("a", 2, 2, None),
            candidate("b", 1, 3, None),
            candidate("b", 2, 4, None),
        ];
        items[0].failed_upstream = true;
        let plan = judge(&items, &last(1));
        let keeps: Vec<bool> = plan.decisions.iter().map(|d| d.keep).collect();
        assert_eq!(keeps, [true, true, true, false]);
        assert_eq!(
            plan.halted,
            ["a is not pruned: a record on stdin says a_0001 failed verification"]
        );
    }

    #[test]
    fn a_failed_backup_takes_no_quota_and_is_kept() {
        let mut items = vec![
            candidate("a", 3, 1, None),
            candidate("a", 2, 2, None),
            candidate("a", 1, 3, None),
        ];
        items[0].failed = Some("verification failed".into());
        let plan = judge(&items, &last(1));
        let keeps: Vec<bool> = plan.decisions.iter().map(|d| d.keep).collect();
        assert_eq!(keeps, [true, true, false]);
        assert_eq!(plan.decisions[1].reasons, ["last 1 of 1"]);
        assert!(plan.decisions[0].reasons[0].contains("not counted"));
    }

    #[test]
    fn the_newest_survives_a_rule_that_would_remove_everything() {
        let items = [candidate("a", 2, 100, None), candidate("a", 1, 200, None)];
        let policy = RetentionPolicy {
            older_than: Some(crate::policy::Window::parse("1h").unwrap()),
            ..Default::default()
        };
        let plan = judge(&items, &policy);
        assert!(plan.decisions[0].keep);
        assert!(plan.decisions[0].reasons[0].starts_with("the newest good backup"));
        assert!(!plan.decisions[1].keep);
        let everything = plan_with_remove_all(&items, &policy);
        assert!(everything.decisions.iter().all(|d| !d.keep));
    }

    fn plan_with_remove_all(items: &[Candidate], policy: &RetentionPolicy) -> Plan {
        plan(
            items,
            &Rules {
                policy,
                now: "2026-11-22T12:00:00Z".parse().unwrap(),
                zone: &TimeZone::UTC,
                allow_remove_all: true,
            },
        )
    }

    #[test]
    fn parents_of_kept_items_are_kept_all_the_way_down() {
        let items = [
            candidate("a", 3, 1, Some(2)),
            candidate("a", 2, 2, Some(1)),
            candidate("a", 1, 3, None),
            candidate("a", 0, 4, None),
        ];
        let plan = judge(&items, &last(1));
        let keeps: Vec<bool> = plan.decisions.iter().map(|d| d.keep).collect();
        assert_eq!(keeps, [true, true, true, false]);
        assert_eq!(
            plan.decisions[2].reasons,
            ["parent of a_0002, which is kept"]
        );
    }

    fn arbitrary_groups() -> impl Strategy<Value = Vec<Candidate>> {
        proptest::collection::vec((0usize..3, 0i64..2000, any::<bool>(), any::<bool>()), 1..60)
            .prop_map(|specs| {
                let mut items: Vec<Candidate> = Vec::new();
                for (n, (group, hours, has_parent, failed)) in specs.into_iter().enumerate() {
                    let group = ["a", "b", "c"][group];
                    let older = items
                        .iter()
                        .filter(|c| c.group == group)
                        .map(|c| c.id.clone())
                        .next_back();
                    let mut item = candidate(group, n, hours, None);
                    item.parent = older.filter(|_| has_parent);
                    item.failed = failed.then(|| "broken".to_owned());
                    items.push(item);
                }
                items
            })
    }

    fn arbitrary_policy() -> impl Strategy<Value = RetentionPolicy> {
        (0u64..4, 0u64..4, 0u64..4).prop_map(|(last, daily, weekly)| RetentionPolicy {
            last: (last > 0).then_some(Count::Limited(last)),
            periods: [(Period::Daily, daily), (Period::Weekly, weekly)]
                .into_iter()
                .filter(|(_, n)| *n > 0)
                .map(|(p, n)| (p, Count::Limited(n)))
                .collect(),
            ..Default::default()
        })
    }

    proptest! {
        #[test]
        fn the_newest_good_item_of_every_group_and_every_kept_parent_stay(
            items in arbitrary_groups(),
            policy in arbitrary_policy(),
        ) {
            let plan = judge(&items, &policy);
            for group in ["a", "b", "c"] {
                let newest_good = items
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.group == group && c.failed.is_none())
                    .max_by(|(_, a), (_, b)| compare_dated((a.time, &a.id), (b.time, &b.id)));
                if let Some((index, _)) = newest_good {
                    prop_assert!(plan.decisions[index].keep);
                }
            }
            for (index, item) in items.iter().enumerate() {
                if !plan.decisions[index].keep {
                    continue;
                }
                if let Some(parent) = &item.parent {
                    let parent = items.iter().position(|c| &c.id == parent).unwrap();
                    prop_assert!(plan.decisions[parent].keep, "{} kept without its parent", item.id);
                }
            }
        }

        #[test]
        fn pruning_the_kept_set_again_removes_nothing(
            items in arbitrary_groups(),
            policy in arbitrary_policy(),
        ) {
            let plan = judge(&items, &policy);
            let kept: Vec<Candidate> = items
                .iter()
                .zip(&plan.decisions)
                .filter(|(_, d)| d.keep)
                .map(|(c, _)| c.clone())
                .collect();
            let again = judge(&kept, &policy);
            prop_assert!(again.decisions.iter().all(|d| d.keep));
        }
    }
}
