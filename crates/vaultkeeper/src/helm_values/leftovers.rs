//! Values with a known reason not to be carried, and the chart's other components.

use super::{Mode, Reader, Why, enabled_or_global, is_true, truthy};

/// The chart's other components: named when they would run, ignored when off.
pub(super) fn components(r: &mut Reader, global: bool) {
    let injector = enabled_or_global(r.peek("injector.enabled"), global);
    r.consume("injector");
    if injector {
        r.left(
            "injector.enabled",
            Why::NotUnderOperator,
            "the Agent Injector (vault-k8s) is a separate component, on by default in the \
             chart; vaultkeeper does not run it: install it on its own, pointed at this \
             cluster, or set injector.enabled: false",
        );
    }
    let csi = enabled_or_global(r.peek("csi.enabled"), global);
    r.consume("csi");
    if csi {
        r.left(
            "csi.enabled",
            Why::NotUnderOperator,
            "the CSI provider is a separate component; vaultkeeper does not run it: install \
             it on its own",
        );
    }
    if is_true(r.peek("global.psp.enable")) {
        r.left(
            "global.psp.enable",
            Why::NotUnderOperator,
            "PodSecurityPolicy was removed in Kubernetes 1.25",
        );
    }
    r.consume("global.psp");
    // Only the injector and the CSI provider read it.
    r.consume("global.serverTelemetry");
    for (base, detail) in [
        ("server.route", "OpenShift Routes are not rendered yet"),
        (
            "server.httproute",
            "Gateway API routes are not rendered yet",
        ),
        (
            "server.serviceCA",
            "OpenShift service-CA certificates are not supported yet",
        ),
    ] {
        let enabled = format!("{base}.enabled");
        if is_true(r.peek(&enabled)) {
            r.left(enabled, Why::NoField, detail);
        }
        r.consume(base);
    }
}

/// Settings with a known reason that are not dealt with elsewhere.
pub(super) fn not_carried(r: &mut Reader, mode: Mode) {
    let ha = matches!(mode, Mode::Ha { .. });
    let gated: &[(&str, bool, Why, &str)] = &[
        (
            "server.ha.apiAddr",
            ha,
            Why::NotUnderOperator,
            "vaultkeeper sets each pod's API address (a name its certificate carries)",
        ),
        (
            "server.ha.clusterAddr",
            ha,
            Why::NotUnderOperator,
            "vaultkeeper sets each pod's cluster address",
        ),
        (
            "server.ha.raft.redundancyZones.enabled",
            ha,
            Why::NoField,
            "no redundancy zone setting",
        ),
    ];
    for (path, applies, why, detail) in gated {
        if *applies {
            r.left_if_changed(path, *why, detail);
        } else {
            r.consume(path);
        }
    }
    if truthy(r.peek("server.enterpriseLicense.secretName"))
        && truthy(r.peek("server.enterpriseLicense.secretKey"))
    {
        r.left(
            "server.enterpriseLicense.secretName",
            Why::NoField,
            "no license Secret mount; VAULT_LICENSE may be given in spec.pod.env from a Secret",
        );
    }
    r.consume("server.enterpriseLicense");
}

/// The setting a value no conversion step claimed belongs to, and why it is not carried.
pub(super) fn generic_reason(path: &str, known: bool) -> (String, Why, &'static str) {
    const TABLE: &[(&str, Why, &str)] = &[
        (
            "global.openshift",
            Why::NoField,
            "OpenShift Routes and service CA are not rendered yet",
        ),
        (
            "server.route",
            Why::NoField,
            "OpenShift Routes are not rendered yet",
        ),
        (
            "server.serviceCA",
            Why::NoField,
            "OpenShift service-CA certificates are not supported yet",
        ),
        (
            "server.httproute",
            Why::NoField,
            "Gateway API routes are not rendered yet",
        ),
        (
            "server.updateStrategyType",
            Why::NotUnderOperator,
            "vaultkeeper rolls the pods itself (OnDelete), standbys first, the active node last",
        ),
        (
            "server.includeConfigAnnotation",
            Why::NotUnderOperator,
            "vaultkeeper always annotates the pods with the configuration's hash",
        ),
        (
            "server.authDelegator",
            Why::NotUnderOperator,
            "the auth-delegator binding is always rendered: Kubernetes auth needs it",
        ),
        (
            "server.serviceAccount.serviceDiscovery",
            Why::NotUnderOperator,
            "service registration is always on: the active/standby Services select by its labels",
        ),
        (
            "server.serviceAccount.create",
            Why::NoField,
            "VaultCluster always creates the <name> ServiceAccount",
        ),
        (
            "server.serviceAccount.name",
            Why::NoField,
            "VaultCluster always creates the <name> ServiceAccount",
        ),
        (
            "server.serviceAccount.createSecret",
            Why::NoField,
            "no long-lived ServiceAccount token Secret",
        ),
        (
            "server.serviceAccount.extraLabels",
            Why::NoField,
            "no ServiceAccount labels",
        ),
        (
            "server.extraInitContainers",
            Why::NoField,
            "no extra init containers",
        ),
        (
            "server.extraContainers",
            Why::NoField,
            "no extra containers",
        ),
        (
            "server.shareProcessNamespace",
            Why::NoField,
            "no shareProcessNamespace",
        ),
        ("server.hostNetwork", Why::NoField, "no host network"),
        ("server.preStop", Why::NoField, "no preStop command"),
        ("server.postStart", Why::NoField, "no postStart command"),
        ("server.volumes", Why::NoField, "no extra volumes"),
        (
            "server.volumeMounts",
            Why::NoField,
            "no extra volume mounts",
        ),
        (
            "server.persistentVolumeClaimRetentionPolicy",
            Why::NotUnderOperator,
            "set by vaultkeeper: volumes of scaled-away pods are deleted (they left raft), \
          spec.deletionPolicy decides on deletion",
        ),
    ];
    TABLE
        .iter()
        .find(|(prefix, _, _)| path == *prefix || path.starts_with(&format!("{prefix}.")))
        .map(|(prefix, why, detail)| ((*prefix).to_owned(), *why, *detail))
        .unwrap_or_else(|| {
            let detail = if known {
                "VaultCluster has no field for this chart setting"
            } else {
                "not a setting of the Vault chart (a misspelling?): the chart ignores it too"
            };
            (path.to_owned(), Why::NoField, detail)
        })
}
