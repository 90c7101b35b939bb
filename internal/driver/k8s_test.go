package driver

// No Kubernetes API server can run in these tests: they run the driver
// against client-go's fake clientset (an in-memory object tracker),
// directly and through the production REST client (see k8s_api_test.go).
// The fake has no eviction logic, so a reactor stands in for the API server's
// eviction subresource: it answers 429 TooManyRequests (with the API
// server's message) for pods a PodDisruptionBudget protects, as the real
// server does when the budget allows no disruption, and otherwise deletes
// the pod. Time is virtual (testing/synctest): backoff and timeouts run
// instantly.

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/drover-dev/drover/internal/plan"
)

type k8sPod struct {
	name      string
	node      string
	labels    map[string]string
	owner     string // controller kind
	mirror    bool
	emptyDir  bool
	pdbBlocks int // evictions answered 429 before the budget allows one
}

// readyStatus is a node status whose Ready condition is st, with reason.
func readyStatus(st corev1.ConditionStatus, reason string) corev1.NodeStatus {
	return corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, Reason: reason}}}
}

func k8sObjects(pods ...k8sPod) []runtime.Object {
	objs := []runtime.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: readyStatus(corev1.ConditionTrue, "")},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}, Status: readyStatus(corev1.ConditionTrue, "")},
		&policyv1.PodDisruptionBudget{
			ObjectMeta: metav1.ObjectMeta{Name: "web-pdb", Namespace: "default"},
			Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &intstr.IntOrString{IntVal: 2}, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
			Status:     policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 0, CurrentHealthy: 2, DesiredHealthy: 2},
		},
	}
	for _, p := range pods {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: "default", Labels: p.labels, UID: types.UID("uid-" + p.name)},
			Spec:       corev1.PodSpec{NodeName: p.node},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}
		if p.owner != "" {
			yes := true
			pod.OwnerReferences = []metav1.OwnerReference{{Kind: p.owner, Name: "owner", Controller: &yes}}
		}
		if p.mirror {
			pod.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "hash"}
		}
		if p.emptyDir {
			pod.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}
		objs = append(objs, pod)
	}
	return objs
}

// newK8sFake returns a fake clientset whose eviction reactor honours the
// pods' pdbBlocks, and the evictions it saw.
func newK8sFake(pods ...k8sPod) (*fake.Clientset, func() []string) {
	c := fake.NewClientset(k8sObjects(pods...)...)
	var mu sync.Mutex
	var evictions []string
	blocks := map[string]int{}
	for _, p := range pods {
		blocks[p.name] = p.pdbBlocks
	}
	c.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := action.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		mu.Lock()
		evictions = append(evictions, ev.Name)
		blocked := blocks[ev.Name] != 0
		if blocks[ev.Name] > 0 {
			blocks[ev.Name]--
		}
		mu.Unlock()
		if blocked {
			// What the API server answers when a budget allows no disruption.
			err := apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
			err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: "DisruptionBudget", Message: "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}}
			return true, nil, err
		}
		gvr := corev1.SchemeGroupVersion.WithResource("pods")
		if err := c.Tracker().Delete(gvr, ev.Namespace, ev.Name); err != nil {
			return true, nil, err
		}
		return true, nil, nil
	})
	return c, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(evictions)
	}
}

func drainAction(timeout time.Duration, deleteLocal bool) plan.Action {
	return plan.Action{Name: "drain", KubernetesNode: &plan.KubernetesNodeAction{Drain: true, Timeout: plan.Duration(timeout), DeleteLocal: deleteLocal}}
}

func TestKubernetesDrain(t *testing.T) {
	for _, backend := range k8sBackends {
		t.Run(backend, func(t *testing.T) { testKubernetesDrain(t, backend) })
	}
}

func testKubernetesDrain(t *testing.T, backend string) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c, evicted := newK8sFake(
			k8sPod{name: "web-1", node: "n1", labels: map[string]string{"app": "web"}, owner: "ReplicaSet", pdbBlocks: 3},
			k8sPod{name: "api-1", node: "n1", owner: "ReplicaSet"},
			k8sPod{name: "fluentd-x", node: "n1", owner: "DaemonSet"},
			k8sPod{name: "kube-apiserver-n1", node: "n1", mirror: true},
			k8sPod{name: "other", node: "n2", owner: "ReplicaSet"},
		)
		d := NewKubernetesNode(k8sAPI(t, backend, c), KubernetesOptions{Hostname: func() (string, error) { return "N1.example.com", nil }})
		a := drainAction(10*time.Minute, false)

		ch, err := d.Preflight(ctx, a)
		if err != nil || ch.None || len(ch.Items) != 3 {
			t.Fatalf("preflight %+v %v", ch, err)
		}
		snap, err := d.Snapshot(ctx, a)
		if err != nil || string(snap.Data) != `{"node":"n1","unschedulable":false}` {
			t.Fatalf("snapshot %s %v", snap.Data, err)
		}
		start := time.Now()
		out, err := d.Apply(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		// web-1 was refused three times: waits of 1s, 2s and 4s.
		if waited := time.Since(start); waited != 7*time.Second {
			t.Fatalf("waited %s", waited)
		}
		if !strings.Contains(out.Summary, "2 pods evicted; left: default/fluentd-x (DaemonSet), default/kube-apiserver-n1 (mirror pod)") {
			t.Fatalf("summary %q", out.Summary)
		}
		if got := evicted(); !slices.Equal(got, []string{"api-1", "web-1", "web-1", "web-1", "web-1"}) {
			t.Fatalf("evictions %q", got)
		}
		if err := d.Verify(ctx, a); err != nil {
			t.Fatal(err)
		}
		// Idempotent: a second Apply finds nothing to do.
		out, err = d.Apply(ctx, a)
		if err != nil || len(out.Changed) != 0 {
			t.Fatalf("second apply %+v %v", out, err)
		}
		// Uncordon after the node's other actions, twice.
		for i := range 2 {
			out, err = d.Uncordon(ctx, a, snap)
			if err != nil || (i == 0) != (len(out.Changed) == 1) {
				t.Fatalf("uncordon %d: %+v %v", i, out, err)
			}
		}
		n, _ := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if n.Spec.Unschedulable {
			t.Fatal("still cordoned")
		}
	})
}

func TestKubernetesDrainBlockedByPDB(t *testing.T) {
	for _, backend := range k8sBackends {
		t.Run(backend, func(t *testing.T) { testKubernetesDrainBlockedByPDB(t, backend) })
	}
}

func testKubernetesDrainBlockedByPDB(t *testing.T, backend string) {
	synctest.Test(t, func(t *testing.T) {
		c, _ := newK8sFake(k8sPod{name: "web-1", node: "n1", labels: map[string]string{"app": "web"}, owner: "ReplicaSet", pdbBlocks: -1})
		d := NewKubernetesNode(k8sAPI(t, backend, c), KubernetesOptions{NodeName: "n1"})
		start := time.Now()
		_, err := d.Apply(context.Background(), drainAction(2*time.Minute, false))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v", err)
		}
		for _, want := range []string{"drain n1: timed out after 2m", "pod default/web-1 is protected by PodDisruptionBudget default/web-pdb (0 disruptions allowed, 2 of 2 desired healthy)", "violate the pod's disruption budget"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		}
		if took := time.Since(start); took != 2*time.Minute {
			t.Fatalf("took %s", took)
		}
	})
}

func TestKubernetesEmptyDir(t *testing.T) {
	for _, backend := range k8sBackends {
		t.Run(backend, func(t *testing.T) { testKubernetesEmptyDir(t, backend) })
	}
}

func testKubernetesEmptyDir(t *testing.T, backend string) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c, _ := newK8sFake(k8sPod{name: "cache-1", node: "n1", owner: "ReplicaSet", emptyDir: true})
		d := NewKubernetesNode(k8sAPI(t, backend, c), KubernetesOptions{NodeName: "n1"})
		want := "pods with emptyDir data would lose it: default/cache-1 (set deleteEmptyDirData: true to allow)"
		if _, err := d.Preflight(ctx, drainAction(time.Minute, false)); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("preflight %v", err)
		}
		if _, err := d.Apply(ctx, drainAction(time.Minute, false)); err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("apply %v", err)
		}
		if _, err := d.Apply(ctx, drainAction(time.Minute, true)); err != nil {
			t.Fatal(err)
		}
	})
}

func TestKubernetesKeepsOperatorCordon(t *testing.T) {
	for _, backend := range k8sBackends {
		t.Run(backend, func(t *testing.T) { testKubernetesKeepsOperatorCordon(t, backend) })
	}
}

func testKubernetesKeepsOperatorCordon(t *testing.T, backend string) {
	ctx := context.Background()
	c, _ := newK8sFake()
	api := k8sAPI(t, backend, c)
	d := NewKubernetesNode(api, KubernetesOptions{NodeName: "n2"})
	a := plan.Action{KubernetesNode: &plan.KubernetesNodeAction{}}
	if _, err := d.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	snap, err := d.Snapshot(ctx, a) // taken when already cordoned
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Rollback(ctx, a, snap)
	if err != nil || !strings.Contains(out.Summary, "left cordoned") {
		t.Fatalf("%+v %v", out, err)
	}
	if _, err := d.Rollback(ctx, a, Snapshot{Driver: "apt", Data: []byte("{}")}); err == nil {
		t.Fatal("foreign snapshot accepted")
	}
	if _, err := NewKubernetesNode(api, KubernetesOptions{NodeName: "nope"}).Apply(ctx, a); err == nil || !strings.Contains(err.Error(), `cordon nope`) {
		t.Fatalf("missing node: %v", err)
	}
	if _, err := d.Apply(ctx, plan.Action{}); !errors.Is(err, ErrUnsupported) {
		t.Fatalf("got %v", err)
	}
}

// TestKubernetesUncordonWaitsForReady: the node is uncordoned only once
// it reports Ready again; one that stays NotReady past the action's
// timeout is left cordoned and Uncordon fails with ErrNotReady.
func TestKubernetesUncordonWaitsForReady(t *testing.T) {
	for _, backend := range k8sBackends {
		t.Run(backend, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testKubernetesUncordonWaitsForReady(t, backend) })
		})
	}
}

func testKubernetesUncordonWaitsForReady(t *testing.T, backend string) {
	ctx := t.Context()
	c, _ := newK8sFake()
	d := NewKubernetesNode(k8sAPI(t, backend, c), KubernetesOptions{NodeName: "n1"})
	a := plan.Action{KubernetesNode: &plan.KubernetesNodeAction{Timeout: plan.Duration(3 * time.Minute)}}
	snap, err := d.Snapshot(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	setReady := func(st corev1.ConditionStatus, reason string) {
		n, err := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n.Status = readyStatus(st, reason)
		if _, err := c.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cordoned := func() bool {
		n, err := c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Spec.Unschedulable
	}

	// The kubelet restarts: NotReady for a minute, then Ready.
	setReady(corev1.ConditionFalse, "KubeletNotReady")
	start := time.Now()
	go func() {
		time.Sleep(time.Minute)
		if !cordoned() {
			t.Error("uncordoned while NotReady")
		}
		setReady(corev1.ConditionTrue, "KubeletReady")
	}()
	out, err := d.Uncordon(ctx, a, snap)
	if err != nil || !strings.Contains(out.Summary, "uncordoned node n1") {
		t.Fatalf("Uncordon: %+v %v", out, err)
	}
	if took := time.Since(start); took < time.Minute || took > time.Minute+5*time.Second {
		t.Errorf("uncordoned after %s, want once Ready, after 1m", took)
	}
	if cordoned() {
		t.Fatal("still cordoned")
	}

	// A node that never comes back: the rollback's uncordon waits for
	// the timeout and leaves it cordoned.
	if _, err := d.Apply(ctx, a); err != nil {
		t.Fatal(err)
	}
	setReady(corev1.ConditionUnknown, "NodeStatusUnknown")
	start = time.Now()
	_, err = d.Rollback(ctx, a, snap)
	if !errors.Is(err, ErrNotReady) || !strings.Contains(err.Error(), "node n1 did not report Ready within 3m (Ready Unknown: NodeStatusUnknown); left cordoned") {
		t.Fatalf("Rollback of a node never Ready: %v", err)
	}
	if took := time.Since(start); took < 3*time.Minute || took > 3*time.Minute+5*time.Second {
		t.Errorf("gave up after %s, want the 3m timeout", took)
	}
	if !cordoned() {
		t.Fatal("uncordoned although never Ready")
	}
}
