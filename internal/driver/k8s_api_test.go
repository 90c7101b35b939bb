package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
)

// The driver's tests run on both ways it reaches the API server:
//
//   - "clientset": client-go's fake clientset (an in-memory object
//     tracker) through clientsetAPI, the adapter any clientset fits;
//   - "rest": the production client, NewKubernetesClient (client-go's REST
//     client), speaking HTTP to fakeAPIServer, an in-process stand-in for
//     the API server's endpoints the driver uses, over the same fake
//     clientset. It checks the wire: paths, the patch content type, the
//     eviction body, and Status errors mapped back to apierrors.
//
// Neither is a real API server: none can run here.
var k8sBackends = []string{"clientset", "rest"}

// k8sAPI returns the driver's view of c through backend.
func k8sAPI(t *testing.T, backend string, c *fake.Clientset) KubernetesAPI {
	t.Helper()
	if backend == "clientset" {
		return clientsetAPI{c}
	}
	api, err := NewKubernetesClient(&rest.Config{Host: "http://k8s.test", Transport: inProcess{&fakeAPIServer{c: c}}, QPS: -1})
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// clientsetAPI is KubernetesAPI over a clientset.
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

// fakeAPIServer serves the API server's endpoints the driver uses from a
// fake clientset, refusing requests a real API server would refuse
// (unknown paths, a patch without the strategic merge content type, an
// eviction body that is not a policy/v1 Eviction).
type fakeAPIServer struct{ c *fake.Clientset }

func (s *fakeAPIServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var obj runtime.Object
	var err error
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/version":
		v, _ := s.c.Discovery().ServerVersion()
		writeJSON(w, v)
		return
	case r.Method == http.MethodGet && len(p) == 4 && p[0] == "api" && p[2] == "nodes":
		obj, err = s.c.CoreV1().Nodes().Get(ctx, p[3], metav1.GetOptions{})
	case r.Method == http.MethodPatch && len(p) == 4 && p[0] == "api" && p[2] == "nodes":
		if ct := r.Header.Get("Content-Type"); ct != string(types.StrategicMergePatchType) {
			err = apierrors.NewBadRequest("patch content type " + ct)
			break
		}
		body, _ := io.ReadAll(r.Body)
		obj, err = s.c.CoreV1().Nodes().Patch(ctx, p[3], types.StrategicMergePatchType, body, metav1.PatchOptions{})
	case r.Method == http.MethodGet && len(p) == 3 && p[0] == "api" && p[2] == "pods":
		obj, err = s.c.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: r.URL.Query().Get("fieldSelector")})
	case r.Method == http.MethodGet && len(p) == 6 && p[0] == "api" && p[4] == "pods":
		obj, err = s.c.CoreV1().Pods(p[3]).Get(ctx, p[5], metav1.GetOptions{})
	case r.Method == http.MethodPost && len(p) == 7 && p[0] == "api" && p[4] == "pods" && p[6] == "eviction":
		var ev policyv1.Eviction
		if derr := json.NewDecoder(r.Body).Decode(&ev); derr != nil || ev.APIVersion != "policy/v1" || ev.Kind != "Eviction" || ev.Name != p[5] || ev.Namespace != p[3] {
			err = apierrors.NewBadRequest(fmt.Sprintf("eviction body %+v (%v)", ev.TypeMeta, derr))
			break
		}
		if err = s.c.PolicyV1().Evictions(p[3]).Evict(ctx, &ev); err == nil {
			w.WriteHeader(http.StatusCreated)
			writeJSON(w, &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusSuccess})
			return
		}
	case r.Method == http.MethodGet && len(p) == 6 && p[1] == "policy" && p[5] == "poddisruptionbudgets":
		obj, err = s.c.PolicyV1().PodDisruptionBudgets(p[4]).List(ctx, metav1.ListOptions{})
	default:
		err = apierrors.NewNotFound(corev1.Resource(r.URL.Path), "")
	}
	var st apierrors.APIStatus
	switch {
	case errors.As(err, &st):
		status := st.Status()
		status.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
		w.WriteHeader(int(status.Code))
		writeJSON(w, &status)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// The tracker's objects carry no type; the API server's do.
	gvks, _, _ := scheme.Scheme.ObjectKinds(obj)
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	writeJSON(w, obj)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// inProcess serves requests with a handler in-process: no sockets, so
// the tests run in a synctest bubble.
type inProcess struct{ h http.Handler }

func (t inProcess) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func TestKubernetesConfig(t *testing.T) {
	path := t.TempDir() + "/kubeconfig"
	kc := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t0k3n}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := KubernetesConfig(path)
	if err != nil || cfg.Host != "https://10.0.0.1:6443" || cfg.BearerToken != "t0k3n" {
		t.Fatalf("kubeconfig: %+v %v", cfg, err)
	}
	if _, err := NewKubernetesClient(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := KubernetesConfig(path + ".missing"); err == nil || !strings.Contains(err.Error(), "kubeconfig") {
		t.Fatalf("missing kubeconfig: %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := KubernetesConfig(""); err == nil || !strings.Contains(err.Error(), "in-cluster") {
		t.Fatalf("in-cluster outside a pod: %v", err)
	}
}
