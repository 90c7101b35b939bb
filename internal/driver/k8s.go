package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drover-dev/drover/internal/plan"
)

// KubernetesOptions configures the Kubernetes node driver.
type KubernetesOptions struct {
	// NodeName is the Kubernetes node to drain; empty means the host name
	// (from Hostname).
	NodeName string
	// Hostname returns the host name when NodeName is empty; nil means
	// os.Hostname.
	Hostname func() (string, error)
	// RetryInitial is the first wait after an eviction refused with 429
	// (a PodDisruptionBudget allows no disruption now); it doubles up to
	// RetryMax. Defaults 1s and 30s.
	RetryInitial, RetryMax time.Duration
	// PollInterval is how often the driver checks evicted pods are gone;
	// default 2s.
	PollInterval time.Duration
}

// KubernetesNode cordons and drains a Kubernetes node before the node's
// other actions, and uncordons it after them. Draining goes through the
// eviction API (policy/v1), so PodDisruptionBudgets are honoured: an
// eviction answered 429 is retried with backoff until the action's timeout
// (default 10m), which then fails naming the pod and its budget. DaemonSet
// pods and mirror (static) pods are left alone; pods with emptyDir volumes
// are refused unless deleteEmptyDirData is set.
//
// Apply = cordon (+ drain when Drain is set). The agent calls Uncordon
// after the node's other actions succeeded; Rollback uncordons too. Both
// wait for the node to report Ready again first (a node not Ready within
// the action's timeout stays cordoned and fails the step), and both leave
// the node cordoned when the Snapshot shows it was cordoned before
// drover touched it (an operator's cordon is not ours to lift).
type KubernetesNode struct {
	api  KubernetesAPI
	opts KubernetesOptions
}

var _ Driver = (*KubernetesNode)(nil)

// NewKubernetesNode returns the driver for api (NewKubernetesClient, from
// the node's kubeconfig or in-cluster config; see KubernetesConfig).
func NewKubernetesNode(api KubernetesAPI, opts KubernetesOptions) *KubernetesNode {
	if opts.Hostname == nil {
		opts.Hostname = os.Hostname
	}
	if opts.RetryInitial <= 0 {
		opts.RetryInitial = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 30 * time.Second
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 2 * time.Second
	}
	return &KubernetesNode{api: api, opts: opts}
}

// Name is "kubernetes-node".
func (k *KubernetesNode) Name() string { return "kubernetes-node" }

func (k *KubernetesNode) action(a plan.Action) (*plan.KubernetesNodeAction, string, error) {
	if a.KubernetesNode == nil {
		return nil, "", fmt.Errorf("kubernetes-node: action %q is not a kubernetes-node action: %w", a.Name, ErrUnsupported)
	}
	node := k.opts.NodeName
	if node == "" {
		h, err := k.opts.Hostname()
		if err != nil {
			return nil, "", fmt.Errorf("kubernetes-node: node name: %w", err)
		}
		// A kubelet registers the lower-cased host name without domain
		// unless --hostname-override says otherwise.
		node, _, _ = strings.Cut(strings.ToLower(h), ".")
	}
	if err := plan.KubernetesNode.Check(node); err != nil {
		return nil, "", fmt.Errorf("kubernetes-node: node name: %w", err)
	}
	return a.KubernetesNode, node, nil
}

// drainPlan sorts the node's pods into those to evict and those skipped.
type drainPlan struct {
	evict    []corev1.Pod
	skipped  []string // ns/name (reason)
	emptyDir []string // ns/name of pods with emptyDir volumes
}

func (k *KubernetesNode) planDrain(ctx context.Context, node string) (drainPlan, error) {
	var p drainPlan
	list, err := k.api.ListPods(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", node).String(),
	})
	if err != nil {
		return p, fmt.Errorf("kubernetes-node: list pods on %s: %w", node, err)
	}
	for _, pod := range list.Items {
		if pod.Spec.NodeName != node {
			continue // the field selector is not honoured by every client
		}
		id := pod.Namespace + "/" + pod.Name
		switch {
		case pod.DeletionTimestamp != nil:
			p.evict = append(p.evict, pod) // already going: wait for it
			continue
		case pod.Annotations[corev1.MirrorPodAnnotationKey] != "":
			p.skipped = append(p.skipped, id+" (mirror pod)")
			continue
		case controlledBy(pod, "DaemonSet"):
			p.skipped = append(p.skipped, id+" (DaemonSet)")
			continue
		}
		for _, v := range pod.Spec.Volumes {
			if v.EmptyDir != nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
				p.emptyDir = append(p.emptyDir, id)
				break
			}
		}
		p.evict = append(p.evict, pod)
	}
	return p, nil
}

func controlledBy(pod corev1.Pod, kind string) bool {
	if ref := metav1.GetControllerOf(&pod); ref != nil {
		return ref.Kind == kind
	}
	return false
}

func podIDs(pods []corev1.Pod) []string {
	ids := make([]string, len(pods))
	for i, p := range pods {
		ids[i] = p.Namespace + "/" + p.Name
	}
	return ids
}

// Preflight checks the node exists, that every pod could be evicted
// (emptyDir data needs deleteEmptyDirData) and, when the action names
// the kubelet version the change brings, that it stays within the
// supported skew of the API server's version (KubeletSkew); it lists
// what would change.
// An already cordoned node with nothing left to evict gets Change.None.
func (k *KubernetesNode) Preflight(ctx context.Context, a plan.Action) (Change, error) {
	ka, node, err := k.action(a)
	if err != nil {
		return Change{}, err
	}
	n, err := k.api.GetNode(ctx, node)
	if err != nil {
		return Change{}, fmt.Errorf("kubernetes-node: get node %s: %w", node, err)
	}
	var skew string
	if ka.KubeletVersion != "" {
		sv, err := k.api.ServerVersion(ctx)
		if err != nil {
			return Change{}, fmt.Errorf("kubernetes-node: API server version: %w", err)
		}
		if err := KubeletSkew(ka.KubeletVersion, sv); err != nil {
			return Change{}, fmt.Errorf("kubernetes-node: node %s: %w", node, err)
		}
		skew = fmt.Sprintf("; kubelet %s within the supported skew of API server %s", ka.KubeletVersion, sv)
	}
	var items []ChangeItem
	if !n.Spec.Unschedulable {
		items = append(items, ChangeItem{Name: "node/" + node, From: "schedulable", To: "cordoned"})
	}
	if ka.Drain {
		p, err := k.planDrain(ctx, node)
		if err != nil {
			return Change{}, err
		}
		if len(p.emptyDir) > 0 && !ka.DeleteLocal {
			return Change{}, emptyDirError(node, p.emptyDir)
		}
		for _, id := range podIDs(p.evict) {
			items = append(items, ChangeItem{Name: "pod/" + id, From: node, To: "evicted"})
		}
	}
	ch := Change{Items: items, None: len(items) == 0}
	ch.Summary = fmt.Sprintf("node %s already cordoned and drained", node)
	if !ch.None {
		ch.Summary = fmt.Sprintf("would cordon node %s and evict %d pods", node, max(0, len(items)-boolInt(!n.Spec.Unschedulable)))
	}
	ch.Summary += skew
	return ch, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func emptyDirError(node string, pods []string) error {
	return fmt.Errorf("kubernetes-node: drain %s refused: pods with emptyDir data would lose it: %s (set deleteEmptyDirData: true to allow)", node, strings.Join(pods, ", "))
}

// k8sSnapshotData is KubernetesNode's Snapshot.Data.
type k8sSnapshotData struct {
	Node          string `json:"node"`
	Unschedulable bool   `json:"unschedulable"`
}

// Snapshot records whether the node was already cordoned.
func (k *KubernetesNode) Snapshot(ctx context.Context, a plan.Action) (Snapshot, error) {
	_, node, err := k.action(a)
	if err != nil {
		return Snapshot{}, err
	}
	n, err := k.api.GetNode(ctx, node)
	if err != nil {
		return Snapshot{}, fmt.Errorf("kubernetes-node: get node %s: %w", node, err)
	}
	raw, err := json.Marshal(k8sSnapshotData{Node: node, Unschedulable: n.Spec.Unschedulable})
	if err != nil {
		return Snapshot{}, fmt.Errorf("kubernetes-node: encode snapshot: %w", err)
	}
	state := "schedulable"
	if n.Spec.Unschedulable {
		state = "cordoned"
	}
	return Snapshot{Driver: k.Name(), Summary: "node " + node + " " + state, Data: raw}, nil
}

// Apply cordons the node and, when the action says drain, evicts its
// pods and waits for them to be gone, all within the action's timeout.
func (k *KubernetesNode) Apply(ctx context.Context, a plan.Action) (Outcome, error) {
	ka, node, err := k.action(a)
	if err != nil {
		return Outcome{}, err
	}
	timeout := ka.Timeout.D()
	if timeout <= 0 {
		timeout = plan.DefaultDrainTimeout.D()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	changed, err := k.setUnschedulable(ctx, node, true)
	if err != nil {
		return Outcome{}, err
	}
	var out Outcome
	if changed {
		out.Changed = append(out.Changed, ChangeItem{Name: "node/" + node, From: "schedulable", To: "cordoned"})
	}
	if !ka.Drain {
		out.Summary = "cordoned node " + node
		return out, nil
	}
	evicted, skipped, err := k.drain(ctx, node, ka, timeout)
	if err != nil {
		return out, err
	}
	for _, id := range evicted {
		out.Changed = append(out.Changed, ChangeItem{Name: "pod/" + id, From: node, To: "evicted"})
	}
	out.Summary = fmt.Sprintf("cordoned and drained node %s: %d pods evicted", node, len(evicted))
	if len(skipped) > 0 {
		out.Summary += "; left: " + strings.Join(skipped, ", ")
	}
	return out, nil
}

// setUnschedulable patches spec.unschedulable; it reports whether it
// changed anything.
func (k *KubernetesNode) setUnschedulable(ctx context.Context, node string, v bool) (bool, error) {
	verb := "cordon"
	if !v {
		verb = "uncordon"
	}
	n, err := k.api.GetNode(ctx, node)
	if err != nil {
		return false, fmt.Errorf("kubernetes-node: %s %s: %w", verb, node, err)
	}
	if n.Spec.Unschedulable == v {
		return false, nil
	}
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, v)
	if err := k.api.PatchNode(ctx, node, types.StrategicMergePatchType, []byte(patch)); err != nil {
		return false, fmt.Errorf("kubernetes-node: %s %s: %w", verb, node, err)
	}
	return true, nil
}

// drain evicts every pod of the plan, retrying those a disruption budget
// protects, then waits for them to be gone.
func (k *KubernetesNode) drain(ctx context.Context, node string, ka *plan.KubernetesNodeAction, timeout time.Duration) (evicted, skipped []string, err error) {
	p, err := k.planDrain(ctx, node)
	if err != nil {
		return nil, nil, err
	}
	if len(p.emptyDir) > 0 && !ka.DeleteLocal {
		return nil, p.skipped, emptyDirError(node, p.emptyDir)
	}
	var opts metav1.DeleteOptions
	if ka.GracePeriod > 0 {
		secs := int64(ka.GracePeriod.D() / time.Second)
		opts.GracePeriodSeconds = &secs
	}
	pending := slices.Clone(p.evict)
	wait := k.opts.RetryInitial
	blocked := map[string]error{}
	for len(pending) > 0 {
		var next []corev1.Pod
		for _, pod := range pending {
			if pod.DeletionTimestamp != nil {
				continue
			}
			err := k.api.EvictPod(ctx, &policyv1.Eviction{
				ObjectMeta:    metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace},
				DeleteOptions: &opts,
			})
			switch {
			case err == nil, apierrors.IsNotFound(err):
				delete(blocked, pod.Namespace+"/"+pod.Name)
			case apierrors.IsTooManyRequests(err):
				blocked[pod.Namespace+"/"+pod.Name] = err
				next = append(next, pod)
			case ctx.Err() != nil:
				return nil, p.skipped, k.drainTimeout(node, timeout, pending, blocked)
			default:
				return nil, p.skipped, fmt.Errorf("kubernetes-node: drain %s: evict pod %s/%s: %w", node, pod.Namespace, pod.Name, err)
			}
		}
		pending = next
		if len(pending) == 0 {
			break
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return nil, p.skipped, k.drainTimeout(node, timeout, pending, blocked)
		}
		wait = min(2*wait, k.opts.RetryMax)
	}
	if err := k.waitGone(ctx, p.evict); err != nil {
		return nil, p.skipped, fmt.Errorf("kubernetes-node: drain %s: timed out after %s waiting for pods to terminate: %w", node, shortDuration(timeout), err)
	}
	return podIDs(p.evict), p.skipped, nil
}

// drainTimeout names each pod still blocked and the budget blocking it.
func (k *KubernetesNode) drainTimeout(node string, timeout time.Duration, pending []corev1.Pod, blocked map[string]error) error {
	// The action's context is over: look budgets up with a short one of
	// our own.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var why []string
	for _, pod := range pending {
		id := pod.Namespace + "/" + pod.Name
		msg := "pod " + id
		if pdb := k.budgetOf(ctx, pod); pdb != "" {
			msg += " is protected by PodDisruptionBudget " + pdb
		}
		if err := blocked[id]; err != nil {
			msg += ": " + err.Error()
		}
		why = append(why, msg)
	}
	return fmt.Errorf("kubernetes-node: drain %s: timed out after %s: %s: %w", node, shortDuration(timeout), strings.Join(why, "; "), context.DeadlineExceeded)
}

// budgetOf names the PodDisruptionBudgets selecting pod, with their
// allowed disruptions.
func (k *KubernetesNode) budgetOf(ctx context.Context, pod corev1.Pod) string {
	list, err := k.api.ListPodDisruptionBudgets(ctx, pod.Namespace)
	if err != nil {
		return ""
	}
	var names []string
	for _, pdb := range list.Items {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		names = append(names, fmt.Sprintf("%s/%s (%d disruptions allowed, %d of %d desired healthy)",
			pdb.Namespace, pdb.Name, pdb.Status.DisruptionsAllowed, pdb.Status.CurrentHealthy, pdb.Status.DesiredHealthy))
	}
	return strings.Join(names, ", ")
}

// waitGone polls until every pod is deleted (or replaced by a pod of the
// same name with another UID).
func (k *KubernetesNode) waitGone(ctx context.Context, pods []corev1.Pod) error {
	left := slices.Clone(pods)
	for {
		var still []corev1.Pod
		for _, pod := range left {
			cur, err := k.api.GetPod(ctx, pod.Namespace, pod.Name)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return fmt.Errorf("get pod %s/%s: %w", pod.Namespace, pod.Name, err)
			case cur.UID != pod.UID || cur.Spec.NodeName != pod.Spec.NodeName:
			default:
				still = append(still, pod)
			}
		}
		if len(still) == 0 {
			return nil
		}
		left = still
		if err := sleepCtx(ctx, k.opts.PollInterval); err != nil {
			return fmt.Errorf("pods still present: %s: %w", strings.Join(podIDs(still), ", "), err)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Verify checks the node is cordoned and, for drain, that no pod that
// drain would evict is left on it.
func (k *KubernetesNode) Verify(ctx context.Context, a plan.Action) error {
	ka, node, err := k.action(a)
	if err != nil {
		return err
	}
	n, err := k.api.GetNode(ctx, node)
	if err != nil {
		return fmt.Errorf("kubernetes-node: get node %s: %w", node, err)
	}
	if !n.Spec.Unschedulable {
		return fmt.Errorf("kubernetes-node: verify: node %s is not cordoned", node)
	}
	if ka.Drain {
		p, err := k.planDrain(ctx, node)
		if err != nil {
			return err
		}
		if len(p.evict) > 0 {
			return fmt.Errorf("kubernetes-node: verify: node %s still runs %s", node, strings.Join(podIDs(p.evict), ", "))
		}
	}
	return nil
}

// ErrNotReady: the Kubernetes node did not report Ready within the
// action's timeout, so it was not uncordoned.
var ErrNotReady = errors.New("kubernetes node not Ready")

// Uncordon makes the node schedulable again after its other actions,
// once it reports Ready (condition Ready True) again, unless the snapshot
// shows it was cordoned before drover cordoned it. A node not Ready
// within the action's timeout (default 10m) is left cordoned and Uncordon
// fails wrapping ErrNotReady. An empty snapshot uncordons. Repeated calls
// change nothing.
func (k *KubernetesNode) Uncordon(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	ka, node, err := k.action(a)
	if err != nil {
		return Outcome{}, err
	}
	timeout := ka.Timeout.D()
	if timeout <= 0 {
		timeout = plan.DefaultDrainTimeout.D()
	}
	if err := k.waitReady(ctx, node, timeout); err != nil {
		return Outcome{}, err
	}
	if len(s.Data) > 0 {
		if s.Driver != k.Name() {
			return Outcome{}, fmt.Errorf("kubernetes-node: snapshot was taken by driver %q", s.Driver)
		}
		var data k8sSnapshotData
		if err := json.Unmarshal(s.Data, &data); err != nil {
			return Outcome{}, fmt.Errorf("kubernetes-node: decode snapshot: %w", err)
		}
		if data.Unschedulable {
			return Outcome{Summary: "node " + node + " was cordoned before the rollout; left cordoned"}, nil
		}
	}
	changed, err := k.setUnschedulable(ctx, node, false)
	if err != nil {
		return Outcome{}, err
	}
	if !changed {
		return Outcome{Summary: "node " + node + " already schedulable"}, nil
	}
	return Outcome{Summary: "uncordoned node " + node, Changed: []ChangeItem{{Name: "node/" + node, From: "cordoned", To: "schedulable"}}}, nil
}

// waitReady polls the node until its Ready condition is True, for at
// most timeout.
func (k *KubernetesNode) waitReady(ctx context.Context, node string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := "no Ready condition reported"
	for {
		n, err := k.api.GetNode(wctx, node)
		switch {
		case err == nil:
			ready, why := nodeReady(n)
			if ready {
				return nil
			}
			last = why
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() == nil:
			last = "get node: " + err.Error()
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if sleepCtx(wctx, k.opts.PollInterval) != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("kubernetes-node: node %s did not report Ready within %s (%s); left cordoned: %w", node, shortDuration(timeout), last, ErrNotReady)
		}
	}
}

// nodeReady reports whether n's Ready condition is True, and otherwise
// what the condition says.
func nodeReady(n *corev1.Node) (bool, string) {
	for _, c := range n.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			return true, ""
		}
		why := "Ready " + string(c.Status)
		if c.Reason != "" {
			why += ": " + c.Reason
		}
		if c.Message != "" {
			why += ": " + c.Message
		}
		return false, why
	}
	return false, "no Ready condition reported"
}

// Rollback uncordons the node (as Uncordon). Evicted pods are not brought
// back: their controllers reschedule them.
func (k *KubernetesNode) Rollback(ctx context.Context, a plan.Action, s Snapshot) (Outcome, error) {
	return k.Uncordon(ctx, a, s)
}

// KubeletSkew checks a kubelet version against the API server's, as the
// Kubernetes version skew policy says: the kubelet must not be newer than
// kube-apiserver, and may be up to three minor versions older (two before
// 1.28). An error wraps ErrIncompatible and names both versions.
func KubeletSkew(kubelet, apiserver string) error {
	kMaj, kMin, err := kubeMinor(kubelet)
	if err != nil {
		return fmt.Errorf("kubelet version: %w", err)
	}
	aMaj, aMin, err := kubeMinor(apiserver)
	if err != nil {
		return fmt.Errorf("API server version: %w", err)
	}
	maxSkew := 3
	if aMaj == 1 && aMin < 28 {
		maxSkew = 2
	}
	switch {
	case kMaj != aMaj:
		return fmt.Errorf("kubelet %s and API server %s differ in major version: %w", kubelet, apiserver, ErrIncompatible)
	case kMin > aMin:
		return fmt.Errorf("kubelet %s would be newer than the API server %s (a kubelet must not pass the control plane; upgrade the control plane first): %w", kubelet, apiserver, ErrIncompatible)
	case aMin-kMin > maxSkew:
		return fmt.Errorf("kubelet %s would be %d minor versions older than the API server %s (at most %d supported): %w", kubelet, aMin-kMin, apiserver, maxSkew, ErrIncompatible)
	}
	return nil
}

// kubeMinor reads MAJOR and MINOR of "v1.31.4" or "1.31.4-eks-1234".
func kubeMinor(v string) (major, minor int, err error) {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("%q is not MAJOR.MINOR.PATCH", v)
	}
	if major, err = strconv.Atoi(parts[0]); err != nil {
		return 0, 0, fmt.Errorf("%q is not MAJOR.MINOR.PATCH", v)
	}
	if minor, err = strconv.Atoi(strings.TrimRight(parts[1], "+")); err != nil {
		return 0, 0, fmt.Errorf("%q is not MAJOR.MINOR.PATCH", v)
	}
	return major, minor, nil
}
