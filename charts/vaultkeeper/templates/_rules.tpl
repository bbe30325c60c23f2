{{/*
Generated from deploy/rbac/clusterrole.yaml, cluster-scope-clusterrole.yaml,
vault-server-clusterrole.yaml and leader-election-role.yaml by tests/tests/install.rs;
do not edit. Change those files, then run
  VAULTKEEPER_REGENERATE=1 cargo test -p vaultkeeper-e2e --test install
Why each rule exists: the comments in those files and docs/install.md.
*/}}

{{/* Rules on namespaced resources: lent per watched namespace, or everywhere with clusterWide. */}}
{{- define "vaultkeeper.namespacedRules" -}}
- apiGroups: ["vaultkeeper.io"]
  resources: ["vaultclusters"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["vaultkeeper.io"]
  resources: ["vaultclusters/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["vaultkeeper.io"]
  resources: ["vaultclusters/finalizers"]
  verbs: ["update"]
- apiGroups: ["vaultkeeper.io"]
  resources: ["vaultpolicies"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["vaultkeeper.io"]
  resources: ["vaultpolicies/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["vaultkeeper.io"]
  resources: ["vaultpolicies/finalizers"]
  verbs: ["update"]
- apiGroups: ["vaultkeeper.io"]
  resources: ["vaultrestores"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["vaultkeeper.io"]
  resources: ["vaultrestores/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["services", "configmaps", "serviceaccounts"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: [""]
  resources: ["pods/exec"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["get", "list", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["monitoring.coreos.com"]
  resources: ["servicemonitors", "prometheusrules"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- end -}}

{{/* Rules on cluster-scoped resources: always bound cluster-wide. */}}
{{- define "vaultkeeper.clusterRules" -}}
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["clusterrolebindings"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["clusterroles"]
  verbs: ["bind"]
  resourceNames: ["system:auth-delegator", "{{ include "vaultkeeper.fullname" . }}-vault-server"]
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* Vault's service registration: bound by the operator, not held by it. */}}
{{- define "vaultkeeper.vaultServerRules" -}}
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "watch", "list", "update", "patch"]
{{- end -}}

{{/* Leader election, in the release namespace only. */}}
{{- define "vaultkeeper.leaderElectionRules" -}}
- apiGroups: ["coordination.k8s.io"]
  resources: ["leases"]
  verbs: ["get", "create", "update"]
{{- end -}}
