package driver

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubernetesAPI is what the Kubernetes node driver needs of the API
// server: read and patch its node, list and read pods, evict pods through
// the eviction subresource (so PodDisruptionBudgets are honoured), and
// list budgets to name the one blocking a drain. Errors are client-go's
// (*apierrors.StatusError for answers of the API server), so
// apierrors.IsNotFound and IsTooManyRequests apply.
//
// NewKubernetesClient implements it with client-go's REST client; tests
// wrap client-go's fake clientset.
type KubernetesAPI interface {
	GetNode(ctx context.Context, name string) (*corev1.Node, error)
	PatchNode(ctx context.Context, name string, pt types.PatchType, data []byte) error
	// ListPods lists the pods of every namespace that opts selects.
	ListPods(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error)
	GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error)
	EvictPod(ctx context.Context, e *policyv1.Eviction) error
	ListPodDisruptionBudgets(ctx context.Context, namespace string) (*policyv1.PodDisruptionBudgetList, error)
	// ServerVersion is the API server's version (its /version gitVersion,
	// "v1.31.4").
	ServerVersion(ctx context.Context) (string, error)
}

// KubernetesConfig returns the client configuration of the node's
// cluster: from the kubeconfig file at path, or, when path is empty, the
// in-cluster configuration of a pod's service account.
func KubernetesConfig(path string) (*rest.Config, error) {
	if path == "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kubernetes: in-cluster config: %w", err)
		}
		return c, nil
	}
	c, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: kubeconfig %s: %w", path, err)
	}
	return c, nil
}

// NewKubernetesClient returns the driver's API client for cfg: client-go's
// REST client, as the generated typed clients use it, with a scheme that
// knows only core/v1 and policy/v1.
//
// It does not use the clientset (k8s.io/client-go/kubernetes) on purpose:
// importing it registers every API group of Kubernetes in a global scheme
// at init (4.4 ms, 674 KB), touching the code and type data of some fifty
// API packages, in every binary that links this package. Measured on idle
// agents side by side (cmd/drover-agent, linux/amd64): the clientset adds
// 6.6 MiB of RSS over this client, which adds 4.3 MiB over no Kubernetes
// client at all.
func NewKubernetesClient(cfg *rest.Config) (KubernetesAPI, error) {
	scheme := runtime.NewScheme()
	if err := corev1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("kubernetes: scheme: %w", err)
	}
	if err := policyv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("kubernetes: scheme: %w", err)
	}
	codecs := serializer.NewCodecFactory(scheme)
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	client := func(gv *schema.GroupVersion, apiPath string) (*rest.RESTClient, error) {
		c := rest.CopyConfig(cfg)
		c.GroupVersion = gv
		c.APIPath = apiPath
		c.NegotiatedSerializer = codecs.WithoutConversion()
		if c.UserAgent == "" {
			c.UserAgent = rest.DefaultKubernetesUserAgent()
		}
		rc, err := rest.RESTClientForConfigAndClient(c, hc)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: %s client: %w", gv, err)
		}
		return rc, nil
	}
	core, err := client(&corev1.SchemeGroupVersion, "/api")
	if err != nil {
		return nil, err
	}
	policy, err := client(&policyv1.SchemeGroupVersion, "/apis")
	if err != nil {
		return nil, err
	}
	return &kubeClient{core: core, policy: policy, params: runtime.NewParameterCodec(scheme)}, nil
}

// kubeClient is KubernetesAPI over client-go's REST clients of core/v1
// and policy/v1; the requests are those of the generated typed clients.
type kubeClient struct {
	core, policy rest.Interface
	params       runtime.ParameterCodec
}

var _ KubernetesAPI = (*kubeClient)(nil)

func (c *kubeClient) GetNode(ctx context.Context, name string) (*corev1.Node, error) {
	n := &corev1.Node{}
	if err := c.core.Get().Resource("nodes").Name(name).Do(ctx).Into(n); err != nil {
		return nil, err
	}
	return n, nil
}

func (c *kubeClient) PatchNode(ctx context.Context, name string, pt types.PatchType, data []byte) error {
	return c.core.Patch(pt).Resource("nodes").Name(name).
		VersionedParams(&metav1.PatchOptions{}, c.params).Body(data).Do(ctx).Error()
}

func (c *kubeClient) ListPods(ctx context.Context, opts metav1.ListOptions) (*corev1.PodList, error) {
	l := &corev1.PodList{}
	if err := c.core.Get().Resource("pods").VersionedParams(&opts, c.params).Do(ctx).Into(l); err != nil {
		return nil, err
	}
	return l, nil
}

func (c *kubeClient) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	p := &corev1.Pod{}
	if err := c.core.Get().Namespace(namespace).Resource("pods").Name(name).Do(ctx).Into(p); err != nil {
		return nil, err
	}
	return p, nil
}

// EvictPod posts e to the pod's eviction subresource, as client-go's
// typed policy/v1 client does.
func (c *kubeClient) EvictPod(ctx context.Context, e *policyv1.Eviction) error {
	return c.policy.Post().AbsPath("/api/v1").Namespace(e.Namespace).Resource("pods").Name(e.Name).
		SubResource("eviction").Body(e).Do(ctx).Error()
}

func (c *kubeClient) ListPodDisruptionBudgets(ctx context.Context, namespace string) (*policyv1.PodDisruptionBudgetList, error) {
	l := &policyv1.PodDisruptionBudgetList{}
	if err := c.policy.Get().Namespace(namespace).Resource("poddisruptionbudgets").Do(ctx).Into(l); err != nil {
		return nil, err
	}
	return l, nil
}

// ServerVersion reads the API server's /version.
func (c *kubeClient) ServerVersion(ctx context.Context) (string, error) {
	raw, err := c.core.Get().AbsPath("/version").Do(ctx).Raw()
	if err != nil {
		return "", err
	}
	var v struct {
		GitVersion string `json:"gitVersion"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("kubernetes: /version: %w", err)
	}
	return v.GitVersion, nil
}
