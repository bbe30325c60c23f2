//! Who created an object, as its controller reference says. Labels are no proof: anyone
//! who may create a Job or a pod in a namespace can copy ours. Where the operator trusts
//! what an object reports (a Job's outcome, a pod's log), it first checks that the object
//! was created by the owner it observed itself, by kind, name and UID.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// An owner as a controller reference names it: kind, name and UID. A name alone is not
/// enough: a deleted and re-created object of the same name is another owner.
#[derive(Clone, Debug, PartialEq)]
pub struct Controller {
    kind: &'static str,
    name: String,
    uid: String,
}

impl Controller {
    /// The object `meta` describes, as the controller of what it creates; `None` when the
    /// object has no name or UID yet.
    pub fn of(kind: &'static str, meta: &ObjectMeta) -> Option<Controller> {
        Some(Controller {
            kind,
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
        })
    }

    /// Whether `meta`'s controller reference is this owner: same kind, name and UID, and
    /// marked as the controller (an owner reference without `controller: true` is only a
    /// garbage-collection link anyone may add).
    pub fn controls(&self, meta: &ObjectMeta) -> bool {
        meta.owner_references.iter().flatten().any(|r| {
            r.controller == Some(true)
                && r.kind == self.kind
                && r.name == self.name
                && r.uid == self.uid
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_observed_owner_as_controller_counts() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let cronjob = ObjectMeta {
            name: Some("prod-backup".into()),
            uid: Some("uid-1".into()),
            ..ObjectMeta::default()
        };
        let owner = Controller::of("CronJob", &cronjob).expect("named, with a UID");
        let reference =
            |kind: &str, name: &str, uid: &str, controller: Option<bool>| OwnerReference {
                api_version: "batch/v1".into(),
                kind: kind.into(),
                name: name.into(),
                uid: uid.into(),
                controller,
                ..OwnerReference::default()
            };
        let job = |references: Vec<OwnerReference>| ObjectMeta {
            name: Some("prod-backup-29000000".into()),
            owner_references: Some(references),
            ..ObjectMeta::default()
        };
        let cases = [
            (
                "created by our CronJob",
                vec![reference("CronJob", "prod-backup", "uid-1", Some(true))],
                true,
            ),
            ("no owner: labels only", vec![], false),
            (
                "a re-created CronJob of the same name",
                vec![reference("CronJob", "prod-backup", "uid-0", Some(true))],
                false,
            ),
            (
                "another CronJob",
                vec![reference("CronJob", "other-backup", "uid-1", Some(true))],
                false,
            ),
            (
                "another kind with our name and UID",
                vec![reference("Deployment", "prod-backup", "uid-1", Some(true))],
                false,
            ),
            (
                "an owner reference that is not the controller",
                vec![reference("CronJob", "prod-backup", "uid-1", None)],
                false,
            ),
            (
                "our CronJob among other owners",
                vec![
                    reference("ConfigMap", "x", "uid-9", None),
                    reference("CronJob", "prod-backup", "uid-1", Some(true)),
                ],
                true,
            ),
        ];
        for (what, references, counts) in cases {
            assert_eq!(owner.controls(&job(references)), counts, "{what}");
        }
        let unsaved = ObjectMeta {
            name: Some("prod-backup".into()),
            ..ObjectMeta::default()
        };
        assert_eq!(
            Controller::of("CronJob", &unsaved),
            None,
            "no UID, no owner"
        );
    }
}
