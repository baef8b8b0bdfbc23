// Package deploy holds whisk's deployment recipes — the Dockerfile, the
// container config (whisk.toml), the systemd units (systemd/) and the
// Kubernetes manifests (kubernetes/) — and, in its tests, the offline checks
// that keep them valid and consistent with each other and with whisk's
// config: the manifests are decoded strictly into the k8s.io/api types, the
// configs loaded with whisk's own loader, the units verified with
// systemd-analyze when it is installed. Nothing here is compiled into whisk.
// docs/deployment.md explains the recipes.
package deploy
