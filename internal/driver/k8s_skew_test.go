package driver

import (
	"context"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"

	"github.com/drover-dev/drover/internal/plan"
)

// TestKubeletSkew is the Kubernetes version skew policy for kubelets:
// never newer than kube-apiserver, at most three minor versions older
// from 1.28 on (two before).
func TestKubeletSkew(t *testing.T) {
	for _, c := range []struct {
		kubelet, apiserver string
		bad                string // part of the error; "" for none
	}{
		{"1.31.4", "v1.31.4", ""},
		{"1.28.0", "v1.31.2", ""},
		{"1.27.9", "v1.31.2", "4 minor versions older than the API server v1.31.2 (at most 3 supported)"},
		{"1.32.0", "v1.31.2", "would be newer than the API server v1.31.2"},
		{"1.25.3", "v1.27.1", ""},
		{"1.24.3", "v1.27.1", "3 minor versions older than the API server v1.27.1 (at most 2 supported)"},
		{"1.30.1", "v1.31.2-eks-7f9249a", ""},
		{"2.0.0", "v1.31.2", "differ in major version"},
		{"1.x", "v1.31.2", `kubelet version: "1.x" is not MAJOR.MINOR.PATCH`},
	} {
		err := KubeletSkew(c.kubelet, c.apiserver)
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("kubelet %s, API server %s: %v", c.kubelet, c.apiserver, err)
		case c.bad != "" && (err == nil || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("kubelet %s, API server %s: %v, want %q", c.kubelet, c.apiserver, err, c.bad)
		}
	}
}

// TestKubernetesPreflightSkew: the driver's pre-flight reads the API
// server's /version (through both backends) and refuses a kubelet
// outside the skew before anything changes.
func TestKubernetesPreflightSkew(t *testing.T) {
	for _, backend := range k8sBackends {
		t.Run(backend, func(t *testing.T) {
			c, _ := newK8sFake()
			c.Discovery().(*fakediscovery.FakeDiscovery).FakedServerVersion = &version.Info{GitVersion: "v1.30.6", Major: "1", Minor: "30"}
			d := NewKubernetesNode(k8sAPI(t, backend, c), KubernetesOptions{NodeName: "n1"})
			act := func(kubelet string) plan.Action {
				return plan.Action{KubernetesNode: &plan.KubernetesNodeAction{Drain: false, KubeletVersion: kubelet}}
			}
			ch, err := d.Preflight(context.Background(), act("1.30.6"))
			if err != nil || !strings.Contains(ch.Summary, "kubelet 1.30.6 within the supported skew of API server v1.30.6") {
				t.Fatalf("in skew: %+v %v", ch, err)
			}
			_, err = d.Preflight(context.Background(), act("1.31.0"))
			if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "node n1: kubelet 1.31.0 would be newer than the API server v1.30.6") {
				t.Fatalf("newer kubelet: %v", err)
			}
		})
	}
}
