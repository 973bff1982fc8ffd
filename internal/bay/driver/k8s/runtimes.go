package k8s

import (
	"context"
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Runtimes lists the cluster's RuntimeClasses (node.k8s.io/v1), sorted: on
// Kubernetes a profile's runtime is the name of one, put on the pod as its
// runtimeClassName. RuntimeClasses are cluster-scoped: listing them takes a
// ClusterRole (deploy/k8s/rbac.yaml).
func (d *Driver) Runtimes(ctx context.Context) ([]string, error) {
	list, err := d.kc.RuntimeClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, wrap("list runtime classes", "", err)
	}
	out := make([]string, 0, len(list.Items))
	for _, rc := range list.Items {
		if rc.DeletionTimestamp == nil {
			out = append(out, rc.Name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// MissingRuntime explains, in the cluster's terms, why a profile whose
// runtime is not among Runtimes cannot start.
func (d *Driver) MissingRuntime(profile, runtime string, have []string) string {
	return fmt.Sprintf("profile %s cannot start: its runtime %q is not a RuntimeClass of the cluster (it has %v); "+
		"create the RuntimeClass, with its handler installed on the nodes (e.g. runsc for gVisor), or remove the profile",
		profile, runtime, have)
}
