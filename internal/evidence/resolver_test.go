package evidence

import (
	"context"
	"testing"
	"time"
)

// TestResolverNowhere: a resolver that never answers (a server pointing
// nowhere) leaves answers that say so within the collector's time, and
// the configuration, rather than a section cut off at its timeout.
func TestResolverNowhere(t *testing.T) {
	h := Host{GOOS: "linux", Root: fakeRoot(t), LookupHost: func(ctx context.Context, name string) ([]string, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := collectResolver(ctx, h, Spec{Names: []string{"db.internal", "api.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	r := v.(Resolver)
	if ctx.Err() != nil {
		t.Errorf("the lookups took the collector's whole time")
	}
	if r.Conf == nil || len(r.Conf.Nameservers) != 1 || len(r.Answers) != 2 || r.Answers[0].Error == "" || r.Answers[1].Error == "" {
		t.Errorf("resolver %+v", r)
	}
}
