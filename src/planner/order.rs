//! The order of a plan's changes: what each waits for, and a stable order that respects it.
//!
//! A change is one step, but a replacement is two: its delete and its create. So the order
//! is computed over steps:
//! - the create or update of a resource waits for the creates and updates of what it
//!   depends on (for a replaced dependency: its create), and a replacement's create waits
//!   for its own delete;
//! - the delete of a resource that leaves waits for every change of what depends on it
//!   (dependents let go of it first);
//! - a replacement's delete waits for the deletes of what depends on it and is deleted or
//!   replaced too (a workload goes before its claim, a claim before its volume).
//!
//! Dependencies are those of the desired resources and, for what is leaving, those
//! recorded in state.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Change};
use crate::model::{Address, Desired};
use crate::state::State;

/// One half of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// Deleting: a delete, or the first half of a replacement.
    Destroy,
    /// Everything else: a create, update, adoption, the second half of a replacement, or a
    /// change without an API call.
    Upsert,
}

/// The steps of a change.
pub fn steps(action: Action) -> &'static [Step] {
    match action {
        Action::Replace => &[Step::Destroy, Step::Upsert],
        Action::Delete => &[Step::Destroy],
        _ => &[Step::Upsert],
    }
}

/// What a step of change `index` waits for, as (change index, step) pairs.
pub fn waits(changes: &[Change], index: usize, step: Step) -> Vec<(usize, Step)> {
    let position: BTreeMap<&Address, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (&c.address, i))
        .collect();
    let change = &changes[index];
    let last = |i: usize| -> Step {
        // The step that finishes a change.
        *steps(changes[i].action).last().unwrap_or(&Step::Upsert)
    };
    let mut waits = Vec::new();
    match (change.action, step) {
        (Action::Replace, Step::Upsert) => {
            waits.push((index, Step::Destroy));
            waits.extend(
                change
                    .after
                    .iter()
                    .filter_map(|a| position.get(a))
                    .map(|&i| (i, Step::Upsert)),
            );
        }
        (Action::Replace, Step::Destroy) => waits.extend(
            change
                .destroy_after
                .iter()
                .filter_map(|a| position.get(a))
                .map(|&i| (i, Step::Destroy)),
        ),
        (Action::Delete, _) => waits.extend(
            change
                .after
                .iter()
                .filter_map(|a| position.get(a))
                .map(|&i| (i, last(i))),
        ),
        _ => waits.extend(
            change
                .after
                .iter()
                .filter_map(|a| position.get(a))
                .map(|&i| (i, Step::Upsert)),
        ),
    }
    waits
}

/// Fills in `after` and `destroy_after` and sorts the changes into an order that respects
/// them. A cycle is returned as the addresses on it, in order.
pub fn order(
    changes: &mut Vec<Change>,
    desired: &Desired,
    state: &State,
) -> Result<(), Vec<Address>> {
    let dependencies = |address: &Address| -> BTreeSet<Address> {
        let mut all = BTreeSet::new();
        if let Some(resource) = desired.get(address) {
            all.extend(resource.depends_on.iter().cloned());
        }
        if let Some(entry) = state.resources.get(address) {
            all.extend(entry.depends_on.iter().cloned());
        }
        all
    };
    let actions: BTreeMap<Address, Action> = changes
        .iter()
        .map(|c| (c.address.clone(), c.action))
        .collect();
    for change in changes.iter_mut() {
        let dependents = || {
            actions
                .iter()
                .filter(|(other, _)| **other != change.address)
                .filter(|(other, _)| dependencies(other).contains(&change.address))
        };
        change.after = match change.action {
            action if action.is_upsert() => dependencies(&change.address)
                .into_iter()
                .filter(|d| actions.get(d).is_some_and(|a| a.is_upsert()))
                .collect(),
            Action::Delete => dependents()
                .filter(|(_, action)| !matches!(action, Action::Keep | Action::Forget))
                .map(|(other, _)| other.clone())
                .collect(),
            _ => Vec::new(),
        };
        change.destroy_after = match change.action {
            Action::Replace => dependents()
                .filter(|(_, action)| matches!(action, Action::Delete | Action::Replace))
                .map(|(other, _)| other.clone())
                .collect(),
            _ => Vec::new(),
        };
    }
    // A stable topological order of the steps; a change goes where its first step does.
    let all: Vec<(usize, Step)> = changes
        .iter()
        .enumerate()
        .flat_map(|(i, c)| steps(c.action).iter().map(move |s| (i, *s)))
        .collect();
    let requirements: BTreeMap<(usize, Step), Vec<(usize, Step)>> = all
        .iter()
        .map(|&(i, step)| ((i, step), waits(changes, i, step)))
        .collect();
    let mut done: BTreeSet<(usize, Step)> = BTreeSet::new();
    let mut sequence: Vec<usize> = Vec::new();
    while done.len() < all.len() {
        let ready = all.iter().find(|node| {
            !done.contains(node) && requirements[node].iter().all(|w| done.contains(w))
        });
        let Some(&node) = ready else {
            let remaining: Vec<(usize, Step)> =
                all.iter().filter(|n| !done.contains(n)).copied().collect();
            return Err(cycle(&remaining, &requirements)
                .into_iter()
                .map(|i| changes[i].address.clone())
                .collect());
        };
        done.insert(node);
        if !sequence.contains(&node.0) {
            sequence.push(node.0);
        }
    }
    let mut taken: Vec<Option<Change>> = std::mem::take(changes).into_iter().map(Some).collect();
    *changes = sequence
        .into_iter()
        .filter_map(|i| taken.get_mut(i).and_then(Option::take))
        .collect();
    Ok(())
}

/// A cycle among the steps that could not be placed: the changes on it, in order.
fn cycle(
    remaining: &[(usize, Step)],
    requirements: &BTreeMap<(usize, Step), Vec<(usize, Step)>>,
) -> Vec<usize> {
    // Walk from any remaining step along unmet requirements until a step repeats.
    let mut path: Vec<(usize, Step)> = Vec::new();
    let Some(mut current) = remaining.first().copied() else {
        return Vec::new();
    };
    loop {
        if let Some(start) = path.iter().position(|n| *n == current) {
            let mut changes: Vec<usize> = Vec::new();
            for (i, _) in &path[start..] {
                if changes.last() != Some(i) {
                    changes.push(*i);
                }
            }
            if changes.len() > 1 && changes.first() == changes.last() {
                changes.pop();
            }
            return changes;
        }
        path.push(current);
        let next = requirements
            .get(&current)
            .and_then(|waits| waits.iter().find(|w| remaining.contains(w)));
        match next {
            Some(next) => current = *next,
            None => return path.iter().map(|(i, _)| *i).collect(),
        }
    }
}
