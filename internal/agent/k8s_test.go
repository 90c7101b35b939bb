package agent

// These tests run the agent with the real Kubernetes node driver
// (driver.KubernetesNode) against client-go's fake clientset: an
// in-memory object tracker, because no Kubernetes API server can run
// here. A reactor stands in for the API server's eviction subresource
// (it deletes the pod). The node's other actions go to the simulated
// node, as in the other agent tests; time is virtual (testing/synctest).

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/drover-dev/drover/internal/api"
	"github.com/drover-dev/drover/internal/driver"
	"github.com/drover-dev/drover/internal/engine"
	"github.com/drover-dev/drover/internal/plan"
)

// k8sNode is a test node that is also Kubernetes node n1 of a fake
// cluster: kubernetes-node actions go to the real driver, the rest to the
// simulated node, through watched, which lets a test look at the cluster
// while an action runs.
type k8sNode struct {
	*testNode
	c       *fake.Clientset
	watched *watchedDriver
	reg     *driver.Registry
}

func newK8sNode(t *testing.T, cordoned bool) *k8sNode {
	n := newTestNode(t)
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Spec: corev1.NodeSpec{Unschedulable: cordoned}, Status: nodeReady(corev1.ConditionTrue)}
	yes := true
	pod := func(name, node, owner string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name),
				OwnerReferences: []metav1.OwnerReference{{Kind: owner, Name: "owner", Controller: &yes}}},
			Spec:   corev1.PodSpec{NodeName: node},
			Status: corev1.PodStatus{Phase: corev1.PodRunning},
		}
	}
	c := fake.NewClientset(node, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2"}},
		pod("web-1", "n1", "ReplicaSet"), pod("fluentd-n1", "n1", "DaemonSet"), pod("web-2", "n2", "ReplicaSet"))
	c.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if action.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		ev := action.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction)
		return true, nil, c.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), ev.Namespace, ev.Name)
	})
	kn := &k8sNode{testNode: n, c: c, watched: &watchedDriver{Driver: driver.NewSim(n.state)}, reg: &driver.Registry{}}
	kn.reg.Register(plan.ActionKubernetesNode, driver.NewKubernetesNode(clientsetAPI{c}, driver.KubernetesOptions{NodeName: "n1"}))
	for _, k := range []plan.ActionKind{plan.ActionPackage, plan.ActionKernel} {
		kn.reg.Register(k, kn.watched)
	}
	return kn
}

// nodeReady is a node status whose Ready condition is st.
func nodeReady(st corev1.ConditionStatus) corev1.NodeStatus {
	return corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st, Reason: "KubeletReady"}}}
}

// setReady sets n1's Ready condition.
func (n *k8sNode) setReady(t *testing.T, st corev1.ConditionStatus) {
	t.Helper()
	node, err := n.c.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	node.Status = nodeReady(st)
	if st != corev1.ConditionTrue {
		node.Status.Conditions[0].Reason = "KubeletNotReady"
	}
	if _, err := n.c.CoreV1().Nodes().UpdateStatus(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (n *k8sNode) config(t *testing.T, srv *fakeServer) Config {
	cfg := n.testNode.config(t, srv)
	cfg.Drivers = n.reg
	cfg.Runner = probeRunner{n}
	return cfg
}

// cordoned reports whether node n1 is unschedulable.
func (n *k8sNode) cordoned(t *testing.T) bool {
	t.Helper()
	node, err := n.c.CoreV1().Nodes().Get(context.Background(), "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return node.Spec.Unschedulable
}

// pods lists the pods left on n1.
func (n *k8sNode) pods(t *testing.T) []string {
	t.Helper()
	l, err := n.c.CoreV1().Pods("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range l.Items {
		if p.Spec.NodeName == "n1" {
			names = append(names, p.Name)
		}
	}
	return names
}

// patches counts the cordon and uncordon patches the cluster received.
func (n *k8sNode) patches() (cordon, uncordon int) {
	for _, a := range n.c.Actions() {
		if p, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource == "nodes" {
			switch string(p.GetPatch()) {
			case `{"spec":{"unschedulable":true}}`:
				cordon++
			case `{"spec":{"unschedulable":false}}`:
				uncordon++
			}
		}
	}
	return cordon, uncordon
}

// probeRunner answers the probe command "node-in-service": exit 0 when n1
// is schedulable, 1 when cordoned; the rest goes to the test node.
type probeRunner struct{ n *k8sNode }

func (r probeRunner) Run(ctx context.Context, env []string, name string, args ...string) ([]byte, []byte, error) {
	if name != "node-in-service" {
		return r.n.testNode.Run(ctx, env, name, args...)
	}
	node, err := r.n.c.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil || node.Spec.Unschedulable {
		return nil, []byte("node n1 cordoned"), &driver.ExitError{Code: 1, Stderr: "node n1 cordoned"}
	}
	return []byte("ok"), nil, nil
}

// watchedDriver calls its hooks before Apply and Rollback.
type watchedDriver struct {
	driver.Driver
	onApply, onRollback func(plan.Action) error
}

func (w *watchedDriver) Apply(ctx context.Context, a plan.Action) (driver.Outcome, error) {
	if w.onApply != nil {
		if err := w.onApply(a); err != nil {
			return driver.Outcome{}, err
		}
	}
	return w.Driver.Apply(ctx, a)
}

func (w *watchedDriver) Rollback(ctx context.Context, a plan.Action, s driver.Snapshot) (driver.Outcome, error) {
	if w.onRollback != nil {
		if err := w.onRollback(a); err != nil {
			return driver.Outcome{}, err
		}
	}
	return w.Driver.Rollback(ctx, a, s)
}

// VerifyRollback keeps the simulated driver's check of a restore.
func (w *watchedDriver) VerifyRollback(ctx context.Context, a plan.Action, s driver.Snapshot) error {
	return w.Driver.(rollbackVerifier).VerifyRollback(ctx, a, s)
}

// clientsetAPI is driver.KubernetesAPI over a clientset.
type clientsetAPI struct{ c kubernetes.Interface }

func (a clientsetAPI) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	return a.c.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
}

func (a clientsetAPI) PatchNode(ctx context.Context, name string, pt types.PatchType, data []byte) error {
	_, err := a.c.CoreV1().Nodes().Patch(ctx, name, pt, data, metav1.PatchOptions{})
	return err
}

func (a clientsetAPI) ListPods(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	return a.c.CoreV1().Pods(metav1.NamespaceAll).List(ctx, opts)
}

func (a clientsetAPI) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	return a.c.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (a clientsetAPI) EvictPod(ctx context.Context, e *policyv1.Eviction) error {
	return a.c.PolicyV1().Evictions(e.Namespace).Evict(ctx, e)
}

func (a clientsetAPI) ListPodDisruptionBudgets(ctx context.Context, namespace string) (*policyv1.PodDisruptionBudgetList, error) {
	return a.c.PolicyV1().PodDisruptionBudgets(namespace).List(ctx, metav1.ListOptions{})
}

func (a clientsetAPI) ServerVersion(context.Context) (string, error) {
	v, err := a.c.Discovery().ServerVersion()
	if err != nil {
		return "", err
	}
	return v.GitVersion, nil
}

var drain = plan.Action{Name: "drain", KubernetesNode: &plan.KubernetesNodeAction{Drain: true, Timeout: plan.Duration(5 * time.Minute)}}

// k8sStep is an apply step: drain, then acts, then probe that the node
// is in service.
func k8sStep(attempt int, reboot plan.RebootPolicy, acts ...plan.Action) api.StepPayload {
	p := applyStep(attempt, append([]plan.Action{drain}, acts...)...)
	p.Reboot = reboot
	p.Probes = []plan.Probe{{Kind: plan.ProbeCommand, Command: []string{"node-in-service"}, Interval: plan.Duration(10 * time.Second)}}
	return p
}

// finalOf returns the final report of step id (reports of other steps,
// such as a result sent again after a restart, are skipped).
func finalOf(t *testing.T, srv *fakeServer, id string) api.StepReport {
	t.Helper()
	for {
		if r := srv.next(t); r.StepID == id && isFinal(r) {
			return r
		}
	}
}

// TestKubernetesNodeUncordonedAfterStep: the node is cordoned and drained
// while the package changes, uncordoned after, before the probes (which
// pass at once); handing the step out again and restarting the agent
// change nothing.
func TestKubernetesNodeUncordonedAfterStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newK8sNode(t, false)
		var duringApply []string
		n.watched.onApply = func(plan.Action) error {
			duringApply = append(duringApply, "cordoned="+boolStr(n.cordoned(t)), "pods="+strings.Join(n.pods(t), ","))
			return nil
		}
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		step := k8sStep(1, plan.RebootNever, pkg("openssl", "3.0.15-1~deb12u1"))
		srv.dispatch(step)
		var all []api.StepReport
		for len(all) < 3 {
			all = append(all, srv.next(t))
		}
		if got, want := phases(all), "running verifying/pass verifying/pass"; got != want {
			t.Fatalf("reports %q, want %q (%s)", got, want, all[len(all)-1].Reason)
		}
		if got := strings.Join(duringApply, " "); got != "cordoned=true pods=fluentd-n1" {
			t.Errorf("during the package's apply: %s; want cordoned and drained (DaemonSet pod left)", got)
		}
		if !all[1].HealthySince.Equal(all[1].At) {
			t.Errorf("probes passed at %v, reported at %v: want healthy at the first round, right after the uncordon", all[1].HealthySince, all[1].At)
		}
		if n.cordoned(t) {
			t.Fatal("node n1 still cordoned after a successful step")
		}
		if c, u := n.patches(); c != 1 || u != 1 {
			t.Errorf("%d cordon and %d uncordon patches, want 1 and 1", c, u)
		}
		st, _ := readJournalOf(t, n).step(step.ID)
		if as := st.Actions[0]; as == nil || !as.Uncordoned || as.Uncordon == nil || !strings.Contains(as.Uncordon.Summary, "uncordoned node n1") {
			t.Errorf("journal: uncordon of the drain action not recorded: %+v", as)
		}
		actions, _ := all[2].Evidence["actions"].([]any)
		if len(actions) == 0 || actions[0].(map[string]any)["uncordon"] == nil {
			t.Errorf("evidence lacks the uncordon: %v", all[2].Evidence)
		}

		// Repeated runs: handed out again, then after a restart.
		srv.dispatch(step)
		if again, _ := srv.final(t); again.Phase != all[2].Phase || !again.At.Equal(all[2].At) {
			t.Errorf("handed out again: %s at %v", again.Phase, again.At)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		stop, _ = start(t, n.config(t, srv))
		defer stop()
		srv.dispatch(step)
		srv.final(t)
		if c, u := n.patches(); c != 1 || u != 1 || n.cordoned(t) || n.state.Applies() != 1 {
			t.Errorf("after repeats: %d cordon, %d uncordon patches, cordoned %v, %d applies; want 1, 1, false, 1", c, u, n.cordoned(t), n.state.Applies())
		}
	})
}

// waitStopped waits for the agent to stop (crash or reboot), failing the
// test after an hour of (bubble) time.
func waitStopped(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Hour):
		t.Fatal("the agent did not stop within an hour")
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// readJournalOf opens the journal of n's stopped or running agent
// read-only in effect: the test only reads its state.
func readJournalOf(t *testing.T, n *k8sNode) *journal { return readJournal(t, n.dir) }

// TestKubernetesNodeUncordonAfterRebootResume: the step reboots the node,
// which kills the agent; the node stays cordoned through the reboot and is
// uncordoned by the agent's next start, after the actions verify on the
// new boot.
func TestKubernetesNodeUncordonAfterRebootResume(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newK8sNode(t, false)
		srv := newFakeServer(t)
		cfg := n.config(t, srv)
		ctx, cancel := context.WithCancel(t.Context())
		rb := &killingRebooter{cancel: cancel}
		cfg.Rebooter = rb
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		srv.dispatch(k8sStep(1, plan.RebootAlways, plan.Action{Kernel: &plan.KernelAction{Version: "6.1.0-27-amd64"}}))
		waitStopped(t, done)
		if rb.asked.Load() != 1 || !n.cordoned(t) {
			t.Fatalf("reboot asked %d times, cordoned %v: want the node rebooted while cordoned", rb.asked.Load(), n.cordoned(t))
		}
		n.state.Reboot(t.Context(), "the OS reboots")
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		final := finalOf(t, srv, "r1/n1/apply/1")
		if final.Phase != engine.PhaseVerifying || final.Gate != engine.Pass {
			t.Fatalf("final %s/%s %q", final.Phase, final.Gate, final.Reason)
		}
		if n.cordoned(t) || n.state.Applies() != 1 || n.state.Reboots() != 1 {
			t.Errorf("cordoned %v, %d applies, %d reboots; want false, 1, 1", n.cordoned(t), n.state.Applies(), n.state.Reboots())
		}
		if _, u := n.patches(); u != 1 {
			t.Errorf("%d uncordon patches, want 1", u)
		}
	})
}

// TestKubernetesNodeCrashAroundUncordon crashes the agent where the
// uncordon is owed or just done, restarts it, and checks the step ends
// passed with the node uncordoned, nothing applied twice.
func TestKubernetesNodeCrashAroundUncordon(t *testing.T) {
	tests := []struct {
		name string
		// crash returns true for the journal record after which the
		// agent dies.
		crash func(record) bool
		// lostAnswer: the uncordon reaches the API server, but the agent
		// dies before it sees the answer (no uncordoned record).
		lostAnswer bool
		uncordons  int
	}{
		{name: "actions done, uncordon owed", crash: func(r record) bool { return r.Type == recAction && r.Stage == stageVerified && r.Action == 1 }, uncordons: 1},
		{name: "uncordoned, probes not begun", crash: func(r record) bool { return r.Type == recAction && r.Stage == stageUncordoned }, uncordons: 1},
		{name: "uncordon applied, answer lost", lostAnswer: true, uncordons: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := newK8sNode(t, false)
				srv := newFakeServer(t)
				cfg := n.config(t, srv)
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				var once sync.Once
				if tt.crash != nil {
					cfg.afterAppend = func(r record) {
						if tt.crash(r) {
							once.Do(cancel)
						}
					}
				}
				if tt.lostAnswer {
					var lost atomic.Bool
					n.c.PrependReactor("patch", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
						if string(a.(k8stesting.PatchAction).GetPatch()) != `{"spec":{"unschedulable":false}}` || !lost.CompareAndSwap(false, true) {
							return false, nil, nil
						}
						gvr := corev1.SchemeGroupVersion.WithResource("nodes")
						obj, err := n.c.Tracker().Get(gvr, "", "n1")
						if err != nil {
							return true, nil, err
						}
						node := obj.(*corev1.Node)
						node.Spec.Unschedulable = false
						if err := n.c.Tracker().Update(gvr, node, ""); err != nil {
							return true, nil, err
						}
						cancel() // the agent dies with the request in flight
						return true, nil, errors.New("http2: client connection lost")
					})
				}
				done := make(chan error, 1)
				go func() { done <- Run(ctx, cfg) }()
				step := k8sStep(1, plan.RebootNever, pkg("openssl", "3.0.15-1~deb12u1"))
				srv.dispatch(step)
				waitStopped(t, done)
				if st, _ := readJournalOf(t, n).step(step.ID); st.finished() {
					t.Fatal("step finished before the crash")
				}
				stop, _ := start(t, n.config(t, srv))
				defer stop()
				final := finalOf(t, srv, step.ID)
				if final.Phase != engine.PhaseVerifying || final.Gate != engine.Pass {
					t.Fatalf("final %s/%s %q", final.Phase, final.Gate, final.Reason)
				}
				if _, u := n.patches(); n.cordoned(t) || u != tt.uncordons || n.state.Applies() != 1 {
					t.Errorf("cordoned %v, %d uncordon patches, %d applies; want false, %d, 1", n.cordoned(t), u, n.state.Applies(), tt.uncordons)
				}
			})
		})
	}
}

// TestKubernetesNodeFailedStep: a failed action is rolled back in the
// step and the node uncordoned after it; if that restore fails too, the
// node is left cordoned and the reason says so.
func TestKubernetesNodeFailedStep(t *testing.T) {
	lockHeld := func(a plan.Action) error {
		if a.Package != nil && a.Package.Packages[0].Name == "openssl" {
			return lockErr{1234}
		}
		return nil
	}
	t.Run("restored", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := newK8sNode(t, false)
			n.watched.onApply = lockHeld
			srv := newFakeServer(t)
			stop, _ := start(t, n.config(t, srv))
			defer stop()
			srv.dispatch(k8sStep(1, plan.RebootNever, pkg("telemetry-agent", "7.2.0"), pkg("openssl", "3.0.15-1~deb12u1")))
			final := finalOf(t, srv, "r1/n1/apply/1")
			want := "package openssl 3.0.15-1~deb12u1: dpkg lock held by another process (pid 1234); rolled back package openssl 3.0.15-1~deb12u1, package telemetry-agent 7.2.0, kubernetes-node drain; verified healthy: 1 node probes passed"
			if final.Phase != engine.PhaseFailed || final.Reason != want {
				t.Errorf("final %s %q\nwant failed %q", final.Phase, final.Reason, want)
			}
			if n.cordoned(t) {
				t.Error("node left cordoned after a complete in-step rollback")
			}
		})
	})
	t.Run("restore failed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			n := newK8sNode(t, false)
			n.watched.onApply = lockHeld
			n.watched.onRollback = func(a plan.Action) error {
				if a.Package.Packages[0].Name == "telemetry-agent" {
					return errors.New("dpkg: error processing package telemetry-agent (--install)")
				}
				return nil
			}
			srv := newFakeServer(t)
			stop, _ := start(t, n.config(t, srv))
			defer stop()
			srv.dispatch(k8sStep(1, plan.RebootNever, pkg("telemetry-agent", "7.2.0"), pkg("openssl", "3.0.15-1~deb12u1")))
			final := finalOf(t, srv, "r1/n1/apply/1")
			if final.Phase != engine.PhaseFailed || !strings.Contains(final.Reason, "in-step rollback FAILED: package telemetry-agent 7.2.0: dpkg: error processing") ||
				!strings.HasSuffix(final.Reason, "; node left cordoned (kubernetes-node drain) because a restore failed: no workloads are sent back to a node in a state nobody chose") {
				t.Errorf("final %s %q", final.Phase, final.Reason)
			}
			if !n.cordoned(t) {
				t.Error("node uncordoned although a restore it covers failed")
			}
		})
	})
}

// TestKubernetesNodeRollbackStep: a rollback step after a successful apply
// drains the node again before restoring, reboots it for the kernel it
// restores (the reboot kills the agent), and uncordons it on the next
// start, after the reboot.
func TestKubernetesNodeRollbackStep(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newK8sNode(t, false)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		apply := k8sStep(1, plan.RebootIfRequired, pkg("telemetry-agent", "7.2.0"), plan.Action{Kernel: &plan.KernelAction{Version: "6.1.0-27-amd64"}})
		srv.dispatch(apply)
		if final := finalOf(t, srv, apply.ID); final.Gate != engine.Pass || n.cordoned(t) {
			t.Fatalf("apply: %s/%s %q, cordoned %v", final.Phase, final.Gate, final.Reason, n.cordoned(t))
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// The scheduler put a pod back on the node meanwhile.
		if _, err := n.c.CoreV1().Pods("default").Create(t.Context(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-3", Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var duringRestore []string
		n.watched.onRollback = func(a plan.Action) error {
			duringRestore = append(duringRestore, "cordoned="+boolStr(n.cordoned(t))+" pods="+strings.Join(n.pods(t), ","))
			return nil
		}
		cfg := n.config(t, srv)
		ctx, cancel := context.WithCancel(t.Context())
		rb := &killingRebooter{cancel: cancel}
		cfg.Rebooter = rb
		done := make(chan error, 1)
		go func() { done <- Run(ctx, cfg) }()
		srv.dispatch(api.StepPayload{ID: "r1/n1/rollback/1", Rollout: "r1", Kind: "rollback", Attempt: 1, Reboot: plan.RebootIfRequired})
		waitStopped(t, done)
		if got := strings.Join(duringRestore, "; "); got != "cordoned=true pods=fluentd-n1; cordoned=true pods=fluentd-n1" {
			t.Errorf("during the restores: %s; want the node cordoned and drained again", got)
		}
		if rb.asked.Load() != 1 || !n.cordoned(t) {
			t.Fatalf("reboot asked %d times, cordoned %v: want the restore's reboot while cordoned", rb.asked.Load(), n.cordoned(t))
		}
		n.state.Reboot(t.Context(), "the OS reboots")
		stop, _ = start(t, n.config(t, srv))
		defer stop()
		final := finalOf(t, srv, "r1/n1/rollback/1")
		want := "undid kernel 6.1.0-27-amd64, package telemetry-agent 7.2.0, kubernetes-node drain: restored the snapshots taken before r1/n1/apply/1; not verified: the plan has no node probes"
		if final.Phase != engine.PhaseRolledBack || final.Reason != want {
			t.Errorf("final %s %q\nwant rolled-back %q", final.Phase, final.Reason, want)
		}
		if n.cordoned(t) {
			t.Error("node still cordoned after the rollback")
		}
		if v, _ := n.state.Version("telemetry-agent"); v != "7.1.0" {
			t.Errorf("telemetry-agent %s after rollback", v)
		}
		st, _ := readJournalOf(t, n).step("r1/n1/rollback/1")
		if as := st.Actions[0]; as == nil || !as.Held || !as.RolledBack {
			t.Errorf("journal of the rollback: drain action %+v, want held then rolled back", as)
		}
	})
}

// TestKubernetesNodeOperatorCordonKept: a node an operator cordoned before
// the step is drained for it and left cordoned after it.
func TestKubernetesNodeOperatorCordonKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newK8sNode(t, true)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		step := k8sStep(1, plan.RebootNever, pkg("openssl", "3.0.15-1~deb12u1"))
		step.Probes = nil
		srv.dispatch(step)
		final := finalOf(t, srv, step.ID)
		if final.Gate != engine.Pass || !n.cordoned(t) {
			t.Fatalf("final %s/%s %q, cordoned %v: want pass, still cordoned", final.Phase, final.Gate, final.Reason, n.cordoned(t))
		}
		if got := n.pods(t); len(got) != 1 {
			t.Errorf("pods left on n1: %v, want the DaemonSet's only", got)
		}
		st, _ := readJournalOf(t, n).step(step.ID)
		if as := st.Actions[0]; as == nil || as.Uncordon == nil || !strings.Contains(as.Uncordon.Summary, "left cordoned") {
			t.Errorf("journal: %+v", as)
		}
	})
}

// TestKubernetesNodeRollbackDrainBlocked: when a disruption budget keeps
// the node from being drained again, the rollback step restores nothing
// and fails, and the node is not uncordoned.
func TestKubernetesNodeRollbackDrainBlocked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newK8sNode(t, false)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		apply := k8sStep(1, plan.RebootNever, pkg("telemetry-agent", "7.2.0"))
		apply.Probes = nil
		srv.dispatch(apply)
		if final := finalOf(t, srv, apply.ID); final.Gate != engine.Pass {
			t.Fatalf("apply: %s/%s %q", final.Phase, final.Gate, final.Reason)
		}
		if _, err := n.c.CoreV1().Pods("default").Create(t.Context(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "db-0", Namespace: "default"},
			Spec: corev1.PodSpec{NodeName: "n1"}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		n.c.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			if a.GetSubresource() == "eviction" && a.(k8stesting.CreateAction).GetObject().(*policyv1.Eviction).Name == "db-0" {
				return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
			}
			return false, nil, nil
		})
		srv.dispatch(api.StepPayload{ID: "r1/n1/rollback/1", Rollout: "r1", Kind: "rollback", Attempt: 1, Reboot: plan.RebootIfRequired})
		final := finalOf(t, srv, "r1/n1/rollback/1")
		if final.Phase != engine.PhaseFailed || !strings.HasPrefix(final.Reason, "rollback failed: kubernetes-node drain: could not cordon and drain the node before restoring (kubernetes-node: drain n1: timed out after 5m") ||
			!strings.HasSuffix(final.Reason, "nothing was restored and the node is not uncordoned") {
			t.Errorf("final %s %q", final.Phase, final.Reason)
		}
		if v, _ := n.state.Version("telemetry-agent"); v != "7.2.0" || !n.cordoned(t) {
			t.Errorf("telemetry-agent %s, cordoned %v; want nothing restored, still cordoned", v, n.cordoned(t))
		}
	})
}

// TestKubernetesNodeNotReady: a node is uncordoned only once it reports
// Ready again. One whose kubelet does not come back after the package
// changed fails the step at the drain action's timeout and is rolled
// back; the old version brings it back, and only then is it uncordoned.
func TestKubernetesNodeNotReady(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newK8sNode(t, false)
		n.watched.onApply = func(plan.Action) error { n.setReady(t, corev1.ConditionFalse); return nil }
		n.watched.onRollback = func(plan.Action) error {
			if !n.cordoned(t) {
				t.Error("uncordoned before the package was restored")
			}
			n.setReady(t, corev1.ConditionTrue)
			return nil
		}
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		defer stop()
		start := time.Now()
		srv.dispatch(k8sStep(1, plan.RebootNever, pkg("telemetry-agent", "7.2.0")))
		final := finalOf(t, srv, "r1/n1/apply/1")
		want := "kubernetes-node drain: every action applied, but uncordon failed: kubernetes-node: node n1 did not report Ready within 5m (Ready False: KubeletNotReady); left cordoned: kubernetes node not Ready; rolled back package telemetry-agent 7.2.0, kubernetes-node drain; verified healthy: 1 node probes passed"
		if final.Phase != engine.PhaseFailed || final.Reason != want {
			t.Errorf("final %s %q\nwant failed %q", final.Phase, final.Reason, want)
		}
		if took := time.Since(start); took < 5*time.Minute || took > 7*time.Minute {
			t.Errorf("failed after %s, want the drain action's 5m timeout (once, not retried)", took)
		}
		if n.cordoned(t) {
			t.Error("still cordoned after the rollback brought the node back Ready")
		}
		if v, _ := n.state.Version("telemetry-agent"); v != "7.1.0" {
			t.Errorf("telemetry-agent %s, want 7.1.0 restored", v)
		}
	})
}

// TestKubernetesNodeRollbackUnhealthy: a rollback step whose node still
// fails its probes after the restore is reported rolled back with a
// failing gate and the node is cordoned again: out of service. A crash
// after that cordon, before the result, resumes to the same report.
func TestKubernetesNodeRollbackUnhealthy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := newK8sNode(t, false)
		srv := newFakeServer(t)
		stop, _ := start(t, n.config(t, srv))
		stop = sync.OnceValue(stop)
		defer stop()
		apply := k8sStep(1, plan.RebootNever, pkg("telemetry-agent", "7.2.0"))
		apply.MinHealthy = 0
		srv.dispatch(apply)
		if final := finalOf(t, srv, apply.ID); final.Gate != engine.Pass || n.cordoned(t) {
			t.Fatalf("apply: %s/%s %q, cordoned %v", final.Phase, final.Gate, final.Reason, n.cordoned(t))
		}
		n.healthy.Store(false)
		srv.dispatch(api.StepPayload{ID: "r1/n1/rollback/1", Rollout: "r1", Kind: "rollback", Attempt: 1, Reboot: plan.RebootNever,
			Probes: []plan.Probe{{Kind: plan.ProbeCommand, Command: []string{"check-app"}}}, HealthyDeadline: plan.Duration(time.Minute)})
		final := finalOf(t, srv, "r1/n1/rollback/1")
		want := "rollback done but still unhealthy: node probes did not pass within 1m0s of the rollback: command check-app: exit status 1, want 0 (after 1 try) " +
			"(undid package telemetry-agent 7.2.0, kubernetes-node drain: restored the snapshots taken before r1/n1/apply/1); " +
			"node taken out of service again (kubernetes-node drain): it stays so until a human resolves it"
		if final.Phase != engine.PhaseRolledBack || final.Gate != engine.Fail || final.Reason != want {
			t.Errorf("final %s/%s %q\nwant rolled-back/fail %q", final.Phase, final.Gate, final.Reason, want)
		}
		if !n.cordoned(t) {
			t.Error("node in service although unhealthy after its rollback")
		}

		// A crash after the node was cordoned again, before the result
		// was journaled: the journal ends at the held record. The resumed
		// step reports the verdict journaled before the cordon (the node
		// stays out of service until a human resolves it), not a restore
		// that no longer matches a cordoned node, nor probes run again.
		stop()
		path := filepath.Join(n.dir, JournalFile)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
		end := 0 // after the last held record: the hold before the restore, then the one after the probes
		for i, line := range lines {
			var r record
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			if r.Step == "r1/n1/rollback/1" && r.Type == recAction && r.Stage == stageHeld {
				end = i + 1
			}
		}
		if err := os.WriteFile(path, []byte(strings.Join(lines[:end], "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		n.healthy.Store(true) // the verdict that cordoned the node stands
		srv2 := newFakeServer(t)
		stop2, _ := start(t, n.config(t, srv2))
		defer stop2()
		final = finalOf(t, srv2, "r1/n1/rollback/1")
		if final.Phase != engine.PhaseRolledBack || final.Gate != engine.Fail || final.Reason != want {
			t.Errorf("resumed: %s/%s %q\nwant rolled-back/fail %q", final.Phase, final.Gate, final.Reason, want)
		}
		if !n.cordoned(t) {
			t.Error("resumed: node in service although unhealthy after its rollback")
		}
	})
}
